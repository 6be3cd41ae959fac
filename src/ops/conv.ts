// Convolution, pooling and batch normalisation (NCHW, as PyTorch's torch.nn.functional): validation naming the shapes
// before any GPU work, the launches of src/launch/conv.ts, and the backward rules.
import { DTypeError, ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { checkDType } from '../tensor/dtype.js';
import { tidy } from '../tensor/base.js';
import {
  type AvgMode, type BatchNormSpec, type ConvGeometry, type PoolGeometry, avgPoolBackward, avgPoolForward, batchNormBackward,
  batchNormForward, batchNormHalf, checkConv, conv2dForward, conv2dGradInput, conv2dGradWeight, maxPoolBackward, maxPoolForward,
} from '../launch/conv.js';
import { reduce } from '../launch/reduce.js';
import { record } from '../autograd/node.js';
import type { Tensor } from './tensor.js';
import { inF32, toDType } from './elementwise.js';
import { contiguous, reshape, squeeze, unsqueeze } from './views.js';

export type Pair = number | [number, number];

export interface ConvOptions {
  stride?: Pair;
  /** Zero padding on each side, or 'valid' (none) or 'same' (the output keeps the input's size; stride 1 only). */
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
}

export interface Conv1dOptions {
  stride?: number | [number];
  padding?: number | [number] | 'same' | 'valid';
  dilation?: number | [number];
  groups?: number;
}

function describe(v: unknown): string {
  return Array.isArray(v) ? `[${v.join(', ')}]` : typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** A number or an [h, w] pair of integers >= min, as a pair. */
export function toPair(fn: string, name: string, v: unknown, min: number, dims = 2): [number, number] {
  const arr = typeof v === 'number' ? new Array(dims).fill(v) : v;
  if (!Array.isArray(arr) || arr.length !== dims || !arr.every((n) => Number.isInteger(n) && n >= min)) {
    throw new ValueError(`${fn}: ${name} must be an integer >= ${min} or ${dims === 2 ? 'an [h, w] pair' : `a list of ${dims}`} of them, got ${describe(v)}`);
  }
  // A 1-D convolution runs as a 2-D one over height 1: the height entry is the identity (stride 1, padding 0, ...).
  return dims === 2 ? [arr[0], arr[1]] : [min, arr[0]];
}

function checkFloat(fn: string, name: string, t: Tensor): void {
  t.buf(fn);
  checkDType(fn, name, t.dtype, ['f32', 'f16']);
}

/** Input, weight and bias of a convolution share one float dtype (as PyTorch's; kiln does not promote here). */
function checkConvDTypes(fn: string, x: Tensor, weight: Tensor, bias: Tensor | null | undefined): void {
  checkFloat(fn, 'input', x);
  checkFloat(fn, 'weight', weight);
  if (bias) checkFloat(fn, 'bias', bias);
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t && t.dtype !== x.dtype) throw new DTypeError(`${fn}: input is ${x.dtype} but ${name} is ${t.dtype} (give them one dtype: cast with .to('${x.dtype}'))`);
  }
}

/**
 * f16 tensors run the f32 kernels on exact widenings and round the result once (the casts are on the tape, so
 * gradients come back in f16); f32 runs as it is.
 */
function halfAround(x: Tensor, others: (Tensor | null)[], body: (x: Tensor, ...others: (Tensor | null)[]) => Tensor): Tensor {
  if (x.dtype !== 'f16') return body(x, ...others);
  return inF32('f16', [x, ...others], (a, ...rest) => body(a!, ...rest));
}

/** Output size of a window sweep, or a ShapeError when the (dilated) window is larger than the padded input. */
function outSize(fn: string, what: string, size: number, pad: number, k: number, dil: number, stride: number, shapes: string): number {
  const eff = dil * (k - 1) + 1;
  if (eff > size + 2 * pad) {
    throw new ShapeError(`${fn}: ${what} ${eff} (kernel ${k}, dilation ${dil}) is larger than the padded input (${size} + 2 * ${pad}) for ${shapes}`);
  }
  return Math.floor((size + 2 * pad - eff) / stride) + 1;
}

/** 3-D unbatched input [C, H, W] runs as [1, C, H, W]; the result drops the added dim. */
function batched(fn: string, x: Tensor, body: (x4: Tensor) => Tensor, rankHint = 'input [N, C, H, W] or [C, H, W]'): Tensor {
  if (x.rank === 4) return body(x);
  if (x.rank !== 3) throw new ShapeError(`${fn}: expects ${rankHint}, got ${fmtShape(x.shape)}`);
  return tidy(() => squeeze(body(unsqueeze(x, 0)), 0));
}

