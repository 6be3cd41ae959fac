// Linear, Embedding, LayerNorm, RMSNorm, Dropout, Sequential, ModuleList, ModuleDict and activation modules.
import { noteSeedDraw } from '../gpu/recorder.js';
import { DTypeError, ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import type { Tensor } from '../ops/tensor.js';
import { philox4x32 } from '../tensor/random.js';
import { linear } from '../ops/matmul.js';
import { embedding, layerNorm } from '../ops/nn_ops.js';
import { add, addScalar, gelu, inF32, mul, mulScalar, relu, rsqrt, sigmoid, silu, tanh } from '../ops/elementwise.js';
import { mean } from '../ops/reduce.js';
import { tidy } from '../tensor/base.js';
import { Module, RANDOM_CALLS, RANDOM_SEED, checkFeatures } from './module.js';
import { checkPositiveInt, checkSeed, constParam, normalParam, uniformParam } from './init.js';
import { dropout } from './dropout.js';

export interface LinearOptions {
  bias?: boolean;
  seed?: number;
}

/** y = x W^T + b with W [outFeatures, inFeatures]; PyTorch's default init (U(+-1/sqrt(in)) for both). */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Tensor;
  bias: Tensor | null;
  constructor(inFeatures: number, outFeatures: number, options?: LinearOptions) {
    super();
    options = checkOptions('Linear', options, ['bias', 'seed']);
    checkPositiveInt('Linear', 'inFeatures', inFeatures);
    checkPositiveInt('Linear', 'outFeatures', outFeatures);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const seed = checkSeed('Linear', options.seed);
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.registerParameter('weight', uniformParam([outFeatures, inFeatures], bound, seed, 0));
    this.bias = this.registerParameter('bias', options.bias === false ? null : uniformParam([outFeatures], bound, seed, 1));
  }
  override forward(x: Tensor): Tensor {
    checkFeatures(`Linear(${this.inFeatures}, ${this.outFeatures})`, x, this.inFeatures);
    return linear(x, this.weight, this.bias);
  }
  override extraRepr(): string {
    return `inFeatures=${this.inFeatures}, outFeatures=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

export interface EmbeddingOptions {
  seed?: number;
}

/** A lookup table [numEmbeddings, embeddingDim], initialised N(0, 1); forward takes i32 indices of any shape. */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  weight: Tensor;
  constructor(numEmbeddings: number, embeddingDim: number, options?: EmbeddingOptions) {
    super();
    options = checkOptions('Embedding', options, ['seed']);
    checkPositiveInt('Embedding', 'numEmbeddings', numEmbeddings);
    checkPositiveInt('Embedding', 'embeddingDim', embeddingDim);
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.weight = this.registerParameter('weight', normalParam([numEmbeddings, embeddingDim], 1, checkSeed('Embedding', options.seed), 0));
  }
  override forward(indices: Tensor): Tensor {
    if (indices.dtype !== 'i32') throw new DTypeError(`Embedding(${this.numEmbeddings}, ${this.embeddingDim}): indices ${fmtShape(indices.shape)} must be i32, got ${indices.dtype}`);
    return embedding(indices, this.weight);
  }
  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}`;
  }
}

export interface LayerNormOptions {
  eps?: number;
  elementwiseAffine?: boolean;
  bias?: boolean;
}

/** Normalises over the trailing `normalizedShape` dims; weight ones and bias zeros. */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  weight: Tensor | null;
  bias: Tensor | null;
  constructor(normalizedShape: number | number[], options?: LayerNormOptions) {
    super();
    options = checkOptions('LayerNorm', options, ['eps', 'elementwiseAffine', 'bias']);
    const ns = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape.slice();
    if (!ns.length) throw new ValueError('LayerNorm: normalizedShape must not be empty');
    for (const d of ns) checkPositiveInt('LayerNorm', 'normalizedShape entries', d);
    this.normalizedShape = ns;
    this.eps = options.eps ?? 1e-5;
    if (!(this.eps > 0)) throw new ValueError(`LayerNorm: eps must be > 0, got ${this.eps}`);
    const affine = options.elementwiseAffine ?? true;
    this.weight = this.registerParameter('weight', affine ? constParam(ns, 1) : null);
    this.bias = this.registerParameter('bias', affine && options.bias !== false ? constParam(ns, 0) : null);
  }
  override forward(x: Tensor): Tensor {
    const ns = this.normalizedShape;
    const tail = x.shape.slice(x.rank - ns.length);
    if (x.rank < ns.length || tail.some((d, i) => d !== ns[i])) {
      throw new ShapeError(`LayerNorm(${fmtShape(ns)}): input ${fmtShape(x.shape)} does not end in the normalized shape ${fmtShape(ns)}`);
    }
    return layerNorm(x, ns, this.weight, this.bias, this.eps);
  }
  override extraRepr(): string {
    return `${fmtShape(this.normalizedShape)}, eps=${this.eps}, elementwiseAffine=${this.weight !== null}`;
  }
}

