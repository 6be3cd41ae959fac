// What the GPU-machine scripts share: a float64 attention for checks, the error measure, and a timing loop that
// amortises many calls over one sync (so the numbers are kernel time, not round trips).
import * as k from '../../dist/kiln.node.js';

/** softmax(q k^T / sqrt(D)) v in float64, [B*H, Nq, D] flat; causal is top-left aligned. */
export function cpuAttention(q, kk, v, [B, H, Nq, Nk, D], causal) {
  const o = new Float64Array(B * H * Nq * D);
  const scale = 1 / Math.sqrt(D);
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < Nq; i++) {
      const s = new Float64Array(Nk);
      let m = -Infinity;
      for (let j = 0; j < Nk; j++) {
        if (causal && j > i) { s[j] = -Infinity; continue; }
        let acc = 0;
        for (let d = 0; d < D; d++) acc += q[(bh * Nq + i) * D + d] * kk[(bh * Nk + j) * D + d];
        s[j] = acc * scale;
        m = Math.max(m, s[j]);
      }
      let l = 0;
      for (let j = 0; j < Nk; j++) { s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - m); l += s[j]; }
      for (let j = 0; j < Nk; j++) for (let d = 0; d < D; d++) o[(bh * Nq + i) * D + d] += (s[j] / l) * v[(bh * Nk + j) * D + d];
    }
  }
  return o;
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
