// The float64 reference of scaled dot-product attention (forward and backward) and of additive attention: the one
// that kiln's tests (test/reference/attention.ts re-exports it), the benchmarks (bench/lib/reference.mjs,
// bench/lib/runner.mjs) and the GPU scripts (bench/gpu/common.mjs) check kiln against. Plain ES module, no imports,
// browser-safe (the browser bench serves bench/); types in attention_reference.d.mts.
//
// Written as explicit loops over (batch, query row, key) rather than as a composition of ops, so that it is a second,
// independent statement of the semantics. A Ref is { data: ArrayLike<number>, shape: number[] }, row-major.
//
// Shapes: q [..., Hq, Nq, D], k [..., Hk, Nk, D], v [..., Hk, Nk, Dv]. Everything before the last two dims is a batch
// dim and broadcasts (PyTorch rules), with one exception: the dim just before (Nq, Nk) is the head dim, and when
// Hq = g * Hk (g > 1) query head h reads key/value head floor(h / g), as torch's enable_gqa.
//
// Programmable attention (flexAttention): opts.maskMod(b, h, i, j) (false = inadmissible), opts.scoreMod(s, b, h, i, j)
// applied to the admissible scores, opts.scoreModGrad(s, b, h, i, j) its derivative for the backward, and
// opts.onScoreGrad(b, h, i, j, dS, s) called with the gradient of each admissible modded score (for gradients of
// tensors a mod reads). b is the flat batch index, h the query head, as the kernels see them.
//
// Semantics (kernels/attention_common.wgsl states the same for the kernels)
//   Only masking makes key j inadmissible for query i: causal (j > i, or j > i + Nk - Nq for 'lowerRight'), a bool
//   mask 0, a float mask -Infinity. s_ij = scale * q_i . k_j (+ float mask) over the admissible keys; then, as
//   PyTorch's softmax: a row whose admissible scores hold a NaN or +Infinity, or are all -Infinity, is NaN (output,
//   lse, every probability, and its gradients); -Infinity scores otherwise get weight 0. A row with no admissible key
//   gives zeros, lse -Infinity, and takes no part in any gradient.
//   maskedProducts says how an inadmissible entry meets the values in the products (o = P v, dV = P^T dO, dQ = dS k,
//   dK = dS^T q): 'skip' (default; kiln's fused kernels, as PyTorch's fused backends skip masked entries) leaves it
//   out; 'zero' (kiln's reference path, as PyTorch's math backend) multiplies a zero weight, so a non-finite value
//   there gives NaN, except at keys that no query of the key's head group (in the same batch entry) may see, which
//   take no part either way.

function fmtShape(shape) {
  return `[${shape.join(',')}]`;
}

function numel(shape) {
  return shape.reduce((a, d) => a * d, 1);
}

function broadcast(shapes, what) {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array(rank).fill(1);
  for (const s of shapes) {
    s.forEach((size, i) => {
      const d = rank - s.length + i;
      if (size !== 1 && out[d] !== 1 && out[d] !== size) throw new Error(`sdpa: ${what} do not broadcast`);
      if (size !== 1) out[d] = size;
    });
  }
  return out;
}

/**
 * Where each batch entry of a source tensor starts, for every entry of the broadcast batch shape. `headGroup` > 1
 * maps the last batch dim (the head) h -> floor(h / headGroup), for grouped-query k and v. Broadcast entries share an
 * offset, so accumulating gradients through these offsets sums over broadcasting.
 */
function batchOffsets(sourceBatch, matrixSize, batch, headGroup) {
  const lead = batch.length - sourceBatch.length;
  const n = numel(batch);
  const out = new Float64Array(n);
  for (let flat = 0; flat < n; flat++) {
    let rest = flat;
    let off = 0;
    let stride = matrixSize;
    for (let d = batch.length - 1; d >= 0; d--) {
      let idx = rest % batch[d];
      rest = Math.floor(rest / batch[d]);
      const sd = d - lead;
      if (sd < 0) continue;
      if (sd === sourceBatch.length - 1 && headGroup > 1) idx = Math.floor(idx / headGroup);
      if (sourceBatch[sd] === 1) idx = 0;
      off += idx * stride;
      stride *= sourceBatch[sd];
    }
    out[flat] = off;
  }
  return out;
}

