// Launcher of kernels/softmax.wgsl: softmax / log-softmax along one dim, forward and backward.
import { type TensorBase, allocLike } from '../tensor/base.js';
import { numel } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, dummy } from './common.js';
import kernel from './kernels/softmax.js';

/**
 * Forward (dy null): out = softmax(x) along `dim`; backward: out = dx from the forward's output x = y and dy. x (and
 * dy) must be contiguous from offset 0: the caller makes them so.
 */
export function softmax<T extends TensorBase>(fn: string, log: boolean, x: T, dy: TensorBase | null, dim: number): T {
  const xb = bufOf(x, fn);
  const dyb = dy ? bufOf(dy, fn) : dummy();
  const out = allocLike(x, x.shape.slice(), 'f32');
  if (x.size === 0) return out;
  const R = x.rank === 0 ? 1 : x.shape[dim];
  const inner = x.rank === 0 ? 1 : numel(x.shape.slice(dim + 1));
  const rows = x.size / Math.max(R, 1);
  dispatch(kernel, dy ? 'backward' : 'forward', {
    constants: { LOG: log ? 1 : 0 },
    bindings: { x: xb, dy: dyb, out: bufOf(out, fn) },
    params: { rows, R, inner, pad0: 0 },
    workgroups: grid1d(rows),
    label: `${fn}${dy ? '.backward' : ''}`,
  });
  return out;
}
