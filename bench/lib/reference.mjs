// Float64 CPU references the bench checks kiln's results against before timing a case. Browser-safe.
// Each takes Float32Array inputs in row-major order and returns a Float64Array (or the requested entries).

/** C = A[M,K] B[K,N], only at the flat output indices `at` (all when omitted). */
export function matmulF64(a, b, M, K, N, at) {
  const idx = at ?? Array.from({ length: M * N }, (_, i) => i);
  const out = new Float64Array(idx.length);
  idx.forEach((flat, o) => {
    const i = Math.floor(flat / N);
    const j = flat % N;
    let s = 0;
    for (let p = 0; p < K; p++) s += a[i * K + p] * b[p * N + j];
    out[o] = s;
  });
  return out;
}

export function softmaxRowsF64(x, rows, cols) {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += (out[r * cols + c] = Math.exp(x[r * cols + c] - m));
    for (let c = 0; c < cols; c++) out[r * cols + c] /= s;
  }
  return out;
}

export function layerNormRowsF64(x, rows, cols, weight, bias, eps = 1e-5) {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let c = 0; c < cols; c++) mean += x[r * cols + c];
    mean /= cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c] - mean) ** 2;
    v /= cols;
    const inv = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < cols; c++) out[r * cols + c] = (x[r * cols + c] - mean) * inv * (weight ? weight[c] : 1) + (bias ? bias[c] : 0);
  }
  return out;
}

// Attention rows: the float64 attention reference shared with the tests.
export { attentionRowsF64, flexRowsF64 } from './attention_reference.mjs';

/** Max |got[at[i]] - want[i]| (got indexed by `at` when given, else elementwise), and max |want|. */
export function maxAbsErr(got, want, at) {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    const g = at ? got[at[i]] : got[i];
    const d = Math.abs(g - want[i]);
    err = Number.isNaN(d) ? Infinity : Math.max(err, d);
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return { err, scale };
}

/** Deterministic sample of `count` distinct integers in [0, n) (all of them when count >= n). */
export function sampleIndices(n, count, seed = 1) {
  if (count >= n) return Array.from({ length: n }, (_, i) => i);
  let x = seed >>> 0 || 1;
  const set = new Set();
  while (set.size < count) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    set.add(x % n);
  }
  return [...set].sort((a, b) => a - b);
}

/**
 * 2-D convolution (NCHW, PyTorch's cross-correlation, stride 1, zero padding `pad`) in float64 at the flat output
 * indices `at` (all when omitted): x [N, C, H, W], w [O, C, KH, KW], output [N, O, H + 2 pad - KH + 1, ...].
 */
export function convF64(x, w, [N, C, H, W], [O, , KH, KW], pad, at) {
  const Ho = H + 2 * pad - KH + 1, Wo = W + 2 * pad - KW + 1;
  const idx = at ?? Array.from({ length: N * O * Ho * Wo }, (_, i) => i);
  return idx.map((i) => {
    const ow = i % Wo, oh = Math.floor(i / Wo) % Ho, o = Math.floor(i / (Wo * Ho)) % O, n = Math.floor(i / (Wo * Ho * O));
    let s = 0;
    for (let c = 0; c < C; c++) for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
      const ih = oh - pad + kh, iw = ow - pad + kw;
      if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
      s += w[((o * C + c) * KH + kh) * KW + kw] * x[((n * C + c) * H + ih) * W + iw];
    }
    return s;
  });
}
