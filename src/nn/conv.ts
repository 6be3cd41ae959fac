// Convolution, pooling, flattening and batch-norm modules, with PyTorch's parameter and buffer names and
// initialisation (kaiming_uniform with a = sqrt(5) for the weight, U(+-1/sqrt(fan_in)) for the bias), so state dicts
// move both ways.
import { ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import type { Tensor } from '../ops/tensor.js';
import { tensor } from '../ops/creation.js';
import { flatten } from '../ops/views.js';
import {
  type Pair, adaptiveAvgPool2d, avgPool2d, batchNorm, conv1d, conv2d, maxPool2d, toPair,
} from '../ops/conv.js';
import { incrementCounter } from '../launch/conv.js';
import { Module } from './module.js';
import { checkPositiveInt, checkSeed, constParam, uniformParam } from './init.js';

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
  seed?: number;
}

export interface Conv1dModuleOptions {
  stride?: number;
  padding?: number | 'same' | 'valid';
  dilation?: number;
  groups?: number;
  bias?: boolean;
  seed?: number;
}

function checkGroups(fn: string, inChannels: number, outChannels: number, groups: number): void {
  checkPositiveInt(fn, 'groups', groups);
  if (inChannels % groups !== 0) throw new ValueError(`${fn}: inChannels ${inChannels} must be divisible by groups ${groups}`);
  if (outChannels % groups !== 0) throw new ValueError(`${fn}: outChannels ${outChannels} must be divisible by groups ${groups}`);
}

/** Weight [out, in / groups, ...kernel] and bias [out], both U(+-1/sqrt(fan_in)) (PyTorch's reset_parameters). */
function convParams(m: Module, kernel: number[], inChannels: number, outChannels: number, groups: number, bias: boolean, seed: number): [Tensor, Tensor | null] {
  const fanIn = (inChannels / groups) * kernel.reduce((a, b) => a * b, 1);
  // kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
  const bound = 1 / Math.sqrt(fanIn);
  const w = m.registerParameter('weight', uniformParam([outChannels, inChannels / groups, ...kernel], bound, seed, 0));
  const b = m.registerParameter('bias', bias ? uniformParam([outChannels], bound, seed, 1) : null);
  return [w, b];
}

/** 2-D convolution over [N, C, H, W] (or [C, H, W]); weight [outChannels, inChannels / groups, kH, kW]. */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number] | 'same' | 'valid';
  readonly dilation: [number, number];
  readonly groups: number;
  weight: Tensor;
  bias: Tensor | null;
  constructor(inChannels: number, outChannels: number, kernelSize: Pair, options?: Conv2dOptions) {
    super();
    const fn = 'Conv2d';
    const o = checkOptions(fn, options, ['stride', 'padding', 'dilation', 'groups', 'bias', 'seed']);
    checkPositiveInt(fn, 'inChannels', inChannels);
    checkPositiveInt(fn, 'outChannels', outChannels);
    this.groups = o.groups ?? 1;
    checkGroups(fn, inChannels, outChannels, this.groups);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = toPair(fn, 'kernelSize', kernelSize, 1);
    this.stride = toPair(fn, 'stride', o.stride ?? 1, 1);
    this.dilation = toPair(fn, 'dilation', o.dilation ?? 1, 1);
    const p = o.padding ?? 0;
    this.padding = p === 'same' || p === 'valid' ? p : toPair(fn, 'padding', p, 0);
    if (p === 'same' && (this.stride[0] !== 1 || this.stride[1] !== 1)) throw new ValueError(`${fn}: padding 'same' needs stride 1, got ${fmtShape(this.stride)}`);
    [this.weight, this.bias] = convParams(this, this.kernelSize, inChannels, outChannels, this.groups, o.bias ?? true, checkSeed(fn, o.seed));
  }
  override forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
  override extraRepr(): string {
    return `${this.inChannels}, ${this.outChannels}, kernelSize=${fmtShape(this.kernelSize)}, stride=${fmtShape(this.stride)}, padding=${typeof this.padding === 'string' ? this.padding : fmtShape(this.padding)}${this.groups > 1 ? `, groups=${this.groups}` : ''}, bias=${this.bias !== null}`;
  }
}