/**
 * Validates a convolution of an input of (4-D) shape xShape with a weight of (4-D) shape wShape; messages name the
 * shapes as the user gave them (xShown, wShown: the 3-D ones of conv1d, or the unbatched input).
 */
function convGeometry(fn: string, xShape: readonly number[], wShape: readonly number[], xShown: readonly number[], wShown: readonly number[],
  bias: Tensor | null | undefined, options: ConvOptions | undefined, conv1d: boolean): ConvGeometry {
  const o = checkOptions(fn, options, ['stride', 'padding', 'dilation', 'groups']);
  const dims = conv1d ? 1 : 2;
  const stride = toPair(fn, 'stride', o.stride ?? 1, 1, dims);
  const dilation = toPair(fn, 'dilation', o.dilation ?? 1, 1, dims);
  const groups = o.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new ValueError(`${fn}: groups must be a positive integer, got ${describe(groups)}`);
  let padding: [number, number];
  const same = o.padding === 'same';
  if (o.padding === 'valid') padding = [0, 0];
  else if (same) {
    if (stride[0] !== 1 || stride[1] !== 1) throw new ValueError(`${fn}: padding 'same' needs stride 1, got stride ${describe(o.stride)}`);
    padding = [0, 0]; // set below from the kernel size
  } else if (typeof o.padding === 'string') throw new ValueError(`${fn}: padding must be a number, a pair, 'same' or 'valid', got ${describe(o.padding)}`);
  else padding = toPair(fn, 'padding', o.padding ?? 0, 0, dims);
  const xs = fmtShape(xShown), ws = fmtShape(wShown);
  const [N, C, H, W] = xShape;
  const [O, Cg, KH, KW] = wShape;
  const shapes = `input ${xs} and weight ${ws}`;
  if (C !== Cg * groups) {
    throw new ShapeError(`${fn}: input ${xs} has ${C} channels but weight ${ws} with groups=${groups} expects ${Cg * groups} (weight dim 1 = in_channels / groups)`);
  }
  if (C % groups !== 0) throw new ShapeError(`${fn}: groups=${groups} does not divide the ${C} input channels of ${xs}`);
  if (O % groups !== 0) throw new ShapeError(`${fn}: groups=${groups} does not divide the ${O} output channels of weight ${ws}`);
  if (O === 0) throw new ShapeError(`${fn}: weight ${ws} has no output channels`);
  if (bias) {
    if (bias.rank !== 1 || bias.shape[0] !== O) throw new ShapeError(`${fn}: bias ${fmtShape(bias.shape)} must be [${O}] for weight ${ws}`);
  }
  if (same) {
    // PyTorch pads d (k - 1) in all, the odd one at the bottom / right: the kernel reads past the edge as zeros.
    padding = [Math.floor((dilation[0] * (KH - 1)) / 2), Math.floor((dilation[1] * (KW - 1)) / 2)];
  }
  const what = conv1d ? ['kernel size', 'kernel size'] : ['kernel height', 'kernel width'];
  const Ho = same ? H : outSize(fn, what[0], H, padding[0], KH, dilation[0], stride[0], shapes);
  const Wo = same ? W : outSize(fn, what[1], W, padding[1], KW, dilation[1], stride[1], shapes);
  const geometry: ConvGeometry = { N, C, H, W, O, Ho, Wo, KH, KW, groups, stride, padding, dilation };
  checkConv(fn, geometry);
  return geometry;
}

function conv2dCore(fn: string, x: Tensor, weight: Tensor, bias: Tensor | null, g: ConvGeometry): Tensor {
  const y = conv2dForward(fn, x, weight, bias, g);
  const bfn = `${fn}.backward`;
  return record(fn, y, [x, weight, bias], (grad, [sx, sw], needs) => [
    needs[0] ? conv2dGradInput(bfn, grad, sw, g) : null,
    needs[1] ? conv2dGradWeight(bfn, grad, sx, g) : null,
    needs[2] ? reduce(bfn, grad, [0, 2, 3], false, 'sum') : null,
  ], [x, weight]);
}

