// Launchers of kernels/conv.wgsl (2-D convolution as implicit GEMMs: forward, input gradient, weight gradient),
// kernels/pool.wgsl (max, average and adaptive average pooling) and kernels/batchnorm.wgsl (per-channel batch norm).
// Every input is a 4-D NCHW view read in place through its offset and strides; outputs are contiguous.
import { DeviceError } from '../errors.js';
import { type TensorBase, allocLike } from '../tensor/base.js';
import { numel } from '../tensor/shape.js';
import { gpu } from '../gpu/device.js';
import { dispatch, grid1d, kernelVariant } from '../gpu/kernels.js';
import { bufOf, dummy, nativeF16, rawBuf } from './common.js';
import { reduce } from './reduce.js';
import convKernel from './kernels/conv.js';
import poolKernel from './kernels/pool.js';
import bnKernel from './kernels/batchnorm.js';

const { TM, TN, FORWARD, GRAD_INPUT } = convKernel.constants;
/** The weight gradient's entry point (kernels/conv.wgsl grad_weight); the other two are `main` with MODE. */
const GRAD_WEIGHT = 2;

/** The geometry of one 2-D convolution (validated by the op). */
export interface ConvGeometry {
  N: number; C: number; H: number; W: number;
  O: number; Ho: number; Wo: number; KH: number; KW: number;
  groups: number;
  stride: [number, number];
  /** Top and left padding (PyTorch's 'same' may pad one more at the bottom or right; that needs no parameter). */
  padding: [number, number];
  dilation: [number, number];
}

type ConvMode = typeof FORWARD | typeof GRAD_INPUT | typeof GRAD_WEIGHT;

/** Workgroups of one launch: (column tiles x row tiles) per GEMM, one GEMM per group (and per batch split). */
function convWorkgroups(g: ConvGeometry, mode: ConvMode): number {
  const Cg = g.C / g.groups, Og = g.O / g.groups;
  const tiles = (rows: number, cols: number) => Math.ceil(rows / TM) * Math.ceil(cols / TN);
  if (mode === FORWARD) return tiles(Og, g.N * g.Ho * g.Wo) * g.groups;
  if (mode === GRAD_INPUT) return tiles(Cg, g.N * g.H * g.W) * g.groups;
  return tiles(Og, Cg * g.KH * g.KW) * g.groups * weightSplits(g);
}

/** Threads of a conv workgroup (kernels/conv.wgsl WX x WY) and the outputs each computes (RM x RN). */
const { WX, WY, RM, RN } = convKernel.constants;

/**
 * The weight gradient's lanes: where a group's whole GEMM (Og x Cg KH KW) needs only a corner of a workgroup's
 * threads (a first layer's 8 x 9 needs 2 x 2 of 8 x 4), the workgroup runs `lanes` copies of that corner, each summing
 * every lanes-th output row into its own slice, so the other threads work instead of idling.
 */
export function weightLanes(g: ConvGeometry): { lanes: number; laneX: number; laneY: number } {
  const Cg = g.C / g.groups, Og = g.O / g.groups;
  const laneX = Math.ceil((Cg * g.KH * g.KW) / RN), laneY = Math.ceil(Og / RM);
  if (laneX > WX || laneY > WY) return { lanes: 1, laneX, laneY };
  const lanes = Math.min(Math.floor((WX * WY) / (laneX * laneY)), g.Ho);
  return { lanes: Math.max(lanes, 1), laneX, laneY };
}

/** Workgroups the weight gradient should keep busy before its long reduction is split. */
const SPLIT_TARGET = 64;
/** Output positions a split should sum at the least (below, the extra pass costs more than it spreads). */
const SPLIT_MIN_K = 256;

/**
 * Batch splits of the weight gradient: its GEMM is small (O x Cg KH KW) and its reduction long (N Ho Wo), so a
 * first layer's is one or two workgroups, which leave all but one or two cores idle; split s sums its own images
 * into a slice of a scratch tensor and a reduction over the slices (fixed order: deterministic) finishes.
 */
export function weightSplits(g: ConvGeometry): number {
  const Cg = g.C / g.groups, Og = g.O / g.groups;
  const wgs = Math.ceil(Og / TM) * Math.ceil((Cg * g.KH * g.KW) / TN) * g.groups;
  const byLength = Math.floor((g.N * g.Ho * g.Wo) / SPLIT_MIN_K);
  const want = Math.min(g.N, Math.ceil(SPLIT_TARGET / wgs), byLength);
  if (want <= 1) return 1;
  // As many splits as chunks of ceil(N / want) images: none empty.
  return Math.ceil(g.N / Math.ceil(g.N / want));
}

