// Tensor creation beyond tensor(): filled, ranged and seeded random tensors.
import { ValueError } from '../errors.js';
import { type DType, parseDType } from '../tensor/dtype.js';
import { type Tensor, empty, upload } from '../tensor/tensor.js';
import { checkShape, numel } from '../tensor/shape.js';
import { nextSeed, normals, uniforms } from '../tensor/random.js';
import { elementwise } from './kernel_args.js';
import { castRaw } from './cast.js';

export interface CreateOptions {
  dtype?: DType | 'float32' | 'int32';
  requiresGrad?: boolean;
}
export interface RandomOptions extends CreateOptions {
  seed?: number;
}

function finish(t: Tensor, o: CreateOptions | undefined, fn: string): Tensor {
  if (o?.requiresGrad) {
    if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new ValueError(`${fn}: only float tensors can require gradients`);
    t.requiresGrad = true;
  }
  return t;
}

export function full(shape: number[], value: number, options: CreateOptions = {}): Tensor {
  const s = checkShape('full', shape);
  const dtype = parseDType('full', options.dtype);
  if (typeof value !== 'number' && typeof value !== 'boolean') throw new ValueError(`full: value must be a number, got ${JSON.stringify(value)}`);
  if (dtype === 'f16') {
    const f = empty(s, 'f32');
    elementwise('fill', 'full', f, {}, 0, Number(value));
    const h = castRaw(f, 'f16', 'full');
    f.dispose();
    return finish(h, options, 'full');
  }
  const t = empty(s, dtype);
  elementwise('fill', 'full', t, {}, 0, Number(value));
  return finish(t, options, 'full');
}
export const zeros = (shape: number[], options: CreateOptions = {}): Tensor => full(shape, 0, options);
export const ones = (shape: number[], options: CreateOptions = {}): Tensor => full(shape, 1, options);
export const zerosLike = (x: Tensor, options: CreateOptions = {}): Tensor => full(x.shape.slice(), 0, { dtype: x.dtype, ...options });
export const onesLike = (x: Tensor, options: CreateOptions = {}): Tensor => full(x.shape.slice(), 1, { dtype: x.dtype, ...options });
export const fullLike = (x: Tensor, v: number, options: CreateOptions = {}): Tensor => full(x.shape.slice(), v, { dtype: x.dtype, ...options });

/** start, start+step, ... < end (PyTorch's arange). arange(n) counts 0..n-1. */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  if (![start, end, step].every(Number.isFinite) || step === 0) throw new ValueError(`arange: start ${start}, end ${end}, step ${step} must be finite with step != 0`);
  const n = Math.max(0, Math.ceil((end - start) / step));
  const allInt = [start, end, step].every(Number.isInteger);
  const dtype = options.dtype ? parseDType('arange', options.dtype) : allInt ? 'i32' : 'f32';
  const vals = Array.from({ length: n }, (_, i) => start + i * step);
  if (dtype === 'i32' && !vals.every(Number.isInteger)) {
    throw new ValueError(`arange: start ${start}, end ${end}, step ${step} give non-integer values for dtype i32`);
  }
  const t = empty([n], dtype);
  upload(t, vals);
  return finish(t, options, 'arange');
}

function seeded(fn: string, shape: number[], options: RandomOptions, gen: (n: number, seed: number) => Float32Array): Tensor {
  const s = checkShape(fn, shape);
  if (options.seed !== undefined && (!Number.isInteger(options.seed) || options.seed < 0)) throw new ValueError(`${fn}: seed must be a non-negative integer, got ${options.seed}`);
  const dtype = parseDType(fn, options.dtype);
  if (dtype !== 'f32' && dtype !== 'f16') throw new ValueError(`${fn}: random tensors are f32 or f16, got dtype ${dtype}`);
  const seed = options.seed ?? nextSeed();
  // f16: the same f32 numbers, rounded on the host (so they too are identical on every adapter).
  const t = empty(s, dtype);
  upload(t, gen(numel(s), seed));
  return finish(t, options, fn);
}

/** Uniform numbers in [0, 1), reproducible from the seed on every adapter. */
export const rand = (shape: number[], options: RandomOptions = {}): Tensor => seeded('rand', shape, options, uniforms);
/** Standard normal numbers, reproducible from the seed on every adapter. */
export const randn = (shape: number[], options: RandomOptions = {}): Tensor => seeded('randn', shape, options, normals);