/** 2-D convolution (cross-correlation) of x [N, C, H, W] (or [C, H, W]) with weight [O, C / groups, KH, KW], as PyTorch's. */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, options?: ConvOptions): Tensor {
  const fn = 'conv2d';
  checkConvDTypes(fn, x, weight, bias);
  if (weight.rank !== 4) throw new ShapeError(`${fn}: weight must be [out_channels, in_channels / groups, kH, kW], got ${fmtShape(weight.shape)}`);
  if (x.rank !== 4 && x.rank !== 3) throw new ShapeError(`${fn}: expects input [N, C, H, W] or [C, H, W], got ${fmtShape(x.shape)} (weight ${fmtShape(weight.shape)})`);
  const geometry = convGeometry(fn, x.rank === 4 ? x.shape : [1, ...x.shape], weight.shape, x.shape, weight.shape, bias, options, false);
  return halfAround(x, [weight, bias ?? null], (xf, wf, bf) => batched(fn, xf, (x4) => conv2dCore(fn, x4, wf!, bf, geometry)));
}

/** 1-D convolution of x [N, C, L] (or [C, L]) with weight [O, C / groups, K], as PyTorch's. */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor | null, options?: Conv1dOptions): Tensor {
  const fn = 'conv1d';
  checkConvDTypes(fn, x, weight, bias);
  if (weight.rank !== 3) throw new ShapeError(`${fn}: weight must be [out_channels, in_channels / groups, kernel_size], got ${fmtShape(weight.shape)}`);
  if (x.rank !== 3 && x.rank !== 2) throw new ShapeError(`${fn}: expects input [N, C, L] or [C, L], got ${fmtShape(x.shape)} (weight ${fmtShape(weight.shape)})`);
  const x3 = x.rank === 3 ? x.shape : [1, ...x.shape];
  // As a 2-D convolution over [N, C, 1, L] (views, no copies).
  const geometry = convGeometry(fn, [x3[0], x3[1], 1, x3[2]], [weight.shape[0], weight.shape[1], 1, weight.shape[2]], x.shape, weight.shape,
    bias, options as ConvOptions, true);
  return halfAround(x, [weight, bias ?? null], (xf, wf, bf) => tidy(() => {
    const x4 = unsqueeze(x.rank === 3 ? xf : unsqueeze(xf, 0), 2);
    const w4 = unsqueeze(wf!, 2);
    let y = squeeze(conv2dCore(fn, x4, w4, bf, geometry), 2);
    if (x.rank === 2) y = squeeze(y, 0);
    return y;
  }));
}

export interface MaxPoolOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
}

export interface AvgPoolOptions {
  stride?: Pair;
  padding?: Pair;
  /** Divide by the padded window size (PyTorch's default, true) or by the number of input elements in the window. */
  countIncludePad?: boolean;
}

function poolGeometry(fn: string, x: Tensor, kernelSize: unknown, o: MaxPoolOptions, dilated: boolean): PoolGeometry {
  const kernel = toPair(fn, 'kernelSize', kernelSize, 1);
  const stride = o.stride === undefined || o.stride === null ? kernel : toPair(fn, 'stride', o.stride, 1);
  const padding = toPair(fn, 'padding', o.padding ?? 0, 0);
  const dilation = dilated ? toPair(fn, 'dilation', o.dilation ?? 1, 1) : [1, 1] as [number, number];
  for (let i = 0; i < 2; i++) {
    const eff = dilation[i] * (kernel[i] - 1) + 1;
    if (2 * padding[i] > eff) {
      throw new ValueError(`${fn}: padding ${describe(o.padding)} must be at most half the kernel size ${describe(kernelSize)}${dilated ? ` (dilated: ${eff})` : ''}`);
    }
  }
  const [N, C, H, W] = x.rank === 4 ? x.shape : [1, ...x.shape];
  const shapes = `input ${fmtShape(x.shape)}`;
  const Ho = outSize(fn, 'window height', H, padding[0], kernel[0], dilation[0], stride[0], shapes);
  const Wo = outSize(fn, 'window width', W, padding[1], kernel[1], dilation[1], stride[1], shapes);
  return { N, C, H, W, Ho, Wo, kernel, stride, padding, dilation };
}

function checkPoolInput(fn: string, x: Tensor): void {
  checkFloat(fn, 'input', x);
  if (x.rank !== 4 && x.rank !== 3) throw new ShapeError(`${fn}: expects input [N, C, H, W] or [C, H, W], got ${fmtShape(x.shape)}`);
}

