// Optimizers whose step is one fused dispatch over every parameter (kernels/optimizer.wgsl explains the layout).
import { KilnError, ValueError, fmtShape } from '../errors.js';
import { Tensor, empty, keep, upload } from '../tensor/tensor.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { encodeCopy } from '../gpu/queue.js';
import { gpu } from '../gpu/device.js';
import { dummy } from '../ops/kernel_args.js';
import { add, addScalar, clone, div, mul, mulScalar, neg, sqrt, sub } from '../ops/elementwise.js';
import { noGrad } from '../autograd/index.js';
import { copyInto } from '../nn/module.js';

function checkNumber(fn: string, name: string, v: unknown, ok: (x: number) => boolean, rule: string): number {
  if (typeof v !== 'number' || !ok(v)) throw new ValueError(`${fn}: ${name} must be ${rule}, got ${v}`);
  return v;
}
export const checkLr = (fn: string, lr: unknown): number => checkNumber(fn, 'lr', lr, (x) => Number.isFinite(x) && x >= 0, 'finite and >= 0');

const MODE = { sgd: 0, adam: 1, adamw: 2 } as const;

export type OptimizerImpl = 'fused' | 'reference';

interface Hyper {
  impl: OptimizerImpl;
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

/** Base class: owns the flat working buffers, the per-parameter step counts and the state. */
export abstract class Optimizer {
  readonly params: Tensor[];
  /** Per-parameter step counts (PyTorch keeps one per parameter, skipped when .grad is None). */
  readonly steps: number[];
  protected readonly hyper: Hyper;
  private readonly offsets: number[];
  private readonly total: number;
  private flatParams: Tensor | null = null;
  private flatGrads: Tensor | null = null;
  private stateM: Tensor | null = null;
  private stateV: Tensor | null = null;
  private table: Tensor | null = null;
  private readonly tableHost: Uint32Array;
  private disposed = false;

  protected constructor(
    private readonly name: string,
    private readonly mode: number,
    params: Iterable<Tensor> | { parameters(): Tensor[] },
    hyper: Hyper,
  ) {
    const list = Array.isArray(params) ? params : 'parameters' in (params as object) && typeof (params as { parameters: unknown }).parameters === 'function' ? (params as { parameters(): Tensor[] }).parameters() : [...(params as Iterable<Tensor>)];
    const seen = new Set<Tensor>();
    this.params = [];
    for (const [i, p] of list.entries()) {
      if (!(p instanceof Tensor)) throw new ValueError(`${name}: parameter ${i} is not a Tensor`);
      p.buf(name);
      if (p.dtype !== 'f32') throw new ValueError(`${name}: parameter ${i} ${fmtShape(p.shape)} has dtype ${p.dtype}; only f32 parameters can be optimized`);
      if (!p.isContiguous) throw new ValueError(`${name}: parameter ${i} ${fmtShape(p.shape)} is not contiguous`);
      if (!p.isLeaf) throw new ValueError(`${name}: parameter ${i} ${fmtShape(p.shape)} is not a leaf tensor (it has a grad_fn); optimize the leaves`);
      if (seen.has(p)) continue;
      seen.add(p);
      this.params.push(p);
    }
    if (!this.params.length) throw new ValueError(`${name}: got an empty parameter list`);
    this.offsets = [];
    let off = 0;
    for (const p of this.params) {
      this.offsets.push(off);
      off += p.size;
    }
    this.total = off;
    this.steps = this.params.map(() => 0);
    this.tableHost = new Uint32Array(3 * this.params.length);
    if (hyper.impl !== 'fused' && hyper.impl !== 'reference') throw new ValueError(`${name}: impl must be 'fused' or 'reference', got ${JSON.stringify(hyper.impl)}`);
    this.hyper = hyper;
  }

  // The reference path's per-parameter state (first / second moment or momentum buffer).
  private refM: (Tensor | null)[] = [];
  private refV: (Tensor | null)[] = [];

