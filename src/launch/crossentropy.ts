// Launcher of kernels/crossentropy.wgsl: fused log-softmax + negative log-likelihood (+ label smoothing) over class
// logits [N, C] or [N, C, d1, ...] with i32 targets [N] or [N, d1, ...], its reduction and its backward. Inputs are
// read in place (any offset and strides); the class dim is dim 1.
import { type TensorBase, allocLike } from '../tensor/base.js';
import { broadcastStrides, numel } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, dummy, pad8 } from './common.js';
import kernel from './kernels/crossentropy.js';

export type CeReduction = 'none' | 'sum' | 'mean';
const C_ = kernel.constants;
const MODE: { readonly [K in CeReduction]: number } = { none: C_.MODE_NONE, sum: C_.MODE_SUM, mean: C_.MODE_MEAN };

export interface CeParams {
  ignoreIndex: number;
  reduction: CeReduction;
  smoothing: number;
}

/** The rows (every dim but the class dim 1) and their strides in each input. */
function geometry(logits: TensorBase, targets: TensorBase, dy: TensorBase | null): Record<string, number | number[]> {
  const rowShape = [logits.shape[0], ...logits.shape.slice(2)];
  const rowStrides = (t: TensorBase, shape: number[]) => broadcastStrides(t.shape, t.strides, shape);
  return {
    N: numel(rowShape),
    C: logits.shape[1],
    rank: rowShape.length,
    x_off: logits.offset,
    x_sc: logits.strides[1],
    t_off: targets.offset,
    dy_off: dy ? dy.offset : 0,
    dy_value: 0,
    shape: pad8(rowShape),
    x_strides: pad8([logits.strides[0], ...logits.strides.slice(2)]),
    t_strides: pad8(rowStrides(targets, rowShape)),
    dy_strides: pad8(dy && dy.rank ? rowStrides(dy, rowShape) : []),
  };
}

/**
 * Row losses (the rows' shape, [N] or [N, d1, ...]) and the rows' log-sum-exp (saved for backward); with a reduction
 * also total [2]: the reduced loss and the factor backward scales by.
 */
export function crossEntropyForward<T extends TensorBase>(logits: T, targets: TensorBase, p: CeParams): { rowLoss: T; lse: T; total: T | null } {
  const fn = 'crossEntropy';
  const lb = bufOf(logits, fn), tb = bufOf(targets, fn);
  const rowShape = [logits.shape[0], ...logits.shape.slice(2)];
  const g = geometry(logits, targets, null);
  const common = { ...g, ignore_index: p.ignoreIndex, mode: MODE[p.reduction], smoothing: p.smoothing };
  const N = g.N as number, C = g.C as number;
  const rowLoss = allocLike(logits, rowShape, 'f32');
  const lse = allocLike(logits, [N], 'f32');
  if (N > 0 && C > 0) {
    dispatch(kernel, 'forward', {
      bindings: { logits: lb, targets: tb, row_loss: bufOf(rowLoss, fn), lse: bufOf(lse, fn) },
      params: common,
      workgroups: grid1d(N),
      label: fn,
      indexShape: rowShape,
    });
  }
  if (p.reduction === 'none') return { rowLoss, lse, total: null };
  const total = allocLike(logits, [2], 'f32');
  dispatch(kernel, 'reduce', {
    bindings: { losses_in: bufOf(rowLoss, fn), targets: tb, total: bufOf(total, fn) },
    params: common,
    workgroups: [1, 1, 1],
    label: `${fn}.reduce`,
  });
  return { rowLoss, lse, total };
}

/** dx (contiguous, the logits' shape with the class dim last: [N, d1, ..., C]) from the saved tensors and dy. */
export function crossEntropyBackward<T extends TensorBase>(logits: T, targets: TensorBase, lse: TensorBase, total: TensorBase | null, dy: TensorBase, p: CeParams): T {
  const fn = 'crossEntropy.backward';
  const g = geometry(logits, targets, p.reduction === 'none' ? dy : null);
  const N = g.N as number, C = g.C as number;
  const bindings = {
    logits: bufOf(logits, fn),
    targets: bufOf(targets, fn),
    lse_in: bufOf(lse, fn),
    dy: bufOf(dy, fn),
    scale: total ? bufOf(total, fn) : dummy(),
  };
  const dx = allocLike(logits, [logits.shape[0], ...logits.shape.slice(2), C], 'f32');
  if (N * C > 0) {
    dispatch(kernel, 'backward', {
      bindings: { ...bindings, dx: bufOf(dx, fn) },
      params: { ...g, dy_off: dy.offset, ignore_index: p.ignoreIndex, mode: MODE[p.reduction], smoothing: p.smoothing },
      workgroups: grid1d(Math.ceil((N * C) / 256)),
      label: fn,
      indexShape: [logits.shape[0], ...logits.shape.slice(2)],
    });
  }
  return dx;
}
