// Dynamic loss scaling for f16 gradients (torch.amp.GradScaler): the loss is multiplied by a scale before backward so
// that small gradients survive f16; before the optimizer steps, the gradients are divided by the scale and checked for
// NaN and infinities on the GPU (two dispatches per gradient buffer: kernels/grad_norm.wgsl unscale_check and
// found_inf); the step itself is skipped on the GPU when the check found any (optimizer.wgsl reads the flag), so
// neither unscale nor step reads anything back. update() reads the flags (the one readback a step needs), backs the
// scale off after a skipped step or grows it after growthInterval clean ones, and takes back the skipped step's counts.
import { ValueError, checkOptions } from '../errors.js';
import { keep } from '../tensor/base.js';
import type { Tensor } from '../ops/tensor.js';
import { empty } from '../ops/creation.js';
import { mulScalar, toDType } from '../ops/elementwise.js';
import { tidy } from '../tensor/base.js';
import { gradFoundInf, gradNormPartialCount, gradUnscaleCheck } from '../launch/optimizer.js';
import type { Optimizer } from './optimizer.js';
import { finishGroups, gradsOf, groupGrads } from './clip.js';

export interface GradScalerOptions {
  /** The first scale (default 2^16). */
  initScale?: number;
  /** The scale is multiplied by this after growthInterval steps without inf or NaN (default 2). */
  growthFactor?: number;
  /** The scale is multiplied by this after a step with inf or NaN gradients (default 0.5). */
  backoffFactor?: number;
  /** Clean steps between two growths (default 2000). */
  growthInterval?: number;
  /** false makes every method a pass-through (scale(loss) is loss, step(opt) is opt.step()), as PyTorch's. */
  enabled?: boolean;
}

/** GradScaler.stateDict(): PyTorch's keys, so a scaler's state moves both ways. */
export interface GradScalerStateDict {
  scale: number;
  growth_factor: number;
  backoff_factor: number;
  growth_interval: number;
  _growth_tracker: number;
}

/** Where an optimizer is in the current iteration (PyTorch's OptState). */
interface OptRecord {
  unscaled: boolean;
  stepped: boolean;
  /** One f32 element: 1 when unscale met inf or NaN. */
  foundInf: Tensor;
}

function positive(fn: string, name: string, v: unknown, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0) || v > max) throw new ValueError(`${fn}: ${name} must be a finite number > 0${max < Infinity ? ` and <= ${max}` : ''}, got ${String(v)}`);
  return v;
}

/**
 * torch.amp.GradScaler: `scaler.scale(loss).backward(); scaler.step(opt); await scaler.update();`, optionally with
 * `scaler.unscale(opt)` before step to clip or inspect the true gradients. The scale starts at initScale, is multiplied
 * by backoffFactor (and the step skipped) when a step's gradients hold inf or NaN, and by growthFactor after
 * growthInterval consecutive clean steps. Optimizers must be impl 'fused' (their step is skipped on the GPU).
 */
export class GradScaler {
  private scaleValue: number;
  private readonly growthFactor: number;
  private readonly backoffFactor: number;
  private readonly growthInterval: number;
  private growthTracker = 0;
  readonly enabled: boolean;
  private readonly records = new Map<Optimizer, OptRecord>();

  constructor(options?: GradScalerOptions) {
    const fn = 'GradScaler';
    const o = checkOptions(fn, options, ['initScale', 'growthFactor', 'backoffFactor', 'growthInterval', 'enabled']);
    this.scaleValue = positive(fn, 'initScale', o.initScale ?? 2 ** 16);
    this.growthFactor = positive(fn, 'growthFactor', o.growthFactor ?? 2);
    if (this.growthFactor <= 1) throw new ValueError(`${fn}: growthFactor must be > 1, got ${this.growthFactor}`);
    this.backoffFactor = positive(fn, 'backoffFactor', o.backoffFactor ?? 0.5);
    if (this.backoffFactor >= 1) throw new ValueError(`${fn}: backoffFactor must be < 1, got ${this.backoffFactor}`);
    const gi = o.growthInterval ?? 2000;
    if (!Number.isInteger(gi) || gi < 1) throw new ValueError(`${fn}: growthInterval must be an integer >= 1, got ${String(gi)}`);
    this.growthInterval = gi;
    if (o.enabled !== undefined && typeof o.enabled !== 'boolean') throw new ValueError(`${fn}: enabled must be true or false, got ${String(o.enabled)}`);
    this.enabled = o.enabled ?? true;
  }