/** Ranks below 2 are padded with leading 1s so a [Nk] mask means "the same key mask for every query". */
function maskDims(mask) {
  const shape = [...mask.shape];
  while (shape.length < 2) shape.unshift(1);
  return shape;
}

function planMask(mask, name, batch, Nq, Nk) {
  const shape = maskDims(mask);
  const mq = shape[shape.length - 2];
  const mk = shape[shape.length - 1];
  if ((mq !== 1 && mq !== Nq) || (mk !== 1 && mk !== Nk)) throw new Error(`sdpa: ${name} ${fmtShape(mask.shape)} does not broadcast to [..., ${Nq}, ${Nk}]`);
  return {
    data: mask.data,
    shape: [...mask.shape],
    offsets: batchOffsets(shape.slice(0, -2), mq * mk, batch, 1),
    rowStride: mq === 1 ? 0 : mk,
    colStride: mk === 1 ? 0 : 1,
  };
}

function causalDiagOf(isCausal, Nq, Nk) {
  if (isCausal === undefined || isCausal === null || isCausal === false) return null;
  if (isCausal === true || isCausal === 'upperLeft') return 0;
  if (isCausal === 'lowerRight') return Nk - Nq;
  throw new Error(`sdpa: isCausal must be true, false, 'upperLeft' or 'lowerRight', got ${JSON.stringify(isCausal)}`);
}