/**
 * Dropout(p): in training mode each call draws a fresh mask. With a seed, the i-th call's mask comes
 * from (seed, i), so a run replays exactly; without one each call draws a seed from the global generator.
 */
export class Dropout extends Module {
  readonly p: number;
  [RANDOM_SEED]: number | undefined;
  [RANDOM_CALLS] = 0;
  constructor(p = 0.5, options?: { seed?: number }) {
    super();
    options = checkOptions('Dropout', options, ['seed']);
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new ValueError(`Dropout: p must be in [0, 1], got ${p}`);
    this.p = p;
    this[RANDOM_SEED] = options.seed === undefined ? undefined : checkSeed('Dropout', options.seed);
  }
  override forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return dropout(x, this.p, { training: false });
    let seed: number | undefined;
    const seed0 = this[RANDOM_SEED];
    if (seed0 !== undefined) {
      const draw = () => {
        const w = new Uint32Array(4);
        philox4x32(this[RANDOM_CALLS]++, 0, 0, 0xd0d0, seed0, 0x51, w);
        return w[0];
      };
      seed = draw();
      noteSeedDraw(seed, draw);
    }
    return dropout(x, this.p, { seed });
  }
  override extraRepr(): string {
    return `p=${this.p}`;
  }
}

/** Runs its modules in order; children are named '0', '1', ... as in PyTorch. */
export class Sequential extends Module {
  private readonly _layers: Module[];
  constructor(...modules: Module[]) {
    super();
    this._layers = modules;
    modules.forEach((m, i) => {
      if (!(m instanceof Module)) throw new ValueError(`Sequential: argument ${i} is not a Module`);
      this.registerModule(String(i), m);
    });
  }
  get length(): number {
    return this._layers.length;
  }
  at(i: number): Module {
    return this._layers[i < 0 ? this._layers.length + i : i];
  }
  override forward(x: Tensor): Tensor {
    let cur = x;
    for (const m of this._layers) {
      const next = m.forward(cur) as Tensor;
      // Autograd keeps what it needs as views, so intermediate handles can go now.
      if (cur !== x && next !== cur) cur.dispose();
      cur = next;
    }
    return cur;
  }
}

export class ReLU extends Module {
  override forward(x: Tensor): Tensor {
    return relu(x);
  }
}
/**
 * GELU(x) = x Phi(x) ('none', the exact erf form, as PyTorch's default) or its tanh approximation
 * 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) ('tanh').
 */
