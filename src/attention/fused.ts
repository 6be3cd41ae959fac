// The fused path: the launches of src/launch/attention.ts as planned by plan.ts (variants, constants, grids, input
// layouts), with the tensors' offsets and strides as the kernels' params. Nothing here decides a variant or reads a
// flag; the backward launches what the forward's plan planned for it.
import type { ParamValues } from '../gpu/recorder.js';
import { ShapeError, fmtShape } from '../errors.js';
import { allocLike } from '../tensor/base.js';
import { broadcastStrides } from '../tensor/shape.js';
import { type FlexBindings, attentionBackward, attentionForward, type flexCaptureReduce } from '../launch/attention.js';
import { sumTo } from '../launch/reduce.js';
import { record } from '../autograd/node.js';
import type { Tensor } from '../ops/tensor.js';
import { contiguous, expand, reshape } from '../ops/views.js';
import { type AttentionPlan, type InputLayout, matrixAttentionImpl, mergeBatchStride, rowsAttentionImpl, splitShape } from './plan.js';

/** A tensor as the kernels index it: [Bt, H, N, D] with an offset and (batch, head, row) strides, last dim contiguous. */
interface KernelView {
  t: Tensor;
  off: number;
  sb: number;
  sh: number;
  sn: number;
}

/** x made indexable as planned: itself, a contiguous copy, or a copy expanded over the batch (pushed to `owned`). */
function materialise(x: Tensor, layout: InputLayout, full: number[], owned: Tensor[]): Tensor {
  if (layout === 'view') return x;
  let c: Tensor;
  if (layout === 'contiguous') c = contiguous(x);
  else {
    const e = expand(x, full);
    c = contiguous(e);
    e.dispose();
  }
  owned.push(c);
  return c;
}

function kernelView(x0: Tensor, layout: InputLayout, p: AttentionPlan, owned: Tensor[]): KernelView {
  const x = materialise(x0, layout, [...p.batch, ...x0.shape.slice(-3)], owned);
  const s = splitShape(x.shape);
  const lead = x.rank === 2 ? [] : x.shape.slice(0, -3);
  const leadStrides = x.rank === 2 ? [] : x.strides.slice(0, -3);
  const sb = mergeBatchStride(p.batch, broadcastStrides(lead, leadStrides, p.batch));
  if (sb === null) throw new ShapeError(`${p.fn}: internal: ${fmtShape(x.shape)} has no batch stride after its planned copy`);
  const sh = x.rank === 2 ? 0 : s.H === 1 ? 0 : x.strides[x.rank - 3];
  return { t: x, off: x.offset, sb, sh, sn: x.strides[x.rank - 2] };
}

function maskParams(mask: Tensor | null, layout: InputLayout | null, p: AttentionPlan, owned: Tensor[]): { m: Tensor | null; params: Record<string, number> } {
  if (!mask) return { m: null, params: { m_off: 0, m_sb: 0, m_sh: 0, m_sq: 0, m_sk: 0 } };
  const dims = [...Array(Math.max(0, 3 - mask.rank)).fill(1), ...mask.shape.slice(-3)];
  const m = materialise(mask, layout ?? 'view', [...p.batch, ...dims], owned);
  const st = broadcastStrides(m.shape, m.strides, [...p.batch, p.Hq, p.Nq, p.Nk]);
  const nb = p.batch.length;
  const sb = mergeBatchStride(p.batch, st.slice(0, nb));
  if (sb === null) throw new ShapeError(`${p.fn}: internal: attnMask ${fmtShape(m.shape)} has no batch stride after its planned copy`);
  return { m, params: { m_off: m.offset, m_sb: sb, m_sh: st[nb], m_sq: st[nb + 1], m_sk: st[nb + 2] } };
}