  /** The same update as optimizer.wgsl, one parameter at a time from elementwise ops. */
  private referenceStep(active: boolean[]): void {
    const h = this.hyper;
    noGrad(() => {
      for (const [i, p] of this.params.entries()) {
        if (!active[i]) continue;
        this.steps[i]++;
        const t = this.steps[i];
        const own: Tensor[] = [];
        const k = <T extends Tensor>(x: T): T => (own.push(x), x);
        let g: Tensor = k(h.maximize ? neg(p.grad!) : clone(p.grad!));
        let w: Tensor = p;
        if (this.mode === MODE.sgd) {
          if (h.weightDecay) g = k(add(g, k(mulScalar(w, h.weightDecay))));
          if (h.momentum) {
            const prev = this.refM[i];
            const buf = t === 1 || !prev ? clone(g) : add(k(mulScalar(prev, h.momentum)), k(mulScalar(g, 1 - h.dampening)));
            prev?.dispose();
            this.refM[i] = keep(buf);
            g = h.nesterov ? k(add(g, k(mulScalar(buf, h.momentum)))) : buf;
          }
          w = k(sub(w, k(mulScalar(g, h.lr))));
        } else {
          if (this.mode === MODE.adamw) w = k(mulScalar(w, 1 - h.lr * h.weightDecay));
          else if (h.weightDecay) g = k(add(g, k(mulScalar(w, h.weightDecay))));
          const m0 = this.refM[i], v0 = this.refV[i];
          const m = m0 ? add(k(mulScalar(m0, h.beta1)), k(mulScalar(g, 1 - h.beta1))) : mulScalar(g, 1 - h.beta1);
          const v = v0 ? add(k(mulScalar(v0, h.beta2)), k(mulScalar(k(mul(g, g)), 1 - h.beta2))) : mulScalar(k(mul(g, g)), 1 - h.beta2);
          m0?.dispose();
          v0?.dispose();
          this.refM[i] = keep(m);
          this.refV[i] = keep(v);
          const bc1 = h.beta1 > 0 ? 1 - h.beta1 ** t : 1;
          const bc2 = h.beta2 > 0 ? 1 - h.beta2 ** t : 1;
          const denom = k(addScalar(k(mulScalar(k(sqrt(v)), 1 / Math.sqrt(bc2))), h.eps));
          w = k(sub(w, k(mulScalar(k(div(m, denom)), h.lr / bc1))));
        }
        copyInto(p, w);
        for (const x of own) x.dispose();
      }
    });
  }

  get lr(): number {
    return this.hyper.lr;
  }
  set lr(v: number) {
    this.hyper.lr = checkLr(this.name, v);
  }

