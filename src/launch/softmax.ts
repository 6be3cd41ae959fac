// Launcher of kernels/softmax.wgsl: softmax / log-softmax along one dim, forward and backward, reading its inputs in
// place (any offset and strides).
import { type TensorBase, allocLike } from '../tensor/base.js';
import { broadcastStrides, numel } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, dummy, pad8 } from './common.js';
import kernel from './kernels/softmax.js';

/**
 * Forward (dy null): out = softmax(x) along `dim`; backward: out = dx from the forward's output x = y and dy (dy is
 * broadcast to y's shape). Output contiguous, f32.
 */
export function softmax<T extends TensorBase>(fn: string, log: boolean, x: T, dy: TensorBase | null, dim: number): T {
  const xb = bufOf(x, fn);
  const dyb = dy ? bufOf(dy, fn) : dummy();
  const out = allocLike(x, x.shape.slice(), 'f32');
  if (x.size === 0) return out;
  const rank0 = x.rank === 0;
  const R = rank0 ? 1 : x.shape[dim];
  const inner = rank0 ? 1 : numel(x.shape.slice(dim + 1));
  const rows = x.size / Math.max(R, 1);
  const others = (v: readonly number[]) => v.filter((_, i) => i !== dim);
  const dyStrides = dy ? broadcastStrides(dy.shape, dy.strides, x.shape) : [];
  dispatch(kernel, dy ? 'backward' : 'forward', {
    constants: { LOG: log ? 1 : 0 },
    bindings: { x: xb, dy: dyb, out: bufOf(out, fn) },
    params: {
      rows, R, inner,
      rank: rank0 ? 0 : x.rank - 1,
      x_off: x.offset,
      x_sr: rank0 ? 0 : x.strides[dim],
      dy_off: dy ? dy.offset : 0,
      dy_sr: dy && !rank0 ? dyStrides[dim] : 0,
      shape: pad8(rank0 ? [] : others(x.shape)),
      x_strides: pad8(rank0 ? [] : others(x.strides)),
      dy_strides: pad8(dy && !rank0 ? others(dyStrides) : []),
    },
    workgroups: grid1d(rows),
    label: `${fn}${dy ? '.backward' : ''}`,
  });
  return out;
}
