// The reference path of attention, composed of ops (matmul, scale, mask, softmax, dropout, matmul), so tests can hold
// the fused kernels against it and benchmarks can measure what fusion buys. It materialises the [..., Hq, Nq, Nk]
// scores. Semantics as the fused path (attention_common.wgsl): only masking makes a key inadmissible; a row whose
// admissible scores hold a NaN or +inf, or are all -inf, is NaN (and so are its gradients); a row with no admissible
// key gives zeros and takes no part in any gradient, nor does a key no query may see. One difference, that of PyTorch's
// math backend against its fused ones: here any other inadmissible entry (one of a row that has admissible keys, at a
// key some row may see) is a zero weight in the matrix products, so a non-finite q, k or v value it meets gives NaN
// (0 * NaN), where the fused kernels skip the entry.
import { tidy } from '../tensor/base.js';
import type { Tensor } from '../ops/tensor.js';
import { tensor } from '../ops/creation.js';
import { numel } from '../tensor/shape.js';
import { attnDropoutKeep } from '../tensor/random.js';
import { add, eq, ge, gt, logicalAnd, mul, ne, where } from '../ops/elementwise.js';
import { arange } from '../ops/creation.js';
import { matmul } from '../ops/matmul.js';
import { softmax } from '../ops/nn_ops.js';
import { amax } from '../ops/reduce.js';
import { reshape, transpose, unsqueeze } from '../ops/views.js';
import { type AttentionPlan, splitShape } from './plan.js';

const scalar = (x: number): Tensor => tensor([x], { shape: [] });

/** bool [Nq, Nk]: key j is admissible for query i when j <= i + causalDiag. */
function causalKeep(p: AttentionPlan): Tensor {
  const rows = reshape(arange(p.causalDiag, p.Nq + p.causalDiag, 1, { dtype: 'i32' }), [p.Nq, 1]);
  const cols = reshape(arange(p.Nk, undefined, 1, { dtype: 'i32' }), [1, p.Nk]);
  return ge(rows, cols);
}

/** bool, broadcastable to the scores: which entries are admissible (null: all of them). */
function admissible(mask: Tensor | null, p: AttentionPlan): Tensor | null {
  let keep: Tensor | null = null;
  const and = (t: Tensor) => (keep = keep ? logicalAnd(keep, t) : t);
  if (mask && p.maskKind === 1) and(mask);
  if (mask && p.maskKind === 2) and(ne(mask, -Infinity));
  if (p.causal) and(causalKeep(p));
  return keep;
}

/** q as [..., Hk, g, Nq, D] and k/v as [..., Hk, 1, Nk, D], so grouped-query heads broadcast without copies. */
function groupView(t: Tensor, p: AttentionPlan, isQuery: boolean): Tensor {
  const s = splitShape(t.shape);
  // One key/value head broadcasts over the query heads by plain broadcasting: no grouping needed.
  if (p.Hq === p.Hk || p.Hk === 1 || s.H === 1) return t;
  if (isQuery) return reshape(t, [...s.batch, p.Hk, p.Hq / p.Hk, s.N, s.D]);
  return unsqueeze(t, -3);
}

/** a [..., Hq, Nq, X] @ b [..., Hk, X, Y] with query heads grouped over key/value heads: [..., Hq, Nq, Y]. */
function groupedMatmul(a: Tensor, b: Tensor, p: AttentionPlan): Tensor {
  const ag = groupView(a, p, true);
  if (ag === a) return matmul(a, b);
  const o = matmul(ag, unsqueeze(b, -3));
  return reshape(o, [...o.shape.slice(0, -4), p.Hq, o.shape[o.rank - 2], o.shape[o.rank - 1]]);
}

interface Probabilities {
  probs: Tensor;
  /** bool [..., Nq, 1]: rows with an admissible key; null when every row has one. */
  rowAny: Tensor | null;
  /** bool [..., Hk, Nk, 1]: keys some query of the group may see; null when every key is. */
  keyAny: Tensor | null;
}

/** keep reduced over `dim` to "any admissible" (bool, keepdim). */
const anyOf = (keep: Tensor, dim: number): Tensor => gt(amax(where(keep, scalar(1), scalar(0)), dim, true), 0);

