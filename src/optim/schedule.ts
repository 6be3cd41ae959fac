// Learning-rate schedules: pure factor functions and scheduler objects over an optimizer's lr, with PyTorch's names,
// semantics and state dicts (torch.optim.lr_scheduler).
import { ValueError, checkOptions } from '../errors.js';
import type { Optimizer } from './optimizer.js';

/** 0 -> startFactor ... warmupSteps -> 1, linearly (then 1). */
export function linearWarmup(step: number, warmupSteps: number, startFactor = 0): number {
  if (warmupSteps <= 0 || step >= warmupSteps) return 1;
  return startFactor + (1 - startFactor) * (step / warmupSteps);
}

/** Cosine from 1 at step 0 to minFactor at totalSteps (and after). */
export function cosineDecay(step: number, totalSteps: number, minFactor = 0): number {
  if (totalSteps <= 0) return 1;
  const t = Math.min(Math.max(step, 0), totalSteps) / totalSteps;
  return minFactor + (1 - minFactor) * 0.5 * (1 + Math.cos(Math.PI * t));
}

/** Linear warm-up for warmupSteps, then cosine decay to minFactor at totalSteps. */
export function warmupCosine(step: number, warmupSteps: number, totalSteps: number, minFactor = 0): number {
  if (step < warmupSteps) return linearWarmup(step, warmupSteps);
  return cosineDecay(step - warmupSteps, Math.max(totalSteps - warmupSteps, 0), minFactor);
}

/** What a scheduler's stateDict() returns: PyTorch's field names, numbers only (JSON-safe apart from infinities). */
export interface SchedulerStateDict {
  last_epoch: number;
  base_lrs: number[];
  _last_lr: number[];
  _step_count: number;
  [name: string]: unknown;
}

function checkOptimizer(fn: string, optimizer: unknown): Optimizer {
  const o = optimizer as Optimizer | null;
  if (!o || typeof o !== 'object' || typeof o.step !== 'function' || typeof o.lr !== 'number') throw new ValueError(`${fn}: optimizer must be a kiln optimizer, got ${String(optimizer)}`);
  return o;
}

/**
 * Base of the schedulers whose lr is a function of the step count (torch.optim.lr_scheduler.LRScheduler): the
 * constructor applies the lr at step 0; step() after each optimizer.step() advances it. lrAt(t) is the closed form.
 */
export abstract class LRScheduler {
  readonly optimizer: Optimizer;
  baseLr: number;
  lastEpoch = 0;
  protected lastLr: number;
  protected constructor(
    protected readonly fn: string,
    optimizer: Optimizer,
  ) {
    this.optimizer = checkOptimizer(fn, optimizer);
    this.baseLr = optimizer.lr;
    this.lastLr = optimizer.lr;
  }
  /** The learning rate at step t (t >= 0). */
  protected abstract lrAt(t: number): number;
  protected apply(): void {
    const lr = this.lrAt(this.lastEpoch);
    if (!Number.isFinite(lr) || lr < 0) throw new ValueError(`${this.fn}: the lr at step ${this.lastEpoch} is ${lr}; it must be finite and >= 0`);
    this.optimizer.lr = lr;
    this.lastLr = lr;
  }
  step(): void {
    this.lastEpoch++;
    this.apply();
  }
  /** The lr the last step() (or the constructor) set. */
  getLastLr(): number {
    return this.lastLr;
  }
  /** Its options under PyTorch's names, for the state dict. */
  protected extraState(): Record<string, unknown> {
    return {};
  }
  /** PyTorch's scheduler.state_dict(): plain numbers (a LambdaLR's function is not part of it, as in PyTorch). */
  stateDict(): SchedulerStateDict {
    return { ...this.extraState(), last_epoch: this.lastEpoch, base_lrs: [this.baseLr], _last_lr: [this.lastLr], _step_count: this.lastEpoch + 1 };
  }
  /**
   * Restores the step count, base lr and last lr (the optimizer's lr comes from its own state dict, as in PyTorch). The
   * options recorded in the state dict must equal this scheduler's.
   */
  loadStateDict(sd: SchedulerStateDict): void {
    const fn = `${this.fn}.loadStateDict`;
    if (!sd || typeof sd !== 'object') throw new ValueError(`${fn}: expects what stateDict() returns, got ${String(sd)}`);
    const mine = this.stateDict();
    checkOptions(fn, sd, Object.keys(mine));
    const last = sd.last_epoch;
    if (!Number.isInteger(last) || last < 0) throw new ValueError(`${fn}: last_epoch must be a non-negative integer, got ${String(last)}`);
    const one = (k: '_last_lr' | 'base_lrs'): number => {
      const v = sd[k];
      if (!Array.isArray(v) || v.length !== 1 || typeof v[0] !== 'number' || !Number.isFinite(v[0]) || v[0] < 0) throw new ValueError(`${fn}: ${k} must be [lr] (one param group), got ${JSON.stringify(v)}`);
      return v[0];
    };
    const base = one('base_lrs');
    const lastLr = one('_last_lr');
    const extra = this.extraState();
    for (const k of Object.keys(extra)) {
      if (k in sd && JSON.stringify(sd[k]) !== JSON.stringify(extra[k])) throw new ValueError(`${fn}: ${k} is ${JSON.stringify(sd[k])} in the state dict but ${JSON.stringify(extra[k])} here`);
    }
    this.lastEpoch = last;
    this.baseLr = base;
    this.lastLr = lastLr;
  }
}