/** 1-D convolution over [N, C, L] (or [C, L]); weight [outChannels, inChannels / groups, kernelSize]. */
export class Conv1d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number | 'same' | 'valid';
  readonly dilation: number;
  readonly groups: number;
  weight: Tensor;
  bias: Tensor | null;
  constructor(inChannels: number, outChannels: number, kernelSize: number, options?: Conv1dModuleOptions) {
    super();
    const fn = 'Conv1d';
    const o = checkOptions(fn, options, ['stride', 'padding', 'dilation', 'groups', 'bias', 'seed']);
    checkPositiveInt(fn, 'inChannels', inChannels);
    checkPositiveInt(fn, 'outChannels', outChannels);
    checkPositiveInt(fn, 'kernelSize', kernelSize);
    this.groups = o.groups ?? 1;
    checkGroups(fn, inChannels, outChannels, this.groups);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = kernelSize;
    this.stride = toPair(fn, 'stride', o.stride ?? 1, 1, 1)[1];
    this.dilation = toPair(fn, 'dilation', o.dilation ?? 1, 1, 1)[1];
    const p = o.padding ?? 0;
    this.padding = p === 'same' || p === 'valid' ? p : toPair(fn, 'padding', p, 0, 1)[1];
    if (p === 'same' && this.stride !== 1) throw new ValueError(`${fn}: padding 'same' needs stride 1, got ${this.stride}`);
    [this.weight, this.bias] = convParams(this, [kernelSize], inChannels, outChannels, this.groups, o.bias ?? true, checkSeed(fn, o.seed));
  }
  override forward(x: Tensor): Tensor {
    return conv1d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
  override extraRepr(): string {
    return `${this.inChannels}, ${this.outChannels}, kernelSize=${this.kernelSize}, stride=${this.stride}, padding=${this.padding}${this.groups > 1 ? `, groups=${this.groups}` : ''}, bias=${this.bias !== null}`;
  }
}

export interface MaxPool2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
}

export class MaxPool2d extends Module {
  readonly kernelSize: Pair;
  readonly options: MaxPool2dOptions;
  constructor(kernelSize: Pair, options?: MaxPool2dOptions) {
    super();
    this.options = { ...checkOptions('MaxPool2d', options, ['stride', 'padding', 'dilation']) };
    toPair('MaxPool2d', 'kernelSize', kernelSize, 1);
    this.kernelSize = kernelSize;
  }
  override forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.options);
  }
  override extraRepr(): string {
    return `kernelSize=${JSON.stringify(this.kernelSize)}, ${JSON.stringify(this.options)}`;
  }
}

export interface AvgPool2dOptions {
  stride?: Pair;
  padding?: Pair;
  countIncludePad?: boolean;
}

export class AvgPool2d extends Module {
  readonly kernelSize: Pair;
  readonly options: AvgPool2dOptions;
  constructor(kernelSize: Pair, options?: AvgPool2dOptions) {
    super();
    this.options = { ...checkOptions('AvgPool2d', options, ['stride', 'padding', 'countIncludePad']) };
    toPair('AvgPool2d', 'kernelSize', kernelSize, 1);
    this.kernelSize = kernelSize;
  }
  override forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.options);
  }
  override extraRepr(): string {
    return `kernelSize=${JSON.stringify(this.kernelSize)}, ${JSON.stringify(this.options)}`;
  }
}

export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: number | [number | null, number | null];
  constructor(outputSize: number | [number | null, number | null]) {
    super();
    this.outputSize = outputSize;
  }
  override forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
  override extraRepr(): string {
    return `outputSize=${JSON.stringify(this.outputSize)}`;
  }
}