/** Max pooling over kernelSize windows (stride defaults to kernelSize; padding counts as -inf); NaN propagates. */
export function maxPool2d(x: Tensor, kernelSize: Pair, options?: MaxPoolOptions): Tensor {
  const fn = 'maxPool2d';
  const o = checkOptions(fn, options, ['stride', 'padding', 'dilation']);
  checkPoolInput(fn, x);
  const g = poolGeometry(fn, x, kernelSize, o, true);
  // f16: the maximum of exact widenings, narrowed back exactly.
  return halfAround(x, [], (xf) => batched(fn, xf, (x4) => {
    const { values, indices } = maxPoolForward(fn, x4, g);
    const out = record(fn, values, [x4], (grad, [si]) => [maxPoolBackward(`${fn}.backward`, grad, si, g)], [indices]);
    indices.dispose();
    return out;
  }));
}

function avgCore(fn: string, x: Tensor, g: PoolGeometry, mode: AvgMode): Tensor {
  // f16: averaged in f32, rounded once.
  return halfAround(x, [], (xf) =>
    batched(fn, xf, (x4) => record(fn, avgPoolForward(fn, x4, g, mode), [x4], (grad) => [avgPoolBackward(`${fn}.backward`, grad, g, mode)])));
}

/** Average pooling over kernelSize windows (stride defaults to kernelSize; zero padding counted, as PyTorch's default). */
export function avgPool2d(x: Tensor, kernelSize: Pair, options?: AvgPoolOptions): Tensor {
  const fn = 'avgPool2d';
  const o = checkOptions(fn, options, ['stride', 'padding', 'countIncludePad']);
  checkPoolInput(fn, x);
  const countIncludePad = o.countIncludePad ?? true;
  if (typeof countIncludePad !== 'boolean') throw new ValueError(`${fn}: countIncludePad must be true or false, got ${describe(countIncludePad)}`);
  const g = poolGeometry(fn, x, kernelSize, o, false);
  return avgCore(fn, x, g, { adaptive: false, countIncludePad });
}

/** Average pooling to a fixed output size (an entry null keeps the input's size), as PyTorch's adaptive_avg_pool2d. */
export function adaptiveAvgPool2d(x: Tensor, outputSize: number | [number | null, number | null]): Tensor {
  const fn = 'adaptiveAvgPool2d';
  checkPoolInput(fn, x);
  const [N, C, H, W] = x.rank === 4 ? x.shape : [1, ...x.shape];
  const raw = typeof outputSize === 'number' ? [outputSize, outputSize] : outputSize;
  if (!Array.isArray(raw) || raw.length !== 2 || !raw.every((v) => v === null || (Number.isInteger(v) && v >= 1))) {
    throw new ValueError(`${fn}: outputSize must be a positive integer or an [h, w] pair of them (null keeps the input size), got ${describe(outputSize)}`);
  }
  const Ho = raw[0] ?? H, Wo = raw[1] ?? W;
  if (H === 0 || W === 0) throw new ShapeError(`${fn}: input ${fmtShape(x.shape)} has an empty plane`);
  const g: PoolGeometry = { N, C, H, W, Ho, Wo, kernel: [1, 1], stride: [1, 1], padding: [0, 0], dilation: [1, 1] };
  return avgCore(fn, x, g, { adaptive: true, countIncludePad: true });
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  /** Normalise with the batch's statistics (and update the running ones, when given) rather than the running ones. */
  training?: boolean;
  momentum?: number;
  eps?: number;
}

