// Tensor: a view (shape, strides, offset) over a storage that owns one GPU buffer.
import { DTypeError, DisposedError, KilnError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { gpu } from '../gpu/device.js';
import { acquireBuffer, releaseBuffer, type PooledBuffer } from '../gpu/memory.js';
import { readBuffer, uploadToBuffer } from '../gpu/queue.js';
import { type DType, bytesPerElement, parseDType } from './dtype.js';
import { halfBitsToFloat, toHalfBits } from './half.js';
import { type GradNode, isGradEnabled, unrefNode } from './graph.js';
import { checkShape, contiguousStrides, isContiguous, numel } from './shape.js';
import { leakTrack, leakUntrack } from './leaks.js';

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

// ---- tidy scopes ----
type Scope = Set<Tensor>;
const scopes: Scope[] = [];

function track(t: Tensor): void {
  if (scopes.length) scopes[scopes.length - 1].add(t);
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if (value instanceof Tensor) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectTensors(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype || value instanceof Map) {
    const vals = value instanceof Map ? [...value.values()] : Object.values(value);
    for (const v of vals) collectTensors(v, into, depth + 1);
  }
}

/**
 * Runs fn and disposes every tensor created inside it, except the ones it returns (in arrays or
 * plain objects too) and gradients accumulated into `.grad` of tensors created outside.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new ValueError('tidy: expects a function');
  const scope: Scope = new Set();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new KilnError('tidy: fn must be synchronous (it returned a Promise)');
  const keep = new Set<Tensor>();
  collectTensors(result, keep);
  for (const t of scope) {
    if (keep.has(t) || t.isGradOfOutside) {
      if (scopes.length) scopes[scopes.length - 1].add(t);
      continue;
    }
    t.dispose();
  }
  return result;
}

/** Keeps a tensor created inside tidy() alive past the scope's end. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

export type NestedArray = number | boolean | NestedArray[];

export interface TensorOptions {
  shape?: number[];
  dtype?: DType | 'float32' | 'int32';
  requiresGrad?: boolean;
}

export class Tensor {
  readonly shape: number[];
  readonly strides: number[];
  readonly offset: number;
  readonly dtype: DType;
  storage: Storage | null;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  gradFn: GradNode | null = null;
  /** Set on a tensor that autograd accumulated into `.grad` of a tensor made outside a tidy scope. */
  isGradOfOutside = false;
  /** A name for debugging and leak reports. */
  label?: string;

  constructor(storage: Storage, shape: number[], strides: number[], offset: number, dtype: DType, requiresGrad = false) {
    this.storage = storage;
    this.shape = shape;
    this.strides = strides;
    this.offset = offset;
    this.dtype = dtype;
    this.requiresGrad = requiresGrad;
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

  /** The storage, or a DisposedError naming the function that needed it. */
  buf(fn = 'kiln'): Storage {
    if (!this.storage) throw new DisposedError(`${fn}: tensor ${fmtShape(this.shape)}${this.label ? ` '${this.label}'` : ''} was disposed`);
    return this.storage;
  }

  /** A new tensor sharing this one's storage (a view); no copy. */
  makeView(shape: number[], strides: number[], offset: number): Tensor {
    const s = this.buf('view');
    s.refs++;
    return new Tensor(s, shape, strides, offset, this.dtype, false);
  }

  setGradFn(node: GradNode | null): this {
    if (this.gradFn) unrefNode(this.gradFn);
    this.gradFn = node;
    if (node) {
      node.refs++;
      this.requiresGrad = true;
    }
    return this;
  }

  dispose(): void {
    if (!this.storage) return;
    this.storage.release();
    this.storage = null;
    leakUntrack(this);
    for (const s of scopes) s.delete(this);
    if (this.gradFn) {
      const n = this.gradFn;
      this.gradFn = null;
      unrefNode(n);
    }
    // A gradient belongs to its tensor.
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Reads the tensor back in row-major order. */
  async toArray(): Promise<Float32Array | Int32Array | Uint8Array> {
    const s = this.buf('toArray');
    const n = this.size;
    if (n === 0) return emptyOf(this.dtype);
    // Read the smallest range of the storage that covers the view, then gather on the host.
    let lo = this.offset;
    let hi = this.offset;
    for (let d = 0; d < this.rank; d++) {
      const span = (this.shape[d] - 1) * this.strides[d];
      if (span < 0) lo += span;
      else hi += span;
    }
    if (this.dtype === 'f16') return this.readHalf(s, lo, hi);
    const raw = await readBuffer(s.buffer, lo * 4, (hi - lo + 1) * 4);
    if (this.isContiguous && this.offset === lo) return typed(this.dtype, raw, n);
    const src = new Uint32Array(raw);
    const out = new Uint32Array(n);
    gatherView(this, src, out, this.offset - lo);
    return typed(this.dtype, out.buffer, n);
  }

  /** f16 elements lo..hi of the storage (read in whole 4-byte words), gathered and widened to f32. */
  private async readHalf(s: Storage, lo: number, hi: number): Promise<Float32Array> {
    const wordLo = Math.floor(lo / 2);
    const wordHi = Math.floor(hi / 2);
    const raw = await readBuffer(s.buffer, wordLo * 4, (wordHi - wordLo + 1) * 4);
    const src = new Uint16Array(raw);
    const bits = new Uint16Array(this.size);
    gatherView(this, src, bits, this.offset - 2 * wordLo);
    return Float32Array.from(bits, halfBitsToFloat);
  }

  /** Nested arrays, as the data argument of tensor() takes them. */
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

  toString(): string {
    return `Tensor(${fmtShape(this.shape)}, ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''}${this.storage ? '' : ', disposed'})`;
  }
}

/** Copies the view's elements from src (the storage from the view's lowest element, at `start`) in row-major order. */
function gatherView(t: Tensor, src: Uint32Array | Uint16Array, out: Uint32Array | Uint16Array, start: number): void {
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

function emptyOf(d: DType): Float32Array | Int32Array | Uint8Array {
  return d === 'f32' || d === 'f16' ? new Float32Array(0) : d === 'i32' ? new Int32Array(0) : new Uint8Array(0);
}

function typed(d: DType, raw: ArrayBuffer, n: number): Float32Array | Int32Array | Uint8Array {
  if (d === 'f32') return new Float32Array(raw, 0, n);
  if (d === 'i32') return new Int32Array(raw, 0, n);
  const u = new Uint32Array(raw, 0, n);
  return Uint8Array.from(u, (v) => (v ? 1 : 0));
}

/** Allocates an uninitialised contiguous tensor (its contents are whatever the pooled buffer held). */
export function empty(shape: number[], dtype: DType = 'f32', what = 'tensor'): Tensor {
  const n = numel(shape);
  // Whole 4-byte words: f16 is packed two to a word and kernels read and write words.
  const pb = acquireBuffer(Math.ceil((Math.max(n, 1) * bytesPerElement(dtype)) / 4) * 4, what);
  return new Tensor(new Storage(pb, n, dtype), shape, contiguousStrides(shape), 0, dtype);
}

function inferShape(data: NestedArray, fn: string): number[] {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  return shape;
}

function flatten(data: NestedArray, shape: number[], fn: string, out: number[], depth = 0, path = ''): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new ShapeError(`${fn}: data is ragged: element ${path || '[]'} is an array, expected a number`);
    if (typeof data === 'boolean') out.push(data ? 1 : 0);
    else if (typeof data === 'number') out.push(data);
    else throw new ValueError(`${fn}: data element ${path} is ${JSON.stringify(data)}, not a number`);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new ShapeError(`${fn}: data is ragged: ${path || 'the top level'} has ${Array.isArray(data) ? data.length : 'a scalar'} entries, expected ${shape[depth]} (shape ${fmtShape(shape)})`);
  }
  for (let i = 0; i < data.length; i++) flatten(data[i], shape, fn, out, depth + 1, `${path}[${i}]`);
}

/** Creates a tensor from nested arrays or a typed array. */
export function tensor(data: NestedArray | ArrayLike<number> | Float32Array | Int32Array | Uint8Array, options: TensorOptions = {}): Tensor {
  const fn = 'tensor';
  let dtype: DType;
  let flat: ArrayLike<number>;
  let shape: number[];
  const isTyped = ArrayBuffer.isView(data);
  if (isTyped) {
    flat = data as ArrayLike<number>;
    dtype = options.dtype ? parseDType(fn, options.dtype) : data instanceof Int32Array ? 'i32' : data instanceof Uint8Array ? 'bool' : 'f32';
    shape = options.shape ? checkShape(fn, options.shape) : [flat.length];
  } else {
    const nested = data as NestedArray;
    const inferred = inferShape(nested, fn);
    const out: number[] = [];
    flatten(nested, inferred, fn, out);
    flat = out;
    let leaf: unknown = nested;
    while (Array.isArray(leaf) && leaf.length) leaf = leaf[0];
    dtype = options.dtype ? parseDType(fn, options.dtype) : typeof leaf === 'boolean' ? 'bool' : 'f32';
    shape = options.shape ? checkShape(fn, options.shape) : inferred;
  }
  if (numel(shape) !== flat.length) {
    throw new ShapeError(`${fn}: data has ${flat.length} elements but shape ${fmtShape(shape)} needs ${numel(shape)}`);
  }
  if (options.requiresGrad && dtype !== 'f32' && dtype !== 'f16') throw new DTypeError(`${fn}: only float tensors can require gradients (dtype ${dtype})`);
  // Convert (and validate) on the host before allocating, so bad data leaves no buffer behind.
  const bytes = hostBytes(dtype, flat, flat.length);
  const t = empty(shape, dtype);
  uploadToBuffer(t.buf('upload').buffer.buffer, t.offset * bytesPerElement(dtype), bytes);
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

/** Writes host values into a contiguous tensor's buffer, converting to its dtype. */
export function upload(t: Tensor, values: ArrayLike<number>): void {
  if (t.dtype === 'f16' && t.offset % 2 !== 0) throw new ValueError(`upload: an f16 tensor must start on a 4-byte boundary (offset ${t.offset})`);
  uploadToBuffer(t.buf('upload').buffer.buffer, t.offset * bytesPerElement(t.dtype), hostBytes(t.dtype, values, t.size));
}

/** Host values as the stored elements of a dtype (f16: binary16 bits); throws on non-integer i32 data. */
function hostBytes(dtype: DType, values: ArrayLike<number>, n: number): ArrayBufferView {
  let bytes: ArrayBufferView;
  if (dtype === 'f32') bytes = values instanceof Float32Array ? values : Float32Array.from(values);
  else if (dtype === 'f16') bytes = toHalfBits(values, n);
  else if (dtype === 'i32') {
    if (values instanceof Int32Array) bytes = values;
    else {
      const a = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (!Number.isInteger(v)) throw new ValueError(`tensor: i32 data element ${i} is ${v}, not an integer`);
        a[i] = v;
      }
      bytes = a;
    }
  } else bytes = Uint32Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0));
  return bytes;
}

export function requiresGradFor(...ts: (Tensor | null | undefined)[]): boolean {
  return isGradEnabled() && ts.some((t) => t?.requiresGrad);
}
