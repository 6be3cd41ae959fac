// Float64 references for sort and topk: a stable sort of each row along a dim, NaN as the largest value (PyTorch's
// order), -0 equal to +0.
import { type Ref, normalizeDim, numel, stridesOf, unravel } from './core';

/** -1, 0, 1 for a before / equal / after b in ascending order, NaN largest. */
function cmp(a: number, b: number): number {
  const an = Number.isNaN(a), bn = Number.isNaN(b);
  if (an || bn) return an && bn ? 0 : an ? 1 : -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The first k of each row sorted along dim (k defaults to the whole row): values and indices. */
export function sortAlong(x: Ref, dim: number, descending: boolean, k?: number): { values: Ref; indices: Ref } {
  const rank = x.shape.length;
  const d = normalizeDim(dim, rank);
  const shape = rank === 0 ? [1] : x.shape;
  const L = shape[d];
  const K = k ?? L;
  const outShape = shape.map((s, i) => (i === d ? K : s));
  const st = stridesOf(shape);
  const ost = stridesOf(outShape);
  const values = new Float64Array(numel(outShape));
  const indices = new Float64Array(numel(outShape));
  const rowShape = shape.map((s, i) => (i === d ? 1 : s));
  for (let r = 0; r < numel(rowShape); r++) {
    const idx = unravel(r, rowShape);
    const at = (j: number) => idx.reduce((a, v, i) => a + (i === d ? j : v) * st[i], 0);
    const order = Array.from({ length: L }, (_, j) => j);
    // Array.prototype.sort is stable.
    order.sort((a, b) => (descending ? -1 : 1) * cmp(x.data[at(a)], x.data[at(b)]));
    for (let j = 0; j < K; j++) {
      const o = idx.reduce((a, v, i) => a + (i === d ? j : v) * ost[i], 0);
      values[o] = x.data[at(order[j])];
      indices[o] = order[j];
    }
  }
  const finalShape = rank === 0 ? [] : outShape;
  return { values: { data: values, shape: finalShape }, indices: { data: indices, shape: finalShape } };
}