/** Throws DeviceError (before any allocation) where a convolution would need more workgroups than the adapter runs. */
export function checkConv(fn: string, g: ConvGeometry): void {
  const lim = gpu().device.limits.maxComputeWorkgroupsPerDimension;
  for (const mode of [FORWARD, GRAD_INPUT, GRAD_WEIGHT] as ConvMode[]) {
    const n = convWorkgroups(g, mode);
    if (n > lim * lim) throw new DeviceError(`${fn}: input [${g.N},${g.C},${g.H},${g.W}] needs ${n} workgroups, over this adapter's ${lim} x ${lim}`);
  }
  // Indices are u32 in the kernel.
  if (g.N * g.O * g.Ho * g.Wo >= 2 ** 32 || g.N * g.C * g.H * g.W >= 2 ** 32) throw new DeviceError(`${fn}: tensors over 2^32 elements are not supported`);
}

function strides4(t: TensorBase | null): number[] {
  return t ? t.strides.slice(0, 4) : [0, 0, 0, 0];
}

function convLaunch<T extends TensorBase>(fn: string, mode: ConvMode, g: ConvGeometry, like: T, outShape: number[],
  x: TensorBase | null, w: TensorBase | null, dy: TensorBase | null, bias: TensorBase | null): T {
  const splits = mode === GRAD_WEIGHT && numel(outShape) > 0 ? weightSplits(g) : 1;
  const lanes = mode === GRAD_WEIGHT && numel(outShape) > 0 ? weightLanes(g) : { lanes: 1, laneX: 0, laneY: 0 };
  const slices = splits * lanes.lanes;
  const out = allocLike(like, slices > 1 ? [slices, ...outShape] : outShape, 'f32');
  if (numel(outShape) === 0) return out;
  // An empty reduction (no input channels, or an empty batch in the weight gradient) needs no special case: the
  // kernel's loops run zero times and it writes zeros (plus the bias).
  dispatch(convKernel, mode === GRAD_WEIGHT ? 'grad_weight' : 'main', {
    constants: mode === GRAD_WEIGHT ? {} : { MODE: mode, HAS_BIAS: bias ? 1 : 0 },
    bindings: {
      x: x ? bufOf(x, fn) : dummy(), w: w ? bufOf(w, fn) : dummy(), dy: dy ? bufOf(dy, fn) : dummy(),
      bias: bias ? bufOf(bias, fn) : dummy(), out: bufOf(out, fn),
    },
    params: {
      N: g.N, C: g.C, H: g.H, W: g.W, O: g.O, Ho: g.Ho, Wo: g.Wo, KH: g.KH, KW: g.KW, groups: g.groups,
      sh: g.stride[0], sw: g.stride[1], ph: g.padding[0], pw: g.padding[1], dh: g.dilation[0], dw: g.dilation[1],
      x_off: x?.offset ?? 0, w_off: w?.offset ?? 0, dy_off: dy?.offset ?? 0, b_off: bias?.offset ?? 0, b_stride: bias?.strides[0] ?? 0,
      x_strides: strides4(x), w_strides: strides4(w), dy_strides: strides4(dy), splits,
      lanes: lanes.lanes, lane_x: lanes.laneX, lane_y: lanes.laneY,
    },
    workgroups: grid1d(convWorkgroups(g, mode)),
    // The two gradients apart, so a profile tells them from each other.
    label: mode === FORWARD ? fn : `${fn} (${mode === GRAD_INPUT ? 'input' : 'weight'} gradient)`,
  });
  if (slices === 1) return out;
  try {
    return reduce(`${fn} (weight gradient)`, out, [0], false, 'sum');
  } finally {
    out.dispose();
  }
}

/** y [N, O, Ho, Wo] = conv2d(x [N, C, H, W], w [O, C / groups, KH, KW]) + bias [O]. */
export function conv2dForward<T extends TensorBase>(fn: string, x: T, w: TensorBase, bias: TensorBase | null, g: ConvGeometry): T {
  return convLaunch(fn, FORWARD, g, x, [g.N, g.O, g.Ho, g.Wo], x, w, null, bias);
}

/** dx [N, C, H, W] from dy [N, O, Ho, Wo] and w. */
export function conv2dGradInput<T extends TensorBase>(fn: string, dy: T, w: TensorBase, g: ConvGeometry): T {
  return convLaunch(fn, GRAD_INPUT, g, dy, [g.N, g.C, g.H, g.W], null, w, dy, null);
}

/** dw [O, C / groups, KH, KW] from dy [N, O, Ho, Wo] and x. */
export function conv2dGradWeight<T extends TensorBase>(fn: string, dy: T, x: TensorBase, g: ConvGeometry): T {
  return convLaunch(fn, GRAD_WEIGHT, g, dy, [g.O, g.C / g.groups, g.KH, g.KW], x, null, dy, null);
}

