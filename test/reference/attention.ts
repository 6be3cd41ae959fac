// Float64 reference for scaled dot-product attention (forward and backward) and for additive attention.
//
// Written as explicit loops over (batch, query row, key) rather than as a composition of ops.ts, so that it is a
// second, independent statement of the semantics: the tests compare the two, and the GPU kernels against both.
//
// Shapes: q [..., Hq, Nq, D], k [..., Hk, Nk, D], v [..., Hk, Nk, Dv]. Everything before the last two dims is a
// batch dim and broadcasts (PyTorch rules), with one exception: the dim just before (Nq, Nk) is the head dim, and
// when Hq = g * Hk (g > 1) query head h reads key/value head floor(h / g), as torch's enable_gqa.

import { type Ref, broadcastShapes, numel, stridesOf, unravel } from './core';

export interface SdpaOptions {
  /** Multiplies q.k; defaults to 1/sqrt(D). */
  scale?: number | undefined;
  /** Query i sees keys j <= i, top-left aligned even when Nq != Nk (PyTorch's is_causal). */
  isCausal?: boolean | undefined;
  /** Nonzero = may attend; broadcastable to [..., Hq, Nq, Nk]. */
  boolMask?: Ref | undefined;
  /** Added to the scaled scores; broadcastable to [..., Hq, Nq, Nk]. -Infinity masks a key. */
  floatMask?: Ref | undefined;
  /**
   * The multiplier applied to probability (b, h, i, j) after the softmax, already including 1/(1-p); default 1.
   * For a batch shape [..., H]: h is the index in the last batch dim (the head) and b the flat index over the
   * dims before it. For a batch shape [B] (3-D inputs) b is that index and h is 0.
   */
  dropoutMask?: ((b: number, h: number, i: number, j: number) => number) | undefined;
}

export interface SdpaResult {
  /** [...batch, Nq, Dv] */
  out: Ref;
  /** Log-sum-exp of the scaled and masked scores per row, [...batch, Nq]; -Infinity for a fully masked row. */
  lse: Ref;
  /** Softmax probabilities before dropout, [...batch, Nq, Nk]; all zero in a fully masked row. */
  probs: Ref;
}

