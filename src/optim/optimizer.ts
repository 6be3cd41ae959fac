// Optimizers whose step is one fused dispatch over a parameter arena (./arena.ts; kernels/optimizer.wgsl).
import { DTypeError, DisposedError, ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { keep, tidy } from '../tensor/base.js';
import { sameShape } from '../tensor/shape.js';
import { Tensor } from '../ops/tensor.js';
import { add, addScalar, clone, div, mul, mulScalar, neg, sqrt, sub } from '../ops/elementwise.js';
import { noGrad } from '../autograd/mode.js';
import { copyInto } from '../nn/module.js';
import { OPTIMIZER_MODE, type OptimizerHyper } from '../launch/optimizer.js';
import { fill } from '../launch/elementwise.js';
import { Arena } from './arena.js';
import { onReplay, recorder, refuseReplay } from '../gpu/recorder.js';

function checkNumber(fn: string, name: string, v: unknown, ok: (x: number) => boolean, rule: string): number {
  if (typeof v !== 'number' || !ok(v)) throw new ValueError(`${fn}: ${name} must be ${rule}, got ${v}`);
  return v;
}
export const checkLr = (fn: string, lr: unknown): number => checkNumber(fn, 'lr', lr, (x) => Number.isFinite(x) && x >= 0, 'finite and >= 0');

function checkFlag(fn: string, name: string, v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new ValueError(`${fn}: ${name} must be true or false, got ${String(v)}`);
  return v;
}

export type OptimizerImpl = 'fused' | 'reference';

interface Hyper extends OptimizerHyper {
  impl: OptimizerImpl;
}

export type Params = Iterable<Tensor> | { parameters(): Tensor[] };

/** The parameters an optimizer or clipGradNorm was given: an array, an iterable or a module (its parameters()). */
export function paramList(fn: string, params: Params): unknown[] {
  if (Array.isArray(params)) return params;
  if (params && typeof (params as { parameters?: unknown }).parameters === 'function') return (params as { parameters(): Tensor[] }).parameters();
  if (params && typeof (params as Iterable<Tensor>)[Symbol.iterator] === 'function') return [...(params as Iterable<Tensor>)];
  throw new ValueError(`${fn}: params must be an array or iterable of tensors, or a module, got ${String(params)}`);
}

/**
 * Base class of the optimizers. The fused path (the default) keeps the parameters in arenas (./arena.ts): at
 * construction each parameter moves into one f32 storage (the same Tensor objects, now views of it; their old buffers
 * are freed), its gradient slot is a view at the same offset of a second storage where backward writes gradients,
 * and the state is a third; a step is then one dispatch with no copies. Copies happen only where a move would change
 * what another tensor sees (see ./arena.ts): such a parameter, and a gradient that is not in its slot (assigned by
 * hand, or belonging to a parameter another optimizer owns), is copied into the arena at step time and the parameter
 * copied back. A parameter in two optimizers stays in the first one's arena; the second copies it in and out.
 * 'reference' runs the same update as elementwise ops, one parameter at a time, for comparison.
 */
export abstract class Optimizer {
  readonly params: Tensor[];
  /** Per-parameter step counts (PyTorch keeps one per parameter, skipped when .grad is None). */
  readonly steps: number[];
  protected readonly hyper: Hyper;
  private readonly arenas: Arena[] = [];
  /** Per parameter: its arena and its index there. */
  private readonly where: { arena: Arena; j: number }[] = [];
  /** Number of fused steps taken (the kernel derives each parameter's step count from it and the table's lag). */
  private stepCount = 0;
  private disposed = false;

  protected constructor(
    private readonly name: string,
    params: Params,
    hyper: Hyper,
  ) {
    const list = paramList(name, params);
    const seen = new Set<Tensor>();
    this.params = [];
    for (const [i, p] of list.entries()) {
      if (!(p instanceof Tensor)) throw new ValueError(`${name}: parameter ${i} is not a Tensor`);
      if (p.isDisposed) throw new DisposedError(`${name}: parameter ${i} ${fmtShape(p.shape)} was disposed`);
      p.buf(name);
      if (p.dtype !== 'f32') throw new DTypeError(`${name}: parameter ${i} ${fmtShape(p.shape)} has dtype ${p.dtype}; only f32 parameters can be optimized (kiln keeps f32 master weights: run the f16 compute under autocast, or optimize an f32 leaf: w = p.float().detach(); w.requiresGrad = true)`);
      if (!p.isContiguous) throw new ValueError(`${name}: parameter ${i} ${fmtShape(p.shape)} is not contiguous`);
      if (!p.isLeaf) throw new ValueError(`${name}: parameter ${i} ${fmtShape(p.shape)} is not a leaf tensor (it has a grad_fn); optimize the leaves`);
      if (seen.has(p)) continue;
      seen.add(p);
      this.params.push(p);
    }
    if (!this.params.length) throw new ValueError(`${name}: got an empty parameter list`);
    if (hyper.impl !== 'fused' && hyper.impl !== 'reference') throw new ValueError(`${name}: impl must be 'fused' or 'reference', got ${JSON.stringify(hyper.impl)}`);
    this.steps = this.params.map(() => 0);
    this.hyper = hyper;
    if (hyper.impl === 'fused') {
      this.arenas = Arena.build(this, name, this.params, this.stateWords);
      for (const arena of this.arenas) arena.members.forEach((i, j) => (this.where[i] = { arena, j }));
    }
  }

  /** State values per parameter element: SGD with momentum keeps one (the momentum buffer), Adam two (m, v). */
  private get stateWords(): number {
    if (this.hyper.mode !== OPTIMIZER_MODE.sgd) return 2;
    return this.hyper.momentum !== 0 ? 1 : 0;
  }

  get lr(): number {
    return this.hyper.lr;
  }

  /** 'fused' (one dispatch per arena) or 'reference' (elementwise ops per parameter). */
  get impl(): OptimizerImpl {
    return this.hyper.impl;
  }
  set lr(v: number) {
    // Set between compiled steps, the next replay reads it; set inside one, a replay would not repeat the setting.
    refuseReplay(`${this.name}.lr set inside the compiled function (set it, or step its scheduler, outside)`);
    this.hyper.lr = checkLr(this.name, v);
  }

  /** Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)); backward writes the next ones. */
  zeroGrad(): void {
    for (const p of this.params) {
      if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  /**
   * Applies one update to every parameter that has a gradient (the others, and their step counts, stay, as PyTorch
   * skips parameters whose .grad is None). Synchronous like backward(): it encodes GPU work and returns. Every check
   * runs before any GPU work: a disposed parameter is a DisposedError naming it.
   */
  step(): void {
    this.stepUnless(null);
  }

  /** Parameter indices that took part in the last step, for uncountStep. */
  private lastActive: boolean[] = [];

  /**
   * GradScaler's step (not for direct use): the same as step(), except that the GPU skips the update when the
   * one-element f32 `flag` holds a nonzero value (found inf), so no readback is needed; the step counts advance as if
   * it ran, and uncountStep() takes them back once the flag is read. The reference path refuses a flag.
   */
  stepUnless(flag: Tensor | null): void {
    const fn = `${this.name}.step`;
    if (this.disposed) throw new DisposedError(`${fn}: the optimizer was disposed`);
    if (flag && this.hyper.impl === 'reference') throw new ValueError(`${fn}: GradScaler steps the fused optimizer only (impl 'fused'); this one is impl 'reference'`);
    const active = this.params.map((p, i) => {
      if (p.isDisposed) throw new DisposedError(`${fn}: parameter ${i} ${fmtShape(p.shape)}${p.label ? ` '${p.label}'` : ''} was disposed; dispose the optimizer with its parameters`);
      p.buf(fn);
      const g = p.grad;
      if (!g || g.isDisposed) return false;
      g.buf(fn);
      if (!sameShape(g.shape, p.shape)) throw new ShapeError(`${fn}: gradient ${fmtShape(g.shape)} of parameter ${i} does not match its shape ${fmtShape(p.shape)}`);
      // f16 gradients are widened into the f32 gradient arena (exactly); the weights and the state stay f32.
      if (g.dtype !== 'f32' && g.dtype !== 'f16') throw new DTypeError(`${fn}: gradient of parameter ${i} ${fmtShape(p.shape)} is ${g.dtype}; gradients are f32 or f16`);
      return true;
    });
    this.lastActive = active;
    if (!active.some(Boolean)) return;
    for (let i = 0; i < this.params.length; i++) if (active[i]) this.steps[i]++;
    if (this.hyper.impl === 'reference') {
      this.referenceStep(active);
      return;
    }
    this.stepCount++;
    let stepNow: (() => number) | undefined;
    if (recorder()) {
      if (flag) refuseReplay(`${fn}: a GradScaler step inside the compiled function (its scale is updated on the host)`);
      // A replay counts the step as this call did: the same parameters are active (their gradients are the same tensors).
      const counted = active.slice();
      onReplay(() => {
        for (let i = 0; i < this.params.length; i++) if (counted[i]) this.steps[i]++;
        this.stepCount++;
      });
      stepNow = () => this.stepCount;
    }
    for (const arena of this.arenas) arena.step(fn, this.params, active, this.steps, this.stepCount, this.hyper, flag, stepNow);
  }

  /** Takes back the step counts of the last step, which the GPU skipped (GradScaler found inf); see stepUnless. */
  uncountStep(): void {
    const active = this.lastActive;
    this.lastActive = [];
    if (!active.some(Boolean)) return;
    for (let i = 0; i < this.params.length; i++) if (active[i]) this.steps[i]--;
    if (this.hyper.impl !== 'reference') this.stepCount--;
  }

  // The reference path's per-parameter state (first / second moment or momentum buffer).
  private refM: (Tensor | null)[] = [];
  private refV: (Tensor | null)[] = [];

  /** The same update as optimizer.wgsl, one parameter at a time from elementwise ops. */
  private referenceStep(active: boolean[]): void {
    const h = this.hyper;
    noGrad(() =>
      tidy(() => {
        for (const [i, p] of this.params.entries()) {
          if (!active[i]) continue;
          const t = this.steps[i];
          let g: Tensor = h.maximize ? neg(p.grad!) : clone(p.grad!);
          let w: Tensor = p;
          if (h.mode === OPTIMIZER_MODE.sgd) {
            if (h.weightDecay) g = add(g, mulScalar(w, h.weightDecay));
            if (h.momentum) {
              const prev = this.refM[i];
              const buf = t === 1 || !prev ? clone(g) : add(mulScalar(prev, h.momentum), mulScalar(g, 1 - h.dampening));
              prev?.dispose();
              this.refM[i] = keep(buf);
              g = h.nesterov ? add(g, mulScalar(buf, h.momentum)) : buf;
            }
            w = sub(w, mulScalar(g, h.lr));
          } else {
            if (h.mode === OPTIMIZER_MODE.adamw) w = mulScalar(w, 1 - h.lr * h.weightDecay);
            else if (h.weightDecay) g = add(g, mulScalar(w, h.weightDecay));
            const m0 = this.refM[i], v0 = this.refV[i];
            const m = m0 ? add(mulScalar(m0, h.beta1), mulScalar(g, 1 - h.beta1)) : mulScalar(g, 1 - h.beta1);
            const v = v0 ? add(mulScalar(v0, h.beta2), mulScalar(mul(g, g), 1 - h.beta2)) : mulScalar(mul(g, g), 1 - h.beta2);
            m0?.dispose();
            v0?.dispose();
            this.refM[i] = keep(m);
            this.refV[i] = keep(v);
            const bc1 = h.beta1 > 0 ? 1 - h.beta1 ** t : 1;
            const bc2 = h.beta2 > 0 ? 1 - h.beta2 ** t : 1;
            const denom = addScalar(mulScalar(sqrt(v), 1 / Math.sqrt(bc2)), h.eps);
            w = sub(w, mulScalar(div(m, denom), h.lr / bc1));
          }
          copyInto(p, w);
        }
      }),
    );
  }

  /** Parameter i's step count and state (views of the state arena, or the reference path's tensors): for inspection. */
  state(i: number): { step: number; m: Tensor | null; v: Tensor | null } {
    if (this.disposed) throw new DisposedError(`${this.name}.state: the optimizer was disposed`);
    if (!Number.isInteger(i) || i < 0 || i >= this.params.length) throw new ValueError(`${this.name}.state: parameter index ${i} is out of range [0, ${this.params.length})`);
    if (this.hyper.impl === 'reference') {
      const v = (t: Tensor | null | undefined) => (t ? t.makeView(t.shape.slice(), t.strides.slice(), t.offset) : null);
      return { step: this.steps[i], m: v(this.refM[i]), v: v(this.refV[i]) };
    }
    const { arena, j } = this.where[i];
    return { step: this.steps[i], ...arena.stateViews(j, this.params[i].shape, this.stateWords) };
  }

  /** PyTorch's names of the hyperparameters in this optimizer's param group. */
  private groupOf(): OptimizerParamGroup {
    const h = this.hyper;
    const params = this.params.map((_p, i) => i);
    if (h.mode === OPTIMIZER_MODE.sgd) return { lr: h.lr, momentum: h.momentum, dampening: h.dampening, weight_decay: h.weightDecay, nesterov: h.nesterov, maximize: h.maximize, params };
    return { lr: h.lr, betas: [h.beta1, h.beta2], eps: h.eps, weight_decay: h.weightDecay, amsgrad: false, maximize: h.maximize, params };
  }

  /** The names of parameter i's state tensors, as PyTorch's: momentum_buffer (SGD), exp_avg and exp_avg_sq (Adam). */
  private stateNames(): string[] {
    if (this.hyper.mode !== OPTIMIZER_MODE.sgd) return ['exp_avg', 'exp_avg_sq'];
    return this.hyper.momentum !== 0 ? ['momentum_buffer'] : [];
  }

  /**
   * The optimizer's state as PyTorch's optimizer.state_dict(): `state[i]` holds parameter i's step count and its state
   * tensors (momentum_buffer, or exp_avg and exp_avg_sq) for each parameter that has taken a step, and `param_groups`
   * the hyperparameters with the parameter indices. The tensors are snapshots (copies) that the caller owns: dispose
   * them, or call this inside tidy(). Loading it into an optimizer of the same kind over parameters of the same shapes
   * continues the run bit for bit.
   */
  stateDict(): OptimizerStateDict {
    const fn = `${this.name}.stateDict`;
    if (this.disposed) throw new DisposedError(`${fn}: the optimizer was disposed`);
    const names = this.stateNames();
    const state: Record<number, OptimizerParamState> = {};
    noGrad(() => {
      for (let i = 0; i < this.params.length; i++) {
        if (!this.steps[i]) continue;
        const entry: OptimizerParamState = { step: this.steps[i] };
        const st = this.state(i);
        [st.m, st.v].forEach((view, k) => {
          if (k < names.length && view) entry[names[k]] = keep(clone(view));
          view?.dispose();
        });
        state[i] = entry;
      }
    });
    return { state, param_groups: [this.groupOf()] };
  }

  /**
   * Restores what stateDict() returned (or PyTorch's layout of it, with the same names): step counts, state tensors and
   * the group's hyperparameters. Everything is checked before anything changes: the number of groups and parameters,
   * each state tensor's shape and dtype, each hyperparameter's range. The tensors are copied; the caller keeps them.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const fn = `${this.name}.loadStateDict`;
    if (this.disposed) throw new DisposedError(`${fn}: the optimizer was disposed`);
    if (!sd || typeof sd !== 'object' || !sd.state || typeof sd.state !== 'object' || !Array.isArray(sd.param_groups)) {
      throw new ValueError(`${fn}: expects { state, param_groups } as stateDict() returns, got ${String(sd)}`);
    }
    if (sd.param_groups.length !== 1) throw new ValueError(`${fn}: kiln optimizers have one param group; the state dict has ${sd.param_groups.length}`);
    const group = sd.param_groups[0];
    const mine = this.groupOf();
    // PyTorch's groups also carry implementation switches and the schedulers' initial_lr, which kiln has no use for.
    checkOptions(fn, group, [...Object.keys(mine), 'initial_lr', 'foreach', 'capturable', 'differentiable', 'fused', 'decoupled_weight_decay']);
    if (!Array.isArray(group.params) || group.params.length !== this.params.length) {
      throw new ValueError(`${fn}: the state dict's group has ${Array.isArray(group.params) ? group.params.length : 'no'} parameters, this optimizer ${this.params.length}`);
    }
    const hyper = { ...this.hyper };
    const num = (k: string, ok: (x: number) => boolean, rule: string): number => checkNumber(fn, `param_groups[0].${k}`, (group as Record<string, unknown>)[k] ?? (mine as Record<string, unknown>)[k], ok, rule);
    const flag = (k: string): boolean => checkFlag(fn, `param_groups[0].${k}`, (group as Record<string, unknown>)[k] ?? (mine as Record<string, unknown>)[k]);
    const nonNeg = (x: number) => Number.isFinite(x) && x >= 0;
    hyper.lr = num('lr', nonNeg, 'finite and >= 0');
    hyper.weightDecay = num('weight_decay', nonNeg, 'finite and >= 0');
    hyper.maximize = flag('maximize');
    if (hyper.mode === OPTIMIZER_MODE.sgd) {
      const momentum = num('momentum', nonNeg, 'finite and >= 0');
      if ((momentum !== 0) !== (hyper.momentum !== 0)) throw new ValueError(`${fn}: momentum ${momentum} and this optimizer's ${hyper.momentum} differ in whether there is a momentum buffer`);
      hyper.momentum = momentum;
      hyper.dampening = num('dampening', Number.isFinite, 'finite');
      hyper.nesterov = flag('nesterov');
    } else {
      const betas = (group as { betas?: unknown }).betas ?? [hyper.beta1, hyper.beta2];
      if (!Array.isArray(betas) || betas.length !== 2) throw new ValueError(`${fn}: param_groups[0].betas must be a pair, got ${JSON.stringify(betas)}`);
      const inRange = (x: number) => x >= 0 && x < 1;
      hyper.beta1 = checkNumber(fn, 'param_groups[0].betas[0]', betas[0], inRange, 'in [0, 1)');
      hyper.beta2 = checkNumber(fn, 'param_groups[0].betas[1]', betas[1], inRange, 'in [0, 1)');
      hyper.eps = num('eps', (x) => Number.isFinite(x) && x > 0, 'finite and > 0');
      if ((group as { amsgrad?: unknown }).amsgrad) throw new ValueError(`${fn}: amsgrad is not supported`);
    }
    const names = this.stateNames();
    const steps = this.params.map(() => 0);
    const sources: (Tensor | null)[][] = this.params.map(() => names.map(() => null));
    for (const key of Object.keys(sd.state)) {
      const i = Number(key);
      if (!Number.isInteger(i) || i < 0 || i >= this.params.length) throw new ValueError(`${fn}: state key '${key}' is not a parameter index in [0, ${this.params.length})`);
      const entry = (sd.state as Record<string, OptimizerParamState>)[key];
      if (!entry || typeof entry !== 'object') throw new ValueError(`${fn}: state[${i}] must be an object, got ${String(entry)}`);
      const step = typeof entry.step === 'number' ? entry.step : NaN;
      if (!Number.isInteger(step) || step < 0) throw new ValueError(`${fn}: state[${i}].step must be a non-negative integer, got ${String(entry.step)}`);
      steps[i] = step;
      for (const k of Object.keys(entry)) if (k !== 'step' && !names.includes(k)) throw new ValueError(`${fn}: state[${i}] has '${k}'; ${this.name} keeps ${['step', ...names].join(', ')}`);
      const p = this.params[i];
      names.forEach((n, k) => {
        const t = entry[n];
        if (t === undefined || t === null) {
          if (step > 0) throw new ValueError(`${fn}: state[${i}] took ${step} steps but has no '${n}'`);
          return;
        }
        if (!(t instanceof Tensor)) throw new ValueError(`${fn}: state[${i}].${n} is not a Tensor`);
        t.buf(fn);
        if (!sameShape(t.shape, p.shape)) throw new ShapeError(`${fn}: state[${i}].${n} ${fmtShape(t.shape)} does not match parameter ${i} ${fmtShape(p.shape)}`);
        if (t.dtype !== 'f32') throw new DTypeError(`${fn}: state[${i}].${n} is ${t.dtype}; optimizer state is f32`);
        sources[i][k] = t;
      });
    }
    // Every check is done: from here on state changes and GPU work is encoded.
    Object.assign(this.hyper, hyper);
    steps.forEach((s, i) => (this.steps[i] = s));
    this.stepCount = Math.max(this.stepCount, ...steps);
    noGrad(() => {
      if (this.hyper.impl === 'reference') {
        const load = (list: (Tensor | null)[], k: number) =>
          this.params.forEach((_p, i) => {
            list[i]?.dispose();
            list[i] = sources[i][k] ? keep(clone(sources[i][k]!)) : null;
          });
        load(this.refM, 0);
        load(this.refV, 1);
        return;
      }
      for (const arena of this.arenas) if (arena.state) fill(fn, arena.state, 0);
      this.params.forEach((p, i) => {
        const { arena, j } = this.where[i];
        const views = arena.stateViews(j, p.shape, this.stateWords);
        [views.m, views.v].forEach((view, k) => {
          if (view && sources[i][k]) copyInto(view, sources[i][k]!);
          view?.dispose();
        });
      });
    });
  }

  /** Frees the optimizer's own buffers (gradient slots, state); the parameters keep their values and storage. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const a of this.arenas) a.dispose(this.params);
    for (const t of [...this.refM, ...this.refV]) t?.dispose();
    this.refM = [];
    this.refV = [];
  }
}

/** One parameter's entry in an optimizer state dict: its step count and its state tensors under PyTorch's names. */
export interface OptimizerParamState {
  step: number;
  [name: string]: Tensor | number;
}

/** A param group as PyTorch's: the hyperparameters under PyTorch's names and the parameter indices. */
export interface OptimizerParamGroup {
  lr: number;
  params: number[];
  [name: string]: unknown;
}

/** What Optimizer.stateDict() returns and loadStateDict() takes (PyTorch's optimizer.state_dict() layout). */
export interface OptimizerStateDict {
  state: Record<number, OptimizerParamState>;
  param_groups: OptimizerParamGroup[];
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
  maximize?: boolean;
  /** 'fused' (default): one dispatch a step; 'reference': per-parameter elementwise ops, for comparison. */
  impl?: OptimizerImpl;
}

const SGD_KEYS = ['lr', 'momentum', 'dampening', 'nesterov', 'weightDecay', 'maximize', 'impl'] as const;

/** torch.optim.SGD. */
export class SGD extends Optimizer {
  constructor(params: Params, options: SGDOptions) {
    const fn = 'SGD';
    if (!options || typeof options !== 'object') throw new ValueError(`${fn}: options { lr } are required`);
    checkOptions(fn, options, SGD_KEYS);
    const lr = checkLr(fn, options.lr);
    const momentum = checkNumber(fn, 'momentum', options.momentum ?? 0, (x) => Number.isFinite(x) && x >= 0, 'finite and >= 0');
    const dampening = checkNumber(fn, 'dampening', options.dampening ?? 0, Number.isFinite, 'finite');
    const weightDecay = checkNumber(fn, 'weightDecay', options.weightDecay ?? 0, (x) => Number.isFinite(x) && x >= 0, 'finite and >= 0');
    const nesterov = checkFlag(fn, 'nesterov', options.nesterov);
    const maximize = checkFlag(fn, 'maximize', options.maximize);
    if (nesterov && (momentum <= 0 || dampening !== 0)) throw new ValueError(`${fn}: nesterov needs momentum > 0 and dampening 0 (momentum ${momentum}, dampening ${dampening})`);
    super(fn, params, { impl: options.impl ?? 'fused', mode: OPTIMIZER_MODE.sgd, lr, weightDecay, momentum, dampening, nesterov, beta1: 0, beta2: 0, eps: 0, maximize });
  }
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  maximize?: boolean;
  /** 'fused' (default): one dispatch a step; 'reference': per-parameter elementwise ops, for comparison. */
  impl?: OptimizerImpl;
}

const ADAM_KEYS = ['lr', 'betas', 'eps', 'weightDecay', 'maximize', 'impl'] as const;

function adamHyper(fn: string, options: AdamOptions | undefined, mode: number, defaultWd: number): Hyper {
  const o = checkOptions(fn, options, ADAM_KEYS);
  const lr = checkLr(fn, o.lr ?? 1e-3);
  const betas = o.betas ?? [0.9, 0.999];
  if (!Array.isArray(betas) || betas.length !== 2) throw new ValueError(`${fn}: betas must be a pair [beta1, beta2], got ${JSON.stringify(betas)}`);
  const inRange = (x: number) => x >= 0 && x < 1;
  const beta1 = checkNumber(fn, 'betas[0]', betas[0], inRange, 'in [0, 1)');
  const beta2 = checkNumber(fn, 'betas[1]', betas[1], inRange, 'in [0, 1)');
  const eps = checkNumber(fn, 'eps', o.eps ?? 1e-8, (x) => Number.isFinite(x) && x > 0, 'finite and > 0');
  const weightDecay = checkNumber(fn, 'weightDecay', o.weightDecay ?? defaultWd, (x) => Number.isFinite(x) && x >= 0, 'finite and >= 0');
  const maximize = checkFlag(fn, 'maximize', o.maximize);
  return { impl: o.impl ?? 'fused', mode, lr, beta1, beta2, eps, weightDecay, momentum: 0, dampening: 0, nesterov: false, maximize };
}

/** torch.optim.Adam: weight decay is L2, added to the gradient. */
export class Adam extends Optimizer {
  constructor(params: Params, options: AdamOptions = {}) {
    super('Adam', params, adamHyper('Adam', options, OPTIMIZER_MODE.adam, 0));
  }
}

/** torch.optim.AdamW: decoupled weight decay p <- p (1 - lr wd), default weightDecay 0.01. */
export class AdamW extends Optimizer {
  constructor(params: Params, options: AdamOptions = {}) {
    super('AdamW', params, adamHyper('AdamW', options, OPTIMIZER_MODE.adamw, 0.01));
  }
}