  /** The current scale (1 when disabled), as PyTorch's get_scale(); known on the host, no readback. */
  getScale(): number {
    return this.enabled ? this.scaleValue : 1;
  }

  /**
   * loss * scale, on the tape (backward then gives scaled gradients). An f16 loss is widened to f32 first, as
   * PyTorch's f16 loss times its f32 scale tensor, so the scaled loss itself cannot overflow f16.
   */
  scale(loss: Tensor): Tensor {
    const fn = 'GradScaler.scale';
    if (!loss || typeof loss !== 'object' || !('dtype' in loss)) throw new ValueError(`${fn}: expects a Tensor, got ${String(loss)}`);
    loss.buf(fn);
    if (loss.dtype !== 'f32' && loss.dtype !== 'f16') throw new ValueError(`${fn}: the loss must be a float tensor, got ${loss.dtype}`);
    if (!this.enabled) return loss;
    return tidy(() => mulScalar(loss.dtype === 'f16' ? toDType(loss, 'f32') : loss, this.scaleValue));
  }

  private recordOf(opt: Optimizer): OptRecord {
    let r = this.records.get(opt);
    if (!r) {
      r = { unscaled: false, stepped: false, foundInf: keep(empty([1], 'f32', 'GradScaler.foundInf')) };
      this.records.set(opt, r);
    }
    return r;
  }

  /**
   * Divides the gradients of opt's parameters by the scale in place and records (on the GPU) whether any held inf or
   * NaN; two dispatches for gradients in one buffer (an optimizer's gradient arena). At most once per optimizer
   * between update()s, as PyTorch's unscale_.
   */
  unscale(opt: Optimizer): void {
    const fn = 'GradScaler.unscale';
    if (!this.enabled) return;
    this.checkOptimizer(fn, opt);
    const known = this.records.get(opt);
    if (known?.unscaled) throw new ValueError(`${fn}: unscale() has already been called on this optimizer since the last update()`);
    if (known?.stepped) throw new ValueError(`${fn}: unscale() is being called after step() (call update() first)`);
    const withGrad = gradsOf(fn, opt.params);
    const rec = this.recordOf(opt);
    // The inverse in double, rounded to f32 once (PyTorch: scale.double().reciprocal().float()).
    const invScale = Math.fround(1 / this.scaleValue);
    const groups = groupGrads(fn, withGrad);
    const counts = groups.segments.map((s) => gradNormPartialCount(s.count));
    const numPartials = counts.reduce((a, b) => a + b, 0);
    const partials = empty([Math.max(1, numPartials)], 'f32', `${fn}.partials`);
    groups.temps.push(partials);
    let base = 0;
    groups.segments.forEach((seg, k) => {
      gradUnscaleCheck(fn, seg, partials, base, invScale);
      base += counts[k];
    });
    // No gradient at all: found_inf over zero partials writes 0.
    gradFoundInf(fn, partials, numPartials, rec.foundInf);
    finishGroups(fn, groups);
    rec.unscaled = true;
  }

  /**
   * Unscales opt's gradients (unless unscale(opt) already did) and steps opt; the GPU skips the step when they held
   * inf or NaN, with no readback. At most once per optimizer between update()s.
   */
  step(opt: Optimizer): void {
    const fn = 'GradScaler.step';
    if (!this.enabled) {
      opt.step();
      return;
    }
    this.checkOptimizer(fn, opt);
    if (this.records.get(opt)?.stepped) throw new ValueError(`${fn}: step() has already been called since the last update()`);
    if (!this.records.get(opt)?.unscaled) this.unscale(opt);
    const rec = this.recordOf(opt);
    opt.stepUnless(rec.foundInf);
    rec.stepped = true;
  }