/** [..., H, 1, Nk] as [..., Hk, Nk, 1]: whether any query head of each key/value head's group may see the key. */
function keysSeen(colAny: Tensor, p: AttentionPlan): Tensor {
  const t = transpose(colAny, -1, -2);
  const H = t.rank >= 3 ? t.shape[t.rank - 3] : 1;
  if (H === 1 || H === p.Hk) return t;
  const lead = t.shape.slice(0, -3);
  return reshape(anyOf(reshape(t, [...lead, p.Hk, H / p.Hk, p.Nk]), -2), [...lead, p.Hk, p.Nk, 1]);
}

/** softmax of the admissible scores, [..., Hq, Nq, Nk]; inside a tidy() of the caller. */
function probabilities(q: Tensor, k: Tensor, mask: Tensor | null, p: AttentionPlan): Probabilities {
  const keep = admissible(mask, p);
  // Only a mask, or causal with more queries than keys (bottom-right) or more keys than queries (top-left), can leave a
  // row without keys or a key without rows.
  const rowAny = keep && (!!mask || (p.causal === 'lowerRight' && p.Nq > p.Nk)) ? anyOf(keep, -1) : null;
  const keyAny = keep && (!!mask || (p.causal === 'upperLeft' && p.Nk > p.Nq)) ? keysSeen(anyOf(keep, -2), p) : null;
  // A row without admissible keys never reads its query, nor a key no row may see its key and value: zero them, so no
  // non-finite value of theirs reaches an output or a gradient.
  const qz = rowAny ? where(rowAny, q, scalar(0)) : q;
  const kz = keyAny ? where(keyAny, k, scalar(0)) : k;
  let s = mul(groupedMatmul(qz, transpose(kz, -1, -2), p), p.scale);
  if (mask && p.maskKind === 2) s = add(s, mask);
  if (keep) s = where(keep, s, scalar(-Infinity));
  // softmax makes a row holding a NaN or +inf NaN (values and gradients); a row of -inf scores it gives zeros, which is
  // right for a row without admissible keys only. Any other row of -inf scores gets a NaN added before the softmax, so
  // it is NaN as PyTorch's is, and so are its gradients at every admissible entry.
  const negInf = eq(amax(s, -1, true), -Infinity);
  const bad = rowAny ? logicalAnd(negInf, rowAny) : negInf;
  return { probs: softmax(add(s, where(bad, scalar(NaN), scalar(0))), -1), rowAny, keyAny };
}

function dropoutMultiplier(p: AttentionPlan, shape: number[]): Tensor {
  const n = numel(shape);
  const data = new Float32Array(n);
  const inv = 1 / (1 - p.dropoutP);
  const rows = n / (p.Nq * p.Nk);
  for (let bh = 0; bh < rows; bh++) {
    for (let i = 0; i < p.Nq; i++) {
      for (let j = 0; j < p.Nk; j++) {
        data[(bh * p.Nq + i) * p.Nk + j] = attnDropoutKeep(p.seed, 0, bh, i, j, p.dropoutP) ? inv : 0;
      }
    }
  }
  return tensor(data, { shape });
}

/** softmax(q k^T * scale + mask) (dropout) v, [..., Hq, Nq, Dv] as p.outShape; q, k, v and mask in compute dtype. */
export function referenceAttention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, p: AttentionPlan): Tensor {
  return tidy(() => {
    const { probs, rowAny, keyAny } = probabilities(q, k, mask, p);
    const weights = p.dropoutP > 0 ? mul(probs, dropoutMultiplier(p, probs.shape)) : probs;
    let o = groupedMatmul(weights, keyAny ? where(keyAny, v, scalar(0)) : v, p);
    if (rowAny) o = where(rowAny, o, scalar(0));
    return o.shape.length === p.outShape.length && o.shape.every((d, i) => d === p.outShape[i]) ? o : reshape(o, p.outShape.slice());
  });
}

/** The attention probabilities, [..., Hq, Nq, Nk] (p.outShape); q, k and mask in f32. */
export function referenceWeights(q: Tensor, k: Tensor, mask: Tensor | null, p: AttentionPlan): Tensor {
  return tidy(() => {
    const { probs } = probabilities(q, k, mask, p);
    return probs.shape.length === p.outShape.length && probs.shape.every((d, i) => d === p.outShape[i]) ? probs : reshape(probs, p.outShape.slice());
  });
}
