// Launchers of kernels/optimizer.wgsl (the fused step over a parameter arena) and kernels/grad_norm.wgsl (the global
// gradient norm and its clipping). The arenas and tables are the optimizer's (src/optim/arena.ts); these only bind.
import type { TensorBase } from '../tensor/base.js';
import { gpu } from '../gpu/device.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { encodeCopy } from '../gpu/queue.js';
import { bufOf, dummy } from './common.js';
import { copy } from './elementwise.js';
import optimizerKernel from './kernels/optimizer.js';
import gradNormKernel from './kernels/grad_norm.js';

/** The update rules of optimizer.wgsl (MODE_*). */
export const OPTIMIZER_MODE = {
  sgd: optimizerKernel.constants.MODE_SGD,
  adam: optimizerKernel.constants.MODE_ADAM,
  adamw: optimizerKernel.constants.MODE_ADAMW,
} as const;
/** A table row's lag for a parameter without a gradient this step (optimizer.wgsl's SKIP). */
export const SKIP_STEP = optimizerKernel.constants.SKIP;

export interface OptimizerHyper {
  mode: number;
  lr: number;
  weightDecay: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  beta1: number;
  beta2: number;
  eps: number;
  maximize: boolean;
}

/** One arena's buffers: parameters, gradients and state share its offsets; `total` is its length in elements. */
export interface ArenaBuffers {
  table: TensorBase;
  weights: TensorBase;
  grads: TensorBase;
  /** m at [0, total) and, for Adam, v at [total, 2 total); null when the rule keeps no state. */
  state: TensorBase | null;
  total: number;
  numParams: number;
}

/**
 * The most elements an arena of a rule with `stateWords` state values per element may hold: each of its buffers must
 * fit one storage binding, with room for the buffer pool's rounding up (at most 25%).
 */
export function arenaCapacity(stateWords: number): number {
  const limits = gpu().device.limits;
  const bytes = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  return Math.floor((0.8 * bytes) / 4 / Math.max(1, stateWords));
}

/** dst[dstOffset, dstOffset + n) = src[srcOffset, srcOffset + n) for 32-bit elements: a buffer copy, no dispatch. */
export function copyElements(src: TensorBase, dst: TensorBase, dstOffset: number, n: number, srcOffset = src.offset): void {
  if (n === 0) return;
  encodeCopy(src.buf('copy').buffer.buffer, srcOffset * 4, dst.buf('copy').buffer.buffer, dstOffset * 4, n * 4);
}

/**
 * slot <- g, where slot is a parameter's gradient slot in an arena (contiguous) and g a gradient of its shape and
 * dtype: a buffer copy when g is contiguous (no dispatch), else the strided copy kernel.
 */
export function copyToSlot(fn: string, slot: TensorBase, g: TensorBase): void {
  if (g.isContiguous && g.dtype !== 'f16') copyElements(g, slot, slot.offset, g.size);
  else copy(fn, slot, g);
}

/**
 * One dispatch: every parameter of the arena whose table row is not SKIP takes step number `step` - its lag; none
 * does when `skipIf` (a one-element f32 flag, GradScaler's found-inf) holds a nonzero value on the GPU.
 */
export function optimizerStep(fn: string, arena: ArenaBuffers, step: number, h: OptimizerHyper, skipIf: TensorBase | null = null, stepNow?: () => number): void {
  if (arena.total === 0 || arena.numParams === 0) return;
  dispatch(optimizerKernel, 'step', {
    // A compiled step's replay takes the optimizer's step count and hyperparameters as they are at that call.
    replay: stepNow && (() => ({ step: stepNow(), lr: h.lr, weight_decay: h.weightDecay, momentum: h.momentum, dampening: h.dampening, beta1: h.beta1, beta2: h.beta2, eps: h.eps })),
    bindings: {
      table: bufOf(arena.table, fn),
      grads: bufOf(arena.grads, fn),
      weights: bufOf(arena.weights, fn),
      state: arena.state ? bufOf(arena.state, fn) : dummy(true),
      // The read-only placeholder is never written, so it reads as zeros (WebGPU zero-fills new buffers).
      skip: skipIf ? bufOf(skipIf, fn) : dummy(),
    },
    params: {
      total: arena.total, num_params: arena.numParams, mode: h.mode, nesterov: h.nesterov, step, maximize: h.maximize,
      lr: h.lr, weight_decay: h.weightDecay, momentum: h.momentum, dampening: h.dampening,
      beta1: h.beta1, beta2: h.beta2, eps: h.eps, skip_offset: skipIf ? skipIf.offset : 0,
    },
    workgroups: grid1d(Math.ceil(arena.total / 256)),
    label: fn,
  });
}

