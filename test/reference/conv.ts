// Float64 references for convolution, pooling and batch norm, as PyTorch defines them (NCHW), in plain loops.
import { type Ref, numel } from './core';

export interface ConvRefOptions {
  stride?: [number, number];
  /** Top/left padding; padBottom/padRight default to the same (PyTorch's 'same' pads one more there for even taps). */
  padding?: [number, number];
  padEnd?: [number, number];
  dilation?: [number, number];
  groups?: number;
}

/** y[n, o, oh, ow] = sum_{c in group, kh, kw} w[o, c, kh, kw] x[n, g Cg + c, oh s - p + kh d, ...] + b[o]. */
export function conv2d(x: Ref, w: Ref, b: Ref | null, o: ConvRefOptions = {}): Ref {
  const [N, C, H, W] = x.shape;
  const [O, Cg, KH, KW] = w.shape;
  const [sh, sw] = o.stride ?? [1, 1];
  const [ph, pw] = o.padding ?? [0, 0];
  const [pe, pr] = o.padEnd ?? [ph, pw];
  const [dh, dw] = o.dilation ?? [1, 1];
  const G = o.groups ?? 1;
  const Og = O / G;
  const Ho = Math.floor((H + ph + pe - dh * (KH - 1) - 1) / sh) + 1;
  const Wo = Math.floor((W + pw + pr - dw * (KW - 1) - 1) / sw) + 1;
  const out = new Float64Array(N * O * Ho * Wo);
  for (let n = 0; n < N; n++) for (let oc = 0; oc < O; oc++) {
    const g = Math.floor(oc / Og);
    for (let oh = 0; oh < Ho; oh++) for (let ow = 0; ow < Wo; ow++) {
      let s = b ? b.data[oc] : 0;
      for (let c = 0; c < Cg; c++) for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
        const ih = oh * sh - ph + kh * dh, iw = ow * sw - pw + kw * dw;
        if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
        s += w.data[((oc * Cg + c) * KH + kh) * KW + kw] * x.data[((n * C + g * Cg + c) * H + ih) * W + iw];
      }
      out[((n * O + oc) * Ho + oh) * Wo + ow] = s;
    }
  }
  return { data: out, shape: [N, O, Ho, Wo] };
}

/**
 * The gradients of sum(conv2d(x, w) * g) in float64 loops, as conv2d above defines it (a padded tap contributes
 * nothing): dx [N, C, H, W] and dw [O, Cg, KH, KW] (g: [N, O, Ho, Wo]).
 */
export function conv2dGrads(x: Ref, w: Ref, g: Ref, o: ConvRefOptions = {}): { dx: Ref; dw: Ref } {
  const [N, C, H, W] = x.shape;
  const [O, Cg, KH, KW] = w.shape;
  const [, , Ho, Wo] = g.shape;
  const [sh, sw] = o.stride ?? [1, 1];
  const [ph, pw] = o.padding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const Og = O / (o.groups ?? 1);
  const dx = new Float64Array(N * C * H * W), dW = new Float64Array(O * Cg * KH * KW);
  for (let n = 0; n < N; n++) for (let oc = 0; oc < O; oc++) {
    const grp = Math.floor(oc / Og);
    for (let oh = 0; oh < Ho; oh++) for (let ow = 0; ow < Wo; ow++) {
      const gv = g.data[((n * O + oc) * Ho + oh) * Wo + ow];
      for (let c = 0; c < Cg; c++) for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
        const ih = oh * sh - ph + kh * dh, iw = ow * sw - pw + kw * dw;
        if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
        const xi = ((n * C + grp * Cg + c) * H + ih) * W + iw, wi = ((oc * Cg + c) * KH + kh) * KW + kw;
        dx[xi] += w.data[wi] * gv;
        dW[wi] += x.data[xi] * gv;
      }
    }
  }
  return { dx: { data: dx, shape: [N, C, H, W] }, dw: { data: dW, shape: [O, Cg, KH, KW] } };
}