/**
 * Batch normalisation over dim 1 of x [N, C], [N, C, L] or [N, C, H, W], as PyTorch's F.batch_norm: in training the
 * batch statistics normalise and (where runningMean / runningVar are given) update the running ones in place, with the
 * unbiased variance; otherwise the running statistics normalise.
 * f16 x (as PyTorch's half batch norm): statistics and arithmetic in f32, y rounded once to f16; the running
 * statistics are f32 (updated in place in f32), weight and bias f32 or f16 (an f16 one is widened on the tape, so its
 * gradient comes back f16); the gradient of x is f16, those of f32 weight and bias f32.
 */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, options?: BatchNormOptions): Tensor {
  const fn = 'batchNorm';
  const o = checkOptions(fn, options, ['weight', 'bias', 'training', 'momentum', 'eps']);
  checkFloat(fn, 'input', x);
  const training = o.training ?? false;
  const momentum = o.momentum ?? 0.1;
  const eps = o.eps ?? 1e-5;
  if (typeof training !== 'boolean') throw new ValueError(`${fn}: training must be true or false, got ${describe(training)}`);
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)) throw new ValueError(`${fn}: momentum must be a number in [0, 1], got ${describe(momentum)}`);
  if (typeof eps !== 'number' || !(eps > 0)) throw new ValueError(`${fn}: eps must be > 0, got ${describe(eps)}`);
  if (x.rank < 2 || x.rank > 4) throw new ShapeError(`${fn}: expects input [N, C], [N, C, L] or [N, C, H, W], got ${fmtShape(x.shape)}`);
  const C = x.shape[1];
  const named: [string, Tensor | null | undefined][] = [['runningMean', runningMean], ['runningVar', runningVar], ['weight', o.weight], ['bias', o.bias]];
  for (const [name, t] of named) {
    if (!t) continue;
    // The running statistics are written in place by the f32 kernel: an f16 one would lose every small update.
    if (t.dtype === 'f16' && (name === 'runningMean' || name === 'runningVar')) {
      throw new DTypeError(`${fn}: ${name} is f16, but the running statistics are kept and updated in f32 (as nn.BatchNorm2d's buffers; an f16 running average loses small updates): give an f32 tensor`);
    }
    checkFloat(fn, name, t);
    if (t.rank !== 1 || t.shape[0] !== C) throw new ShapeError(`${fn}: ${name} ${fmtShape(t.shape)} must be [${C}] for input ${fmtShape(x.shape)}`);
  }
  if (!!runningMean !== !!runningVar) throw new ValueError(`${fn}: give both runningMean and runningVar, or neither`);
  if (!training && !runningMean) throw new ValueError(`${fn}: without running statistics, training must be true`);
  if (!!o.weight !== !!o.bias) throw new ValueError(`${fn}: give both weight and bias, or neither`);
  const perChannel = x.size / Math.max(C, 1);
  if (training && perChannel <= 1) {
    throw new ValueError(`${fn}: expected more than 1 value per channel when training, got input ${fmtShape(x.shape)}`);
  }
  for (const [name, t] of named.slice(0, 2)) {
    if (t && C > 1 && t.strides[0] !== 1) throw new ValueError(`${fn}: ${name} must have unit stride (it is updated in place), got stride ${t.strides[0]}`);
  }
  if (runningMean && runningVar && runningMean.storage === runningVar.storage) {
    throw new ValueError(`${fn}: runningMean and runningVar must not share storage (both are written in place)`);
  }
  const spec: BatchNormSpec = { training, updateRunning: training && !!runningMean, eps, momentum };
  return tidy(() => {
    // The kernel reads weight and bias with unit stride (at any offset, e.g. inside an optimizer's arena).
    // An f16 weight or bias is widened on the tape (the kernel reads f32 ones).
    const unit = (t: Tensor | null | undefined) => {
      const f = t && t.dtype === 'f16' ? toDType(t, 'f32') : t;
      return f && C > 1 && f.strides[0] !== 1 ? contiguous(f) : f ?? null;
    };
    const weight = unit(o.weight), bias = unit(o.bias);
    const core = (xin: Tensor): Tensor => {
      const v = xin.rank === 4 ? xin : reshape(xin, [xin.shape[0], C, 1, xin.rank === 3 ? xin.shape[2] : 1]);
      const { y, mean, invstd } = batchNormForward(fn, v, weight, bias, runningMean, runningVar, spec);
      const out = record(fn, y, [v, weight, bias], (grad, [sx, sm, si, sw], needs) => {
        const g = grad.dtype === sx.dtype ? grad : toDType(grad, sx.dtype);
        const r = batchNormBackward(`${fn}.backward`, g, sx, sw ?? null, sm, si, spec);
        return [needs[0] ? r.dx : null, needs[1] ? r.dweight : null, needs[2] ? r.dbias : null];
      }, [v, mean, invstd, ...(weight ? [weight] : [])]);
      return xin.rank === 4 ? out : reshape(out, xin.shape.slice());
    };
    // f16 x reads and writes f16 storage where the adapter has shader-f16 (same f32 arithmetic, y rounded once);
    // elsewhere it is widened exactly to f32 around the f32 kernel and y rounded once by the cast.
    if (x.dtype === 'f16' && !batchNormHalf(x)) return inF32('f16', [x], (xw) => core(xw!));
    return core(x);
  });
}
