// F.scaledDotProductAttention and F.attentionWeights: plan the call once (plan.ts), then run the fused kernels
// (fused.ts) or the reference composition (reference.ts). f16 inputs the plan widens, and f16 float masks, are cast to
// f32 on the tape, so gradients come back in each input's own dtype.
import type { Tensor } from '../ops/tensor.js';
import { toDType } from '../ops/elementwise.js';
import { autocastRun } from '../ops/autocast.js';
import { type AttentionPlan, type SdpaOptions, planAttention } from './plan.js';
import { fusedAttention } from './fused.js';
import { referenceAttention, referenceWeights } from './reference.js';

export type { SdpaOptions, CausalOption } from './plan.js';
export { chooseTiles } from './plan.js';

/** Runs fn on the inputs cast as planned (each distinct tensor once), and disposes the casts. */
function withCasts(ts: (Tensor | null)[], cast: boolean[], fn: (...xs: (Tensor | null)[]) => Tensor): Tensor {
  const made = new Map<Tensor, Tensor>();
  try {
    const xs = ts.map((t, i) => {
      if (!t || !cast[i] || t.dtype !== 'f16') return t;
      let w = made.get(t);
      if (!w) made.set(t, (w = toDType(t, 'f32')));
      return w;
    });
    return fn(...xs);
  } finally {
    for (const w of made.values()) w.dispose();
  }
}

/** t cast to dtype (on the tape), t itself released. */
function toDTypeOwned(t: Tensor, dtype: 'f16'): Tensor {
  const c = toDType(t, dtype);
  t.dispose();
  return c;
}

function run(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, p: AttentionPlan): Tensor {
  const out = withCasts([q, k, v, mask], [p.widenInputs, p.widenInputs, p.widenInputs, p.widenMask], (qc, kc, vc, mc) =>
    p.impl === 'reference' ? referenceAttention(qc!, kc!, vc!, mc, p) : fusedAttention(qc!, kc!, vc!, mc, p));
  return p.widenInputs ? toDTypeOwned(out, 'f16') : out;
}

/**
 * softmax(q k^T * scale + mask) v over the last two dims, FlashAttention-style when impl is 'fused' (the default): the
 * Nq x Nk scores are never written to memory. q [..., Nq, D], k [..., Nk, D], v [..., Nk, Dv]; leading dims broadcast;
 * k/v may have fewer heads than q (grouped-query). isCausal: true / 'upperLeft' (top-left aligned, PyTorch's
 * is_causal) or 'lowerRight' (bottom-right, as incremental decoding through a KVCache needs). A row with no admissible
 * key gives zeros and zero gradients; a NaN (or +inf) score makes its row NaN, as PyTorch.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts?: SdpaOptions): Tensor {
  // Under autocast, q, k and v run in f16 (ops/autocast.ts).
  const ac = autocastRun('scaledDotProductAttention', [q, k, v], (qc, kc, vc) => scaledDotProductAttention(qc!, kc!, vc!, opts));
  if (ac) return ac;
  const p = planAttention('scaledDotProductAttention', q, k, v, opts);
  return run(q, k, v, p.mask, p);
}

/** The attention probabilities softmax(q k^T * scale + mask), [..., Hq, Nq, Nk], for looking at them (f32, or f16 for f16 inputs). */
export function attentionWeights(q: Tensor, k: Tensor, opts?: Omit<SdpaOptions, 'dropoutP' | 'seed' | 'impl'>): Tensor {
  const ac = autocastRun('attentionWeights', [q, k], (qc, kc) => attentionWeights(qc!, kc!, opts));
  if (ac) return ac;
  const p = planAttention('attentionWeights', q, k, null, opts);
  const w = withCasts([q, k, p.mask], [true, true, true], (qc, kc, mc) => referenceWeights(qc!, kc!, mc, p));
  return p.dtype === 'f16' ? toDTypeOwned(w, 'f16') : w;
}
