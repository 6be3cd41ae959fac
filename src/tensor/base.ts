// TensorBase: a view (shape, strides, offset) over a Storage that owns one GPU buffer, with the lifecycle every layer
// relies on (views, dispose, tidy scopes, readback) and the link autograd hangs its tape on. The Tensor users hold
// (src/ops/tensor.ts) extends it with the op methods; every tensor kiln makes is allocated either by the creation
// functions or like an existing one (allocLike), so each is that class.
import { DisposedError, ShapeError, fmtShape } from '../errors.js';
import { checkGeneration, gpu } from '../gpu/device.js';
import { acquireBuffer, releaseBuffer, type PooledBuffer } from '../gpu/memory.js';
import { readBuffer, uploadToBuffer, writesOf } from '../gpu/queue.js';
import { formatTensor } from './format.js';
import { type DType, bytesPerElement } from './dtype.js';
import { halfBitsToFloat } from './half.js';
import { type NestedArray, emptyTyped, hostBytes, wordsToTyped } from './host.js';
import { contiguousStrides, isContiguous, numel } from './shape.js';
import { leakTrack, leakUntrack } from './leaks.js';
import { keepScoped, runScoped, track, untrack } from './scope.js';

/** One GPU buffer shared by a tensor and its views. */
export class Storage {
  refs = 1;
  readonly generation: number;
  constructor(
    public readonly buffer: PooledBuffer,
    public readonly numel: number,
    public readonly dtype: DType,
  ) {
    this.generation = gpu().generation;
  }
  release(): void {
    if (--this.refs === 0) releaseBuffer(this.buffer, this.generation);
  }
}

/** What a tensor holds of the autograd node that made it: autograd (a later layer) implements it. */
export interface TapeLink {
  /** One more tensor or node refers to the link. */
  hold(): void;
  /** One fewer does; the last drop frees what the node saved for backward. */
  drop(): void;
}

export type TensorCtor<T extends TensorBase> = new (storage: Storage, shape: number[], strides: number[], offset: number, dtype: DType) => T;

export class TensorBase {
  readonly shape: number[];
  readonly strides: number[];
  readonly offset: number;
  readonly dtype: DType;
  storage: Storage | null;
  requiresGrad = false;
  grad: this | null = null;
  /** The autograd node that produced this tensor (null for a leaf). */
  gradFn: TapeLink | null = null;
  /** Set on a tensor that autograd accumulated into `.grad` of a tensor made outside a tidy scope. */
  isGradOfOutside = false;
  /**
   * Where backward writes this leaf's gradient when `.grad` is null: a view into an optimizer's gradient arena, so a
   * step reads every gradient from one buffer. Internal; set by the optimizer.
   */
  gradSlot: TensorBase | null = null;
  /** A name for debugging and leak reports. */
  label?: string;

  constructor(storage: Storage, shape: number[], strides: number[], offset: number, dtype: DType) {
    this.storage = storage;
    this.shape = shape;
    this.strides = strides;
    this.offset = offset;
    this.dtype = dtype;
    track(this);
    leakTrack(this);
  }

  get rank(): number {
    return this.shape.length;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  get numel(): number {
    return numel(this.shape);
  }
  get isDisposed(): boolean {
    return this.storage === null;
  }
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }
  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  /** The storage, or a DisposedError (or, for a tensor of a lost device, a DeviceError) naming the function. */
  buf(fn = 'kiln'): Storage {
    const s = this.storage;
    if (!s) throw new DisposedError(`${fn}: tensor ${fmtShape(this.shape)}${this.label ? ` '${this.label}'` : ''} was disposed`);
    checkGeneration(fn, s.generation, `tensor ${fmtShape(this.shape)}${this.label ? ` '${this.label}'` : ''}`);
    return s;
  }

  /** A new tensor of this class sharing this one's storage (a view, no copy). */
  makeView(shape: number[], strides: number[], offset: number): this {
    const s = this.buf('view');
    s.refs++;
    return new (this.constructor as TensorCtor<this>)(s, shape, strides, offset, this.dtype);
  }

  /** Attaches (or replaces) the autograd node that made this tensor. */
  setGradFn(link: TapeLink | null): this {
    const old = this.gradFn;
    this.gradFn = link;
    if (link) {
      link.hold();
      this.requiresGrad = true;
    }
    old?.drop();
    return this;
  }