export interface SdpaGrads {
  dq: Ref;
  dk: Ref;
  dv: Ref;
  /** Gradient w.r.t. the float mask, summed down to the mask's own shape; null without a float mask. */
  dFloatMask: Ref | null;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * Where each batch entry of a source tensor starts, for every entry of the broadcast batch shape.
 * `headGroup` > 1 maps the last batch dim (the head) h -> floor(h / headGroup), for grouped-query k and v.
 * Broadcast entries share an offset, so accumulating gradients through these offsets sums over broadcasting.
 */
function batchOffsets(
  sourceBatch: readonly number[],
  matrixSize: number,
  batch: readonly number[],
  headGroup: number,
): Float64Array {
  const strides = stridesOf(sourceBatch).map((s) => s * matrixSize);
  const lead = batch.length - sourceBatch.length;
  const n = numel(batch);
  const out = new Float64Array(n);
  for (let flat = 0; flat < n; flat++) {
    const idx = unravel(flat, batch);
    let off = 0;
    for (let i = 0; i < sourceBatch.length; i++) {
      let j = idx[lead + i];
      if (i === sourceBatch.length - 1 && headGroup > 1) j = Math.floor(j / headGroup);
      if (sourceBatch[i] === 1) j = 0;
      off += j * strides[i];
    }
    out[flat] = off;
  }
  return out;
}

interface MaskPlan {
  data: Float64Array;
  shape: number[];
  /** Start of the [Nq|1, Nk|1] matrix for each batch entry. */
  offsets: Float64Array;
  rowStride: number;
  colStride: number;
}

/** Ranks below 2 are padded with leading 1s so a [Nk] mask means "the same key mask for every query". */
function maskDims(mask: Ref): number[] {
  const shape = [...mask.shape];
  while (shape.length < 2) shape.unshift(1);
  return shape;
}

function planMask(mask: Ref, name: string, batch: number[], Nq: number, Nk: number): MaskPlan {
  const shape = maskDims(mask);
  const mq = shape[shape.length - 2];
  const mk = shape[shape.length - 1];
  if ((mq !== 1 && mq !== Nq) || (mk !== 1 && mk !== Nk)) {
    throw new Error(`sdpa: ${name} ${fmtShape(mask.shape)} does not broadcast to [..., ${Nq}, ${Nk}]`);
  }
  return {
    data: mask.data,
    shape: [...mask.shape],
    offsets: batchOffsets(shape.slice(0, -2), mq * mk, batch, 1),
    rowStride: mq === 1 ? 0 : mk,
    colStride: mk === 1 ? 0 : 1,
  };
}

interface Plan {
  batch: number[];
  H: number;
  Nq: number;
  Nk: number;
  D: number;
  Dv: number;
  scale: number;
  qOff: Float64Array;
  kOff: Float64Array;
  vOff: Float64Array;
  bool: MaskPlan | null;
  float: MaskPlan | null;
  isCausal: boolean;
  dropout: ((b: number, h: number, i: number, j: number) => number) | null;
}

function plan(q: Ref, k: Ref, v: Ref, opts: SdpaOptions): Plan {
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.shape.length < 2) throw new Error(`sdpa: ${name} ${fmtShape(t.shape)} needs at least 2 dims [N, D]`);
  }
  const [Nq, D] = q.shape.slice(-2);
  const [Nk, Dk] = k.shape.slice(-2);
  const [Nv, Dv] = v.shape.slice(-2);
  if (D !== Dk) throw new Error(`sdpa: q ${fmtShape(q.shape)} and k ${fmtShape(k.shape)} disagree on the head dimension (${D} vs ${Dk})`);
  if (Nk !== Nv) throw new Error(`sdpa: k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} disagree on the number of keys (${Nk} vs ${Nv})`);
  const qB = q.shape.slice(0, -2);
  const kB = k.shape.slice(0, -2);
  const vB = v.shape.slice(0, -2);
  const kHeads = kB.length > 0 ? kB[kB.length - 1] : 1;
  const vHeads = vB.length > 0 ? vB[vB.length - 1] : 1;
  const qHeads = qB.length > 0 ? qB[qB.length - 1] : 1;

  // Grouped-query attention applies when both q and k/v have a head dim and Hk properly divides Hq. With Hk = 1 plain
  // broadcasting already gives every query head the single kv head, so it needs no special case.
  let group = 1;
  if (qB.length > 0 && kB.length > 0 && kHeads !== qHeads && kHeads > 1 && qHeads % kHeads === 0) {
    if (vB.length === 0 || vHeads !== kHeads) {
      throw new Error(`sdpa: grouped-query attention needs k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} to have the same number of heads`);
    }
    group = qHeads / kHeads;
  }
  // For broadcasting, a grouped k/v counts as having Hq heads.
  const asQHeads = (s: number[]): number[] => (group > 1 ? [...s.slice(0, -1), qHeads] : s);
  const shapes = [qB, asQHeads(kB), asQHeads(vB)];
  if (opts.boolMask) shapes.push(maskDims(opts.boolMask).slice(0, -2));
  if (opts.floatMask) shapes.push(maskDims(opts.floatMask).slice(0, -2));
  let batch: number[];
  try {
    batch = broadcastShapes(...shapes);
  } catch {
    throw new Error(
      `sdpa: batch dims of q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}` +
        (opts.boolMask ? `, boolMask ${fmtShape(opts.boolMask.shape)}` : '') +
        (opts.floatMask ? `, floatMask ${fmtShape(opts.floatMask.shape)}` : '') +
        ' do not broadcast',
    );
  }
  const H = batch.length >= 2 ? batch[batch.length - 1] : 1;
  return {
    batch,
    H,
    Nq,
    Nk,
    D,
    Dv,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    qOff: batchOffsets(qB, Nq * D, batch, 1),
    kOff: batchOffsets(kB, Nk * D, batch, group),
    vOff: batchOffsets(vB, Nk * Dv, batch, group),
    bool: opts.boolMask ? planMask(opts.boolMask, 'boolMask', batch, Nq, Nk) : null,
    float: opts.floatMask ? planMask(opts.floatMask, 'floatMask', batch, Nq, Nk) : null,
    isCausal: opts.isCausal ?? false,
    dropout: opts.dropoutMask ?? null,
  };
}

