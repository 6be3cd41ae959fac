// Launcher of kernels/crossentropy.wgsl: fused log-softmax + negative log-likelihood (+ label smoothing) over class
// logits [N, C] with i32 targets [N], its reduction and its backward.
import { type TensorBase, allocLike } from '../tensor/base.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, dummy } from './common.js';

export const CE_MODE = { none: 0, sum: 1, mean: 2 } as const;
export type CeReduction = keyof typeof CE_MODE;

export interface CeParams {
  N: number;
  C: number;
  ignoreIndex: number;
  reduction: CeReduction;
  smoothing: number;
}

function params(p: CeParams, gOffset = 0): Record<string, number> {
  return { N: p.N, C: p.C, ignore_index: p.ignoreIndex, mode: CE_MODE[p.reduction], smoothing: p.smoothing, pad0: gOffset, pad1: 0, pad2: 0 };
}

/**
 * Row losses [N] and the rows' log-sum-exp [N] (saved for backward); with a reduction also total [2]: the reduced loss
 * and the factor backward scales by. logits and targets contiguous from offset 0.
 */
export function crossEntropyForward<T extends TensorBase>(logits: T, targets: TensorBase, p: CeParams): { rowLoss: T; lse: T; total: T | null } {
  const fn = 'crossEntropy';
  const lb = bufOf(logits, fn), tb = bufOf(targets, fn);
  const rowLoss = allocLike(logits, [p.N], 'f32');
  const lse = allocLike(logits, [p.N], 'f32');
  if (p.N > 0 && p.C > 0) {
    dispatch('crossentropy.wgsl', 'forward', {
      bindings: { logits: lb, targets: tb, row_loss: bufOf(rowLoss, fn), lse: bufOf(lse, fn) },
      params: params(p),
      workgroups: grid1d(p.N),
      label: fn,
    });
  }
  if (p.reduction === 'none') return { rowLoss, lse, total: null };
  const total = allocLike(logits, [2], 'f32');
  dispatch('crossentropy.wgsl', 'reduce', {
    bindings: { losses_in: bufOf(rowLoss, fn), targets: tb, total: bufOf(total, fn) },
    params: params(p),
    workgroups: [1, 1, 1],
    label: `${fn}.reduce`,
  });
  return { rowLoss, lse, total };
}

/** dx [N, C] from the saved logits, targets, lse, total (with a reduction) and the incoming gradient dy. */
export function crossEntropyBackward<T extends TensorBase>(logits: T, targets: TensorBase, lse: TensorBase, total: TensorBase | null, dy: TensorBase, p: CeParams): T {
  const fn = 'crossEntropy.backward';
  const dx = allocLike(logits, [p.N, p.C], 'f32');
  if (p.N * p.C > 0) {
    dispatch('crossentropy.wgsl', 'backward', {
      bindings: {
        logits: bufOf(logits, fn),
        targets: bufOf(targets, fn),
        lse_in: bufOf(lse, fn),
        dy: bufOf(dy, fn),
        scale: total ? bufOf(total, fn) : dummy(),
        dx: bufOf(dx, fn),
      },
      params: params(p, dy.offset),
      workgroups: grid1d(Math.ceil((p.N * p.C) / 256)),
      label: fn,
    });
  }
  return dx;
}
