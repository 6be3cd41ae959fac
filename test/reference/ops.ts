// Float64 reference ops with PyTorch's semantics: what every GPU op in kiln is compared against.
//
// Each function is the most direct loop that states the definition; speed does not matter here, being obviously
// right does. Where PyTorch has a convention that is easy to get wrong (argmax ties, label smoothing with ignored
// targets, matmul with 1-D operands, softmax of an all -Infinity row) the comment says which way it goes.

import {
  type Ref,
  broadcastIndex,
  broadcastShapes,
  normalizeDim,
  numel,
  scalar,
  zeros,
} from './core';

/** A Ref or a plain number, which acts as a 0-d tensor (broadcasts against anything). */
export type Operand = Ref | number;

function asRef(x: Operand): Ref {
  return typeof x === 'number' ? scalar(x) : x;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

export function map(x: Ref, fn: (v: number) => number): Ref {
  const data = new Float64Array(x.data.length);
  for (let i = 0; i < data.length; i++) data[i] = fn(x.data[i]);
  return { data, shape: [...x.shape] };
}

// ---------------------------------------------------------------------------------------------------------------
// erf / erfc
//
// GELU is checked against PyTorch's exact erf form, and a GPU float32 GELU is only as testable as the reference is
// accurate, so these aim at full double precision (relative error ~1e-16) rather than the ~1e-7 of the usual
// Abramowitz-Stegun shortcut.
// ---------------------------------------------------------------------------------------------------------------

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const ONE_OVER_SQRT_PI = 0.5641895835477563;

/**
 * erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n (2x^2)^n x / (1*3*5*...*(2n+1)).
 * Unlike the textbook Taylor series this one has only positive terms, so nothing cancels and the sum keeps
 * full precision; it converges for every x but needs ~2x^2 terms, so it is used only for |x| < 2.
 */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/**
 * erfc(x) for x >= 1.5 by Laplace's continued fraction
 *   erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + (2/2)/(x + (3/2)/(x + ...)))),
 * evaluated bottom-up with a fixed depth. It gives erfc with small *relative* error where erfc is tiny, which
 * 1 - erf(x) cannot. 200 levels is more than enough at x = 1.5 (checked against mpmath to ~3e-16).
 */
function erfcContinuedFraction(x: number): number {
  let t = x;
  for (let n = 200; n >= 1; n--) t = x + n / 2 / t;
  return (ONE_OVER_SQRT_PI * Math.exp(-x * x)) / t;
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === 0) return x; // keeps -0
  const ax = Math.abs(x);
  if (ax < 2) return erfSeries(x);
  const r = 1 - erfcContinuedFraction(ax);
  return x < 0 ? -r : r;
}

export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 1.5) return 1 - erfSeries(x); // erfc(x) > 0.03 here, so the subtraction loses < 2 digits
  return erfcContinuedFraction(x);
}

// ---------------------------------------------------------------------------------------------------------------
// Elementwise unary
// ---------------------------------------------------------------------------------------------------------------

export const neg = (x: Ref): Ref => map(x, (v) => -v);
export const abs = (x: Ref): Ref => map(x, Math.abs);
export const exp = (x: Ref): Ref => map(x, Math.exp);
export const log = (x: Ref): Ref => map(x, Math.log);
export const sqrt = (x: Ref): Ref => map(x, Math.sqrt);
export const tanh = (x: Ref): Ref => map(x, Math.tanh);
/** relu(NaN) is NaN in PyTorch; `v > 0 ? v : 0` would turn it into 0. */
export const relu = (x: Ref): Ref => map(x, (v) => (Number.isNaN(v) ? v : v > 0 ? v : 0));

export function sigmoidScalar(v: number): number {
  // Two branches so exp never overflows: for very negative v, 1/(1+exp(-v)) would compute exp(+large).
  if (v >= 0) return 1 / (1 + Math.exp(-v));
  const e = Math.exp(v);
  return e / (1 + e);
}
export const sigmoid = (x: Ref): Ref => map(x, sigmoidScalar);

/**
 * PyTorch's default (approximate='none') GELU: x * Phi(x) = x/2 * (1 + erf(x/sqrt 2)).
 * Written as x/2 * erfc(-x/sqrt 2) because for large negative x, 1 + erf(..) cancels to 0 and loses the
 * small true value.
 */
export function geluScalar(v: number): number {
  return 0.5 * v * erfc(-v * Math.SQRT1_2);
}
export const gelu = (x: Ref): Ref => map(x, geluScalar);