/** (b, h) for the dropout callback from a flat batch index; see SdpaOptions.dropoutMask. */
function headOf(p: Plan, bt: number): [number, number] {
  if (p.batch.length >= 2) return [Math.floor(bt / p.H), bt % p.H];
  return [bt, 0];
}

/**
 * Scores, probabilities and lse of one query row. A key is masked when the bool mask is 0, when causal masking
 * hides it, or when the float mask makes its score -Infinity. A row with nothing left gets probability 0
 * everywhere and lse -Infinity, instead of the 0/0 a plain softmax would give.
 */
function rowProbs(p: Plan, q: Ref, k: Ref, bt: number, i: number, probs: Float64Array): number {
  const { Nk, D, scale } = p;
  const qo = p.qOff[bt] + i * D;
  const ko = p.kOff[bt];
  let m = -Infinity;
  for (let j = 0; j < Nk; j++) {
    let s = -Infinity;
    const allowed =
      !(p.isCausal && j > i) &&
      !(p.bool && p.bool.data[p.bool.offsets[bt] + i * p.bool.rowStride + j * p.bool.colStride] === 0);
    if (allowed) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q.data[qo + d] * k.data[ko + j * D + d];
      s = scale * dot;
      if (p.float) s += p.float.data[p.float.offsets[bt] + i * p.float.rowStride + j * p.float.colStride];
    }
    probs[j] = s;
    if (s > m) m = s;
  }
  if (m === -Infinity) {
    probs.fill(0);
    return -Infinity;
  }
  let total = 0;
  for (let j = 0; j < Nk; j++) total += Math.exp(probs[j] - m);
  const lse = m + Math.log(total);
  for (let j = 0; j < Nk; j++) probs[j] = Math.exp(probs[j] - lse);
  return lse;
}

export function sdpa(q: Ref, k: Ref, v: Ref, opts: SdpaOptions = {}): SdpaResult {
  const p = plan(q, k, v, opts);
  const { batch, Nq, Nk, Dv } = p;
  const nb = numel(batch);
  const out = new Float64Array(nb * Nq * Dv);
  const lse = new Float64Array(nb * Nq);
  const probs = new Float64Array(nb * Nq * Nk);
  const row = new Float64Array(Nk);
  for (let bt = 0; bt < nb; bt++) {
    const [b, h] = headOf(p, bt);
    const vo = p.vOff[bt];
    for (let i = 0; i < Nq; i++) {
      lse[bt * Nq + i] = rowProbs(p, q, k, bt, i, row);
      probs.set(row, (bt * Nq + i) * Nk);
      const oo = (bt * Nq + i) * Dv;
      for (let j = 0; j < Nk; j++) {
        if (row[j] === 0) continue;
        const w = row[j] * (p.dropout ? p.dropout(b, h, i, j) : 1);
        for (let d = 0; d < Dv; d++) out[oo + d] += w * v.data[vo + j * Dv + d];
      }
    }
  }
  return {
    out: { data: out, shape: [...batch, Nq, Dv] },
    lse: { data: lse, shape: [...batch, Nq] },
    probs: { data: probs, shape: [...batch, Nq, Nk] },
  };
}

/**
 * Gradients of sdpa for an upstream gradient dO shaped like its output. With P the probabilities, M the dropout
 * multipliers and s the scaled, masked scores:
 *   dV = (P*M)^T dO,  dP = M * (dO V^T),  ds = P * (dP - rowsum(P * dP)),  dQ = scale ds K,  dK = scale ds^T Q,
 *   dFloatMask = ds.
 * Masked keys have P = 0, hence ds = 0, so fully masked rows give exactly zero gradients. Gradients of broadcast
 * or grouped inputs are summed over every batch entry that read them.
 */