/** The kernels' block-mask and captured-gradient params, off (flexAttention sets them). */
export const NO_FLEX_PARAMS: Readonly<Record<string, number>> = {
  bm_on: 0, bm_qbs: 1, bm_kbs: 1, bm_nqb: 0, bm_nkb: 0, bm_sb: 0, bm_sh: 0, bm_kv_idx: 0, bm_q_cnt: 0, bm_q_idx: 0,
  cg_pairs: 0, cg_total: 0, cg_part_base: 0,
};

function commonParams(p: AttentionPlan, qv: KernelView, kv: KernelView, vv: KernelView, maskParams: Record<string, number>): ParamValues {
  return {
    B: p.Bt, Hq: p.Hq, Hk: p.Hk, Nq: p.Nq, Nk: p.Nk, D: p.D, Dv: p.Dv, scale: p.scale,
    causal: p.causal ? 1 : 0, causal_diag: p.causalDiag, mask_kind: p.maskKind,
    q_off: qv.off, q_sb: qv.sb, q_sh: qv.sh, q_sn: qv.sn,
    k_off: kv.off, k_sb: kv.sb, k_sh: kv.sh, k_sn: kv.sn,
    v_off: vv.off, v_sb: vv.sb, v_sh: vv.sh, v_sn: vv.sn,
    ...maskParams,
    dropout_p: p.dropoutP, seed0: p.seed, seed1: 0, write_dmask: 0,
    ...NO_FLEX_PARAMS,
    // o, dO and the gradients dense (a compiled step's attentionLayout pass rewrites them).
    o_l: dense(p.Hq, p.Nq, p.Dv), dq_l: dense(p.Hq, p.Nq, p.D), dk_l: dense(p.Hk, p.Nk, p.D), dv_l: dense(p.Hk, p.Nk, p.Dv),
  };
}

/** A dense [Bt, H, N, X] layout as the kernels' *_l params: offset, batch, head and row strides. */
const dense = (H: number, N: number, X: number): number[] => [0, H * N * X, N * X, X];

/**
 * What flexAttention adds to a fused run: the generated kernels and their bindings, the block mask (bound where the
 * plain kernels bind attnMask) and its params, and the captured tensors whose gradients the backward accumulates.
 */
export interface FlexRun {
  readonly bind: FlexBindings;
  /** bm_* params (NO_FLEX_PARAMS' values without a block mask). */
  readonly params: Readonly<Record<string, number>>;
  readonly blockMask: Tensor | null;
  /** Captured f32 tensors that receive gradients, each at `offset` of the reduced gradient (total `gradTotal`). */
  readonly gradCaptures: readonly { readonly tensor: Tensor; readonly offset: number }[];
  readonly gradTotal: number;
  /** Reads of gradient captures in the score mod: (index, value) pairs per score entry in the dq pass. */
  readonly gradSites: number;
  /**
   * The fixed-order reduction of the dq pass's partial sums (launch/attention.ts), passed in by flexAttention so that
   * a page that only runs scaledDotProductAttention carries no flex kernel.
   */
  readonly reduceCaptures: typeof flexCaptureReduce;
}

interface Saved {
  q: KernelView;
  k: KernelView;
  v: KernelView;
  mask: Tensor | null;
  params: ParamValues;
  o: Tensor;
  lse: Tensor;
}

/** The dq pass's captured-gradient scratch: per dq workgroup, (index, value) pairs of one key tile and the partial sums. */
export function captureScratch(p: AttentionPlan, gradSites: number, gradTotal: number): { slots: number; pairs: number; words: number } {
  const dq = p.fused!.backward!.dq.constants;
  const slots = Math.ceil(p.Nq / dq.BLOCK_M) * p.Bt * p.Hq;
  const pairs = dq.BLOCK_M * dq.BLOCK_N * gradSites;
  return { slots, pairs, words: slots * (2 * pairs + gradTotal) };
}