  /** Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) {
      if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  private ensureBuffers(): void {
    if (this.flatParams) return;
    const n = Math.max(this.total, 1);
    // keep(): the first step often runs inside tidy(), and the state must outlive it.
    const make = () => keep(empty([n], 'f32', `${this.name}.state`));
    this.flatParams = make();
    this.flatGrads = make();
    const needM = this.mode !== MODE.sgd || this.hyper.momentum !== 0;
    this.stateM = needM ? make() : null;
    this.stateV = this.mode !== MODE.sgd ? make() : null;
    // Zeroed by upload rather than a fill kernel, so that every step is exactly one dispatch.
    for (const s of [this.stateM, this.stateV]) if (s) upload(s, new Float32Array(n));
    this.table = keep(empty([this.tableHost.length], 'i32', `${this.name}.table`));
  }

  /**
   * Applies one update to every parameter that has a gradient: copies in, ONE fused dispatch, copies out.
   * Synchronous like backward(): it encodes GPU work and returns.
   */
  step(): void {
    if (this.disposed) throw new KilnError(`${this.name}: step() after dispose()`);
    const active = this.params.map((p) => p.grad !== null && !p.grad.isDisposed);
    if (!active.some(Boolean)) return;
    for (const [i, p] of this.params.entries()) {
      p.buf(`${this.name}.step`);
      if (active[i]) {
        const g = p.grad!;
        if (g.shape.length !== p.shape.length || g.shape.some((d, k) => d !== p.shape[k])) throw new ValueError(`${this.name}: gradient ${fmtShape(g.shape)} of parameter ${i} does not match its shape ${fmtShape(p.shape)}`);
      }
    }
    if (this.hyper.impl === 'reference') {
      this.referenceStep(active);
      return;
    }
    this.ensureBuffers();
    for (let i = 0; i < this.params.length; i++) {
      if (active[i]) this.steps[i]++;
      this.tableHost[3 * i] = this.offsets[i];
      this.tableHost[3 * i + 1] = this.params[i].size;
      this.tableHost[3 * i + 2] = active[i] ? this.steps[i] : 0;
    }
    upload(this.table!, new Int32Array(this.tableHost.buffer));
    const fp = this.flatParams!.buf('step').buffer.buffer;
    const fg = this.flatGrads!.buf('step').buffer.buffer;
    for (const [i, p] of this.params.entries()) {
      if (!active[i] || p.size === 0) continue;
      const g = p.grad!;
      const gc = g.isContiguous ? g : null;
      if (!gc) throw new ValueError(`${this.name}: gradient of parameter ${i} is not contiguous`);
      encodeCopy(p.buf('step').buffer.buffer, p.offset * 4, fp, this.offsets[i] * 4, p.size * 4);
      encodeCopy(g.buf('step').buffer.buffer, g.offset * 4, fg, this.offsets[i] * 4, p.size * 4);
    }
    const h = this.hyper;
    dispatch('optimizer.wgsl', 'step', {
      bindings: {
        table: this.table!.buf('step').buffer,
        grads: this.flatGrads!.buf('step').buffer,
        weights: this.flatParams!.buf('step').buffer,
        m: this.stateM ? this.stateM.buf('step').buffer : dummy(),
        v: this.stateV ? this.stateV.buf('step').buffer : dummyRw(),
      },
      params: {
        total: this.total, num_params: this.params.length, mode: this.mode, nesterov: h.nesterov ? 1 : 0,
        lr: h.lr, weight_decay: h.weightDecay, momentum: h.momentum, dampening: h.dampening,
        beta1: h.beta1, beta2: h.beta2, eps: h.eps, maximize: h.maximize ? 1 : 0,
      },
      workgroups: grid1d(Math.ceil(this.total / 256)),
      label: `${this.name}.step`,
    });
    for (const [i, p] of this.params.entries()) {
      if (!active[i] || p.size === 0) continue;
      encodeCopy(fp, this.offsets[i] * 4, p.buf('step').buffer.buffer, p.offset * 4, p.size * 4);
    }
  }

  /** The optimizer state as tensors (views of the flat buffers), per parameter: for inspection and tests. */
  state(i: number): { step: number; m: Tensor | null; v: Tensor | null } {
    const p = this.params[i];
    if (this.hyper.impl === 'reference') {
      const v = (t: Tensor | null | undefined) => (t ? t.makeView(t.shape.slice(), t.strides.slice(), t.offset) : null);
      return { step: this.steps[i], m: v(this.refM[i]), v: v(this.refV[i]) };
    }
    const view = (t: Tensor | null) => (t ? t.makeView(p.shape.slice(), contiguousStrides(p.shape), this.offsets[i]) : null);
    return { step: this.steps[i], m: view(this.stateM), v: view(this.stateV) };
  }