export function sdpaBackward(q: Ref, k: Ref, v: Ref, dO: Ref, opts: SdpaOptions = {}): SdpaGrads {
  const p = plan(q, k, v, opts);
  const { batch, Nq, Nk, D, Dv, scale } = p;
  const expected = [...batch, Nq, Dv];
  if (dO.shape.length !== expected.length || dO.shape.some((s, i) => s !== expected[i])) {
    throw new Error(`sdpaBackward: dO ${fmtShape(dO.shape)} must match the output shape ${fmtShape(expected)}`);
  }
  const dq = new Float64Array(q.data.length);
  const dk = new Float64Array(k.data.length);
  const dv = new Float64Array(v.data.length);
  const dm = p.float ? new Float64Array(p.float.data.length) : null;
  const nb = numel(batch);
  const P = new Float64Array(Nk);
  const dP = new Float64Array(Nk);
  for (let bt = 0; bt < nb; bt++) {
    const [b, h] = headOf(p, bt);
    const ko = p.kOff[bt];
    const vo = p.vOff[bt];
    for (let i = 0; i < Nq; i++) {
      if (rowProbs(p, q, k, bt, i, P) === -Infinity) continue;
      const qo = p.qOff[bt] + i * D;
      const go = (bt * Nq + i) * Dv;
      let rowDot = 0;
      for (let j = 0; j < Nk; j++) {
        const mult = p.dropout ? p.dropout(b, h, i, j) : 1;
        let g = 0;
        for (let d = 0; d < Dv; d++) g += dO.data[go + d] * v.data[vo + j * Dv + d];
        dP[j] = mult * g;
        rowDot += P[j] * dP[j];
        const pm = P[j] * mult;
        if (pm !== 0) for (let d = 0; d < Dv; d++) dv[vo + j * Dv + d] += pm * dO.data[go + d];
      }
      for (let j = 0; j < Nk; j++) {
        const ds = P[j] * (dP[j] - rowDot);
        if (ds === 0) continue;
        for (let d = 0; d < D; d++) {
          dq[qo + d] += scale * ds * k.data[ko + j * D + d];
          dk[ko + j * D + d] += scale * ds * q.data[qo + d];
        }
        if (dm && p.float) dm[p.float.offsets[bt] + i * p.float.rowStride + j * p.float.colStride] += ds;
      }
    }
  }
  return {
    dq: { data: dq, shape: [...q.shape] },
    dk: { data: dk, shape: [...k.shape] },
    dv: { data: dv, shape: [...v.shape] },
    dFloatMask: dm && p.float ? { data: dm, shape: [...p.float.shape] } : null,
  };
}

export interface AdditiveAttentionParams {
  /** [A, Dq]: projects a query into the attention space (PyTorch Linear layout, out x in). */
  wq: Ref;
  /** [A, Dk]: projects a key into the attention space. */
  wk: Ref;
  /** [A]: scores a tanh-activated sum. */
  v: Ref;
  /** [A]: optional bias added inside the tanh. */
  bias?: Ref | undefined;
  /** Nonzero = may attend; broadcastable to [..., Nq, Nk]. A row with no allowed key gives zeros. */
  mask?: Ref | undefined;
}

export interface AdditiveAttentionResult {
  /** [...batch, Nq, Dv] */
  out: Ref;
  /** Softmax weights [...batch, Nq, Nk]. */
  weights: Ref;
}

/**
 * Bahdanau attention: score[i][j] = v . tanh(Wq q_i + Wk k_j (+ bias)), softmax over j, out_i = sum_j p_ij value_j.
 * query [..., Nq, Dq], keys [..., Nk, Dk], values [..., Nk, Dv]; leading dims broadcast.
 */
