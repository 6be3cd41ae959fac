// Launcher of kernels/gather.wgsl: rows of a table picked by i32 indices (embedding), and the adjoint scatter-add.
import { type TensorBase, allocLike } from '../tensor/base.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf } from './common.js';
import { fill } from './elementwise.js';

/** out [...idx.shape, C] = table[idx] for a table [V, C]; table and idx contiguous from offset 0. */
export function gatherRows<T extends TensorBase>(fn: string, table: T, idx: TensorBase): T {
  const [V, C] = table.shape;
  const R = idx.size;
  const tb = bufOf(table, fn), ib = bufOf(idx, fn);
  const out = allocLike(table, [...idx.shape, C], 'f32');
  if (R * C > 0) {
    dispatch('gather.wgsl', 'gather', {
      bindings: { table: tb, idx: ib, out: bufOf(out, fn) },
      params: { R, C, V, pad0: 0 },
      workgroups: grid1d(Math.ceil((R * C) / 256)),
      label: fn,
      indexShape: idx.shape,
    });
  }
  return out;
}

/** acc [V, C] = sum over r of src[r] into row idx[r] (zeros first); src and idx contiguous from offset 0. */
export function scatterAddRows<T extends TensorBase>(fn: string, src: T, idx: TensorBase, V: number, C: number): T {
  const R = idx.size;
  const sb = bufOf(src, fn), ib = bufOf(idx, fn);
  const acc = allocLike(src, [V, C], 'f32');
  fill(fn, acc, 0);
  if (R * C > 0) {
    dispatch('gather.wgsl', 'scatter_add', {
      bindings: { src: sb, idx: ib, acc: bufOf(acc, fn) },
      params: { R, C, V, pad0: 0 },
      workgroups: grid1d(Math.ceil((R * C) / 256)),
      label: fn,
      indexShape: idx.shape,
    });
  }
  return acc;
}