/** The geometry of one 2-D pooling (validated by the op). */
export interface PoolGeometry {
  N: number; C: number; H: number; W: number; Ho: number; Wo: number;
  kernel: [number, number]; stride: [number, number]; padding: [number, number]; dilation: [number, number];
}

const POOL_WG = 256;

function poolParams(g: PoolGeometry, x: TensorBase | null, dy: TensorBase | null) {
  return {
    P: g.N * g.C, C: g.C, H: g.H, W: g.W, Ho: g.Ho, Wo: g.Wo, KH: g.kernel[0], KW: g.kernel[1],
    sh: g.stride[0], sw: g.stride[1], ph: g.padding[0], pw: g.padding[1], dh: g.dilation[0], dw: g.dilation[1],
    x_off: x?.offset ?? 0, dy_off: dy?.offset ?? 0, x_strides: strides4(x), dy_strides: strides4(dy),
  };
}

/** Max pooling: values [N, C, Ho, Wo] and the plane-flat i32 index (ih W + iw) of each maximum. */
export function maxPoolForward<T extends TensorBase>(fn: string, x: T, g: PoolGeometry): { values: T; indices: T } {
  const shape = [g.N, g.C, g.Ho, g.Wo];
  const values = allocLike(x, shape, 'f32');
  const indices = allocLike(x, shape, 'i32');
  if (numel(shape) === 0) return { values, indices };
  dispatch(poolKernel, 'max_forward', {
    bindings: { x: bufOf(x, fn), out: bufOf(values, fn), idx: indices.buf(fn).buffer },
    params: poolParams(g, x, null),
    workgroups: grid1d(Math.ceil(numel(shape) / POOL_WG)),
    label: fn,
  });
  return { values, indices };
}

/** dx [N, C, H, W]: each dy routed to the input position its max came from. */
export function maxPoolBackward<T extends TensorBase>(fn: string, dy: T, indices: TensorBase, g: PoolGeometry): T {
  const shape = [g.N, g.C, g.H, g.W];
  const dx = allocLike(dy, shape, 'f32');
  if (numel(shape) === 0) return dx;
  dispatch(poolKernel, 'max_backward', {
    bindings: { dy: bufOf(dy, fn), idx_in: indices.buf(fn).buffer, out: bufOf(dx, fn) },
    params: poolParams(g, null, dy),
    workgroups: grid1d(Math.ceil(numel(shape) / POOL_WG)),
    label: fn,
  });
  return dx;
}

export interface AvgMode { adaptive: boolean; countIncludePad: boolean }

function avgConstants(m: AvgMode): Record<string, number> {
  return { ADAPTIVE: m.adaptive ? 1 : 0, COUNT_INCLUDE_PAD: m.countIncludePad ? 1 : 0 };
}

/** Average pooling (fixed windows or adaptive): [N, C, Ho, Wo]. */
export function avgPoolForward<T extends TensorBase>(fn: string, x: T, g: PoolGeometry, mode: AvgMode): T {
  const shape = [g.N, g.C, g.Ho, g.Wo];
  const out = allocLike(x, shape, 'f32');
  if (numel(shape) === 0) return out;
  dispatch(poolKernel, 'avg_forward', {
    constants: avgConstants(mode),
    bindings: { x: bufOf(x, fn), out: bufOf(out, fn) },
    params: poolParams(g, x, null),
    workgroups: grid1d(Math.ceil(numel(shape) / POOL_WG)),
    label: fn,
  });
  return out;
}

/** dx [N, C, H, W] of average pooling: each input gathers dy / divisor of every window that covers it. */
export function avgPoolBackward<T extends TensorBase>(fn: string, dy: T, g: PoolGeometry, mode: AvgMode): T {
  const shape = [g.N, g.C, g.H, g.W];
  const dx = allocLike(dy, shape, 'f32');
  if (numel(shape) === 0) return dx;
  dispatch(poolKernel, 'avg_backward', {
    constants: avgConstants(mode),
    bindings: { dy: bufOf(dy, fn), out: bufOf(dx, fn) },
    params: poolParams(g, null, dy),
    workgroups: grid1d(Math.ceil(numel(shape) / POOL_WG)),
    label: fn,
  });
  return dx;
}

export interface BatchNormSpec {
  training: boolean;
  /** Update the running statistics in place (training with running stats). */
  updateRunning: boolean;
  eps: number;
  momentum: number;
}

function bnParams(x: TensorBase, dy: TensorBase | null, spec: BatchNormSpec, vecs: (TensorBase | null)[]) {
  const [N, C, H, W] = x.shape;
  const [w, b, rm, rv] = vecs.map((t) => t?.offset ?? 0);
  return {
    N, C, H, W, eps: spec.eps, momentum: spec.momentum, x_off: x.offset, dy_off: dy?.offset ?? 0, w_off: w, b_off: b, rm_off: rm, rv_off: rv,
    x_strides: strides4(x), dy_strides: strides4(dy),
  };
}