export function additiveAttention(query: Ref, keys: Ref, values: Ref, params: AdditiveAttentionParams): AdditiveAttentionResult {
  const { wq, wk, v, bias, mask } = params;
  for (const [name, t] of [['query', query], ['keys', keys], ['values', values]] as const) {
    if (t.shape.length < 2) throw new Error(`additiveAttention: ${name} ${fmtShape(t.shape)} needs at least 2 dims`);
  }
  const [Nq, Dq] = query.shape.slice(-2);
  const [Nk, Dk] = keys.shape.slice(-2);
  const [Nv, Dv] = values.shape.slice(-2);
  if (Nk !== Nv) throw new Error(`additiveAttention: keys ${fmtShape(keys.shape)} and values ${fmtShape(values.shape)} disagree on Nk`);
  if (wq.shape.length !== 2 || wq.shape[1] !== Dq) throw new Error(`additiveAttention: wq ${fmtShape(wq.shape)} must be [A, ${Dq}]`);
  const A = wq.shape[0];
  if (wk.shape.length !== 2 || wk.shape[0] !== A || wk.shape[1] !== Dk) throw new Error(`additiveAttention: wk ${fmtShape(wk.shape)} must be [${A}, ${Dk}]`);
  if (v.data.length !== A) throw new Error(`additiveAttention: v ${fmtShape(v.shape)} must have ${A} elements`);
  if (bias && bias.data.length !== A) throw new Error(`additiveAttention: bias ${fmtShape(bias.shape)} must have ${A} elements`);

  const qB = query.shape.slice(0, -2);
  const kB = keys.shape.slice(0, -2);
  const vB = values.shape.slice(0, -2);
  const shapes = [qB, kB, vB];
  if (mask) shapes.push(maskDims(mask).slice(0, -2));
  const batch = broadcastShapes(...shapes);
  const qOff = batchOffsets(qB, Nq * Dq, batch, 1);
  const kOff = batchOffsets(kB, Nk * Dk, batch, 1);
  const vOff = batchOffsets(vB, Nk * Dv, batch, 1);
  const mp = mask ? planMask(mask, 'mask', batch, Nq, Nk) : null;

  const project = (w: Ref, x: Ref, off: number, dIn: number): Float64Array => {
    const r = new Float64Array(A);
    for (let a = 0; a < A; a++) {
      let acc = 0;
      for (let d = 0; d < dIn; d++) acc += w.data[a * dIn + d] * x.data[off + d];
      r[a] = acc;
    }
    return r;
  };

  const nb = numel(batch);
  const out = new Float64Array(nb * Nq * Dv);
  const weights = new Float64Array(nb * Nq * Nk);
  const scores = new Float64Array(Nk);
  for (let bt = 0; bt < nb; bt++) {
    const kp = Array.from({ length: Nk }, (_, j) => project(wk, keys, kOff[bt] + j * Dk, Dk));
    for (let i = 0; i < Nq; i++) {
      const qp = project(wq, query, qOff[bt] + i * Dq, Dq);
      let m = -Infinity;
      for (let j = 0; j < Nk; j++) {
        const allowed = !(mp && mp.data[mp.offsets[bt] + i * mp.rowStride + j * mp.colStride] === 0);
        let s = -Infinity;
        if (allowed) {
          s = 0;
          for (let a = 0; a < A; a++) s += v.data[a] * Math.tanh(qp[a] + kp[j][a] + (bias ? bias.data[a] : 0));
        }
        scores[j] = s;
        if (s > m) m = s;
      }
      if (m === -Infinity) continue; // fully masked: zero weights and zero output
      let total = 0;
      for (let j = 0; j < Nk; j++) total += Math.exp(scores[j] - m);
      const wo = (bt * Nq + i) * Nk;
      const oo = (bt * Nq + i) * Dv;
      for (let j = 0; j < Nk; j++) {
        const w = Math.exp(scores[j] - m) / total;
        weights[wo + j] = w;
        for (let d = 0; d < Dv; d++) out[oo + d] += w * values.data[vOff[bt] + j * Dv + d];
      }
    }
  }
  return {
    out: { data: out, shape: [...batch, Nq, Dv] },
    weights: { data: weights, shape: [...batch, Nq, Nk] },
  };
}