/** conv1d as conv2d over height 1: x [N, C, L], w [O, Cg, K]. */
export function conv1d(x: Ref, w: Ref, b: Ref | null, o: { stride?: number; padding?: number; padEnd?: number; dilation?: number; groups?: number } = {}): Ref {
  const [N, C, L] = x.shape;
  const [O, Cg, K] = w.shape;
  const y = conv2d({ data: x.data, shape: [N, C, 1, L] }, { data: w.data, shape: [O, Cg, 1, K] }, b, {
    stride: [1, o.stride ?? 1], padding: [0, o.padding ?? 0], padEnd: [0, o.padEnd ?? o.padding ?? 0], dilation: [1, o.dilation ?? 1], groups: o.groups,
  });
  return { data: y.data, shape: [N, O, y.shape[3]] };
}

export interface PoolRefOptions {
  kernel: [number, number];
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  countIncludePad?: boolean;
}

function outDim(size: number, k: number, s: number, p: number, d: number): number {
  return Math.floor((size + 2 * p - d * (k - 1) - 1) / s) + 1;
}

/**
 * Max pooling as PyTorch's CPU kernel: padding is -inf (never chosen), `val > max || isnan(val)` (first maximum wins
 * ties, the last NaN wins); also returns the plane-flat index of each maximum.
 */
export function maxPool2d(x: Ref, o: PoolRefOptions): { values: Ref; indices: number[] } {
  const [N, C, H, W] = x.shape;
  const [KH, KW] = o.kernel;
  const [sh, sw] = o.stride ?? o.kernel;
  const [ph, pw] = o.padding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const Ho = outDim(H, KH, sh, ph, dh), Wo = outDim(W, KW, sw, pw, dw);
  const vals = new Float64Array(N * C * Ho * Wo);
  const idx: number[] = [];
  for (let p = 0; p < N * C; p++) for (let oh = 0; oh < Ho; oh++) for (let ow = 0; ow < Wo; ow++) {
    let h0 = oh * sh - ph, w0 = ow * sw - pw;
    let best = -Infinity, bi = -1;
    while (h0 < 0) h0 += dh;
    while (w0 < 0) w0 += dw;
    bi = h0 * W + w0;
    for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
      const ih = oh * sh - ph + kh * dh, iw = ow * sw - pw + kw * dw;
      if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
      const v = x.data[p * H * W + ih * W + iw];
      if (v > best || Number.isNaN(v)) { best = v; bi = ih * W + iw; }
    }
    vals[(p * Ho + oh) * Wo + ow] = best;
    idx.push(bi);
  }
  return { values: { data: vals, shape: [N, C, Ho, Wo] }, indices: idx };
}

/** Average pooling; count_include_pad (default true) divides by the window clipped to the padded input. */
export function avgPool2d(x: Ref, o: PoolRefOptions): Ref {
  const [N, C, H, W] = x.shape;
  const [KH, KW] = o.kernel;
  const [sh, sw] = o.stride ?? o.kernel;
  const [ph, pw] = o.padding ?? [0, 0];
  const cip = o.countIncludePad ?? true;
  const Ho = outDim(H, KH, sh, ph, 1), Wo = outDim(W, KW, sw, pw, 1);
  const out = new Float64Array(N * C * Ho * Wo);
  for (let p = 0; p < N * C; p++) for (let oh = 0; oh < Ho; oh++) for (let ow = 0; ow < Wo; ow++) {
    const hs = oh * sh - ph, ws = ow * sw - pw;
    const he = Math.min(hs + KH, H + ph), we = Math.min(ws + KW, W + pw);
    let s = 0, count = 0;
    for (let ih = Math.max(hs, 0); ih < Math.min(he, H); ih++) for (let iw = Math.max(ws, 0); iw < Math.min(we, W); iw++) {
      s += x.data[p * H * W + ih * W + iw];
      count++;
    }
    out[(p * Ho + oh) * Wo + ow] = s / (cip ? (he - hs) * (we - ws) : count);
  }
  return { data: out, shape: [N, C, Ho, Wo] };
}

