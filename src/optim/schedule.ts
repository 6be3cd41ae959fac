// Learning-rate schedules: pure factor functions and small scheduler classes over an optimizer's lr.
import { ValueError } from '../errors.js';
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

export class LinearWarmupLR extends LambdaLR {
  constructor(optimizer: Optimizer, options: { warmupSteps: number; startFactor?: number }) {
    if (!Number.isInteger(options?.warmupSteps) || options.warmupSteps < 0) throw new ValueError(`LinearWarmupLR: warmupSteps must be a non-negative integer, got ${options?.warmupSteps}`);
    super(optimizer, (s) => linearWarmup(s, options.warmupSteps, options.startFactor ?? 0));
  }
}

/** torch.optim.lr_scheduler.CosineAnnealingLR without restarts: lr = etaMin + (base - etaMin)(1 + cos(pi t / tMax)) / 2. */
export class CosineAnnealingLR extends LambdaLR {
  constructor(optimizer: Optimizer, options: { tMax: number; etaMin?: number }) {
    if (!Number.isInteger(options?.tMax) || options.tMax <= 0) throw new ValueError(`CosineAnnealingLR: tMax must be a positive integer, got ${options?.tMax}`);
    const base = optimizer.lr;
    const etaMin = options.etaMin ?? 0;
    super(optimizer, (s) => (base === 0 ? 0 : cosineDecay(s, options.tMax, etaMin / base)));
  }
}

export class WarmupCosineLR extends LambdaLR {
  constructor(optimizer: Optimizer, options: { warmupSteps: number; totalSteps: number; minFactor?: number }) {
    super(optimizer, (s) => warmupCosine(s, options.warmupSteps, options.totalSteps, options.minFactor ?? 0));
  }
}
