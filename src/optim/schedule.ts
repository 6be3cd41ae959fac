// Learning-rate schedules: pure factor functions and small scheduler classes over an optimizer's lr.
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

/**
 * Sets optimizer.lr = baseLr * factor(stepCount). Call step() after each optimizer.step(), as PyTorch's
 * schedulers; the constructor applies factor(0).
 */
export class LambdaLR {
  readonly baseLr: number;
  lastEpoch = 0;
  constructor(
    readonly optimizer: Optimizer,
    readonly lrLambda: (step: number) => number,
  ) {
    if (typeof lrLambda !== 'function') throw new ValueError('LambdaLR: lrLambda must be a function');
    this.baseLr = optimizer.lr;
    this.apply();
  }
  private apply(): void {
    const f = this.lrLambda(this.lastEpoch);
    if (!Number.isFinite(f) || f < 0) throw new ValueError(`LambdaLR: the factor at step ${this.lastEpoch} is ${f}; it must be finite and >= 0`);
    this.optimizer.lr = this.baseLr * f;
  }
  step(): void {
    this.lastEpoch++;
    this.apply();
  }
  getLastLr(): number {
    return this.optimizer.lr;
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
    super(optimizer, (s) => linearWarmup(s, warmupSteps, startFactor));
  }
}

/** torch.optim.lr_scheduler.CosineAnnealingLR without restarts: lr = etaMin + (base - etaMin)(1 + cos(pi t / tMax)) / 2. */
export class CosineAnnealingLR extends LambdaLR {
  constructor(optimizer: Optimizer, options: { tMax: number; etaMin?: number }) {
    const fn = 'CosineAnnealingLR';
    const o = requiredOptions(fn, options, ['tMax', 'etaMin'], 'tMax');
    const tMax = checkStep(fn, 'tMax', o.tMax, 1);
    const etaMin = checkFactor(fn, 'etaMin', o.etaMin, 0);
    const base = optimizer.lr;
    super(optimizer, (s) => (base === 0 ? 0 : cosineDecay(s, tMax, etaMin / base)));
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
    super(optimizer, (s) => warmupCosine(s, warmupSteps, totalSteps, minFactor));
  }
}
