// sort, argsort, topk and multinomial: GPU kernels (a bitonic sort in workgroup memory with a multi-pass path for long
// rows; Philox sampling), so sampling a token needs no readback until its id.
import { ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { checkDType } from '../tensor/dtype.js';
import { normDim } from '../tensor/shape.js';
import { nextSeed } from '../tensor/random.js';
import { checkSortSize, sortAlong, sortBackward } from '../launch/sort.js';
import { multinomialRows } from '../launch/sampling.js';
import { tidy } from '../tensor/base.js';
import { record } from '../autograd/node.js';
import type { Tensor } from './tensor.js';
import { toDType } from './elementwise.js';

export interface SortOptions {
  descending?: boolean;
  /** Accepted for PyTorch's signature: kiln's sort is always stable (equal values keep their order). */
  stable?: boolean;
}
export interface TopkOptions {
  largest?: boolean;
  /** Accepted for PyTorch's signature: the k values always come sorted. */
  sorted?: boolean;
}
export interface SortResult {
  values: Tensor;
  indices: Tensor;
}

function checkBool(fn: string, name: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'boolean') throw new ValueError(`${fn}: ${name} must be true or false, got ${String(v)}`);
}

function sorted(fn: string, x: Tensor, dim: number, K: number, descending: boolean): SortResult {
  if (x.dtype === 'f16') {
    // Sorted as f32 (every f16 is an f32, so order, ties and NaN are the same) and cast back: the values are copied
    // exactly, and their gradient comes back to x as f16.
    return tidy(() => {
      const r = sorted(fn, toDType(x, 'f32'), dim, K, descending);
      return { values: toDType(r.values, 'f16'), indices: r.indices };
    });
  }
  const d = x.rank === 0 ? 0 : dim;
  const { values, indices } = sortAlong(fn, x, d, K, descending);
  const inShape = x.shape.slice();
  const out = record(fn, values, [x], (g, [si]) => [sortBackward(`${fn}.backward`, g, si, inShape, d)], [indices]);
  return { values: out, indices };
}

function sortDim(fn: string, x: Tensor, dim: number): number {
  x.buf(fn);
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32']);
  if (typeof dim !== 'number') throw new ValueError(`${fn}: dim must be a number, got ${String(dim)}`);
  const d = x.rank === 0 ? normDim(fn, dim, 1) : normDim(fn, dim, x.rank, x.shape);
  checkSortSize(fn, x.rank === 0 ? [1] : x.shape, d);
  return d;
}

/**
 * x sorted along `dim` (default the last): { values, indices } as PyTorch's torch.sort. NaN sorts as the largest
 * value (last ascending, first descending); equal values keep their original order (stable). Values carry the
 * gradient (scattered back to where each value came from).
 */
export function sort(x: Tensor, dim = -1, options?: SortOptions): SortResult {
  const fn = 'sort';
  const o = checkOptions(fn, options, ['descending', 'stable']);
  checkBool(fn, 'descending', o.descending);
  checkBool(fn, 'stable', o.stable);
  const d = sortDim(fn, x, dim);
  return sorted(fn, x, d, x.rank === 0 ? 1 : x.shape[d], o.descending ?? false);
}

/** The indices that sort x along `dim` (i32), as PyTorch's argsort. */
export function argsort(x: Tensor, dim = -1, options?: SortOptions): Tensor {
  const fn = 'argsort';
  const o = checkOptions(fn, options, ['descending', 'stable']);
  checkBool(fn, 'descending', o.descending);
  checkBool(fn, 'stable', o.stable);
  const d = sortDim(fn, x, dim);
  if (x.dtype === 'f16') return tidy(() => argsort(toDType(x, 'f32'), dim, options));
  const { values, indices } = sortAlong(fn, x, d, x.rank === 0 ? 1 : x.shape[d], o.descending ?? false);
  values.dispose();
  return indices;
}

/**
 * The k largest (or, with largest: false, smallest) elements along `dim` (default the last), sorted: { values, indices }
 * as PyTorch's torch.topk. NaN counts as the largest value; ties go to the lower index.
 */
export function topk(x: Tensor, k: number, dim = -1, options?: TopkOptions): SortResult {
  const fn = 'topk';
  const o = checkOptions(fn, options, ['largest', 'sorted']);
  checkBool(fn, 'largest', o.largest);
  checkBool(fn, 'sorted', o.sorted);
  const d = sortDim(fn, x, dim);
  const L = x.rank === 0 ? 1 : x.shape[d];
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > L) throw new ValueError(`${fn}: k ${String(k)} is out of range for dim ${d} of ${fmtShape(x.shape)} (size ${L})`);
  return sorted(fn, x, d, k, o.largest ?? true);
}

export interface MultinomialOptions {
  replacement?: boolean;
  /** Seeds the draw (Philox): the same seed gives the same samples on every adapter; default from manualSeed. */
  seed?: number;
}

/**
 * `n` category ids (i32) drawn from each row of `probs` ([C] or [B, C], non-negative weights, not necessarily
 * normalised), with or without replacement, as PyTorch's torch.multinomial. Runs on the GPU. Without replacement,
 * n <= C. Where PyTorch raises from the device (a row with a negative, NaN or infinite weight, or no positive weight;
 * without replacement, more samples than positive weights), the samples concerned are -1: a kernel cannot throw, and a
 * later lookup of -1 (embedding, gather) raises IndexError.
 */
export function multinomial(probs: Tensor, n: number, options?: MultinomialOptions): Tensor {
  const fn = 'multinomial';
  const o = checkOptions(fn, options, ['replacement', 'seed']);
  probs.buf(fn);
  checkDType(fn, 'probs', probs.dtype, ['f32', 'f16']);
  if (probs.rank !== 1 && probs.rank !== 2) throw new ShapeError(`${fn}: probs must be [C] or [B, C], got ${fmtShape(probs.shape)}`);
  checkBool(fn, 'replacement', o.replacement);
  const replacement = o.replacement ?? false;
  const C = probs.shape[probs.rank - 1];
  if (C === 0) throw new ShapeError(`${fn}: probs ${fmtShape(probs.shape)} has no categories`);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new ValueError(`${fn}: n must be a positive integer, got ${String(n)}`);
  if (!replacement && n > C) throw new ValueError(`${fn}: cannot draw ${n} samples without replacement from ${C} categories`);
  if (o.seed !== undefined && (typeof o.seed !== 'number' || !Number.isInteger(o.seed) || o.seed < 0)) throw new ValueError(`${fn}: seed must be a non-negative integer, got ${String(o.seed)}`);
  if (!replacement) checkSortSize(fn, [probs.rank === 2 ? probs.shape[0] : 1, C], 1);
  // f16 weights widen exactly: the same draws as the f32 tensor of the same values under the same seed.
  if (probs.dtype === 'f16') return tidy(() => multinomial(toDType(probs, 'f32'), n, options));
  const seed: [number, number] = o.seed !== undefined ? [o.seed >>> 0, Math.floor(o.seed / 2 ** 32) ^ 0x6d756c74] : [nextSeed(), nextSeed()];
  const p2 = probs.rank === 2 ? probs : probs.makeView([1, C], [0, probs.strides[0]], probs.offset);
  try {
    const out = multinomialRows(fn, p2, n, replacement, seed);
    if (probs.rank === 2) return out;
    const flat = out.makeView([n], [1], out.offset);
    out.dispose();
    return flat;
  } finally {
    if (p2 !== probs) p2.dispose();
  }
}