/** Gradients of one buffer: `grads` is any tensor on it; table rows are (start, elements before) per segment. */
export interface GradSegments {
  grads: TensorBase;
  table: TensorBase;
  numSegments: number;
  /** Elements in all segments. */
  count: number;
}

const MAX_PARTIALS = 256;
const MAX_SCALE_WORKGROUPS = 1024;

/** How many partial sums sum_squares writes for `count` elements (its workgroups): about 2048 elements each. */
export function gradNormPartialCount(count: number): number {
  return Math.min(MAX_PARTIALS, Math.max(1, Math.ceil(count / 2048)));
}

/** partials[base, base + gradNormPartialCount(count)) = sums of squares over the segments. */
export function gradNormSumSquares(fn: string, seg: GradSegments, partials: TensorBase, base: number): void {
  dispatch(gradNormKernel, 'sum_squares', {
    bindings: { table: bufOf(seg.table, fn), grads: bufOf(seg.grads, fn), partials: bufOf(partials, fn) },
    params: { count: seg.count, num_segments: seg.numSegments, partial_base: partials.offset + base, num_partials: 0, max_norm: 0, norm_offset: 0, pad0: 0, pad1: 0 },
    workgroups: [gradNormPartialCount(seg.count), 1, 1],
    label: `${fn}.sumSquares`,
  });
}

/**
 * Scales the segments by min(maxNorm / (norm + 1e-6), 1) (NaN kept), norm = sqrt(sum of the first numPartials of
 * `partials`), and writes the norm to `norm` (one element). Run after every sum_squares that feeds the partials.
 */
export function gradNormScale(fn: string, seg: GradSegments, partials: TensorBase, numPartials: number, maxNorm: number, norm: TensorBase): void {
  dispatch(gradNormKernel, 'scale', {
    bindings: { table: bufOf(seg.table, fn), grads: bufOf(seg.grads, fn), partials: bufOf(partials, fn), norm_out: bufOf(norm, fn) },
    params: { count: seg.count, num_segments: seg.numSegments, partial_base: partials.offset, num_partials: numPartials, max_norm: maxNorm, norm_offset: norm.offset, pad0: 0, pad1: 0 },
    // About 2048 elements a workgroup: each one first sums the partials (a barrier tree, costly on lavapipe).
    workgroups: [Math.min(MAX_SCALE_WORKGROUPS, Math.max(1, Math.ceil(seg.count / 2048))), 1, 1],
    label: `${fn}.scale`,
  });
}

/**
 * Multiplies the segments by invScale in place and writes, per workgroup, whether it met a NaN or infinite value to
 * partials[base, base + gradNormPartialCount(count)) (GradScaler.unscale's first dispatch).
 */
export function gradUnscaleCheck(fn: string, seg: GradSegments, partials: TensorBase, base: number, invScale: number): void {
  dispatch(gradNormKernel, 'unscale_check', {
    bindings: { table: bufOf(seg.table, fn), grads: bufOf(seg.grads, fn), partials: bufOf(partials, fn) },
    params: { count: seg.count, num_segments: seg.numSegments, partial_base: partials.offset + base, num_partials: 0, max_norm: invScale, norm_offset: 0, pad0: 0, pad1: 0 },
    workgroups: [gradNormPartialCount(seg.count), 1, 1],
    label: `${fn}.unscale`,
  });
}

/** flag (one f32 element) = 1 when any of the first numPartials of `partials` is nonzero, else 0: one dispatch. */
export function gradFoundInf(fn: string, partials: TensorBase, numPartials: number, flag: TensorBase): void {
  dispatch(gradNormKernel, 'found_inf', {
    bindings: { partials: bufOf(partials, fn), norm_out: bufOf(flag, fn) },
    params: { count: 0, num_segments: 0, partial_base: partials.offset, num_partials: numPartials, max_norm: 0, norm_offset: flag.offset, pad0: 0, pad1: 0 },
    workgroups: [1, 1, 1],
    label: `${fn}.foundInf`,
  });
}

/** Clamps the segments to [-clipValue, clipValue] in place (NaN kept): one dispatch. */
export function gradClampValue(fn: string, seg: GradSegments, clipValue: number): void {
  dispatch(gradNormKernel, 'clamp_value', {
    bindings: { table: bufOf(seg.table, fn), grads: bufOf(seg.grads, fn) },
    params: { count: seg.count, num_segments: seg.numSegments, partial_base: 0, num_partials: 0, max_norm: clipValue, norm_offset: 0, pad0: 0, pad1: 0 },
    workgroups: [Math.min(MAX_SCALE_WORKGROUPS, Math.max(1, Math.ceil(seg.count / 256))), 1, 1],
    label: `${fn}.clamp`,
  });
}