function fusedBackward(p: AttentionPlan, g: Tensor, s: Saved, wantMaskGrad: boolean, flex: FlexRun | null): { dq: Tensor; dk: Tensor; dv: Tensor; dmask: Tensor | null; captures: Tensor | null } {
  const plan = p.fused!.backward!;
  const dt = p.computeDtype;
  // The kernels read dO contiguous (the rule's scope frees the copy, when one is made).
  const gc = g.isContiguous && g.offset === 0 ? g : contiguous(g);
  const delta = allocLike(g, [p.Bt * p.Hq * p.Nq], 'f32');
  const dq = allocLike(g, [p.Bt, p.Hq, p.Nq, p.D], dt);
  const dk = allocLike(g, [p.Bt, p.Hk, p.Nk, p.D], dt);
  const dv = allocLike(g, [p.Bt, p.Hk, p.Nk, p.Dv], dt);
  const dmask = wantMaskGrad ? allocLike(g, [p.Bt, p.Hq, p.Nq, p.Nk], 'f32') : null;
  // Captured-tensor gradients: the dq pass writes per-workgroup partial sums where dmask would be (the mods have no
  // float mask), reduced below in a fixed order.
  const cap = flex && flex.gradCaptures.length ? captureScratch(p, flex.gradSites, flex.gradTotal) : null;
  const scratch = cap ? allocLike(g, [Math.max(1, cap.words)], 'f32') : null;
  const cgParams: Record<string, number> = cap ? { cg_pairs: cap.pairs, cg_total: flex!.gradTotal, cg_part_base: 2 * cap.pairs * cap.slots } : {};
  if (p.Bt * p.Hq * p.Nq > 0) {
    const tensors = { q: s.q.t, k: s.k.t, v: s.v.t, mask: s.mask, o: s.o, dout: gc, lse: s.lse, delta, dq, dk, dv, dmask: dmask ?? scratch };
    const mx = p.fused!.matrix;
    if (mx?.backward) matrixAttentionImpl()!.backward(p.fn, mx, plan.deltaGrid, { ...s.params, write_dmask: dmask ? 1 : 0 }, tensors);
    else attentionBackward(p.fn, plan.variant, plan.label, plan, { ...s.params, ...cgParams, write_dmask: dmask ? 1 : 0 }, tensors, flex?.bind ?? null);
  }
  let captures: Tensor | null = null;
  if (cap && scratch) {
    captures = allocLike(g, [flex!.gradTotal], 'f32');
    flex!.reduceCaptures(p.fn, scratch, captures, flex!.gradTotal, p.Bt * p.Hq * p.Nq > 0 ? cap.slots : 0, flex!.gradTotal, 2 * cap.pairs * cap.slots);
    scratch.dispose();
  }
  delta.dispose();
  return { dq, dk, dv, dmask, captures };
}

/** Reduces a [Bt, H, N, X] kernel gradient to the input's own shape (summing broadcast dims). */
function gradToInput(g: Tensor, p: AttentionPlan, inShape: number[]): Tensor {
  const s = inShape.length === 2 ? { batch: [] as number[], H: 1 } : { batch: inShape.slice(0, -3), H: inShape[inShape.length - 3] };
  // A query grouping on k/v heads is already summed by the kernel; broadcast heads (H = 1) were too.
  const target = inShape.length === 2 ? [...p.batch.map(() => 1), 1, ...inShape] : [...s.batch, s.H, ...inShape.slice(-2)];
  return reshape(sumTo(reshape(g, [...p.batch, g.shape[1], g.shape[2], g.shape[3]]), target, p.fn), inShape);
}

/**
 * The fused forward (and its backward on the tape), as planned; q, k, v and mask in the plan's compute dtype. A failure
 * after the first allocation (a lost device) disposes what this call made before it rethrows.
 */