  /**
   * Reads whether any optimizer stepped since the last update met inf or NaN (the one readback of a step), then backs
   * the scale off (and takes back the skipped steps' counts) or counts a clean step, growing the scale after
   * growthInterval of them. `newScale` sets the scale instead, as PyTorch's update(new_scale). Returns whether the
   * step was skipped.
   */
  async update(newScale?: number): Promise<boolean> {
    const fn = 'GradScaler.update';
    if (!this.enabled) return false;
    if (newScale !== undefined) positive(fn, 'newScale', newScale);
    const recs = [...this.records.entries()].filter(([, r]) => r.unscaled || r.stepped);
    if (!recs.length) throw new ValueError(`${fn}: no inf checks were recorded before update() (call step(opt) or unscale(opt) first)`);
    const flags = await Promise.all(recs.map(([, r]) => r.foundInf.toArray()));
    const skipped = flags.some((f) => f[0] !== 0);
    for (const [opt, r] of recs) {
      if (skipped && r.stepped) opt.uncountStep();
      r.unscaled = false;
      r.stepped = false;
    }
    if (newScale !== undefined) {
      this.scaleValue = newScale;
    } else if (skipped) {
      this.scaleValue = Math.fround(this.scaleValue * this.backoffFactor);
      this.growthTracker = 0;
    } else if (++this.growthTracker >= this.growthInterval) {
      const grown = Math.fround(this.scaleValue * this.growthFactor);
      // As PyTorch's _amp_update_scale_: the scale grows only while it stays finite.
      if (Number.isFinite(grown)) this.scaleValue = grown;
      this.growthTracker = 0;
    }
    return skipped;
  }

  /** The scaler's state as PyTorch's state_dict() keys. */
  stateDict(): GradScalerStateDict {
    return {
      scale: this.scaleValue,
      growth_factor: this.growthFactor,
      backoff_factor: this.backoffFactor,
      growth_interval: this.growthInterval,
      _growth_tracker: this.growthTracker,
    };
  }

  /** Restores stateDict()'s scale and growth tracker (the factors and interval must match this scaler's). */
  loadStateDict(sd: GradScalerStateDict): void {
    const fn = 'GradScaler.loadStateDict';
    if (!sd || typeof sd !== 'object') throw new ValueError(`${fn}: expects a state dict object, got ${String(sd)}`);
    const scale = positive(fn, 'scale', sd.scale);
    const tracker = sd._growth_tracker;
    if (!Number.isInteger(tracker) || tracker < 0) throw new ValueError(`${fn}: _growth_tracker must be an integer >= 0, got ${String(tracker)}`);
    for (const [key, mine] of [['growth_factor', this.growthFactor], ['backoff_factor', this.backoffFactor], ['growth_interval', this.growthInterval]] as const) {
      if (sd[key] !== undefined && sd[key] !== mine) throw new ValueError(`${fn}: ${key} is ${String(sd[key])} in the state dict but ${mine} in this scaler`);
    }
    this.scaleValue = scale;
    this.growthTracker = tracker;
  }

  /** Frees the scaler's found-inf flags. */
  dispose(): void {
    for (const r of this.records.values()) r.foundInf.dispose();
    this.records.clear();
  }

  private checkOptimizer(fn: string, opt: Optimizer): void {
    if (!opt || typeof opt !== 'object' || typeof (opt as Partial<Optimizer>).stepUnless !== 'function') throw new ValueError(`${fn}: expects an optimizer, got ${String(opt)}`);
    if (opt.impl !== 'fused') throw new ValueError(`${fn}: GradScaler steps the fused optimizer only (impl 'fused'); this one is impl '${opt.impl}'`);
  }
}
