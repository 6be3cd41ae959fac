// Launcher of kernels/layernorm.wgsl: normalisation over the last C elements of each row, forward and backward
// (dx; the weight and bias gradients are column sums the caller takes with the reduction kernel).
import { type TensorBase, allocLike } from '../tensor/base.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, dummy } from './common.js';
import kernel from './kernels/layernorm.js';

/** y, mean [rows] and rstd [rows] of x seen as [rows, C]; x, weight and bias contiguous from offset 0. */
export function layerNormForward<T extends TensorBase>(x: T, weight: TensorBase | null, bias: TensorBase | null, rows: number, C: number, eps: number): { y: T; mean: T; rstd: T } {
  const fn = 'layerNorm';
  const bindings = {
    x: bufOf(x, fn),
    weight: weight ? bufOf(weight, fn) : dummy(),
    bias: bias ? bufOf(bias, fn) : dummy(),
  };
  const y = allocLike(x, x.shape.slice(), 'f32');
  const mean = allocLike(x, [rows], 'f32');
  const rstd = allocLike(x, [rows], 'f32');
  if (rows > 0) {
    dispatch(kernel, 'forward', {
      constants: { HAS_WEIGHT: weight ? 1 : 0, HAS_BIAS: bias ? 1 : 0 },
      bindings: { ...bindings, y: bufOf(y, fn), mean: bufOf(mean, fn), rstd: bufOf(rstd, fn) },
      params: { rows, C, eps, pad0: 0 },
      workgroups: grid1d(rows),
      label: fn,
    });
  }
  return { y, mean, rstd };
}

/** dx from the saved x, mean, rstd and dy (all contiguous from offset 0). */
export function layerNormBackward<T extends TensorBase>(x: T, weight: TensorBase | null, dy: TensorBase, mean: TensorBase, rstd: TensorBase, rows: number, C: number, eps: number): T {
  const fn = 'layerNorm.backward';
  const dx = allocLike(x, x.shape.slice(), 'f32');
  if (rows > 0) {
    dispatch(kernel, 'backward', {
      constants: { HAS_WEIGHT: weight ? 1 : 0, HAS_BIAS: 0 },
      bindings: {
        x: bufOf(x, fn),
        weight: weight ? bufOf(weight, fn) : dummy(),
        dy: bufOf(dy, fn),
        saved_mean: bufOf(mean, fn),
        saved_rstd: bufOf(rstd, fn),
        dx: bufOf(dx, fn),
      },
      params: { rows, C, eps, pad0: 0 },
      workgroups: grid1d(rows),
      label: fn,
    });
  }
  return dx;
}