  dispose(): void {
    const s = this.storage;
    if (!s) return;
    this.storage = null;
    s.release();
    leakUntrack(this);
    untrack(this);
    const link = this.gradFn;
    this.gradFn = null;
    link?.drop();
    // A gradient belongs to its tensor.
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Reads the tensor back in row-major order (f16 as exact Float32Array values, bool as 0/1 bytes). */
  async toArray(): Promise<Float32Array | Int32Array | Uint8Array> {
    const s = this.buf('toArray');
    const n = this.size;
    if (n === 0) return emptyTyped(this.dtype);
    // Read the smallest range of the storage that covers the view, then gather on the host.
    let lo = this.offset;
    let hi = this.offset;
    for (let d = 0; d < this.rank; d++) {
      const span = (this.shape[d] - 1) * this.strides[d];
      if (span < 0) lo += span;
      else hi += span;
    }
    const writes = writesOf(s.buffer.buffer);
    if (this.dtype === 'f16') {
      const wordLo = Math.floor(lo / 2);
      const wordHi = Math.floor(hi / 2);
      const raw = await readBuffer(s.buffer, wordLo * 4, (wordHi - wordLo + 1) * 4);
      const bits = new Uint16Array(n);
      gatherView(this, new Uint16Array(raw), bits, this.offset - 2 * wordLo);
      const halves = Float32Array.from(bits, halfBitsToFloat);
      if (n <= HOST_COPY_LIMIT) this.rememberHost(halves.slice(), writes);
      return halves;
    }
    const raw = await readBuffer(s.buffer, lo * 4, (hi - lo + 1) * 4);
    let values: Float32Array | Int32Array | Uint8Array;
    if (this.isContiguous && this.offset === lo) values = wordsToTyped(this.dtype, raw, n);
    else {
      const out = new Uint32Array(n);
      gatherView(this, new Uint32Array(raw), out, this.offset - lo);
      values = wordsToTyped(this.dtype, out.buffer, n);
    }
    if (n <= HOST_COPY_LIMIT) this.rememberHost(values.slice(), writes);
    return values;
  }

  /** Nested arrays, as tensor() takes them (bool as booleans). */
  async toNested(): Promise<NestedArray> {
    const flat = Array.from(await this.toArray(), (v) => (this.dtype === 'bool' ? v !== 0 : v));
    const build = (d: number, start: number): NestedArray => {
      if (d === this.rank) return flat[start] as number;
      const stride = numel(this.shape.slice(d + 1));
      return Array.from({ length: this.shape[d] }, (_, i) => build(d + 1, start + i * stride));
    };
    return build(0, 0);
  }

  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item: tensor ${fmtShape(this.shape)} has ${this.size} elements, not 1`);
    return (await this.toArray())[0];
  }

  /** The values as last read back or uploaded, while the buffer has had no write since (see hostValues). */
  private _host: { values: ArrayLike<number>; buffer: GPUBuffer; writes: number } | null = null;

  /** Remembers the values the host knows (small tensors only: they are what printing needs). */
  rememberHost(values: ArrayLike<number>, writes: number): void {
    const s = this.storage;
    this._host = s && values.length === this.size && values.length <= HOST_COPY_LIMIT ? { values, buffer: s.buffer.buffer, writes } : null;
  }

  /** The values if the host knows them (uploaded or read back, and nothing wrote the buffer since), else null. */
  hostValues(): ArrayLike<number> | null {
    const h = this._host;
    const s = this.storage;
    if (!h || !s || s.buffer.buffer !== h.buffer || writesOf(h.buffer) !== h.writes) return null;
    return h.values;
  }

  /**
   * `tensor([[1.0000, 2.0000], ...], shape=[2, 2], dtype=f32, requiresGrad=true)`, as PyTorch prints (summarised past
   * 1000 elements to the first and last 3 of each dim). Values live on the GPU: they are shown when the host knows them
   * (the tensor was made from host data or read back, and nothing wrote it since); otherwise the text says how to get
   * them (`await t.print()`).
   */
  toString(): string {
    const extras: string[] = [];
    if (this.requiresGrad) extras.push('requiresGrad=true');
    const gradFn = (this.gradFn as { name?: string } | null)?.name;
    if (gradFn) extras.push(`gradFn=${gradFn}`);
    if (!this.storage) return formatTensor(null, '<disposed>', this.shape, this.dtype, extras);
    const values = this.size === 0 ? [] : this.hostValues();
    return formatTensor(values, '<on the GPU: await t.print() or t.toArray() to see the values>', this.shape, this.dtype, extras);
  }

  /** Node's console.log and util.inspect print toString(). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  /** Reads the values back and prints the tensor (console.log); returns the text. */
  async print(): Promise<string> {
    if (this.storage && this.size > 0) await this.toArray();
    const text = this.toString();
    console.log(text);
    return text;
  }
}

/** Copies the view's elements from src (the storage from the view's lowest element, at `start`) in row-major order. */
function gatherView(t: TensorBase, src: Uint32Array | Uint16Array, out: Uint32Array | Uint16Array, start: number): void {
  const n = out.length;
  const idx = new Array<number>(t.rank).fill(0);
  let pos = start;
  for (let i = 0; i < n; i++) {
    out[i] = src[pos];
    for (let d = t.rank - 1; d >= 0; d--) {
      idx[d]++;
      pos += t.strides[d];
      if (idx[d] < t.shape[d]) break;
      pos -= t.strides[d] * t.shape[d];
      idx[d] = 0;
    }
  }
}

/** Bytes a contiguous tensor of this shape and dtype needs: whole 4-byte words (f16 is packed two to a word). */
export function storageBytes(shape: readonly number[], dtype: DType): number {
  return Math.ceil((Math.max(numel(shape), 1) * bytesPerElement(dtype)) / 4) * 4;
}

/** An uninitialised contiguous tensor of class `ctor` (its contents are whatever the pooled buffer held). */
export function allocate<T extends TensorBase>(ctor: TensorCtor<T>, shape: number[], dtype: DType, what = 'tensor'): T {
  const pb = acquireBuffer(storageBytes(shape, dtype), what);
  return new ctor(new Storage(pb, numel(shape), dtype), shape, contiguousStrides(shape), 0, dtype);
}

/** An uninitialised contiguous tensor of the same class as `like`. */
export function allocLike<T extends TensorBase>(like: T, shape: number[], dtype: DType = like.dtype, what = 'tensor'): T {
  return allocate(like.constructor as TensorCtor<T>, shape, dtype, what);
}

/** Writes host values into a contiguous tensor's storage, converting to its dtype (checked first). */
export function upload(t: TensorBase, values: ArrayLike<number>, fn = 'upload'): void {
  if (t.dtype === 'f16' && t.offset % 2 !== 0) throw new ShapeError(`${fn}: an f16 tensor must start on a 4-byte boundary (offset ${t.offset})`);
  const bytes = hostBytes(fn, t.dtype, values, t.size);
  const buffer = t.buf(fn).buffer.buffer;
  uploadToBuffer(buffer, t.offset * bytesPerElement(t.dtype), bytes);
  // The host knows what it just wrote (f16 values are rounded on the GPU side of hostBytes: not kept).
  if (t.dtype !== 'f16' && t.isContiguous && values.length === t.size && t.size <= HOST_COPY_LIMIT) {
    t.rememberHost(t.dtype === 'f32' ? Float32Array.from(values) : t.dtype === 'i32' ? Int32Array.from(values) : Uint8Array.from(values, (v) => (v ? 1 : 0)), writesOf(buffer));
  }
}

/** Tensors up to this many elements keep the host copy of their values that printing shows. */
const HOST_COPY_LIMIT = 1 << 16;

/** Moves a tensor onto another storage at `offset` (the optimizer's parameter arena); its old storage is released. */
export function rehome(t: TensorBase, storage: Storage, offset: number): void {
  const old = t.buf('rehome');
  storage.refs++;
  t.storage = storage;
  (t as { offset: number }).offset = offset;
  old.release();
}

const isTensor = (v: unknown): boolean => v instanceof TensorBase;

/**
 * Runs fn and disposes every tensor created inside it, except those its result holds (arrays, plain objects and
 * Maps, at any depth) and gradients accumulated into `.grad` of tensors created outside. fn must be synchronous.
 */
export function tidy<T>(fn: () => T, name = 'tidy'): T {
  return runScoped(fn, isTensor, name);
}

/** Keeps a tensor made inside tidy() alive past the scopes. */
export function keep<T extends TensorBase>(t: T): T {
  return keepScoped(t);
}