/** PyTorch's approximate='tanh' GELU, for ops that choose it explicitly. */
export function geluTanhScalar(v: number): number {
  const c = Math.sqrt(2 / Math.PI);
  return 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)));
}
export const geluTanh = (x: Ref): Ref => map(x, geluTanhScalar);

/** x ** exponent elementwise; Math.pow matches PyTorch's pow on doubles (e.g. (-8) ** (1/3) is NaN in both). */
export const powScalar = (x: Ref, exponent: number): Ref => map(x, (v) => Math.pow(v, exponent));

// ---------------------------------------------------------------------------------------------------------------
// Binary with broadcasting
// ---------------------------------------------------------------------------------------------------------------

export function binary(a: Operand, b: Operand, fn: (x: number, y: number) => number): Ref {
  const ra = asRef(a);
  const rb = asRef(b);
  const shape = broadcastShapes(ra.shape, rb.shape);
  const ia = broadcastIndex(ra.shape, shape);
  const ib = broadcastIndex(rb.shape, shape);
  const data = new Float64Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = fn(ra.data[ia[i]], rb.data[ib[i]]);
  return { data, shape };
}

export const add = (a: Operand, b: Operand): Ref => binary(a, b, (x, y) => x + y);
export const sub = (a: Operand, b: Operand): Ref => binary(a, b, (x, y) => x - y);
export const mul = (a: Operand, b: Operand): Ref => binary(a, b, (x, y) => x * y);
export const div = (a: Operand, b: Operand): Ref => binary(a, b, (x, y) => x / y);
export const pow = (a: Operand, b: Operand): Ref => binary(a, b, Math.pow);
/** Math.max/min propagate NaN, as torch.maximum/minimum do. */
export const maximum = (a: Operand, b: Operand): Ref => binary(a, b, Math.max);
export const minimum = (a: Operand, b: Operand): Ref => binary(a, b, Math.min);

// Comparisons give 0/1 so that they can feed `where` and masks directly.
export const eq = (a: Operand, b: Operand): Ref => binary(a, b, (x, y) => (x === y ? 1 : 0));
export const ne = (a: Operand, b: Operand): Ref => binary(a, b, (x, y) => (x !== y ? 1 : 0));
export const lt = (a: Operand, b: Operand): Ref => binary(a, b, (x, y) => (x < y ? 1 : 0));
export const le = (a: Operand, b: Operand): Ref => binary(a, b, (x, y) => (x <= y ? 1 : 0));
export const gt = (a: Operand, b: Operand): Ref => binary(a, b, (x, y) => (x > y ? 1 : 0));
export const ge = (a: Operand, b: Operand): Ref => binary(a, b, (x, y) => (x >= y ? 1 : 0));

/** torch.where: cond is nonzero -> a, else b; all three broadcast together. */
export function where(cond: Operand, a: Operand, b: Operand): Ref {
  const rc = asRef(cond);
  const ra = asRef(a);
  const rb = asRef(b);
  const shape = broadcastShapes(rc.shape, ra.shape, rb.shape);
  const ic = broadcastIndex(rc.shape, shape);
  const ia = broadcastIndex(ra.shape, shape);
  const ib = broadcastIndex(rb.shape, shape);
  const data = new Float64Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = rc.data[ic[i]] !== 0 ? ra.data[ia[i]] : rb.data[ib[i]];
  return { data, shape };
}

// ---------------------------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------------------------

/** undefined or [] means every dim, as in PyTorch (x.sum(dim=[]) reduces everything). */
export type Dims = number | readonly number[] | undefined;

function reducedMask(shape: readonly number[], dims: Dims, who: string): boolean[] {
  const rank = shape.length;
  const list = dims === undefined ? [] : typeof dims === 'number' ? [dims] : [...dims];
  if (list.length === 0) return shape.map(() => true);
  const mask = shape.map(() => false);
  for (const d of list) {
    const nd = normalizeDim(d, rank, who);
    if (rank > 0 && mask[nd]) throw new Error(`${who}: dim ${d} appears twice in [${list.join(',')}]`);
    if (rank > 0) mask[nd] = true;
  }
  return mask;
}

/**
 * Folds every element into its output slot with `step`, visiting elements in increasing flat order (so that
 * "first" means what PyTorch means by it). Output slots start at `init`.
 */
