// Tensor creation: from host data, filled, ranged and seeded random tensors. Every check runs before a buffer exists.
import { DTypeError, ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { type DType, parseDType } from '../tensor/dtype.js';
import { allocate, storageBytes, upload } from '../tensor/base.js';
import { type HostData, type NestedArray, checkTypedData, flattenNested, hostDType, isI32, nestedShape } from '../tensor/host.js';
import { checkShape, numel } from '../tensor/shape.js';
import { nextSeed, normals, uniforms } from '../tensor/random.js';
import { gpu } from '../gpu/device.js';
import { fill } from '../launch/elementwise.js';
import { cast } from '../launch/cast.js';
import { Tensor } from './tensor.js';

export interface TensorOptions {
  shape?: number[];
  dtype?: DType | 'float32' | 'float16' | 'int32' | 'half';
  requiresGrad?: boolean;
}
export interface CreateOptions {
  dtype?: DType | 'float32' | 'float16' | 'int32' | 'half';
  requiresGrad?: boolean;
}
export interface RandomOptions extends CreateOptions {
  seed?: number;
}

const CREATE_KEYS = ['dtype', 'requiresGrad'] as const;

function checkRequiresGrad(fn: string, dtype: DType, requiresGrad: unknown): boolean {
  if (requiresGrad === undefined || requiresGrad === false) return false;
  if (requiresGrad !== true) throw new ValueError(`${fn}: requiresGrad must be true or false, got ${String(requiresGrad)}`);
  if (dtype !== 'f32' && dtype !== 'f16') throw new DTypeError(`${fn}: only float tensors can require gradients (dtype ${dtype})`);
  return true;
}

/** Fails before any work when a tensor of this shape and dtype cannot fit in one buffer on this adapter. */
function checkFits(fn: string, shape: number[], dtype: DType): void {
  const bytes = storageBytes(shape, dtype);
  const limits = gpu().device.limits;
  const max = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
  if (bytes > max) throw new ShapeError(`${fn}: a ${dtype} tensor of shape ${fmtShape(shape)} needs ${bytes} bytes, over this adapter's ${max}-byte buffer limit`);
}

/** An uninitialised contiguous tensor (its contents are whatever the pooled buffer held). */
export function empty(shape: number[], dtype: DType = 'f32', what = 'tensor'): Tensor {
  const s = checkShape('empty', shape);
  checkFits(what, s, dtype);
  return allocate(Tensor, s, dtype, what);
}

/** A tensor from nested arrays (numbers or booleans) or a typed array, checked and converted on the host first. */
export function tensor(data: HostData, options?: TensorOptions): Tensor {
  const fn = 'tensor';
  const o = checkOptions(fn, options, ['shape', 'dtype', 'requiresGrad']);
  let flat: ArrayLike<number>;
  let shape: number[];
  if (ArrayBuffer.isView(data)) {
    checkTypedData(fn, data);
    flat = data as unknown as ArrayLike<number>;
    shape = o.shape !== undefined ? checkShape(fn, o.shape) : [flat.length];
  } else if (Array.isArray(data) || typeof data === 'number' || typeof data === 'boolean') {
    const inferred = nestedShape(data as NestedArray);
    flat = flattenNested(fn, data as NestedArray, inferred);
    shape = o.shape !== undefined ? checkShape(fn, o.shape) : inferred;
  } else {
    throw new ValueError(`${fn}: data must be a number, a nested array or a typed array, got ${data === null ? 'null' : typeof data}`);
  }
  const dtype = o.dtype !== undefined ? parseDType(fn, o.dtype) : hostDType(fn, data);
  if (numel(shape) !== flat.length) throw new ShapeError(`${fn}: data has ${flat.length} elements but shape ${fmtShape(shape)} needs ${numel(shape)}`);
  const requiresGrad = checkRequiresGrad(fn, dtype, o.requiresGrad);
  checkFits(fn, shape, dtype);
  // Convert (and validate) on the host before allocating, so bad data leaves no buffer behind.
  const t = allocate(Tensor, shape, dtype);
  try {
    upload(t, flat, fn);
  } catch (e) {
    t.dispose();
    throw e;
  }
  t.requiresGrad = requiresGrad;
  return t;
}

export function full(shape: number[], value: number | boolean, options?: CreateOptions): Tensor {
  const fn = 'full';
  const o = checkOptions(fn, options, CREATE_KEYS);
  const s = checkShape(fn, shape);
  // A boolean value makes a bool tensor, as PyTorch's full infers it (a JS number cannot say int or float: f32).
  const dtype = o.dtype === undefined && typeof value === 'boolean' ? 'bool' : parseDType(fn, o.dtype);
  if (typeof value !== 'number' && typeof value !== 'boolean') throw new ValueError(`${fn}: value must be a number or a boolean, got ${JSON.stringify(value) ?? String(value)}`);
  const v = Number(value);
  if (dtype === 'i32' && !isI32(v)) throw new ValueError(`${fn}: value ${v} is not an integer in the i32 range`);
  const requiresGrad = checkRequiresGrad(fn, dtype, o.requiresGrad);
  checkFits(fn, s, dtype);
  let t: Tensor;
  if (dtype === 'f16') {
    const f = allocate(Tensor, s, 'f32');
    fill(fn, f, v);
    t = cast(f, 'f16', fn);
    f.dispose();
  } else if (dtype === 'i32' && Math.abs(v) > 2 ** 24) {
    // The fill kernel carries its value as an f32: upload large integers exactly.
    t = allocate(Tensor, s, dtype);
    upload(t, new Int32Array(numel(s)).fill(v), fn);
  } else {
    t = allocate(Tensor, s, dtype);
    fill(fn, t, v);
  }
  t.requiresGrad = requiresGrad;
  return t;
}
export const zeros = (shape: number[], options?: CreateOptions): Tensor => full(shape, 0, options);
export const ones = (shape: number[], options?: CreateOptions): Tensor => full(shape, 1, options);
export const zerosLike = (x: Tensor, options?: CreateOptions): Tensor => full(x.shape.slice(), 0, { dtype: x.dtype, ...checkOptions('zerosLike', options, CREATE_KEYS) });
export const onesLike = (x: Tensor, options?: CreateOptions): Tensor => full(x.shape.slice(), 1, { dtype: x.dtype, ...checkOptions('onesLike', options, CREATE_KEYS) });
export const fullLike = (x: Tensor, v: number, options?: CreateOptions): Tensor => full(x.shape.slice(), v, { dtype: x.dtype, ...checkOptions('fullLike', options, CREATE_KEYS) });

/** start, start+step, ... < end (PyTorch's arange); arange(n) counts 0..n-1. i32 when all three are integers. */
export function arange(start: number, end?: number, step = 1, options?: CreateOptions): Tensor {
  const fn = 'arange';
  const o = checkOptions(fn, options, CREATE_KEYS);
  if (end === undefined) {
    end = start;
    start = 0;
  }
  if (![start, end, step].every((v) => typeof v === 'number' && Number.isFinite(v)) || step === 0) {
    throw new ValueError(`${fn}: start ${start}, end ${end}, step ${step} must be finite numbers with step != 0`);
  }
  const n = Math.max(0, Math.ceil((end - start) / step));
  const allInt = [start, end, step].every(Number.isInteger);
  const dtype = o.dtype !== undefined ? parseDType(fn, o.dtype) : allInt ? 'i32' : 'f32';
  // Sizes are checked before any host array is built (arange(1.5e9) must not exhaust the host's memory).
  checkFits(fn, [n], dtype);
  if (dtype === 'i32') {
    if (!allInt) throw new ValueError(`${fn}: start ${start}, end ${end}, step ${step} give non-integer values for dtype i32`);
    if (!isI32(start) || !isI32(start + (n - 1) * step)) throw new ValueError(`${fn}: values from ${start} to ${start + (n - 1) * step} leave the i32 range`);
  }
  const requiresGrad = checkRequiresGrad(fn, dtype, o.requiresGrad);
  const vals = dtype === 'i32' ? Int32Array.from({ length: n }, (_, i) => start + i * step) : Float64Array.from({ length: n }, (_, i) => start + i * step);
  const t = allocate(Tensor, [n], dtype);
  upload(t, vals, fn);
  t.requiresGrad = requiresGrad;
  return t;
}

function seeded(fn: string, shape: number[], options: RandomOptions | undefined, gen: (n: number, seed: number) => Float32Array): Tensor {
  const o = checkOptions(fn, options, ['dtype', 'requiresGrad', 'seed']);
  const s = checkShape(fn, shape);
  if (o.seed !== undefined && (typeof o.seed !== 'number' || !Number.isInteger(o.seed) || o.seed < 0)) throw new ValueError(`${fn}: seed must be a non-negative integer, got ${o.seed}`);
  const dtype = parseDType(fn, o.dtype);
  if (dtype !== 'f32' && dtype !== 'f16') throw new DTypeError(`${fn}: random tensors are f32 or f16, got dtype ${dtype}`);
  const requiresGrad = checkRequiresGrad(fn, dtype, o.requiresGrad);
  checkFits(fn, s, dtype);
  const seed = o.seed ?? nextSeed();
  // f16: the same f32 numbers, rounded on the host (so they too are identical on every adapter).
  const t = allocate(Tensor, s, dtype);
  upload(t, gen(numel(s), seed), fn);
  t.requiresGrad = requiresGrad;
  return t;
}

/** Uniform numbers in [0, 1), reproducible from the seed on every adapter. */
export const rand = (shape: number[], options?: RandomOptions): Tensor => seeded('rand', shape, options, uniforms);
/** Standard normal numbers, reproducible from the seed on every adapter. */
export const randn = (shape: number[], options?: RandomOptions): Tensor => seeded('randn', shape, options, normals);
