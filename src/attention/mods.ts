// Ready-made mods for F.flexAttention (as the examples around PyTorch's flex_attention): score mods return
// (score, b, h, qIdx, kvIdx) => score', mask mods (b, h, qIdx, kvIdx) => bool. Tensors they take are captured (read
// with t.at), so a learned table or slope tensor that requires grad trains through the fused backward.
import { ValueError } from '../errors.js';
import type { Expr } from '../ops/expr.js';
import type { Tensor } from '../ops/tensor.js';
import { tensor } from '../ops/creation.js';
import type { MaskMod, ScoreMod } from './flex.js';

function positive(fn: string, name: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) throw new ValueError(`attentionMods.${fn}: ${name} must be a positive number, got ${String(x)}`);
  return x;
}

function integer(fn: string, name: string, x: unknown): number {
  if (!Number.isInteger(x)) throw new ValueError(`attentionMods.${fn}: ${name} must be an integer, got ${String(x)}`);
  return x as number;
}

function rank(fn: string, name: string, t: Tensor, ranks: number[]): void {
  if (!t || typeof t !== 'object' || !('shape' in t)) throw new ValueError(`attentionMods.${fn}: ${name} must be a Tensor`);
  if (!ranks.includes(t.rank)) throw new ValueError(`attentionMods.${fn}: ${name} [${t.shape.join(',')}] must have ${ranks.join(' or ')} dims`);
}

export const attentionMods = {
  /** Logit soft-capping (Gemma 2, Grok): cap * tanh(score / cap). */
  softCap(cap: number): ScoreMod {
    const c = positive('softCap', 'cap', cap);
    return (s) => s.div(c).tanh().mul(c);
  },

  /** ALiBi: score + slopes[h] * (kvIdx - qIdx); slopes [H] (alibiSlopes(H) gives the paper's). */
  alibi(slopes: Tensor): ScoreMod {
    rank('alibi', 'slopes', slopes, [1]);
    return (s, _b, h, i, j) => s.add(slopes.at(h).mul(j.sub(i)));
  },

  /** The ALiBi paper's slopes for H heads: 2^(-8 (h + 1) / H), as an f32 tensor [H]. */
  alibiSlopes(H: number, options?: { requiresGrad?: boolean }): Tensor {
    const n = integer('alibiSlopes', 'H', H);
    if (n < 1) throw new ValueError(`attentionMods.alibiSlopes: H must be >= 1, got ${H}`);
    return tensor(Float32Array.from({ length: n }, (_, h) => 2 ** ((-8 * (h + 1)) / n)), { shape: [n], requiresGrad: options?.requiresGrad ?? false });
  },

  /**
   * A learned relative-position bias (T5-style): score + table[h, clamp(kvIdx - qIdx, -maxDistance, maxDistance) +
   * maxDistance]; table [H, 2 * maxDistance + 1] (or [2 * maxDistance + 1], shared by the heads).
   */
  relativeBias(table: Tensor, maxDistance: number): ScoreMod {
    const R = integer('relativeBias', 'maxDistance', maxDistance);
    rank('relativeBias', 'table', table, [1, 2]);
    if (table.shape[table.rank - 1] !== 2 * R + 1) throw new ValueError(`attentionMods.relativeBias: table [${table.shape.join(',')}] must have 2 * maxDistance + 1 = ${2 * R + 1} columns`);
    const bucket = (i: Expr, j: Expr) => j.sub(i).clamp(-R, R).add(R);
    return table.rank === 2 ? (s, _b, h, i, j) => s.add(table.at(h, bucket(i, j))) : (s, _b, _h, i, j) => s.add(table.at(bucket(i, j)));
  },

  /** Causal, bottom-right aligned with an offset: kvIdx <= qIdx + offset (offset = Nk - Nq is PyTorch's causal_lower_right). */
  causal(offset = 0): MaskMod {
    const o = integer('causal', 'offset', offset);
    return (_b, _h, i, j) => j.le(i.add(o));
  },

  /** A causal sliding window: qIdx - window < kvIdx <= qIdx (+ offset, bottom-right aligned). */
  slidingWindow(window: number, offset = 0): MaskMod {
    const w = integer('slidingWindow', 'window', window);
    if (w < 1) throw new ValueError(`attentionMods.slidingWindow: window must be >= 1, got ${window}`);
    const o = integer('slidingWindow', 'offset', offset);
    return (_b, _h, i, j) => {
      const d = i.add(o).sub(j);
      return d.ge(0).logicalAnd(d.lt(w));
    };
  },

  /** Document masking: a query sees the keys of its own document; docIds [N] or [B, N] (i32, per position). */
  documentMask(docIds: Tensor): MaskMod {
    rank('documentMask', 'docIds', docIds, [1, 2]);
    if (docIds.dtype !== 'i32') throw new ValueError(`attentionMods.documentMask: docIds must be i32, got ${docIds.dtype}`);
    return docIds.rank === 1 ? (_b, _h, i, j) => docIds.at(i).eq(docIds.at(j)) : (b, _h, i, j) => docIds.at(b, i).eq(docIds.at(b, j));
  },

  /** Prefix-LM: every query sees the first prefixLength keys, and causally after them. */
  prefixLM(prefixLength: number): MaskMod {
    const p = integer('prefixLM', 'prefixLength', prefixLength);
    return (_b, _h, i, j) => j.le(i).logicalOr(j.lt(p));
  },

  /** All of the mask mods hold. */
  and(...mods: MaskMod[]): MaskMod {
    return (b, h, i, j) => mods.map((m) => m(b, h, i, j) as Expr).reduce((a, x) => a.logicalAnd(x));
  },

  /** Any of the mask mods holds. */
  or(...mods: MaskMod[]): MaskMod {
    return (b, h, i, j) => mods.map((m) => m(b, h, i, j) as Expr).reduce((a, x) => a.logicalOr(x));
  },

  /** The score mods applied in turn. */
  chain(...mods: ScoreMod[]): ScoreMod {
    return (s, b, h, i, j) => mods.reduce<Expr>((x, m) => m(x, b, h, i, j) as Expr, s);
  },
};