function reduce(
  x: Ref,
  dims: Dims,
  keepdim: boolean,
  who: string,
  init: number,
  step: (acc: number, v: number, outIndex: number) => number,
): { out: Ref; mask: boolean[] } {
  const mask = reducedMask(x.shape, dims, who);
  const keptShape = x.shape.map((s, d) => (mask[d] ? 1 : s));
  const dst = broadcastIndex(keptShape, x.shape);
  const data = new Float64Array(numel(keptShape)).fill(init);
  for (let i = 0; i < x.data.length; i++) data[dst[i]] = step(data[dst[i]], x.data[i], dst[i]);
  const shape = keepdim ? keptShape : x.shape.filter((_, d) => !mask[d]);
  return { out: { data, shape }, mask };
}

export function sum(x: Ref, dims?: Dims, keepdim = false): Ref {
  return reduce(x, dims, keepdim, 'sum', 0, (acc, v) => acc + v).out;
}

export function mean(x: Ref, dims?: Dims, keepdim = false): Ref {
  const { out, mask } = reduce(x, dims, keepdim, 'mean', 0, (acc, v) => acc + v);
  const count = numel(x.shape.filter((_, d) => mask[d]));
  for (let i = 0; i < out.data.length; i++) out.data[i] /= count; // 0/0 = NaN for an empty reduction, as PyTorch
  return out;
}

/** Maximum over dims (torch.amax when dims is a list); NaN wins, as in PyTorch. */
export function max(x: Ref, dims?: Dims, keepdim = false): Ref {
  if (x.data.length === 0) throw new Error(`max: cannot reduce an empty tensor ${fmtShape(x.shape)}`);
  return reduce(x, dims, keepdim, 'max', -Infinity, (acc, v) => (Number.isNaN(acc) ? acc : Number.isNaN(v) || v > acc ? v : acc)).out;
}

export function min(x: Ref, dims?: Dims, keepdim = false): Ref {
  if (x.data.length === 0) throw new Error(`min: cannot reduce an empty tensor ${fmtShape(x.shape)}`);
  return reduce(x, dims, keepdim, 'min', Infinity, (acc, v) => (Number.isNaN(acc) ? acc : Number.isNaN(v) || v < acc ? v : acc)).out;
}

/**
 * Index of the maximum along one dim (or of the flattened tensor when dim is undefined), as a float64 Ref.
 * Ties go to the first index; a NaN counts as larger than everything, and the first NaN wins (PyTorch).
 */
export function argmax(x: Ref, dim?: number, keepdim = false): Ref {
  if (x.data.length === 0) throw new Error(`argmax: cannot reduce an empty tensor ${fmtShape(x.shape)}`);
  const flatInput: Ref = dim === undefined ? { data: x.data, shape: [x.data.length] } : x;
  const d = dim === undefined ? 0 : normalizeDim(dim, x.shape.length, 'argmax');
  const rank = flatInput.shape.length;
  const size = rank === 0 ? 1 : flatInput.shape[d];
  const inner = rank === 0 ? 1 : numel(flatInput.shape.slice(d + 1));
  const outer = rank === 0 ? 1 : numel(flatInput.shape.slice(0, d));
  const data = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = 0;
      let bestValue = flatInput.data[o * size * inner + i];
      for (let k = 1; k < size; k++) {
        const v = flatInput.data[(o * size + k) * inner + i];
        if (Number.isNaN(bestValue)) break;
        if (Number.isNaN(v) || v > bestValue) {
          best = k;
          bestValue = v;
        }
      }
      data[o * inner + i] = best;
    }
  }
  let shape: number[];
  if (dim === undefined) shape = keepdim ? x.shape.map(() => 1) : [];
  else if (rank === 0) shape = [];
  else shape = keepdim ? x.shape.map((s, k) => (k === d ? 1 : s)) : x.shape.filter((_, k) => k !== d);
  return { data, shape };
}

// ---------------------------------------------------------------------------------------------------------------
// Matmul
// ---------------------------------------------------------------------------------------------------------------

/**
 * torch.matmul: 1-D @ 1-D is a dot product (0-d result); a 1-D left operand is a row vector and a 1-D right operand
 * a column vector, with that dim removed from the result; everything before the last two dims broadcasts.
 */
