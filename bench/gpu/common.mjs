// What the GPU-machine scripts share: a float64 attention for checks, the error measure, and a timing loop that
// amortises many calls over one sync (so the numbers are kernel time, not round trips).
import * as k from '../../dist/kiln.node.js';
import { sdpa } from '../lib/attention_reference.mjs';

/** softmax(q k^T / sqrt(D)) v in float64, [B*H, Nq, D] flat; causal is top-left aligned (the shared reference). */
export function cpuAttention(q, kk, v, [B, H, Nq, Nk, D], causal) {
  const ref = (data, N) => ({ data, shape: [B, H, N, D] });
  return sdpa(ref(q, Nq), ref(kk, Nk), ref(v, Nk), { isCausal: causal }).out.data;
}

/** Largest |a - b| / max(1, |b|). */
export const maxErr = (a, b) => { let e = 0; for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]))); return e; };

/**
 * Median ms per call of fn: grows the batch of calls per sync until it takes minMs (or maxIters calls), then times
 * `repeats` batches. Returns { ms, min, max, iters }.
 */
export async function timeIt(fn, { minMs = 150, maxIters = 200, repeats = 5 } = {}) {
  for (let i = 0; i < 2; i++) { fn(); await k.sync(); }
  let iters = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) fn();
    await k.sync();
    if (performance.now() - t0 >= minMs || iters >= maxIters) {
      const samples = [];
      for (let r = 0; r < repeats; r++) {
        const t1 = performance.now();
        for (let i = 0; i < iters; i++) fn();
        await k.sync();
        samples.push((performance.now() - t1) / iters);
      }
      samples.sort((a, b) => a - b);
      return { ms: samples[Math.floor(repeats / 2)], min: samples[0], max: samples[repeats - 1], iters };
    }
    iters = Math.min(maxIters, iters * 4);
  }
}
