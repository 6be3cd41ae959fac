// Float64 references for the ops beyond the first set (issue 16): plain loops over multi-indices, sharing nothing
// with src/. Conventions that are easy to get wrong are stated where they are decided.
import { type Ref, normalizeDim, numel, stridesOf, unravel } from './core';
import { erf as erfScalar, map, sigmoidScalar } from './ops';

const flatOf = (idx: readonly number[], strides: readonly number[]): number => idx.reduce((a, v, i) => a + v * strides[i], 0);

/** silu(x) = x * sigmoid(x); the limits at +-inf (-0 and +inf). */
export const silu = (x: Ref): Ref => map(x, (v) => (v === -Infinity ? -0 : v * sigmoidScalar(v)));
export const erf = (x: Ref): Ref => map(x, erfScalar);

function dimList(rank: number, dims: number | readonly number[] | undefined | null): number[] {
  if (dims === undefined || dims === null) return Array.from({ length: rank }, (_, i) => i);
  return (typeof dims === 'number' ? [dims] : [...dims]).map((d) => normalizeDim(d, rank));
}

/** Groups the elements of x by their coordinates outside `dims`: for each output slot, the flat indices in order. */
function groups(shape: readonly number[], dims: number[], keepdim: boolean): { outShape: number[]; members: number[][] } {
  const kept = shape.map((s, d) => (dims.includes(d) ? 1 : s));
  const keptStrides = stridesOf(kept);
  const members: number[][] = Array.from({ length: numel(kept) }, () => []);
  for (let i = 0; i < numel(shape); i++) {
    const idx = unravel(i, shape).map((v, d) => (dims.includes(d) ? 0 : v));
    members[flatOf(idx, keptStrides)].push(i);
  }
  return { outShape: keepdim ? kept : shape.filter((_, d) => !dims.includes(d)), members };
}

/** sum((x - mean)^2) / (N - correction); N - correction <= 0 divides by zero (NaN or inf, as PyTorch). */
export function variance(x: Ref, dims?: number | number[] | null, correction = 1, keepdim = false): Ref {
  const { outShape, members } = groups(x.shape, dimList(x.shape.length, dims), keepdim);
  const data = Float64Array.from(members, (m) => {
    let mu = 0;
    for (const i of m) mu += x.data[i];
    mu /= m.length;
    let s = 0;
    for (const i of m) s += (x.data[i] - mu) ** 2;
    return s / Math.max(0, m.length - correction);
  });
  return { data, shape: outShape };
}
export const std = (x: Ref, dims?: number | number[] | null, correction = 1, keepdim = false): Ref => map(variance(x, dims, correction, keepdim), Math.sqrt);

/** log(sum(exp(x))) over dims: NaN if any NaN; +inf if any +inf; -inf if all -inf; else shifted by the max. */
export function logsumexp(x: Ref, dims: number | number[], keepdim = false): Ref {
  const { outShape, members } = groups(x.shape, dimList(x.shape.length, dims), keepdim);
  const data = Float64Array.from(members, (m) => {
    const v = m.map((i) => x.data[i]);
    if (v.some(Number.isNaN)) return NaN;
    if (v.includes(Infinity)) return Infinity;
    const mx = Math.max(...v);
    if (mx === -Infinity) return -Infinity;
    return mx + Math.log(v.reduce((a, t) => a + Math.exp(t - mx), 0));
  });
  return { data, shape: outShape };
}

export function allAny(x: Ref, which: 'all' | 'any', dims?: number | number[] | null, keepdim = false): Ref {
  const { outShape, members } = groups(x.shape, dimList(x.shape.length, dims), keepdim);
  // Truth: nonzero, NaN included.
  const data = Float64Array.from(members, (m) => {
    const t = m.map((i) => x.data[i] !== 0);
    return (which === 'all' ? t.every(Boolean) : t.some(Boolean)) ? 1 : 0;
  });
  return { data, shape: outShape };
}

/** Keeps (row, col) of the last two dims where col - row >= diagonal (upper) or <= diagonal (lower); else 0. */
export function triangle(x: Ref, diagonal: number, upper: boolean): Ref {
  const r = x.shape.length;
  const data = new Float64Array(x.data.length);
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, x.shape);
    const d = idx[r - 1] - idx[r - 2];
    data[i] = (upper ? d >= diagonal : d <= diagonal) ? x.data[i] : 0;
  }
  return { data, shape: [...x.shape] };
}

/** value where mask (broadcast to x from the right) is nonzero, else x. */
export function maskedFill(x: Ref, mask: Ref, value: number): Ref {
  const data = new Float64Array(x.data.length);
  const off = x.shape.length - mask.shape.length;
  const ms = stridesOf(mask.shape);
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, x.shape).slice(off).map((v, d) => (mask.shape[d] === 1 ? 0 : v));
    data[i] = mask.data[flatOf(idx, ms)] !== 0 ? value : x.data[i];
  }
  return { data, shape: [...x.shape] };
}

export function flip(x: Ref, dims: number[]): Ref {
  const nd = dims.map((d) => normalizeDim(d, x.shape.length));
  const st = stridesOf(x.shape);
  const data = new Float64Array(x.data.length);
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, x.shape).map((v, d) => (nd.includes(d) ? x.shape[d] - 1 - v : v));
    data[i] = x.data[flatOf(idx, st)];
  }
  return { data, shape: [...x.shape] };
}

export function repeat(x: Ref, times: number[]): Ref {
  const shape = [...new Array<number>(times.length - x.shape.length).fill(1), ...x.shape];
  const outShape = shape.map((s, i) => s * times[i]);
  const st = stridesOf(shape);
  const data = new Float64Array(numel(outShape));
  for (let i = 0; i < data.length; i++) data[i] = x.data[flatOf(unravel(i, outShape).map((v, d) => v % shape[d]), st)];
  return { data, shape: outShape };
}

/** Elements [start, start + len) along dim. */
export function narrow(x: Ref, dim: number, start: number, len: number): Ref {
  const d = normalizeDim(dim, x.shape.length);
  const outShape = x.shape.map((s, i) => (i === d ? len : s));
  const st = stridesOf(x.shape);
  const data = new Float64Array(numel(outShape));
  for (let i = 0; i < data.length; i++) data[i] = x.data[flatOf(unravel(i, outShape).map((v, k) => (k === d ? v + start : v)), st)];
  return { data, shape: outShape };
}

/** Batched matmul of [B, n, m] and [B, m, p]. */
export function bmm(a: Ref, b: Ref): Ref {
  const [B, n, m] = a.shape;
  const p = b.shape[2];
  const data = new Float64Array(B * n * p);
  for (let z = 0; z < B; z++)
    for (let i = 0; i < n; i++)
      for (let j = 0; j < p; j++) {
        let s = 0;
        for (let k = 0; k < m; k++) s += a.data[(z * n + i) * m + k] * b.data[(z * m + k) * p + j];
        data[(z * n + i) * p + j] = s;
      }
  return { data, shape: [B, n, p] };
}
