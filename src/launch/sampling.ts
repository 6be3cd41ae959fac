// Launcher of kernels/sampling.wgsl: multinomial sampling from rows of weights (any offset and strides), with
// replacement (a scan and binary searches, one workgroup per row) or without (exponential-race keys, then the n
// smallest by sort.wgsl).
import { type TensorBase, allocLike } from '../tensor/base.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf } from './common.js';
import { sortAlong } from './sort.js';
import kernel from './kernels/sampling.js';

const WG = 256;

/** probs [rows, C] (a 2-D view); returns i32 [rows, n] sample ids. */
export function multinomialRows<T extends TensorBase>(fn: string, probs: T, n: number, replacement: boolean, seed: [number, number]): T {
  const pb = bufOf(probs, fn);
  const [rows, C] = probs.shape;
  const params = { rows, C, n, p_off: probs.offset, p_sr: probs.strides[0], p_sc: probs.strides[1], seed0: seed[0] >>> 0, seed1: seed[1] >>> 0 };
  if (replacement) {
    const out = allocLike(probs, [rows, n], 'i32');
    if (rows * n === 0) return out;
    const cum = allocLike(probs, [rows, C], 'f32');
    dispatch(kernel, 'with_replacement', { bindings: { probs: pb, cum: bufOf(cum, fn), out: bufOf(out, fn) }, params, workgroups: grid1d(rows), label: fn });
    cum.dispose();
    return out;
  }
  const keys = allocLike(probs, [rows, C], 'f32');
  try {
    if (rows * C > 0) dispatch(kernel, 'race_keys', { bindings: { probs: pb, keys: bufOf(keys, fn) }, params, workgroups: grid1d(Math.ceil((rows * C) / WG)), label: fn });
    const { values, indices } = sortAlong(fn, keys, 1, n, false);
    values.dispose();
    if (rows * n > 0) dispatch(kernel, 'mark_invalid', { bindings: { probs: pb, out: bufOf(indices, fn) }, params, workgroups: grid1d(rows), label: fn });
    return indices;
  } finally {
    keys.dispose();
  }
}