export function fusedAttention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, p: AttentionPlan, flex: FlexRun | null = null): Tensor {
  const plan = p.fused!;
  const owned: Tensor[] = [];
  const made: Tensor[] = [];
  try {
    const qv = kernelView(q, plan.layouts.q, p, owned);
    const kv = kernelView(k, plan.layouts.k, p, owned);
    const vv = kernelView(v, plan.layouts.v, p, owned);
    const mp = flex ? { m: flex.blockMask, params: { m_off: 0, m_sb: 0, m_sh: 0, m_sq: 0, m_sk: 0 } } : maskParams(mask, plan.layouts.mask, p, owned);
    const o = allocLike(q, [p.Bt, p.Hq, p.Nq, p.Dv], p.computeDtype);
    made.push(o);
    const lse = allocLike(q, [p.Bt, p.Hq, p.Nq], 'f32');
    made.push(lse);
    const params = { ...commonParams(p, qv, kv, vv, mp.params), ...(flex?.params ?? {}) };
    if (p.Bt * p.Hq * p.Nq > 0 && plan.matrix) {
      matrixAttentionImpl()!.forward(p.fn, plan.matrix, params, { q: qv.t, k: kv.t, v: vv.t, mask: mp.m, o, lse });
    } else if (p.Bt * p.Hq * p.Nq > 0 && plan.forward.kernel === 'rows') {
      rowsAttentionImpl()!.forward(p.fn, plan.forward.variant, plan.forward.label, plan.forward, params, { q: qv.t, k: kv.t, v: vv.t, mask: mp.m, o, lse }, flex?.bind ?? null);
    } else if (p.Bt * p.Hq * p.Nq > 0) {
      attentionForward(p.fn, plan.forward.variant, plan.forward.label, plan.forward, params, { q: qv.t, k: kv.t, v: vv.t, mask: mp.m, o, lse }, flex?.bind ?? null);
    }
    const out = reshape(o, p.outShape.slice());
    made.push(out);
    const maskNeedsGrad = !!(mask && p.maskKind === 2 && mask.requiresGrad);
    const qShape = q.shape.slice(), kShape = k.shape.slice(), vShape = v.shape.slice();
    const maskShape = mask ? mask.shape.slice() : [];
    // The rule runs in its own scope (autograd): the kernel gradients and their reshapes are freed with it.
    const gradCaps = flex?.gradCaptures ?? [];
    // Saved: q, k, v, o, lse, the mask (or block mask), then for mods flex_c and the captured tensors.
    const flexSaved = flex ? [flex.bind.consts as Tensor, ...(flex.bind.captures as Tensor[])] : [];
    const res = record(flex ? 'flexAttention' : 'scaledDotProductAttention', out, [q, k, v, maskNeedsGrad ? mask : null, ...gradCaps.map((c) => c.tensor)], (g, saved, needs) => {
      const [sq, sk, sv, so, sl] = saved;
      const sm = mp.m ? saved[5] : null;
      const rest = saved.slice(mp.m ? 6 : 5);
      const flexNow: FlexRun | null = flex ? { ...flex, bind: { ...flex.bind, consts: rest[0], captures: rest.slice(1) } } : null;
      const grads = fusedBackward(p, g, {
        q: { ...qv, t: sq }, k: { ...kv, t: sk }, v: { ...vv, t: sv }, mask: sm, params, o: so, lse: sl,
      }, needs[3], flexNow);
      return [
        needs[0] ? gradToInput(grads.dq, p, qShape) : null,
        needs[1] ? gradToInput(grads.dk, p, kShape) : null,
        needs[2] ? gradToInput(grads.dv, p, vShape) : null,
        grads.dmask ? sumTo(reshape(grads.dmask, [...p.batch, p.Hq, p.Nq, p.Nk]), maskShape, p.fn) : null,
        ...gradCaps.map((c, n) => (needs[4 + n] && grads.captures ? reshape(grads.captures.slice(0, c.offset, c.offset + c.tensor.numel), c.tensor.shape.slice()) : null)),
      ];
    }, [qv.t, kv.t, vv.t, o, lse, ...(mp.m ? [mp.m] : []), ...flexSaved]);
    o.dispose();
    lse.dispose();
    return res;
  } catch (e) {
    for (const t of made) t.dispose();
    throw e;
  } finally {
    for (const t of owned) t.dispose();
  }
}