  /** Frees the optimizer's flat buffers and state (not the parameters). */
  dispose(): void {
    for (const t of [this.flatParams, this.flatGrads, this.stateM, this.stateV, this.table]) t?.dispose();
    this.flatParams = this.flatGrads = this.stateM = this.stateV = this.table = null;
    for (const t of [...this.refM, ...this.refV]) t?.dispose();
    this.refM = [];
    this.refV = [];
    this.disposed = true;
  }
}

function contiguousStrides(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

// A distinct placeholder for the second read-write binding (one buffer cannot be bound twice writable).
let rwDummy: { gen: number; buf: GPUBuffer } | null = null;
function dummyRw(): GPUBuffer {
  const kd = gpu();
  if (!rwDummy || rwDummy.gen !== kd.generation) {
    rwDummy = { gen: kd.generation, buf: kd.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE, label: 'kiln optimizer dummy' }) };
  }
  return rwDummy.buf;
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

/** torch.optim.SGD. */
export class SGD extends Optimizer {
  constructor(params: Iterable<Tensor> | { parameters(): Tensor[] }, options: SGDOptions) {
    const fn = 'SGD';
    if (!options || typeof options !== 'object') throw new ValueError(`${fn}: options { lr } are required`);
    const lr = checkLr(fn, options.lr);
    const momentum = checkNumber(fn, 'momentum', options.momentum ?? 0, (x) => Number.isFinite(x) && x >= 0, 'finite and >= 0');
    const dampening = checkNumber(fn, 'dampening', options.dampening ?? 0, Number.isFinite, 'finite');
    const weightDecay = checkNumber(fn, 'weightDecay', options.weightDecay ?? 0, (x) => Number.isFinite(x) && x >= 0, 'finite and >= 0');
    const nesterov = !!options.nesterov;
    if (nesterov && (momentum <= 0 || dampening !== 0)) throw new ValueError(`${fn}: nesterov needs momentum > 0 and dampening 0 (momentum ${momentum}, dampening ${dampening})`);
    super(fn, MODE.sgd, params, { impl: options.impl ?? 'fused', lr, weightDecay, momentum, dampening, nesterov, beta1: 0, beta2: 0, eps: 0, maximize: !!options.maximize });
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

function adamHyper(fn: string, options: AdamOptions, defaultWd: number): Hyper {
  const lr = checkLr(fn, options.lr ?? 1e-3);
  const betas = options.betas ?? [0.9, 0.999];
  if (!Array.isArray(betas) || betas.length !== 2) throw new ValueError(`${fn}: betas must be a pair [beta1, beta2], got ${JSON.stringify(betas)}`);
  const inRange = (x: number) => x >= 0 && x < 1;
  const beta1 = checkNumber(fn, 'betas[0]', betas[0], inRange, 'in [0, 1)');
  const beta2 = checkNumber(fn, 'betas[1]', betas[1], inRange, 'in [0, 1)');
  const eps = checkNumber(fn, 'eps', options.eps ?? 1e-8, (x) => Number.isFinite(x) && x > 0, 'finite and > 0');
  const weightDecay = checkNumber(fn, 'weightDecay', options.weightDecay ?? defaultWd, (x) => Number.isFinite(x) && x >= 0, 'finite and >= 0');
  return { impl: options.impl ?? 'fused', lr, beta1, beta2, eps, weightDecay, momentum: 0, dampening: 0, nesterov: false, maximize: !!options.maximize };
}

/** torch.optim.Adam: weight decay is L2, added to the gradient. */
export class Adam extends Optimizer {
  constructor(params: Iterable<Tensor> | { parameters(): Tensor[] }, options: AdamOptions = {}) {
    super('Adam', MODE.adam, params, adamHyper('Adam', options, 0));
  }
}

/** torch.optim.AdamW: decoupled weight decay p <- p (1 - lr wd), default weightDecay 0.01. */
export class AdamW extends Optimizer {
  constructor(params: Iterable<Tensor> | { parameters(): Tensor[] }, options: AdamOptions = {}) {
    super('AdamW', MODE.adamw, params, adamHyper('AdamW', options, 0.01));
  }
}
