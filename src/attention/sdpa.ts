// Scaled dot-product attention behind one API: a fused FlashAttention-style kernel pair
// (kernels/attention_forward.wgsl, kernels/attention_backward.wgsl) and a reference path composed of
// matmul, scale, mask, softmax, dropout and matmul. Both share the validation below.
import { DTypeError, DeviceError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { gpu } from '../gpu/device.js';
import { dispatch, grid1d, variantName } from '../gpu/kernels.js';
import { type Tensor, empty, tensor } from '../tensor/tensor.js';
import { broadcastShapes, broadcastStrides, numel } from '../tensor/shape.js';
import { attnDropoutKeep, nextSeed } from '../tensor/random.js';
import { dummy } from '../ops/kernel_args.js';
import { record } from '../ops/record.js';
import { add, ge, mul, where, withTmp, logicalAnd, toDType } from '../ops/elementwise.js';
import { arange } from '../ops/creation.js';
import { matmul } from '../ops/matmul.js';
import { softmax } from '../ops/nn_ops.js';
import { contiguous, expand, reshape, sumToShape, transpose, unsqueeze } from '../ops/views.js';
import { getFlag } from './flags.js';

export interface SdpaOptions {
  /** bool (true = may attend) or f32 (added to the scores), broadcastable to [..., Hq, Nq, Nk]. */
  attnMask?: Tensor | null;
  /** Query i sees keys j <= i (top-left aligned when Nq != Nk, as PyTorch). */
  isCausal?: boolean;
  /** Defaults to 1 / sqrt(D). */
  scale?: number;
  dropoutP?: number;
  seed?: number;
  impl?: 'fused' | 'reference';
}

interface Plan {
  fn: string;
  /** q, k and v share it: f32, or f16 (stored f16, computed in f32). */
  dtype: 'f32' | 'f16';
  /** Broadcast batch shape (dims before the head dim). */
  batch: number[];
  Bt: number;
  Hq: number;
  Hk: number;
  Nq: number;
  Nk: number;
  D: number;
  Dv: number;
  scale: number;
  causal: boolean;
  dropoutP: number;
  seed: number;
  mask: Tensor | null;
  maskKind: 0 | 1 | 2;
  /** Output shape as the user sees it. */
  outShape: number[];
  /** Rank of q as given (2 for [N, D], 3 for [B, N, D] ...). */
  qRank: number;
}

/** Shapes of q/k/v as [...batch, H, N, D] (adding H = 1 or batch dims as needed). */
function split(t: Tensor): { batch: number[]; H: number; N: number; D: number } {
  const s = t.shape;
  if (s.length === 2) return { batch: [], H: 1, N: s[0], D: s[1] };
  return { batch: s.slice(0, -3), H: s[s.length - 3], N: s[s.length - 2], D: s[s.length - 1] };
}

export function planAttention(fn: string, q: Tensor, k: Tensor, v: Tensor | null, opts: SdpaOptions): Plan {
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (!t) continue;
    t.buf(fn);
    if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new DTypeError(`${fn}: ${name} must be f32 or f16, got ${t.dtype}`);
    if (t.dtype !== q.dtype) throw new DTypeError(`${fn}: q is ${q.dtype} but ${name} is ${t.dtype}; q, k and v must share a dtype (cast with .to('${q.dtype}'))`);
    if (t.rank < 2) throw new ShapeError(`${fn}: ${name} ${fmtShape(t.shape)} needs at least 2 dims [..., N, D]`);
  }
  if (v && k.rank !== v.rank) throw new ShapeError(`${fn}: k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} must have the same number of dims`);
  const sq = split(q), sk = split(k), sv = v ? split(v) : sk;
  if (sq.D !== sk.D) throw new ShapeError(`${fn}: q ${fmtShape(q.shape)} and k ${fmtShape(k.shape)} disagree on the head dimension (${sq.D} vs ${sk.D})`);
  if (v && sk.N !== sv.N) throw new ShapeError(`${fn}: k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} disagree on the number of keys (${sk.N} vs ${sv.N})`);
  if (v && sk.H !== sv.H) throw new ShapeError(`${fn}: k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} disagree on the number of heads (${sk.H} vs ${sv.H})`);
  // One query head broadcasts over the key/value heads (plain broadcasting, as PyTorch).
  if (sq.H === 1 && sk.H > 1) sq.H = sk.H;
  if (sq.H !== sk.H && sq.H % sk.H !== 0) {
    throw new ShapeError(`${fn}: q has ${sq.H} heads and k/v have ${sk.H}: grouped-query attention needs the query heads to be a multiple of the key/value heads (q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)})`);
  }
  if (sq.D === 0 || sv.D === 0) throw new ShapeError(`${fn}: head dimension must be > 0 (q ${fmtShape(q.shape)}, v ${v ? fmtShape(v.shape) : '-'})`);
  const batch = broadcastShapes(fn, sq.batch, sk.batch, sv.batch);
  const mask = opts.attnMask ?? null;
  let maskKind: 0 | 1 | 2 = 0;
  if (mask) {
    mask.buf(fn);
    if (mask.dtype === 'bool') maskKind = 1;
    else if (mask.dtype === 'f32' || mask.dtype === 'f16') maskKind = 2;
    else throw new DTypeError(`${fn}: attnMask must be bool (true = may attend) or float (added to the scores), got ${mask.dtype}`);
    const full = [...batch, sq.H, sq.N, sk.N];
    let ok = mask.rank <= full.length;
    for (let i = 0; ok && i < mask.rank; i++) {
      const d = mask.shape[mask.rank - 1 - i], f = full[full.length - 1 - i];
      if (d !== 1 && d !== f) ok = false;
    }
    if (!ok) throw new ShapeError(`${fn}: attnMask ${fmtShape(mask.shape)} does not broadcast to the scores' shape ${fmtShape(full)}`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(sq.D);
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new ValueError(`${fn}: scale must be a finite number, got ${opts.scale}`);
  const dropoutP = opts.dropoutP ?? 0;
  if (typeof dropoutP !== 'number' || !(dropoutP >= 0 && dropoutP < 1)) throw new ValueError(`${fn}: dropoutP must be in [0, 1), got ${opts.dropoutP}`);
  if (opts.seed !== undefined && (!Number.isInteger(opts.seed) || opts.seed < 0)) throw new ValueError(`${fn}: seed must be a non-negative integer, got ${opts.seed}`);
  const impl = opts.impl ?? 'fused';
  if (impl !== 'fused' && impl !== 'reference') throw new ValueError(`${fn}: impl must be 'fused' or 'reference', got ${JSON.stringify(opts.impl)}`);
  const outShape = q.rank === 2 && k.rank === 2 ? [sq.N, sv.D] : [...batch, sq.H, sq.N, sv.D];
  return {
    fn, dtype: q.dtype as 'f32' | 'f16', batch, Bt: numel(batch), Hq: sq.H, Hk: sk.H, Nq: sq.N, Nk: sk.N, D: sq.D, Dv: sv.D, scale,
    causal: !!opts.isCausal, dropoutP, seed: dropoutP > 0 ? (opts.seed ?? nextSeed()) : 0, mask, maskKind, outShape, qRank: q.rank,
  };
}

// ---------------------------------------------------------------- reference path

/** bool [Nq, Nk]: key j is visible from query i when j <= i (built on the GPU from two ranges). */
function causalMask(Nq: number, Nk: number): Tensor {
  const rows = arange(Nq, undefined, 1, { dtype: 'i32' });
  const cols = arange(Nk, undefined, 1, { dtype: 'i32' });
  const r2 = reshape(rows, [Nq, 1]);
  const c2 = reshape(cols, [1, Nk]);
  const m = ge(r2, c2);
  for (const t of [rows, cols, r2, c2]) t.dispose();
  return m;
}

/** q as [..., Hk, g, Nq, D] and k/v as [..., Hk, 1, Nk, D], so grouped-query heads broadcast without copies. */
function groupView(t: Tensor, p: Plan, isQuery: boolean): Tensor {
  const s = split(t);
  // One key/value head broadcasts over the query heads by plain broadcasting: no grouping needed.
  if (p.Hq === p.Hk || p.Hk === 1) return t.rank === 2 ? t.makeView(t.shape, t.strides, t.offset) : reshape(t, t.shape.slice());
  if (isQuery) return reshape(t, [...s.batch, p.Hk, p.Hq / p.Hk, s.N, s.D]);
  return unsqueeze(t, -3);
}

function referenceScores(q: Tensor, k: Tensor, p: Plan): Tensor {
  const qg = groupView(q, p, true);
  const kg = groupView(k, p, false);
  const kt = transpose(kg, -1, -2);
  kg.dispose();
  let s = withTmp(matmul(qg, kt), (t) => mul(t, p.scale));
  qg.dispose();
  kt.dispose();
  if (qg.rank !== q.rank) s = withTmp(s, (t) => reshape(t, [...t.shape.slice(0, -4), p.Hq, p.Nq, p.Nk]));
  let keep: Tensor | null = p.mask && p.maskKind === 1 ? p.mask : null;
  let causal: Tensor | null = null;
  if (p.causal) {
    causal = causalMask(p.Nq, p.Nk);
    keep = keep ? logicalAnd(keep, causal) : causal;
  }
  if (p.mask && p.maskKind === 2) s = withTmp(s, (t) => add(t, p.mask!));
  if (keep) {
    const ninf = tensor([-Infinity], { shape: [] });
    s = withTmp(s, (t) => where(keep!, t, ninf));
    ninf.dispose();
    if (keep !== p.mask && keep !== causal) keep.dispose();
  }
  causal?.dispose();
  return s;
}

function dropoutMultiplier(p: Plan, shape: number[]): Tensor {
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

function referenceAttention(q: Tensor, k: Tensor, v: Tensor, p: Plan): Tensor {
  const scores = referenceScores(q, k, p);
  let probs = withTmp(scores, (s) => softmax(s, -1));
  if (p.dropoutP > 0) {
    const m = dropoutMultiplier(p, probs.shape);
    probs = withTmp(probs, (t) => mul(t, m));
    m.dispose();
  }
  // probs [..., Hq, Nq, Nk] @ v [..., Hk, Nk, Dv], grouping heads as for the scores.
  if (p.Hq !== p.Hk && split(v).H !== 1) {
    const pg = withTmp(probs, (t) => reshape(t, [...t.shape.slice(0, -3), p.Hk, p.Hq / p.Hk, p.Nq, p.Nk]));
    const vg = unsqueeze(v, -3);
    const o = matmul(pg, vg);
    pg.dispose();
    vg.dispose();
    return withTmp(o, (t) => reshape(t, [...t.shape.slice(0, -4), p.Hq, p.Nq, p.Dv]));
  }
  return withTmp(probs, (t) => matmul(t, v));
}

// ---------------------------------------------------------------- fused path

/** A 4-D description [Bt, H, N, D] of a tensor for the kernels: offset and strides (batch merged). */
interface KernelView {
  t: Tensor;
  off: number;
  sb: number;
  sh: number;
  sn: number;
}

/** Views t as [Bt, H, N, D] with a last dim of stride 1, copying only when the layout needs it. */
function kernelView(t: Tensor, p: Plan, owned: Tensor[]): KernelView {
  let x = t;
  if (x.strides[x.rank - 1] !== 1 && x.shape[x.rank - 1] > 1) {
    x = contiguous(x);
    owned.push(x);
  }
  const s = split(x);
  const lead = x.rank === 2 ? [] : x.shape.slice(0, -3);
  const leadStrides = x.rank === 2 ? [] : x.strides.slice(0, -3);
  const bStrides = broadcastStrides(lead, leadStrides, p.batch);
  const merged = mergeBatchStride(p.batch, bStrides);
  if (merged === null) {
    const full = expand(x, [...p.batch, ...x.shape.slice(-3)]);
    const c = contiguous(full);
    full.dispose();
    owned.push(c);
    return kernelView(c, p, owned);
  }
  const sh = x.rank === 2 ? 0 : s.H === 1 ? 0 : x.strides[x.rank - 3];
  return { t: x, off: x.offset, sb: merged, sh, sn: x.strides[x.rank - 2] };
}

/** One stride that walks the flattened batch dims, or null when the layout has none. */
function mergeBatchStride(batch: number[], strides: number[]): number | null {
  const dims = batch.map((_d, i) => i).filter((i) => batch[i] !== 1);
  if (dims.length === 0) return 0;
  if (dims.every((i) => strides[i] === 0)) return 0;
  for (let k = 0; k + 1 < dims.length; k++) {
    const i = dims[k], j = dims[k + 1];
    if (strides[i] !== strides[j] * batch[j]) return null;
  }
  return strides[dims[dims.length - 1]];
}

function maskParams(p: Plan): Record<string, number> {
  if (!p.mask) return { m_off: 0, m_sb: 0, m_sh: 0, m_sq: 0, m_sk: 0 };
  const m = p.mask;
  const full = [...p.batch, p.Hq, p.Nq, p.Nk];
  const st = broadcastStrides(m.shape, m.strides, full);
  const nb = p.batch.length;
  const sb = mergeBatchStride(p.batch, st.slice(0, nb));
  if (sb === null) throw new ShapeError(`${p.fn}: attnMask ${fmtShape(m.shape)} has a batch layout the fused kernel cannot index; pass a contiguous mask`);
  return { m_off: m.offset, m_sb: sb, m_sh: st[nb], m_sq: st[nb + 1], m_sk: st[nb + 2] };
}

export interface TileConfig {
  HEAD_DIM_MAX: number;
  BLOCK_M: number;
  BLOCK_N: number;
  /** Workgroup size of the entry point (forward, dkdv or dq_main). */
  THREADS: number;
  /** Lanes per 4 x 4 score block (chosen by forwardSubgroups / backwardParts unless forced through attention.tiles). */
  PARTS?: number;
}

/** Workgroup memory of each fused entry point, from the formulas in the kernels' header comments. */
function tileBytes(kind: 'forward' | 'dkdv' | 'dq', c: TileConfig, halfTiles: boolean): number {
  const rs = c.HEAD_DIM_MAX / 4 + 1;
  const e = halfTiles ? 8 : 16; // bytes per vec4<tile_t> of the input tiles (q, k, v, dO)
  if (kind === 'forward') return e * (c.BLOCK_M + c.BLOCK_N) * rs + 16 * (c.BLOCK_N + c.BLOCK_N / 4) * (c.BLOCK_M / 4 + 1);
  const t = e * rs * (2 * c.BLOCK_M + 2 * c.BLOCK_N);
  if (kind === 'dkdv') return t + 32 * c.BLOCK_M * (c.BLOCK_N / 4 + 1) + 8 * c.BLOCK_M;
  return t + 16 * c.BLOCK_N * (c.BLOCK_M / 4 + 1) + 8 * c.BLOCK_M;
}

const tileCache = new Map<string, TileConfig>();

/**
 * Tile sizes for a fused attention entry point, chosen from the adapter's limits. Every kernel is register-blocked
 * (4 x 4 score blocks per thread): a workgroup owns `owned` rows (forward / dq: query rows BLOCK_M; dkdv: keys
 * BLOCK_N) and streams tiles of `streamed` rows of the other side. The first (owned, streamed) in order of
 * decreasing tile area whose workgroup memory fits is taken (larger tiles reuse each loaded row more often),
 * with THREADS = (owned / 4) * (streamed / 4) (one score block each), doubled while a thread would hold more
 * than 4 vec4 columns per owned row in its accumulators (DVN, the kernels' register capacity), or while the
 * workgroup has fewer than 128 threads and DVN > 1 on a hardware adapter (measured on an H100: occupancy beats
 * fewer, fuller threads; the surplus threads idle in the score phase), within min(256,
 * maxComputeInvocationsPerWorkgroup).
 * The flag attention.tiles overrides fields for every kind, or per kind as { forward?, dkdv?, dq? }.
 */
export function chooseTiles(kind: 'forward' | 'dkdv' | 'dq', headDim: number, halfTiles = false): TileConfig {
  const lim = gpu().device.limits;
  const wgMem = lim.maxComputeWorkgroupStorageSize;
  const maxThreads = Math.min(256, lim.maxComputeInvocationsPerWorkgroup);
  const HEAD_DIM_MAX = headDim <= 32 ? 32 : headDim <= 64 ? 64 : headDim <= 128 ? 128 : 256;
  const key = `${kind}:${HEAD_DIM_MAX}:${wgMem}:${maxThreads}:${halfTiles ? 'f16' : 'f32'}`;
  const forced = getFlag('attention.tiles') as Partial<TileConfig> | undefined;
  let cfg = tileCache.get(key);
  if (!cfg) {
    const hd4 = HEAD_DIM_MAX / 4;
    // GPUs want occupancy (128 threads: measured on an H100); a CPU (lavapipe) runs the idle score-phase threads
    // for nothing, so there only the register capacity (DVN <= 4) adds threads.
    const minThreads = gpu().info.isSoftware ? 0 : 128;
    const pairs = [[64, 64], [64, 32], [32, 64], [32, 32], [64, 16], [32, 16], [16, 32], [16, 16], [16, 8], [8, 8], [8, 4], [4, 4]];
    for (const [owned, streamed] of pairs) {
      const og = owned / 4;
      const dvn = (t: number) => Math.ceil(hd4 / (t / og));
      let THREADS = og * (streamed / 4);
      while ((dvn(THREADS) > 4 || (minThreads > THREADS && dvn(THREADS) > 1)) && THREADS * 2 <= maxThreads) THREADS *= 2;
      if (THREADS > maxThreads || dvn(THREADS) > 4) continue;
      const c = kind === 'dkdv' ? { HEAD_DIM_MAX, BLOCK_M: streamed, BLOCK_N: owned, THREADS } : { HEAD_DIM_MAX, BLOCK_M: owned, BLOCK_N: streamed, THREADS };
      if (tileBytes(kind, c, halfTiles) > wgMem) continue;
      cfg = c;
      break;
    }
    if (!cfg) throw new ShapeError(`scaledDotProductAttention: head dimension ${headDim} does not fit this adapter's ${wgMem} bytes of workgroup memory`);
    tileCache.set(key, cfg);
  }
  if (!forced) return cfg;
  const perKind = forced as Partial<Record<'forward' | 'dkdv' | 'dq', Partial<TileConfig>>>;
  if ('forward' in forced || 'dkdv' in forced || 'dq' in forced) return { ...cfg, ...(perKind[kind] ?? {}) };
  return { ...cfg, ...forced };
}

function fusedForward(q: Tensor, k: Tensor, v: Tensor, p: Plan): { o: Tensor; lse: Tensor; views: KernelView[]; owned: Tensor[] } {
  const owned: Tensor[] = [];
  const qv = kernelView(q, p, owned);
  const kv = kernelView(k, p, owned);
  const vv = kernelView(v, p, owned);
  const o = empty([p.Bt, p.Hq, p.Nq, p.Dv], p.dtype);
  const lse = empty([p.Bt, p.Hq, p.Nq], 'f32');
  const cfg = chooseTiles('forward', Math.max(p.D, p.Dv), p.dtype === 'f16');
  if (Math.max(p.D, p.Dv) > 256) throw new ShapeError(`${p.fn}: the fused kernel supports head dimensions up to 256 (D ${p.D}, Dv ${p.Dv}); use impl: 'reference'`);
  if (p.Bt * p.Hq * p.Nq > 0) {
    const { use: sg, parts } = forwardSubgroups(cfg);
    const file = variantName('attention_forward.wgsl', [...(p.dtype === 'f16' ? ['f16' as const] : []), ...(sg ? ['subgroups' as const] : [])]);
    dispatch(file, 'main', {
      constants: { HEAD_DIM_MAX: cfg.HEAD_DIM_MAX, BLOCK_M: cfg.BLOCK_M, BLOCK_N: cfg.BLOCK_N, THREADS: cfg.THREADS, PARTS: parts },
      bindings: {
        q: qv.t.buf(p.fn).buffer, k: kv.t.buf(p.fn).buffer, v: vv.t.buf(p.fn).buffer,
        mask: p.mask ? p.mask.buf(p.fn).buffer : dummy(),
        o: o.buf(p.fn).buffer, lse: lse.buf(p.fn).buffer,
      },
      params: {
        ...commonParams(p, qv, kv, vv),
      },
      workgroups: [Math.ceil(p.Nq / cfg.BLOCK_M), p.Hq, p.Bt],
      label: `attention.forward${p.dtype === 'f16' ? '.f16' : ''}${sg ? '.subgroups' : ''}`,
    });
  }
  return { o, lse, views: [qv, kv, vv], owned };
}

/**
 * Whether the forward kernel folds its row maxima and sums with subgroup shuffles (attention_rows_subgroups.wgsl), and
 * how many lanes split each score block's head dim (PARTS): subgroups where the adapter has them, its invocations fill
 * subgroups in index order (probed at init), the CG = BLOCK_N / 4 key groups of a row group times PARTS fit in the
 * smallest subgroup, and the RG * CG * PARTS score lanes are whole subgroups (or the whole workgroup). PARTS > 1 on
 * hardware adapters only, where RG * CG < THREADS leaves threads idle in the score phase. The flag
 * attention.subgroups (true | false) forces the variant (true where it cannot run is an error); attention.tiles may
 * force PARTS.
 */
export function forwardSubgroups(cfg: TileConfig): { use: boolean; parts: number } {
  const kd = gpu();
  const forced = getFlag('attention.subgroups') as boolean | undefined;
  const CG = cfg.BLOCK_N / 4, RG = cfg.BLOCK_M / 4;
  const wholeSubgroups = (parts: number) => RG * CG * parts === cfg.THREADS || (RG * CG * parts) % kd.subgroupMaxSize === 0;
  const why = (parts: number) =>
    !kd.hasSubgroups ? 'the adapter has no subgroups'
    : !kd.subgroupsInOrder ? "the adapter's invocations do not fill subgroups in index order"
    : (CG & (CG - 1)) !== 0 || (parts & (parts - 1)) !== 0 ? `BLOCK_N / 4 = ${CG} and PARTS = ${parts} must be powers of two`
    : CG * parts > kd.subgroupMinSize ? `BLOCK_N / 4 = ${CG} key groups x PARTS ${parts} exceed the smallest subgroup (${kd.subgroupMinSize})`
    : RG * CG * parts > cfg.THREADS ? `${RG * CG} score blocks x PARTS ${parts} exceed THREADS = ${cfg.THREADS}`
    : !wholeSubgroups(parts) ? `the ${RG * CG * parts} score lanes are not whole subgroups of ${kd.subgroupMaxSize}`
    : null;
  if (forced === false) {
    if ((cfg.PARTS ?? 1) > 1) throw new DeviceError(`scaledDotProductAttention: PARTS = ${cfg.PARTS} needs the subgroups variant, and attention.subgroups is false`);
    return { use: false, parts: 1 };
  }
  let parts = cfg.PARTS ?? 1;
  if (cfg.PARTS === undefined && !kd.info.isSoftware && why(1) === null) {
    while (why(parts * 2) === null && parts * 2 <= cfg.HEAD_DIM_MAX / 4) parts *= 2;
  }
  const reason = why(parts);
  if (reason && (forced === true || parts > 1)) throw new DeviceError(`scaledDotProductAttention: ${forced === true ? 'attention.subgroups = true' : `PARTS = ${parts}`}, but ${reason}`);
  return { use: reason === null, parts };
}

/**
 * Lanes per 4 x 4 score block in the backward kernels (PARTS, splitting the head dim; see attention_backward.wgsl):
 * the largest power of two that keeps blocks * PARTS within the workgroup, at most HEAD_DIM_MAX / 4 and the smallest
 * subgroup, where the adapter has subgroups that fill in index order, and with the score threads whole subgroups
 * (or the whole workgroup), on hardware adapters. 1 otherwise, and with attention.subgroups = false. attention.tiles may
 * force PARTS.
 */
export function backwardParts(cfg: TileConfig): number {
  const kd = gpu();
  const blocks = (cfg.BLOCK_M / 4) * (cfg.BLOCK_N / 4);
  const usable = getFlag('attention.subgroups') !== false && kd.hasSubgroups && kd.subgroupsInOrder && kd.subgroupMinSize > 0;
  const uniform = (parts: number) => blocks * parts === cfg.THREADS || (blocks * parts) % kd.subgroupMaxSize === 0;
  if (cfg.PARTS !== undefined) {
    const P = cfg.PARTS;
    if (P === 1) return 1;
    const ok = usable && (P & (P - 1)) === 0 && P <= kd.subgroupMinSize && blocks * P <= cfg.THREADS && uniform(P);
    if (!ok) throw new DeviceError(`scaledDotProductAttention: attention.tiles PARTS = ${P} needs subgroups in index order, a power of two <= the smallest subgroup (${kd.subgroupMinSize}) and ${blocks} blocks x PARTS <= THREADS (${cfg.THREADS}) as whole subgroups`);
    return P;
  }
  // On a CPU (lavapipe) idle score-phase threads cost nothing, and the fold does: D 128 forward+backward went from
  // 44 to 53 ms with PARTS 4. There only attention.tiles turns it on.
  if (!usable || kd.info.isSoftware) return 1;
  let parts = 1;
  while (parts * 2 <= kd.subgroupMinSize && parts * 2 <= cfg.HEAD_DIM_MAX / 4 && blocks * parts * 2 <= cfg.THREADS) parts *= 2;
  while (parts > 1 && !uniform(parts)) parts /= 2;
  return parts;
}

function commonParams(p: Plan, qv: KernelView, kv: KernelView, vv: KernelView): Record<string, number> {
  return {
    B: p.Bt, Hq: p.Hq, Hk: p.Hk, Nq: p.Nq, Nk: p.Nk, D: p.D, Dv: p.Dv, scale: p.scale,
    causal: p.causal ? 1 : 0, mask_kind: p.maskKind,
    q_off: qv.off, q_sb: qv.sb, q_sh: qv.sh, q_sn: qv.sn,
    k_off: kv.off, k_sb: kv.sb, k_sh: kv.sh, k_sn: kv.sn,
    v_off: vv.off, v_sb: vv.sb, v_sh: vv.sh, v_sn: vv.sn,
    ...maskParams(p),
    dropout_p: p.dropoutP, seed0: p.seed, seed1: 0,
  };
}

function fusedBackward(
  p: Plan, g: Tensor, saved: { q: KernelView; k: KernelView; v: KernelView; o: Tensor; lse: Tensor }, wantMaskGrad: boolean,
): { dq: Tensor; dk: Tensor; dv: Tensor; dmask: Tensor | null } {
  const gc = g.isContiguous && g.offset === 0 ? g : contiguous(g);
  const delta = empty([p.Bt * p.Hq * p.Nq], 'f32');
  const dq = empty([p.Bt, p.Hq, p.Nq, p.D], p.dtype);
  const dk = empty([p.Bt, p.Hk, p.Nk, p.D], p.dtype);
  const dv = empty([p.Bt, p.Hk, p.Nk, p.Dv], p.dtype);
  const dmask = wantMaskGrad ? empty([p.Bt, p.Hq, p.Nq, p.Nk], 'f32') : null;
  const hd = Math.max(p.D, p.Dv);
  const kv = chooseTiles('dkdv', hd, p.dtype === 'f16'), qc = chooseTiles('dq', hd, p.dtype === 'f16');
  const partsKv = backwardParts(kv), partsQ = backwardParts(qc);
  const constKv = { HEAD_DIM_MAX: kv.HEAD_DIM_MAX, BLOCK_M: kv.BLOCK_M, BLOCK_N: kv.BLOCK_N, THREADS: kv.THREADS, PARTS: partsKv };
  const constQ = { HEAD_DIM_MAX: qc.HEAD_DIM_MAX, BLOCK_M: qc.BLOCK_M, BLOCK_N: qc.BLOCK_N, THREADS: qc.THREADS, PARTS: partsQ };
  const params = { ...commonParams(p, saved.q, saved.k, saved.v), write_dmask: dmask ? 1 : 0 };
  const bindings = {
    q: saved.q.t.buf(p.fn).buffer, k: saved.k.t.buf(p.fn).buffer, v: saved.v.t.buf(p.fn).buffer,
    mask: p.mask ? p.mask.buf(p.fn).buffer : dummy(),
    o: saved.o.buf(p.fn).buffer, dout: gc.buf(p.fn).buffer, lse: saved.lse.buf(p.fn).buffer,
    delta: delta.buf(p.fn).buffer, dq: dq.buf(p.fn).buffer, dk: dk.buf(p.fn).buffer, dv: dv.buf(p.fn).buffer,
    dmask: dmask ? dmask.buf(p.fn).buffer : dummy(),
  };
  const rows = p.Bt * p.Hq * p.Nq;
  const split = partsKv > 1 || partsQ > 1;
  const file = variantName('attention_backward.wgsl', [...(p.dtype === 'f16' ? ['f16' as const] : []), ...(split ? ['subgroups' as const] : [])]);
  const sfx = `${p.dtype === 'f16' ? '.f16' : ''}${split ? '.subgroups' : ''}`;
  if (rows > 0) {
    dispatch(file, 'delta_main', { constants: constKv, bindings, params, workgroups: grid1d(Math.ceil(rows / 64)), label: `attention.backward.delta${sfx}` });
    dispatch(file, 'dkdv', { constants: constKv, bindings, params, workgroups: [Math.ceil(p.Nk / kv.BLOCK_N), p.Hk, p.Bt], label: `attention.backward.dkdv${sfx}` });
    dispatch(file, 'dq_main', { constants: constQ, bindings, params, workgroups: [Math.ceil(p.Nq / qc.BLOCK_M), p.Hq, p.Bt], label: `attention.backward.dq${sfx}` });
  }
  delta.dispose();
  if (gc !== g) gc.dispose();
  return { dq, dk, dv, dmask };
}

/** Reduces a [Bt, H, N, X] kernel gradient to the input's own shape (summing broadcast dims). */
function gradToInput(g: Tensor, p: Plan, inShape: number[]): Tensor {
  const s = inShape.length === 2 ? { batch: [] as number[], H: 1 } : { batch: inShape.slice(0, -3), H: inShape[inShape.length - 3] };
  const full = reshape(g, [...p.batch, g.shape[1], g.shape[2], g.shape[3]]);
  // A query grouping on k/v heads is already summed by the kernel; broadcast heads (H = 1) were too.
  const target = inShape.length === 2 ? [...p.batch.map(() => 1), 1, ...inShape] : [...s.batch, s.H, ...inShape.slice(-2)];
  const r = withTmp(full, (t) => sumToShape(t, target));
  return withTmp(r, (t) => reshape(t, inShape));
}

function fusedAttention(q: Tensor, k: Tensor, v: Tensor, p: Plan): Tensor {
  const { o, lse, views, owned } = fusedForward(q, k, v, p);
  const out = reshape(o, p.outShape);
  const [qv, kv, vv] = views;
  const maskNeedsGrad = !!(p.mask && p.maskKind === 2 && p.mask.requiresGrad);
  const qShape = q.shape.slice(), kShape = k.shape.slice(), vShape = v.shape.slice();
  const res = record('scaledDotProductAttention', out, [q, k, v, maskNeedsGrad ? p.mask : null], (g, saved, needs) => {
    const [sq, sk, sv, so, sl, sm] = saved;
    const plan: Plan = { ...p, mask: p.mask ? sm : null };
    const grads = fusedBackward(plan, g, {
      q: { ...qv, t: sq }, k: { ...kv, t: sk }, v: { ...vv, t: sv }, o: so, lse: sl,
    }, needs[3]);
    const gq = needs[0] ? gradToInput(grads.dq, p, qShape) : null;
    const gk = needs[1] ? gradToInput(grads.dk, p, kShape) : null;
    const gv = needs[2] ? gradToInput(grads.dv, p, vShape) : null;
    let gm: Tensor | null = null;
    if (grads.dmask && sm) {
      const full = reshape(grads.dmask, [...p.batch, p.Hq, p.Nq, p.Nk]);
      gm = withTmp(full, (t) => sumToShape(t, sm.shape));
    }
    grads.dq.dispose();
    grads.dk.dispose();
    grads.dv.dispose();
    grads.dmask?.dispose();
    return [gq, gk, gv, gm];
  }, [qv.t, kv.t, vv.t, o, lse, ...(p.mask ? [p.mask] : [])]);
  o.dispose();
  lse.dispose();
  for (const t of owned) t.dispose();
  return res;
}

/**
 * softmax(q k^T * scale + mask) v over the last two dims, FlashAttention-style when impl is 'fused'
 * (the default): the Nq x Nk scores are never written to memory.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: SdpaOptions = {}): Tensor {
  const p = planAttention('scaledDotProductAttention', q, k, v, opts);
  const impl = opts.impl ?? (getFlag('attention.impl') as 'fused' | 'reference' | undefined) ?? 'fused';
  const widenInputs = p.dtype === 'f16' && (impl === 'reference' || f16Mode() === 'widen');
  if (widenInputs || p.mask?.dtype === 'f16') return widened(q, k, v, opts, p, widenInputs);
  if (impl === 'reference') {
    const out = referenceAttention(q, k, v, p);
    if (!out.shape.every((d, i) => d === p.outShape[i]) || out.rank !== p.outShape.length) return withTmp(out, (t) => reshape(t, p.outShape));
    return out;
  }
  return fusedAttention(q, k, v, p);
}

/**
 * How f16 attention runs: 'native' (the kernels' f16 variant: f16 loads and stores, f32 arithmetic; needs
 * shader-f16) or 'widen' (cast to f32, run the f32 kernels, round the output to f16; any adapter). The flag
 * attention.f16 picks one; by default native where the adapter has shader-f16.
 */
export function f16Mode(): 'native' | 'widen' {
  const forced = getFlag('attention.f16') as 'native' | 'widen' | undefined;
  if (forced === 'native' && !gpu().hasF16) throw new DeviceError("scaledDotProductAttention: attention.f16 = 'native' needs the adapter feature shader-f16, which this device lacks");
  return forced ?? (gpu().hasF16 ? 'native' : 'widen');
}

/**
 * f16 inputs (or an f16 float mask) through the f32 kernels: every input is cast to f32 on the tape, so gradients
 * come back in each input's dtype, and an f16 output is rounded once at the end.
 */
function widened(q: Tensor, k: Tensor, v: Tensor, opts: SdpaOptions, p: Plan, widenInputs: boolean): Tensor {
  const tmp: Tensor[] = [];
  const wide = (t: Tensor, always = widenInputs): Tensor => {
    if (t.dtype !== 'f16' || !always) return t;
    const w = toDType(t, 'f32');
    tmp.push(w);
    return w;
  };
  const mask = opts.attnMask ? wide(opts.attnMask, true) : opts.attnMask;
  const out = scaledDotProductAttention(wide(q), wide(k), wide(v), { ...opts, attnMask: mask, seed: p.dropoutP > 0 ? p.seed : opts.seed });
  for (const t of tmp) t.dispose();
  if (!widenInputs || p.dtype !== 'f16') return out;
  return withTmp(out, (t) => toDType(t, 'f16'));
}

/** The attention probabilities softmax(q k^T * scale + mask), [..., Hq, Nq, Nk], for looking at them (f32, or f16 for f16 inputs). */
export function attentionWeights(q: Tensor, k: Tensor, opts: Omit<SdpaOptions, 'dropoutP' | 'seed' | 'impl'> = {}): Tensor {
  const p = planAttention('attentionWeights', q, k, null, opts);
  if (p.dtype === 'f16' || opts.attnMask?.dtype === 'f16') {
    const tmp: Tensor[] = [];
    const wide = (t: Tensor): Tensor => (t.dtype === 'f16' ? (tmp.push(toDType(t, 'f32')), tmp[tmp.length - 1]) : t);
    const w = attentionWeights(wide(q), wide(k), { ...opts, attnMask: opts.attnMask ? wide(opts.attnMask) : opts.attnMask });
    for (const t of tmp) t.dispose();
    return p.dtype === 'f16' ? withTmp(w, (t) => toDType(t, 'f16')) : w;
  }
  const scores = referenceScores(q, k, p);
  return withTmp(scores, (s) => softmax(s, -1));
}