/** Flattens dims startDim..endDim (default 1..-1, keeping the batch dim), as PyTorch's nn.Flatten. */
export class Flatten extends Module {
  readonly startDim: number;
  readonly endDim: number;
  constructor(startDim = 1, endDim = -1) {
    super();
    if (!Number.isInteger(startDim) || !Number.isInteger(endDim)) throw new ValueError(`Flatten: startDim and endDim must be integers, got ${startDim}, ${endDim}`);
    this.startDim = startDim;
    this.endDim = endDim;
  }
  override forward(x: Tensor): Tensor {
    return flatten(x, this.startDim, this.endDim);
  }
  override extraRepr(): string {
    return `startDim=${this.startDim}, endDim=${this.endDim}`;
  }
}

export interface BatchNormModuleOptions {
  eps?: number;
  momentum?: number;
  affine?: boolean;
  trackRunningStats?: boolean;
}

/**
 * Batch normalisation over the channels (dim 1), as PyTorch's BatchNorm2d / BatchNorm1d: weight ones, bias zeros,
 * buffers running_mean (zeros), running_var (ones) and num_batches_tracked (an i32 scalar; PyTorch's is int64). In
 * training the batch statistics normalise and update the running ones (unbiased variance); in eval the running ones
 * normalise.
 */
abstract class BatchNormBase extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number;
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  numBatchesTracked: Tensor | null;
  protected abstract readonly ranks: number[];
  constructor(fn: string, numFeatures: number, options?: BatchNormModuleOptions) {
    super();
    const o = checkOptions(fn, options, ['eps', 'momentum', 'affine', 'trackRunningStats']);
    checkPositiveInt(fn, 'numFeatures', numFeatures);
    this.numFeatures = numFeatures;
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum ?? 0.1;
    if (typeof this.eps !== 'number' || !(this.eps > 0)) throw new ValueError(`${fn}: eps must be > 0, got ${String(o.eps)}`);
    if (typeof this.momentum !== 'number' || !(this.momentum >= 0 && this.momentum <= 1)) {
      throw new ValueError(`${fn}: momentum must be a number in [0, 1], got ${String(o.momentum)}`);
    }
    const affine = o.affine ?? true;
    const track = o.trackRunningStats ?? true;
    this.weight = this.registerParameter('weight', affine ? constParam([numFeatures], 1) : null);
    this.bias = this.registerParameter('bias', affine ? constParam([numFeatures], 0) : null);
    this.runningMean = this.registerBuffer('running_mean', track ? tensor(new Float32Array(numFeatures)) : null);
    this.runningVar = this.registerBuffer('running_var', track ? tensor(new Float32Array(numFeatures).fill(1)) : null);
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', track ? tensor(0, { dtype: 'i32' }) : null);
  }
  override forward(x: Tensor): Tensor {
    const name = `${this.constructor.name}(${this.numFeatures})`;
    if (!this.ranks.includes(x.rank)) {
      throw new ShapeError(`${name}: expects ${this.ranks.map((r) => `${r}-D`).join(' or ')} input [N, C, ...], got ${fmtShape(x.shape)}`);
    }
    if (x.shape[1] !== this.numFeatures) throw new ShapeError(`${name}: input ${fmtShape(x.shape)} has ${x.shape[1]} channels, expected ${this.numFeatures}`);
    const useBatch = this.training || !this.runningMean;
    const y = batchNorm(x, this.runningMean, this.runningVar, {
      weight: this.weight, bias: this.bias, training: useBatch, momentum: this.momentum, eps: this.eps,
    });
    if (this.training && this.numBatchesTracked) incrementCounter(`${name}.num_batches_tracked`, this.numBatchesTracked);
    return y;
  }
  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum}, affine=${this.weight !== null}, trackRunningStats=${this.runningMean !== null}`;
  }
}

export class BatchNorm2d extends BatchNormBase {
  protected readonly ranks = [4];
  constructor(numFeatures: number, options?: BatchNormModuleOptions) {
    super('BatchNorm2d', numFeatures, options);
  }
}

export class BatchNorm1d extends BatchNormBase {
  protected readonly ranks = [2, 3];
  constructor(numFeatures: number, options?: BatchNormModuleOptions) {
    super('BatchNorm1d', numFeatures, options);
  }
}