function bnConstants(spec: BatchNormSpec, weight: TensorBase | null, half: boolean): Record<string, number> {
  return { TRAINING: spec.training ? 1 : 0, UPDATE_RUNNING: spec.updateRunning ? 1 : 0, HAS_WEIGHT: weight ? 1 : 0, HALF_IO: half ? 1 : 0 };
}

/**
 * Whether batch norm takes this f16 input as f16 storage (the kernel's 'f16' variant: shader-f16, flag f16.kernels);
 * elsewhere the op widens it to f32 around the f32 kernel (src/ops/conv.ts).
 */
export const batchNormHalf = (x: TensorBase): boolean => x.dtype === 'f16' && nativeF16();

/** The kernel for x's dtype (f16 x: the 'f16' variant, whose x, y, dy and dx are f16). */
const bnKernelFor = (x: TensorBase) => (x.dtype === 'f16' ? kernelVariant(bnKernel, ['f16']) : bnKernel);

/**
 * y = (x - mean) * invstd * weight + bias over channel dim 1 of a 4-D x (the [C] tensors with unit stride, at any
 * offset: the op copies others); returns y (x's dtype: f32, or f16 where batchNormHalf) and the f32 (mean, invstd)
 * it used. weight, bias and the running statistics are f32.
 * runningMean / runningVar are updated in place when spec.updateRunning (their buffers are written).
 */
export function batchNormForward<T extends TensorBase>(fn: string, x: T, weight: TensorBase | null, bias: TensorBase | null,
  runningMean: TensorBase | null, runningVar: TensorBase | null, spec: BatchNormSpec): { y: T; mean: T; invstd: T } {
  const C = x.shape[1];
  const y = allocLike(x, x.shape.slice(), x.dtype);
  const mean = allocLike(x, [C], 'f32');
  const invstd = allocLike(x, [C], 'f32');
  if (C === 0) return { y, mean, invstd };
  // Writable bindings may not alias (the dummy buffer included): without running statistics, scratch ones.
  const scratch = runningMean ? [] : [allocLike(x, [C], 'f32'), allocLike(x, [C], 'f32')];
  const rm = runningMean ?? scratch[0], rv = runningVar ?? scratch[1];
  dispatch(bnKernelFor(x), 'forward', {
    constants: bnConstants(spec, weight, x.dtype === 'f16'),
    bindings: {
      x: rawBuf(x, fn), weight: weight ? bufOf(weight, fn) : dummy(), bias: bias ? bufOf(bias, fn) : dummy(), y: rawBuf(y, fn),
      save_mean: bufOf(mean, fn), save_invstd: bufOf(invstd, fn),
      running_mean: bufOf(rm, fn), running_var: bufOf(rv!, fn),
    },
    params: bnParams(x, null, spec, [weight, bias, rm, rv!]),
    workgroups: grid1d(C),
    label: fn,
  });
  for (const t of scratch) t.dispose();
  return { y, mean, invstd };
}

/** dx [N, C, H, W] contiguous (x's dtype; dy has it too), f32 dweight and dbias [C] of batch norm. */
export function batchNormBackward<T extends TensorBase>(fn: string, dy: T, x: TensorBase, weight: TensorBase | null,
  mean: TensorBase, invstd: TensorBase, spec: BatchNormSpec): { dx: T; dweight: T; dbias: T } {
  const C = x.shape[1];
  const dx = allocLike(dy, x.shape.slice(), x.dtype);
  const dweight = allocLike(dy, [C], 'f32');
  const dbias = allocLike(dy, [C], 'f32');
  if (C === 0) return { dx, dweight, dbias };
  dispatch(bnKernelFor(x), 'backward', {
    constants: bnConstants(spec, weight, x.dtype === 'f16'),
    bindings: {
      x: rawBuf(x, fn), weight: weight ? bufOf(weight, fn) : dummy(), dy: rawBuf(dy, fn),
      saved_mean: bufOf(mean, fn), saved_invstd: bufOf(invstd, fn), dx: rawBuf(dx, fn), dweight: bufOf(dweight, fn), dbias: bufOf(dbias, fn),
    },
    params: bnParams(x, dy, spec, [weight, null, null, null]),
    workgroups: grid1d(C),
    label: fn,
  });
  return { dx, dweight, dbias };
}

/** counter (an i32 scalar tensor) += 1, in place. */
export function incrementCounter(fn: string, counter: TensorBase): void {
  dispatch(bnKernel, 'count', { bindings: { counter: counter.buf(fn).buffer }, workgroups: [1], label: fn });
}