/** Adaptive average pooling: window rows floor(i H / Ho) .. ceil((i + 1) H / Ho). */
export function adaptiveAvgPool2d(x: Ref, size: [number, number]): Ref {
  const [N, C, H, W] = x.shape;
  const [Ho, Wo] = size;
  const out = new Float64Array(N * C * Ho * Wo);
  for (let p = 0; p < N * C; p++) for (let oh = 0; oh < Ho; oh++) for (let ow = 0; ow < Wo; ow++) {
    const hs = Math.floor((oh * H) / Ho), he = Math.ceil(((oh + 1) * H) / Ho);
    const ws = Math.floor((ow * W) / Wo), we = Math.ceil(((ow + 1) * W) / Wo);
    let s = 0;
    for (let ih = hs; ih < he; ih++) for (let iw = ws; iw < we; iw++) s += x.data[p * H * W + ih * W + iw];
    out[(p * Ho + oh) * Wo + ow] = s / ((he - hs) * (we - ws));
  }
  return { data: out, shape: [N, C, Ho, Wo] };
}

/** Per-channel statistics of x [N, C, ...]: mean and biased variance over every dim but 1. */
export function channelStats(x: Ref): { mean: number[]; variance: number[] } {
  const [N, C] = x.shape;
  const inner = numel(x.shape.slice(2));
  const mean: number[] = [], variance: number[] = [];
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < inner; i++) s += x.data[(n * C + c) * inner + i];
    const m = s / (N * inner);
    let v = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < inner; i++) v += (x.data[(n * C + c) * inner + i] - m) ** 2;
    mean.push(m);
    variance.push(v / (N * inner));
  }
  return { mean, variance };
}

/** (x - mean) / sqrt(var + eps) * w + b per channel, with the given statistics (batch or running). */
export function batchNorm(x: Ref, mean: number[], variance: number[], w: Ref | null, b: Ref | null, eps = 1e-5): Ref {
  const [N, C] = x.shape;
  const inner = numel(x.shape.slice(2));
  const out = new Float64Array(x.data.length);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let i = 0; i < inner; i++) {
    const k = (n * C + c) * inner + i;
    out[k] = ((x.data[k] - mean[c]) / Math.sqrt(variance[c] + eps)) * (w ? w.data[c] : 1) + (b ? b.data[c] : 0);
  }
  return { data: out, shape: [...x.shape] };
}

/** Training-mode batch norm: normalised with the batch's own statistics (differentiable through them). */
export function batchNormTrain(x: Ref, w: Ref | null, b: Ref | null, eps = 1e-5): Ref {
  const { mean, variance } = channelStats(x);
  return batchNorm(x, mean, variance, w, b, eps);
}

/**
 * Gradients of batch norm for the output gradient g: with xhat = (x - mean) / sqrt(var + eps) per channel,
 * dweight = sum(g xhat), dbias = sum(g), and dx = w invstd (g - mean(g) - xhat mean(g xhat)) in training (the batch
 * statistics depend on x), dx = w invstd g with fixed (running) statistics.
 */
export function batchNormGrads(x: Ref, g: Ref, w: Ref | null, stats: { mean: number[]; variance: number[] }, training: boolean,
  eps = 1e-5): { dx: Ref; dw: Ref; db: Ref } {
  const [N, C] = x.shape;
  const inner = numel(x.shape.slice(2));
  const M = N * inner;
  const dx = new Float64Array(x.data.length), dw = new Float64Array(C), db = new Float64Array(C);
  const idx = (n: number, c: number, i: number) => (n * C + c) * inner + i;
  for (let c = 0; c < C; c++) {
    const invstd = 1 / Math.sqrt(stats.variance[c] + eps);
    const xhat = (k: number) => (x.data[k] - stats.mean[c]) * invstd;
    for (let n = 0; n < N; n++) for (let i = 0; i < inner; i++) {
      const k = idx(n, c, i);
      db[c] += g.data[k];
      dw[c] += g.data[k] * xhat(k);
    }
    const scale = (w ? w.data[c] : 1) * invstd;
    for (let n = 0; n < N; n++) for (let i = 0; i < inner; i++) {
      const k = idx(n, c, i);
      dx[k] = training ? scale * (g.data[k] - db[c] / M - xhat(k) * (dw[c] / M)) : scale * g.data[k];
    }
  }
  return { dx: { data: dx, shape: [...x.shape] }, dw: { data: dw, shape: [C] }, db: { data: db, shape: [C] } };
}