export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';
  constructor(options?: { approximate?: 'none' | 'tanh' }) {
    super();
    const o = checkOptions('GELU', options, ['approximate']);
    const a = o.approximate ?? 'none';
    if (a !== 'none' && a !== 'tanh') throw new ValueError(`GELU: approximate must be 'none' or 'tanh', got ${JSON.stringify(o.approximate)}`);
    this.approximate = a;
  }
  override forward(x: Tensor): Tensor {
    if (this.approximate === 'none') return gelu(x);
    return tidy(() => {
      const inner = mulScalar(add(x, mulScalar(mul(mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
      return mul(mulScalar(x, 0.5), addScalar(tanh(inner), 1));
    });
  }
  override extraRepr(): string {
    return this.approximate === 'none' ? '' : `approximate='tanh'`;
  }
}
/** SiLU(x) = x sigmoid(x) (swish). */
export class SiLU extends Module {
  override forward(x: Tensor): Tensor {
    return silu(x);
  }
}
/** Returns its input unchanged (a placeholder, as torch.nn.Identity). */
export class Identity extends Module {
  override forward(x: Tensor): Tensor {
    return x;
  }
}

export interface RMSNormOptions {
  /** Added to the mean square; default the f32 machine epsilon (PyTorch's eps=None). */
  eps?: number;
  elementwiseAffine?: boolean;
}

/**
 * torch.nn.RMSNorm: y = x / sqrt(mean(x^2 over the trailing normalizedShape dims) + eps) * weight, with `weight`
 * (ones) when elementwiseAffine (the default).
 */
export class RMSNorm extends Module {
  readonly normalizedShape: number[];
  /** eps as given, else f32's machine epsilon (f16 inputs then use f16's, 2^-10, as PyTorch's eps=None). */
  readonly eps: number;
  private readonly epsGiven: boolean;
  weight: Tensor | null;
  constructor(normalizedShape: number | number[], options?: RMSNormOptions) {
    super();
    options = checkOptions('RMSNorm', options, ['eps', 'elementwiseAffine']);
    const ns = typeof normalizedShape === 'number' ? [normalizedShape] : Array.isArray(normalizedShape) ? normalizedShape.slice() : [];
    if (!ns.length) throw new ValueError(`RMSNorm: normalizedShape must be a positive integer or a non-empty array, got ${JSON.stringify(normalizedShape)}`);
    for (const d of ns) checkPositiveInt('RMSNorm', 'normalizedShape entries', d);
    this.normalizedShape = ns;
    this.epsGiven = options.eps !== undefined;
    this.eps = options.eps ?? 2 ** -23;
    if (typeof this.eps !== 'number' || !(this.eps >= 0) || !Number.isFinite(this.eps)) throw new ValueError(`RMSNorm: eps must be finite and >= 0, got ${options.eps}`);
    const affine = options.elementwiseAffine ?? true;
    if (typeof affine !== 'boolean') throw new ValueError(`RMSNorm: elementwiseAffine must be true or false, got ${String(affine)}`);
    this.weight = this.registerParameter('weight', affine ? constParam(ns, 1) : null);
  }
  override forward(x: Tensor): Tensor {
    const ns = this.normalizedShape;
    const tail = x.shape.slice(x.rank - ns.length);
    if (x.rank < ns.length || tail.some((d, i) => d !== ns[i])) {
      throw new ShapeError(`RMSNorm(${fmtShape(ns)}): input ${fmtShape(x.shape)} does not end in the normalized shape ${fmtShape(ns)}`);
    }
    if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new DTypeError(`RMSNorm(${fmtShape(ns)}): input must be f32 or f16, got ${x.dtype}`);
    // f16: the mean of squares and the scaling in f32 (x^2 overflows f16 from |x| = 256), rounded once to f16. The
    // default eps is the input dtype's machine epsilon, as PyTorch's.
    if (x.dtype === 'f16') return inF32('f16', [x], (w) => this.normalize(w, this.epsGiven ? this.eps : 2 ** -10));
    return this.normalize(x, this.eps);
  }
  private normalize(x: Tensor, eps: number): Tensor {
    const ns = this.normalizedShape;
    const dims = ns.map((_d, i) => x.rank - ns.length + i);
    return tidy(() => {
      const y = mul(x, rsqrt(addScalar(mean(mul(x, x), dims, true), eps)));
      return this.weight ? mul(y, this.weight) : y;
    });
  }
  override extraRepr(): string {
    return `${fmtShape(this.normalizedShape)}, eps=${this.eps}, elementwiseAffine=${this.weight !== null}`;
  }
}
export class Tanh extends Module {
  override forward(x: Tensor): Tensor {
    return tanh(x);
  }
}
export class Sigmoid extends Module {
  override forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}

/**
 * Holds submodules by name (torch.nn.ModuleDict), in insertion order; the names are their state-dict prefixes. A
 * Map-like API: get, set, has, delete, keys, values, entries, size, and iteration over [name, module] pairs.
 */
export class ModuleDict<M extends Module = Module> extends Module {
  private readonly _items = new Map<string, M>();
  constructor(modules: Record<string, M> | Iterable<[string, M]> = {}) {
    super();
    const pairs = Symbol.iterator in Object(modules) ? [...(modules as Iterable<[string, M]>)] : Object.entries(modules as Record<string, M>);
    for (const [k, m] of pairs) this.set(k, m);
  }
  set(name: string, m: M): this {
    if (!(m instanceof Module)) throw new ValueError(`ModuleDict: '${name}' is not a Module`);
    this.registerModule(name, m);
    this._items.set(name, m);
    return this;
  }
  get(name: string): M | undefined {
    return this._items.get(name);
  }
  has(name: string): boolean {
    return this._items.has(name);
  }
  /** Removes `name` (its module is not disposed); returns whether it was there. */
  delete(name: string): boolean {
    if (!this._items.has(name)) return false;
    this._items.delete(name);
    this.unregister(name);
    return true;
  }
  get size(): number {
    return this._items.size;
  }
  keys(): IterableIterator<string> {
    return this._items.keys();
  }
  values(): IterableIterator<M> {
    return this._items.values();
  }
  entries(): IterableIterator<[string, M]> {
    return this._items.entries();
  }
  [Symbol.iterator](): IterableIterator<[string, M]> {
    return this._items.entries();
  }
}

/** Holds submodules in a list (named '0', '1', ... as in PyTorch); it has no forward of its own. */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly _items: M[] = [];
  constructor(modules: readonly M[] = []) {
    super();
    for (const m of modules) this.append(m);
  }
  append(m: M): this {
    if (!(m instanceof Module)) throw new ValueError(`ModuleList: item ${this._items.length} is not a Module`);
    this.registerModule(String(this._items.length), m);
    this._items.push(m);
    return this;
  }
  get length(): number {
    return this._items.length;
  }
  at(i: number): M {
    return this._items[i < 0 ? this._items.length + i : i];
  }
  [Symbol.iterator](): IterableIterator<M> {
    return this._items[Symbol.iterator]();
  }
}