export function matmul(a: Ref, b: Ref): Ref {
  if (a.shape.length === 0 || b.shape.length === 0) {
    throw new Error(`matmul: both operands need at least 1 dim, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  }
  const aVector = a.shape.length === 1;
  const bVector = b.shape.length === 1;
  const aShape = aVector ? [1, a.shape[0]] : a.shape;
  const bShape = bVector ? [b.shape[0], 1] : b.shape;
  const M = aShape[aShape.length - 2];
  const K = aShape[aShape.length - 1];
  const Kb = bShape[bShape.length - 2];
  const N = bShape[bShape.length - 1];
  if (K !== Kb) {
    throw new Error(`matmul: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} disagree on the inner dimension (${K} vs ${Kb})`);
  }
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const batch = broadcastShapes(aBatch, bBatch);
  const aMat = broadcastIndex(aBatch, batch);
  const bMat = broadcastIndex(bBatch, batch);
  const out = new Float64Array(numel(batch) * M * N);
  for (let bt = 0; bt < aMat.length; bt++) {
    const ao = aMat[bt] * M * K;
    const bo = bMat[bt] * K * N;
    const oo = bt * M * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += a.data[ao + m * K + k] * b.data[bo + k * N + n];
        out[oo + m * N + n] = acc;
      }
    }
  }
  const shape = [...batch];
  if (!aVector) shape.push(M);
  if (!bVector) shape.push(N);
  return { data: out, shape };
}

/** F.linear: x @ weight^T + bias, weight [out, in] as in PyTorch. */
export function linear(x: Ref, weight: Ref, bias?: Ref): Ref {
  if (weight.shape.length !== 2) throw new Error(`linear: weight must be 2-D [out, in], got ${fmtShape(weight.shape)}`);
  const [outF, inF] = weight.shape;
  const wt = zeros([inF, outF]);
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) wt.data[i * outF + o] = weight.data[o * inF + i];
  const y = matmul(x, wt);
  return bias ? add(y, bias) : y;
}

// ---------------------------------------------------------------------------------------------------------------
// Softmax family and normalisation
// ---------------------------------------------------------------------------------------------------------------

/** Splits a shape around `dim` into (outer, size, inner) so element (o, k, i) sits at (o*size + k)*inner + i. */
function splitAround(shape: readonly number[], dim: number): { outer: number; size: number; inner: number } {
  if (shape.length === 0) return { outer: 1, size: 1, inner: 1 };
  return { outer: numel(shape.slice(0, dim)), size: shape[dim], inner: numel(shape.slice(dim + 1)) };
}

/**
 * Numerically stable softmax. A row that is entirely -Infinity gives NaN, exactly as torch.softmax does
 * (the zeros-for-fully-masked rule belongs to attention, not to softmax).
 */
export function softmax(x: Ref, dim: number): Ref {
  const d = normalizeDim(dim, x.shape.length, 'softmax');
  const { outer, size, inner } = splitAround(x.shape, d);
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number): number => (o * size + k) * inner + i;
      let m = -Infinity;
      for (let k = 0; k < size; k++) m = Math.max(m, x.data[at(k)]);
      let total = 0;
      for (let k = 0; k < size; k++) total += Math.exp(x.data[at(k)] - m);
      for (let k = 0; k < size; k++) out[at(k)] = Math.exp(x.data[at(k)] - m) / total;
    }
  }
  return { data: out, shape: [...x.shape] };
}

/** x - logsumexp(x); all -Infinity rows give NaN as in PyTorch. */
export function logSoftmax(x: Ref, dim: number): Ref {
  const d = normalizeDim(dim, x.shape.length, 'logSoftmax');
  const { outer, size, inner } = splitAround(x.shape, d);
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number): number => (o * size + k) * inner + i;
      let m = -Infinity;
      for (let k = 0; k < size; k++) m = Math.max(m, x.data[at(k)]);
      let total = 0;
      for (let k = 0; k < size; k++) total += Math.exp(x.data[at(k)] - m);
      const lse = m + Math.log(total);
      for (let k = 0; k < size; k++) out[at(k)] = x.data[at(k)] - lse;
    }
  }
  return { data: out, shape: [...x.shape] };
}

/** log(sum(exp(x))) over one dim, stable; -Infinity for an all -Infinity row. */
export function logSumExp(x: Ref, dim: number, keepdim = false): Ref {
  const d = normalizeDim(dim, x.shape.length, 'logSumExp');
  const { outer, size, inner } = splitAround(x.shape, d);
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number): number => (o * size + k) * inner + i;
      let m = -Infinity;
      for (let k = 0; k < size; k++) m = Math.max(m, x.data[at(k)]);
      if (m === -Infinity) {
        out[o * inner + i] = -Infinity;
        continue;
      }
      let total = 0;
      for (let k = 0; k < size; k++) total += Math.exp(x.data[at(k)] - m);
      out[o * inner + i] = m + Math.log(total);
    }
  }
  const shape =
    x.shape.length === 0 ? [] : keepdim ? x.shape.map((s, k) => (k === d ? 1 : s)) : x.shape.filter((_, k) => k !== d);
  return { data: out, shape };
}

/**
 * F.layerNorm over the trailing `normalizedShape` dims: biased variance (divide by n, as PyTorch), eps inside the
 * square root, then the optional elementwise affine (weight and bias shaped like normalizedShape).
 */
export function layerNorm(
  x: Ref,
  normalizedShape: number | readonly number[],
  weight?: Ref | null,
  bias?: Ref | null,
  eps = 1e-5,
): Ref {
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
  const tail = x.shape.slice(x.shape.length - ns.length);
  if (ns.length > x.shape.length || tail.some((s, i) => s !== ns[i])) {
    throw new Error(`layerNorm: normalizedShape ${fmtShape(ns)} is not the trailing shape of x ${fmtShape(x.shape)}`);
  }
  const n = numel(ns);
  for (const [name, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p && (p.shape.length !== ns.length || p.shape.some((s, i) => s !== ns[i]))) {
      throw new Error(`layerNorm: ${name} ${fmtShape(p.shape)} must have shape ${fmtShape(ns)}`);
    }
  }
  const rows = n === 0 ? 0 : x.data.length / n;
  const out = new Float64Array(x.data.length);
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    let m = 0;
    for (let k = 0; k < n; k++) m += x.data[base + k];
    m /= n;
    // Two passes (mean first, then squared deviations) so the reference has no cancellation error of its own.
    let v = 0;
    for (let k = 0; k < n; k++) v += (x.data[base + k] - m) ** 2;
    v /= n;
    const inv = 1 / Math.sqrt(v + eps);
    for (let k = 0; k < n; k++) {
      let y = (x.data[base + k] - m) * inv;
      if (weight) y *= weight.data[k];
      if (bias) y += bias.data[k];
      out[base + k] = y;
    }
  }
  return { data: out, shape: [...x.shape] };
}

// ---------------------------------------------------------------------------------------------------------------
// Indexing and joining
// ---------------------------------------------------------------------------------------------------------------

/** F.embedding: rows of weight [num, dim] picked by integer indices; the result is indices.shape + [dim]. */
export function embedding(weight: Ref, indices: Ref | ArrayLike<number>): Ref {
  if (weight.shape.length !== 2) throw new Error(`embedding: weight must be 2-D [num, dim], got ${fmtShape(weight.shape)}`);
  const [num, dim] = weight.shape;
  const idx: Ref = 'shape' in indices && 'data' in indices ? (indices as Ref) : { data: Float64Array.from(indices as ArrayLike<number>), shape: [(indices as ArrayLike<number>).length] };
  const out = new Float64Array(idx.data.length * dim);
  for (let t = 0; t < idx.data.length; t++) {
    const row = idx.data[t];
    if (!Number.isInteger(row) || row < 0 || row >= num) {
      throw new Error(`embedding: index ${row} at position ${t} is out of range for ${num} embeddings`);
    }
    for (let c = 0; c < dim; c++) out[t * dim + c] = weight.data[row * dim + c];
  }
  return { data: out, shape: [...idx.shape, dim] };
}

/** torch.cat: same rank, same sizes everywhere except `dim`. */
export function concat(list: readonly Ref[], dim: number): Ref {
  if (list.length === 0) throw new Error('concat: needs at least one tensor');
  const rank = list[0].shape.length;
  if (rank === 0) throw new Error('concat: cannot concatenate 0-d tensors');
  const d = normalizeDim(dim, rank, 'concat');
  for (const t of list) {
    if (t.shape.length !== rank || t.shape.some((s, k) => k !== d && s !== list[0].shape[k])) {
      throw new Error(`concat: shapes ${list.map((x) => fmtShape(x.shape)).join(', ')} differ outside dim ${dim}`);
    }
  }
  const shape = [...list[0].shape];
  shape[d] = list.reduce((acc, t) => acc + t.shape[d], 0);
  const outer = numel(shape.slice(0, d));
  const inner = numel(shape.slice(d + 1));
  const data = new Float64Array(numel(shape));
  let pos = 0;
  for (let o = 0; o < outer; o++) {
    for (const t of list) {
      const chunk = t.shape[d] * inner;
      data.set(t.data.subarray(o * chunk, (o + 1) * chunk), pos);
      pos += chunk;
    }
  }
  return { data, shape };
}

// ---------------------------------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------------------------------

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  ignoreIndex?: number | undefined;
  labelSmoothing?: number | undefined;
  reduction?: Reduction | undefined;
}

/**
 * F.cross_entropy with class-index targets, logits [N, C]:
 *   loss_n = (1 - eps) * (-logp[n, t_n]) + (eps / C) * sum_c (-logp[n, c])     for t_n != ignoreIndex, else 0
 * 'mean' divides the sum by the number of non-ignored targets (both terms, as PyTorch since it fixed the smoothing
 * term to use that count too); with every target ignored that is 0/0 = NaN, as in PyTorch.
 */
export function crossEntropy(logits: Ref, targets: Ref | ArrayLike<number>, opts: CrossEntropyOptions = {}): Ref {
  const { ignoreIndex = -100, labelSmoothing = 0, reduction = 'mean' } = opts;
  if (logits.shape.length !== 2) throw new Error(`crossEntropy: logits must be [N, C], got ${fmtShape(logits.shape)}`);
  if (labelSmoothing < 0 || labelSmoothing > 1) throw new Error(`crossEntropy: labelSmoothing ${labelSmoothing} is outside [0, 1]`);
  const [N, C] = logits.shape;
  const t = 'shape' in targets && 'data' in targets ? (targets as Ref).data : (targets as ArrayLike<number>);
  if (t.length !== N) throw new Error(`crossEntropy: ${t.length} targets for ${N} rows of logits`);
  const logp = logSoftmax(logits, 1);
  const losses = new Float64Array(N);
  let count = 0;
  for (let n = 0; n < N; n++) {
    const target = t[n];
    if (target === ignoreIndex) continue;
    if (!Number.isInteger(target) || target < 0 || target >= C) {
      throw new Error(`crossEntropy: target ${target} at row ${n} is out of range for ${C} classes`);
    }
    count++;
    const nll = -logp.data[n * C + target];
    let smooth = 0;
    for (let c = 0; c < C; c++) smooth -= logp.data[n * C + c];
    losses[n] = (1 - labelSmoothing) * nll + (labelSmoothing / C) * smooth;
  }
  return applyReduction(losses, [N], reduction, count);
}

function applyReduction(losses: Float64Array, shape: number[], reduction: Reduction, meanCount = losses.length): Ref {
  if (reduction === 'none') return { data: losses, shape };
  let total = 0;
  for (const v of losses) total += v;
  return scalar(reduction === 'sum' ? total : total / meanCount);
}

/** F.mse_loss: (input - target)^2, reduced; shapes broadcast. */
export function mseLoss(input: Ref, target: Ref, reduction: Reduction = 'mean'): Ref {
  const sq = binary(input, target, (a, b) => (a - b) * (a - b));
  return applyReduction(sq.data, sq.shape, reduction);
}

export interface BceWithLogitsOptions {
  reduction?: Reduction | undefined;
  /** Per-element rescaling weight, broadcast against the loss. */
  weight?: Ref | undefined;
  /** Weight of the positive term, broadcast along the trailing (class) dim as in PyTorch. */
  posWeight?: Ref | number | undefined;
}

/**
 * F.binary_cross_entropy_with_logits in the stable form: with l = log(1 + exp(-|x|)) + max(-x, 0) = -log sigmoid(x),
 *   loss = (1 - y) * x + (1 + (posWeight - 1) * y) * l
 * which is -[pw * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x))] without ever forming exp(large) or log(0).
 */
export function binaryCrossEntropyWithLogits(logits: Ref, targets: Ref, opts: BceWithLogitsOptions = {}): Ref {
  const { reduction = 'mean', weight, posWeight } = opts;
  const pw = asRef(posWeight ?? 1);
  const w = weight ?? scalar(1);
  const shape = broadcastShapes(logits.shape, targets.shape, pw.shape, w.shape);
  const ix = broadcastIndex(logits.shape, shape);
  const iy = broadcastIndex(targets.shape, shape);
  const ip = broadcastIndex(pw.shape, shape);
  const iw = broadcastIndex(w.shape, shape);
  const losses = new Float64Array(numel(shape));
  for (let i = 0; i < losses.length; i++) {
    const x = logits.data[ix[i]];
    const y = targets.data[iy[i]];
    const p = pw.data[ip[i]];
    const negLogSigmoid = Math.log1p(Math.exp(-Math.abs(x))) + Math.max(-x, 0);
    losses[i] = w.data[iw[i]] * ((1 - y) * x + (1 + (p - 1) * y) * negLogSigmoid);
  }
  return applyReduction(losses, shape, reduction);
}