function plan(q, k, v, opts) {
  for (const [name, t] of [['q', q], ['k', k], ['v', v]]) {
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
  const last = (s) => (s.length > 0 ? s[s.length - 1] : 1);
  const [qHeads, kHeads, vHeads] = [last(qB), last(kB), last(vB)];
  // Grouped-query attention applies when both q and k/v have a head dim and Hk properly divides Hq. With Hk = 1 plain
  // broadcasting already gives every query head the single kv head, so it needs no special case.
  let group = 1;
  if (qB.length > 0 && kB.length > 0 && kHeads !== qHeads && kHeads > 1 && qHeads % kHeads === 0) {
    if (vB.length === 0 || vHeads !== kHeads) throw new Error(`sdpa: grouped-query attention needs k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} to have the same number of heads`);
    group = qHeads / kHeads;
  }
  // For broadcasting, a grouped k/v counts as having Hq heads.
  const asQHeads = (s) => (group > 1 ? [...s.slice(0, -1), qHeads] : s);
  const shapes = [qB, asQHeads(kB), asQHeads(vB)];
  if (opts.boolMask) shapes.push(maskDims(opts.boolMask).slice(0, -2));
  if (opts.floatMask) shapes.push(maskDims(opts.floatMask).slice(0, -2));
  const batch = broadcast(shapes, `batch dims of q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} and the masks`);
  const H = batch.length >= 2 ? batch[batch.length - 1] : 1;
  // Key/value head groups as kiln forms them (the dim before (N, D) is the head): the query heads reading one k row.
  const Hl = batch.length ? batch[batch.length - 1] : 1;
  const kvHeads = kB.length ? kHeads : 1;
  const perGroup = Hl % kvHeads === 0 ? Hl / kvHeads : Hl;
  const mode = opts.maskedProducts ?? 'skip';
  if (mode !== 'skip' && mode !== 'zero') throw new Error(`sdpa: maskedProducts must be 'skip' or 'zero', got ${JSON.stringify(mode)}`);
  return {
    batch, H, Nq, Nk, D, Dv,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    qOff: batchOffsets(qB, Nq * D, batch, 1),
    kOff: batchOffsets(kB, Nk * D, batch, group),
    vOff: batchOffsets(vB, Nk * Dv, batch, group),
    bool: opts.boolMask ? planMask(opts.boolMask, 'boolMask', batch, Nq, Nk) : null,
    float: opts.floatMask ? planMask(opts.floatMask, 'floatMask', batch, Nq, Nk) : null,
    diag: causalDiagOf(opts.isCausal, Nq, Nk),
    maskMod: opts.maskMod ?? null,
    scoreMod: opts.scoreMod ?? null,
    scoreModGrad: opts.scoreModGrad ?? null,
    onScoreGrad: opts.onScoreGrad ?? null,
    dropout: opts.dropoutMask ?? null,
    groupOf: (bt) => Math.floor(bt / Hl) * (Hl / perGroup) + Math.floor((bt % Hl) / perGroup),
    keysSeen: null,
    allKeys: mode === 'zero',
  };
}

/** Whether key j is admissible for query i of batch entry bt (masking only). */
function admissible(p, bt, i, j) {
  if (p.diag !== null && j > i + p.diag) return false;
  if (p.maskMod) {
    const [b, h] = headOf(p, bt);
    if (!p.maskMod(b, h, i, j)) return false;
  }
  if (p.bool && p.bool.data[p.bool.offsets[bt] + i * p.bool.rowStride + j * p.bool.colStride] === 0) return false;
  return !(p.float && p.float.data[p.float.offsets[bt] + i * p.float.rowStride + j * p.float.colStride] === -Infinity);
}

/** For maskedProducts 'zero': per key head group, the keys some query may see. */
function keysSeen(p) {
  if (!p.keysSeen) {
    const seen = new Map();
    for (let bt = 0; bt < numel(p.batch); bt++) {
      const g = p.groupOf(bt);
      if (!seen.has(g)) seen.set(g, new Uint8Array(p.Nk));
      const row = seen.get(g);
      for (let i = 0; i < p.Nq; i++) for (let j = 0; j < p.Nk; j++) if (admissible(p, bt, i, j)) row[j] = 1;
    }
    p.keysSeen = seen;
  }
  return p.keysSeen;
}

/** (b, h) for the dropout callback from a flat batch index: h is the head (last batch dim), b the flat rest. */
function headOf(p, bt) {
  if (p.batch.length >= 2) return [Math.floor(bt / p.H), bt % p.H];
  return [bt, 0];
}

/**
 * Query row i of batch entry bt: fills adm (admissible keys) and probs (NaN everywhere in a NaN row, 0 at masked keys)
 * and returns { lse, empty }: empty when no key is admissible.
 */
function rowProbs(p, q, k, bt, i, adm, probs) {
  const { Nk, D, scale } = p;
  const qo = p.qOff[bt] + i * D;
  const ko = p.kOff[bt];
  let count = 0;
  let nan = false;
  let m = -Infinity;
  for (let j = 0; j < Nk; j++) {
    const ok = admissible(p, bt, i, j);
    const fm = p.float ? p.float.data[p.float.offsets[bt] + i * p.float.rowStride + j * p.float.colStride] : 0;
    adm[j] = ok ? 1 : 0;
    probs[j] = 0;
    if (!ok) continue;
    count++;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q.data[qo + d] * k.data[ko + j * D + d];
    let s = scale * dot + fm;
    if (p.scoreMod) {
      const [b, h] = headOf(p, bt);
      s = p.scoreMod(s, b, h, i, j);
    }
    probs[j] = s;
    if (Number.isNaN(s) || s === Infinity) nan = true;
    else if (s > m) m = s;
  }
  if (count === 0) return { lse: -Infinity, empty: true };
  if (nan || m === -Infinity) {
    probs.fill(NaN);
    return { lse: NaN, empty: false };
  }
  let total = 0;
  for (let j = 0; j < Nk; j++) if (adm[j]) total += Math.exp(probs[j] - m);
  const lse = m + Math.log(total);
  for (let j = 0; j < Nk; j++) probs[j] = adm[j] ? Math.exp(probs[j] - lse) : 0;
  return { lse, empty: false };
}

/** Whether key j takes part in the products of a row (of batch entry bt) with admissible keys adm. */
const inProducts = (p, bt, adm, j) => adm[j] === 1 || (p.allKeys && keysSeen(p).get(p.groupOf(bt))[j] === 1);

function forwardRows(q, k, v, opts, rowList) {
  const p = plan(q, k, v, opts);
  const { Nq, Nk, Dv } = p;
  const out = new Float64Array(rowList.length * Dv);
  const lse = new Float64Array(rowList.length);
  const probs = new Float64Array(rowList.length * Nk);
  const row = new Float64Array(Nk);
  const adm = new Uint8Array(Nk);
  rowList.forEach((flat, o) => {
    const bt = Math.floor(flat / Nq);
    const i = flat % Nq;
    const [b, h] = headOf(p, bt);
    const vo = p.vOff[bt];
    const r = rowProbs(p, q, k, bt, i, adm, row);
    lse[o] = r.lse;
    probs.set(row, o * Nk);
    if (r.empty) return;
    for (let j = 0; j < Nk; j++) {
      if (!inProducts(p, bt, adm, j)) continue;
      const w = row[j] * (p.dropout ? p.dropout(b, h, i, j) : 1);
      for (let d = 0; d < Dv; d++) out[o * Dv + d] += w * v.data[vo + j * Dv + d];
    }
  });
  return { p, out, lse, probs };
}

/** softmax(q k^T * scale + mask) (dropout) v: { out [...batch, Nq, Dv], lse [...batch, Nq], probs [...batch, Nq, Nk] }. */
export function sdpa(q, k, v, opts = {}) {
  const { batch, Nq } = plan(q, k, v, opts);
  const rows = Array.from({ length: numel(batch) * Nq }, (_, i) => i);
  const { p, out, lse, probs } = forwardRows(q, k, v, opts, rows);
  return {
    out: { data: out, shape: [...batch, Nq, p.Dv] },
    lse: { data: lse, shape: [...batch, Nq] },
    probs: { data: probs, shape: [...batch, Nq, p.Nk] },
  };
}

/**
 * Gradients of sdpa for an upstream gradient dO shaped like its output. With P the probabilities, M the dropout
 * multipliers and J the keys in the products (see maskedProducts):
 *   dV_j += P_ij M_ij dO_i,  dP_ij = M_ij dO_i . v_j,  dS_ij = P_ij (dP_ij - sum_{j in J} P_ij dP_ij) (admissible; 0
 *   otherwise),  dQ_i = scale sum_{j in J} dS_ij k_j,  dK_j += scale dS_ij q_i,  dFloatMask = dS.
 * Rows with no admissible key contribute nothing. Gradients of broadcast or grouped inputs are summed over every batch
 * entry that read them.
 */
export function sdpaBackward(q, k, v, dO, opts = {}) {
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
  const P = new Float64Array(Nk);
  const dP = new Float64Array(Nk);
  const adm = new Uint8Array(Nk);
  for (let bt = 0; bt < numel(batch); bt++) {
    const [b, h] = headOf(p, bt);
    const ko = p.kOff[bt];
    const vo = p.vOff[bt];
    for (let i = 0; i < Nq; i++) {
      if (rowProbs(p, q, k, bt, i, adm, P).empty) continue;
      const qo = p.qOff[bt] + i * D;
      const go = (bt * Nq + i) * Dv;
      let rowDot = 0;
      for (let j = 0; j < Nk; j++) {
        if (!inProducts(p, bt, adm, j)) continue;
        const mult = p.dropout ? p.dropout(b, h, i, j) : 1;
        let g = 0;
        for (let d = 0; d < Dv; d++) g += dO.data[go + d] * v.data[vo + j * Dv + d];
        dP[j] = mult * g;
        rowDot += P[j] * dP[j];
        for (let d = 0; d < Dv; d++) dv[vo + j * Dv + d] += P[j] * mult * dO.data[go + d];
      }
      for (let j = 0; j < Nk; j++) {
        if (!inProducts(p, bt, adm, j)) continue;
        let ds = adm[j] ? P[j] * (dP[j] - rowDot) : 0;
        if (adm[j] && (p.scoreModGrad || p.onScoreGrad)) {
          // The chain rule through the score mod, at the score before it.
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q.data[qo + d] * k.data[ko + j * D + d];
          const s0 = scale * dot;
          if (p.onScoreGrad) p.onScoreGrad(b, h, i, j, ds, s0);
          if (p.scoreModGrad) ds *= p.scoreModGrad(s0, b, h, i, j);
        }
        for (let d = 0; d < D; d++) {
          dq[qo + d] += scale * ds * k.data[ko + j * D + d];
          dk[ko + j * D + d] += scale * ds * q.data[qo + d];
        }
        if (dm && adm[j]) dm[p.float.offsets[bt] + i * p.float.rowStride + j * p.float.colStride] += ds;
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

/**
 * The benchmarks' form: q, k, v flat [BH, N, D] (heads flattened); output rows `rows` (flat indices bh * N + i, all
 * when omitted) of softmax(q k^T * scale, causal when isCausal) v, as a Float64Array [rows.length, D].
 */
export function attentionRowsF64(q, k, v, BH, N, D, { isCausal = false, scale = 1 / Math.sqrt(D), rows } = {}) {
  const ref = (data) => ({ data, shape: [BH, N, D] });
  const rowList = rows ?? Array.from({ length: BH * N }, (_, i) => i);
  return forwardRows(ref(q), ref(k), ref(v), { isCausal, scale }, rowList).out;
}

/**
 * flexAttention's form: q, k, v [B, H, N, D]; rows `rows` (flat (b * H + h) * N + i; all when omitted) of softmax over
 * the admissible keys (maskMod) of scoreMod(scale * q_i . k_j, b, h, i, j), times v, as a Float64Array [rows.length, D].
 */
export function flexRowsF64(q, k, v, B, H, N, D, { scoreMod, maskMod, scale = 1 / Math.sqrt(D), rows } = {}) {
  const ref = (data) => ({ data, shape: [B, H, N, D] });
  const rowList = rows ?? Array.from({ length: B * H * N }, (_, i) => i);
  return forwardRows(ref(q), ref(k), ref(v), { scale, scoreMod, maskMod }, rowList).out;
}

/**
 * Bahdanau attention: score[i][j] = v . tanh(Wq q_i + Wk k_j (+ bias)), softmax over j, out_i = sum_j p_ij value_j.
 * query [..., Nq, Dq], keys [..., Nk, Dk], values [..., Nk, Dv]; leading dims broadcast. A row with no allowed key
 * (mask 0 everywhere) gives zero weights and a zero output.
 */
export function additiveAttention(query, keys, values, params) {
  const { wq, wk, v, bias, mask } = params;
  for (const [name, t] of [['query', query], ['keys', keys], ['values', values]]) {
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
  const batch = broadcast([qB, kB, vB, ...(mask ? [maskDims(mask).slice(0, -2)] : [])], 'additiveAttention: batch dims');
  const qOff = batchOffsets(qB, Nq * Dq, batch, 1);
  const kOff = batchOffsets(kB, Nk * Dk, batch, 1);
  const vOff = batchOffsets(vB, Nk * Dv, batch, 1);
  const mp = mask ? planMask(mask, 'mask', batch, Nq, Nk) : null;
  const project = (w, x, off, dIn) => {
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