/**
 * Sets optimizer.lr = baseLr * factor(stepCount). Call step() after each optimizer.step(), as PyTorch's
 * schedulers; the constructor applies factor(0).
 */
export class LambdaLR extends LRScheduler {
  constructor(
    optimizer: Optimizer,
    readonly lrLambda: (step: number) => number,
    name = 'LambdaLR',
  ) {
    super(name, optimizer);
    if (typeof lrLambda !== 'function') throw new ValueError(`${name}: lrLambda must be a function`);
    this.apply();
  }
  protected lrAt(t: number): number {
    const f = this.lrLambda(t);
    if (!Number.isFinite(f) || f < 0) throw new ValueError(`${this.fn}: the factor at step ${t} is ${f}; it must be finite and >= 0`);
    return this.baseLr * f;
  }
}

function checkStep(fn: string, name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ValueError(`${fn}: ${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

function checkFactor(fn: string, name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ValueError(`${fn}: ${name} must be finite and >= 0, got ${String(v)}`);
  return v;
}

/** Options a scheduler cannot run without: an object, checked for unknown keys. */
function requiredOptions<T extends object>(fn: string, options: T | undefined, allowed: readonly string[], needs: string): T {
  if (options === undefined || options === null) throw new ValueError(`${fn}: options { ${needs} } are required`);
  return checkOptions(fn, options, allowed);
}

export class LinearWarmupLR extends LambdaLR {
  constructor(optimizer: Optimizer, options: { warmupSteps: number; startFactor?: number }) {
    const fn = 'LinearWarmupLR';
    const o = requiredOptions(fn, options, ['warmupSteps', 'startFactor'], 'warmupSteps');
    const warmupSteps = checkStep(fn, 'warmupSteps', o.warmupSteps, 0);
    const startFactor = checkFactor(fn, 'startFactor', o.startFactor, 0);
    super(optimizer, (s) => linearWarmup(s, warmupSteps, startFactor), fn);
  }
}

/** Linear warm-up over warmupSteps, then cosine decay to minFactor at totalSteps. */
export class WarmupCosineLR extends LambdaLR {
  constructor(optimizer: Optimizer, options: { warmupSteps: number; totalSteps: number; minFactor?: number }) {
    const fn = 'WarmupCosineLR';
    const o = requiredOptions(fn, options, ['warmupSteps', 'totalSteps', 'minFactor'], 'warmupSteps, totalSteps');
    const warmupSteps = checkStep(fn, 'warmupSteps', o.warmupSteps, 0);
    const totalSteps = checkStep(fn, 'totalSteps', o.totalSteps, 0);
    const minFactor = checkFactor(fn, 'minFactor', o.minFactor, 0);
    super(optimizer, (s) => warmupCosine(s, warmupSteps, totalSteps, minFactor), fn);
  }
}

function checkGamma(fn: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ValueError(`${fn}: gamma must be finite and > 0, got ${String(v)}`);
  return v;
}

/** torch.optim.lr_scheduler.StepLR: lr = base * gamma^floor(t / stepSize). */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;
  constructor(optimizer: Optimizer, options: { stepSize: number; gamma?: number }) {
    const fn = 'StepLR';
    super(fn, optimizer);
    const o = requiredOptions(fn, options, ['stepSize', 'gamma'], 'stepSize');
    this.stepSize = checkStep(fn, 'stepSize', o.stepSize, 1);
    this.gamma = checkGamma(fn, o.gamma, 0.1);
    this.apply();
  }
  protected lrAt(t: number): number {
    return this.baseLr * this.gamma ** Math.floor(t / this.stepSize);
  }
  protected override extraState(): Record<string, unknown> {
    return { step_size: this.stepSize, gamma: this.gamma };
  }
}

/** torch.optim.lr_scheduler.MultiStepLR: lr = base * gamma^(number of milestones <= t). */
export class MultiStepLR extends LRScheduler {
  readonly milestones: number[];
  readonly gamma: number;
  constructor(optimizer: Optimizer, options: { milestones: number[]; gamma?: number }) {
    const fn = 'MultiStepLR';
    super(fn, optimizer);
    const o = requiredOptions(fn, options, ['milestones', 'gamma'], 'milestones');
    if (!Array.isArray(o.milestones)) throw new ValueError(`${fn}: milestones must be an array of step counts, got ${String(o.milestones)}`);
    this.milestones = o.milestones.map((m, i) => checkStep(fn, `milestones[${i}]`, m, 0)).sort((a, b) => a - b);
    this.gamma = checkGamma(fn, o.gamma, 0.1);
    this.apply();
  }
  protected lrAt(t: number): number {
    return this.baseLr * this.gamma ** this.milestones.filter((m) => m <= t).length;
  }
  protected override extraState(): Record<string, unknown> {
    return { milestones: this.milestones.slice(), gamma: this.gamma };
  }
}

/** torch.optim.lr_scheduler.ExponentialLR: lr = base * gamma^t. */
export class ExponentialLR extends LRScheduler {
  readonly gamma: number;
  constructor(optimizer: Optimizer, options: { gamma: number }) {
    const fn = 'ExponentialLR';
    super(fn, optimizer);
    const o = requiredOptions(fn, options, ['gamma'], 'gamma');
    if (o.gamma === undefined) throw new ValueError(`${fn}: gamma is required`);
    this.gamma = checkGamma(fn, o.gamma, 1);
    this.apply();
  }
  protected lrAt(t: number): number {
    return this.baseLr * this.gamma ** t;
  }
  protected override extraState(): Record<string, unknown> {
    return { gamma: this.gamma };
  }
}

/** torch.optim.lr_scheduler.LinearLR: the factor goes linearly from startFactor to endFactor over totalIters steps. */
export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;
  constructor(optimizer: Optimizer, options?: { startFactor?: number; endFactor?: number; totalIters?: number }) {
    const fn = 'LinearLR';
    super(fn, optimizer);
    const o = checkOptions(fn, options, ['startFactor', 'endFactor', 'totalIters']);
    this.startFactor = checkFactor(fn, 'startFactor', o.startFactor, 1 / 3);
    if (this.startFactor === 0 || this.startFactor > 1) throw new ValueError(`${fn}: startFactor must be in (0, 1], got ${this.startFactor}`);
    this.endFactor = checkFactor(fn, 'endFactor', o.endFactor, 1);
    if (this.endFactor > 1) throw new ValueError(`${fn}: endFactor must be in [0, 1], got ${this.endFactor}`);
    this.totalIters = checkStep(fn, 'totalIters', o.totalIters ?? 5, 1);
    this.apply();
  }
  protected lrAt(t: number): number {
    const u = Math.min(t, this.totalIters) / this.totalIters;
    return this.baseLr * (this.startFactor + (this.endFactor - this.startFactor) * u);
  }
  protected override extraState(): Record<string, unknown> {
    return { start_factor: this.startFactor, end_factor: this.endFactor, total_iters: this.totalIters };
  }
}

/**
 * torch.optim.lr_scheduler.CosineAnnealingLR in its closed form: lr = etaMin + (base - etaMin)(1 + cos(pi t / tMax)) / 2.
 * As PyTorch's, it keeps following the cosine past tMax (back up towards base over the next tMax steps).
 */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;
  constructor(optimizer: Optimizer, options: { tMax: number; etaMin?: number }) {
    const fn = 'CosineAnnealingLR';
    super(fn, optimizer);
    const o = requiredOptions(fn, options, ['tMax', 'etaMin'], 'tMax');
    this.tMax = checkStep(fn, 'tMax', o.tMax, 1);
    this.etaMin = checkFactor(fn, 'etaMin', o.etaMin, 0);
    this.apply();
  }
  protected lrAt(t: number): number {
    return this.etaMin + (this.baseLr - this.etaMin) * 0.5 * (1 + Math.cos((Math.PI * t) / this.tMax));
  }
  protected override extraState(): Record<string, unknown> {
    return { T_max: this.tMax, eta_min: this.etaMin };
  }
}

export interface ReduceLROnPlateauOptions {
  mode?: 'min' | 'max';
  factor?: number;
  patience?: number;
  threshold?: number;
  thresholdMode?: 'rel' | 'abs';
  cooldown?: number;
  minLr?: number;
  eps?: number;
}

/**
 * torch.optim.lr_scheduler.ReduceLROnPlateau: step(metric) once per epoch; after more than `patience` epochs without
 * improvement (beyond `threshold`, relative or absolute) the lr is multiplied by `factor` (not below minLr; a change
 * smaller than eps is skipped), then `cooldown` epochs pass before bad epochs count again. A NaN metric is never an
 * improvement.
 */
export class ReduceLROnPlateau {
  readonly optimizer: Optimizer;
  readonly mode: 'min' | 'max';
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: 'rel' | 'abs';
  readonly cooldown: number;
  readonly minLr: number;
  readonly eps: number;
  best: number;
  numBadEpochs = 0;
  cooldownCounter = 0;
  lastEpoch = 0;
  private lastLr: number;
  constructor(optimizer: Optimizer, options?: ReduceLROnPlateauOptions) {
    const fn = 'ReduceLROnPlateau';
    this.optimizer = checkOptimizer(fn, optimizer);
    const o = checkOptions(fn, options, ['mode', 'factor', 'patience', 'threshold', 'thresholdMode', 'cooldown', 'minLr', 'eps']);
    this.mode = o.mode ?? 'min';
    if (this.mode !== 'min' && this.mode !== 'max') throw new ValueError(`${fn}: mode must be 'min' or 'max', got ${JSON.stringify(o.mode)}`);
    this.thresholdMode = o.thresholdMode ?? 'rel';
    if (this.thresholdMode !== 'rel' && this.thresholdMode !== 'abs') throw new ValueError(`${fn}: thresholdMode must be 'rel' or 'abs', got ${JSON.stringify(o.thresholdMode)}`);
    this.factor = o.factor ?? 0.1;
    if (typeof this.factor !== 'number' || !(this.factor >= 0 && this.factor < 1)) throw new ValueError(`${fn}: factor must be in [0, 1), got ${String(o.factor)}`);
    this.patience = checkStep(fn, 'patience', o.patience ?? 10, 0);
    this.cooldown = checkStep(fn, 'cooldown', o.cooldown ?? 0, 0);
    this.threshold = checkFactor(fn, 'threshold', o.threshold, 1e-4);
    this.minLr = checkFactor(fn, 'minLr', o.minLr, 0);
    this.eps = checkFactor(fn, 'eps', o.eps, 1e-8);
    this.best = this.mode === 'min' ? Infinity : -Infinity;
    this.lastLr = optimizer.lr;
  }
  private isBetter(a: number): boolean {
    const { mode, thresholdMode: tm, threshold: th, best } = this;
    if (mode === 'min') return tm === 'rel' ? a < best * (1 - th) : a < best - th;
    return tm === 'rel' ? a > best * (th + 1) : a > best + th;
  }
  /** One epoch's value of the monitored metric. */
  step(metric: number): void {
    if (typeof metric !== 'number') throw new ValueError(`ReduceLROnPlateau.step: metric must be a number, got ${String(metric)}`);
    this.lastEpoch++;
    if (this.isBetter(metric)) {
      this.best = metric;
      this.numBadEpochs = 0;
    } else this.numBadEpochs++;
    if (this.cooldownCounter > 0) {
      this.cooldownCounter--;
      this.numBadEpochs = 0;
    }
    if (this.numBadEpochs > this.patience) {
      const old = this.optimizer.lr;
      const next = Math.max(old * this.factor, this.minLr);
      if (old - next > this.eps) this.optimizer.lr = next;
      this.cooldownCounter = this.cooldown;
      this.numBadEpochs = 0;
    }
    this.lastLr = this.optimizer.lr;
  }
  getLastLr(): number {
    return this.lastLr;
  }
  stateDict(): SchedulerStateDict {
    return {
      mode: this.mode, factor: this.factor, patience: this.patience, threshold: this.threshold, threshold_mode: this.thresholdMode,
      cooldown: this.cooldown, min_lrs: [this.minLr], eps: this.eps, best: this.best, num_bad_epochs: this.numBadEpochs,
      cooldown_counter: this.cooldownCounter, last_epoch: this.lastEpoch, base_lrs: [this.lastLr], _last_lr: [this.lastLr], _step_count: this.lastEpoch + 1,
    };
  }
  /** Restores best, the bad-epoch and cooldown counters and the step count; its options must equal this one's. */
  loadStateDict(sd: SchedulerStateDict): void {
    const fn = 'ReduceLROnPlateau.loadStateDict';
    if (!sd || typeof sd !== 'object') throw new ValueError(`${fn}: expects what stateDict() returns, got ${String(sd)}`);
    const mine = this.stateDict();
    checkOptions(fn, sd, Object.keys(mine));
    for (const k of ['mode', 'factor', 'patience', 'threshold', 'threshold_mode', 'cooldown', 'min_lrs', 'eps'] as const) {
      if (k in sd && JSON.stringify(sd[k]) !== JSON.stringify(mine[k])) throw new ValueError(`${fn}: ${k} is ${JSON.stringify(sd[k])} in the state dict but ${JSON.stringify(mine[k])} here`);
    }
    const count = (k: string): number => checkStep(fn, k, sd[k], 0);
    const best = sd.best;
    if (typeof best !== 'number' || Number.isNaN(best)) throw new ValueError(`${fn}: best must be a number, got ${String(best)}`);
    const lastLr = Array.isArray(sd._last_lr) && typeof sd._last_lr[0] === 'number' ? sd._last_lr[0] : NaN;
    if (!(lastLr >= 0)) throw new ValueError(`${fn}: _last_lr must be [lr], got ${JSON.stringify(sd._last_lr)}`);
    const numBad = count('num_bad_epochs');
    const cooldown = count('cooldown_counter');
    const last = count('last_epoch');
    this.best = best;
    this.numBadEpochs = numBad;
    this.cooldownCounter = cooldown;
    this.lastEpoch = last;
    this.lastLr = lastLr;
  }
}
