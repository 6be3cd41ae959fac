// Float64 references for gather, indexSelect, scatterAdd and cumsum (PyTorch's definitions, plain loops).
import { type Ref, normalizeDim, numel, stridesOf, unravel } from './core';

const flatOf = (idx: readonly number[], strides: readonly number[]): number => idx.reduce((a, v, i) => a + v * strides[i], 0);

/** out[c] = x[c with c[dim] = index[c]]; out has index's shape. */
export function gather(x: Ref, dim: number, index: Ref): Ref {
  const d = normalizeDim(dim, x.shape.length);
  const xs = stridesOf(x.shape);
  const data = new Float64Array(index.data.length);
  for (let e = 0; e < data.length; e++) {
    const c = unravel(e, index.shape);
    c[d] = index.data[e];
    data[e] = x.data[flatOf(c, xs)];
  }
  return { data, shape: [...index.shape] };
}

export function indexSelect(x: Ref, dim: number, index: ArrayLike<number>): Ref {
  const d = normalizeDim(dim, x.shape.length);
  const shape = x.shape.map((s, i) => (i === d ? index.length : s));
  const xs = stridesOf(x.shape);
  const data = new Float64Array(numel(shape));
  for (let e = 0; e < data.length; e++) {
    const c = unravel(e, shape);
    c[d] = index[c[d]];
    data[e] = x.data[flatOf(c, xs)];
  }
  return { data, shape };
}

/** x + src scattered: out[c with c[dim] = index[c]] += src[c] for every c inside index's shape. */
export function scatterAdd(x: Ref, dim: number, index: Ref, src: Ref): Ref {
  const d = normalizeDim(dim, x.shape.length);
  const data = Float64Array.from(x.data);
  const xs = stridesOf(x.shape);
  const ss = stridesOf(src.shape);
  for (let e = 0; e < index.data.length; e++) {
    const c = unravel(e, index.shape);
    const v = src.data[flatOf(c, ss)];
    c[d] = index.data[e];
    data[flatOf(c, xs)] += v;
  }
  return { data, shape: [...x.shape] };
}

/** Inclusive prefix sums along dim, sequential. */
export function cumsum(x: Ref, dim: number): Ref {
  const rank = x.shape.length;
  const shape = rank === 0 ? [1] : x.shape;
  const d = normalizeDim(dim, rank);
  const st = stridesOf(shape);
  const data = new Float64Array(x.data.length);
  for (let e = 0; e < data.length; e++) {
    const c = unravel(e, shape);
    data[e] = x.data[e] + (c[d] > 0 ? data[e - st[d]] : 0);
  }
  return { data, shape: [...x.shape] };
}
