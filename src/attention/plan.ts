// Attention planned once: planAttention validates a call (shapes, dtypes, options, sizes against the adapter's limits)
// and makes every variant decision (implementation, f16 handling, kernel files, tiles, subgroup folds, PARTS, grids,
// how each input reaches the kernels), all before anything is allocated or encoded. The fused and reference paths
// execute the plan, and the fused backward reuses the plan its forward made: nothing reads a flag after planning.
import type { ParamValues } from '../gpu/recorder.js';
import { DTypeError, DeviceError, ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { gpu, type KilnDevice } from '../gpu/device.js';
import type { KernelVariant } from '../gpu/kernels.js';
import type { Tensor } from '../ops/tensor.js';
import { bytesPerElement } from '../tensor/dtype.js';
import { isGradEnabled } from '../autograd/mode.js';
import { broadcastShapes, broadcastStrides, contiguousStrides, numel } from '../tensor/shape.js';
import { nextSeed } from '../tensor/random.js';
import type { TensorBase } from '../tensor/base.js';
import type { MatrixLaunch } from '../launch/attention_mma.js';
import { f16Flag, implFlag, subgroupsFlag, tilesFlag } from './flags.js';
import {
  type AdapterCaps, type TileConfig, type TileKind, adapterCaps, backwardParts, f16Mode, forwardSubgroups, resolveTiles,
} from './tiles.js';

/** isCausal: true and 'upperLeft' are PyTorch's is_causal (top-left aligned); 'lowerRight' is its causal_lower_right. */
export type CausalOption = boolean | 'upperLeft' | 'lowerRight';

export interface SdpaOptions {
  /** bool (true = may attend) or float (added to the scores), broadcastable to [..., Hq, Nq, Nk]. */
  attnMask?: Tensor | null;
  /**
   * true or 'upperLeft': query i sees keys j <= i (top-left aligned when Nq != Nk, as PyTorch's is_causal).
   * 'lowerRight': query i sees keys j <= i + Nk - Nq (bottom-right aligned, PyTorch's causal_lower_right): the
   * alignment of incremental decoding, where the Nq queries are the last Nq positions of the Nk keys (KVCache).
   */
  isCausal?: CausalOption | null;
  /** Defaults to 1 / sqrt(D). */
  scale?: number;
  dropoutP?: number;
  seed?: number;
  impl?: 'fused' | 'reference';
}

export const SDPA_OPTION_KEYS = ['attnMask', 'isCausal', 'scale', 'dropoutP', 'seed', 'impl'] as const;
const WEIGHTS_OPTION_KEYS = ['attnMask', 'isCausal', 'scale'] as const;

/** Where an input's elements are for the kernels: its own strides, a contiguous copy, or a copy expanded over the batch. */
export type InputLayout = 'view' | 'contiguous' | 'expand';

/** Constants and folded grid of one fused entry point. */
export interface KernelLaunch {
  readonly constants: Readonly<Required<TileConfig>>;
  readonly grid: readonly [number, number, number];
}

export interface FusedPlan {
  /**
   * The scalar forward: kernels/attention_forward.wgsl (workgroup-memory tiles) or, kernel 'rows', the register-tiled
   * attention_forward_rows.wgsl (tiles.ts useRowsForward).
   */
  readonly forward: KernelLaunch & { readonly variant: readonly KernelVariant[]; readonly label: string; readonly kernel: 'tiled' | 'rows' };
  /** The forward on matrix units (kernels/attention_mma.wgsl), run instead of `forward` when set. */
  readonly matrix: MatrixLaunch | null;
  /** Why the forward runs on the scalar kernel (null when `matrix` is set). */
  readonly whyScalar: string | null;
  /** Planned with the forward when a backward can follow (an input requires grad, grad mode on); else null. */
  readonly backward: {
    readonly variant: readonly KernelVariant[];
    readonly label: string;
    readonly dkdv: KernelLaunch;
    readonly dq: KernelLaunch;
    readonly deltaGrid: readonly [number, number, number];
  } | null;
  readonly layouts: { readonly q: InputLayout; readonly k: InputLayout; readonly v: InputLayout; readonly mask: InputLayout | null };
}

export interface AttentionPlan {
  readonly fn: string;
  readonly impl: 'fused' | 'reference';
  /** The inputs' dtype (q, k and v share it). */
  readonly dtype: 'f32' | 'f16';
  /** What the kernels read: 'f16' only for the native f16 kernel variant; widened inputs are cast to f32 first. */
  readonly computeDtype: 'f32' | 'f16';
  readonly widenInputs: boolean;
  /** An f16 float mask is cast to f32 (the kernels and ops read f32 masks). */
  readonly widenMask: boolean;
  /** Broadcast batch shape (dims before the head dim). */
  readonly batch: readonly number[];
  readonly Bt: number;
  readonly Hq: number;
  readonly Hk: number;
  readonly Nq: number;
  readonly Nk: number;
  readonly D: number;
  readonly Dv: number;
  readonly scale: number;
  readonly causal: 'upperLeft' | 'lowerRight' | null;
  /** With causal, key j is admissible for query i iff j <= i + causalDiag (0 top-left, Nk - Nq bottom-right). */
  readonly causalDiag: number;
  readonly dropoutP: number;
  readonly seed: number;
  /** The mask as given (its f32 cast is what computes when widenMask). */
  readonly mask: Tensor | null;
  /** 0 none, 1 bool, 2 float (added to the scores). */
  readonly maskKind: 0 | 1 | 2;
  /** Output shape as the user sees it. */
  readonly outShape: readonly number[];
  readonly fused: FusedPlan | null;
}

/** Shapes of q/k/v as [...batch, H, N, D] (adding H = 1 or batch dims as needed). */
export function splitShape(shape: readonly number[]): { batch: number[]; H: number; N: number; D: number } {
  const s = shape;
  if (s.length === 2) return { batch: [], H: 1, N: s[0], D: s[1] };
  return { batch: s.slice(0, -3), H: s[s.length - 3], N: s[s.length - 2], D: s[s.length - 1] };
}

/** One stride that walks the flattened batch dims, or null when the layout has none. */
export function mergeBatchStride(batch: readonly number[], strides: readonly number[]): number | null {
  const dims = batch.map((_d, i) => i).filter((i) => batch[i] !== 1);
  if (dims.length === 0) return 0;
  if (dims.every((i) => strides[i] === 0)) return 0;
  for (let k = 0; k + 1 < dims.length; k++) {
    const i = dims[k], j = dims[k + 1];
    if (strides[i] !== strides[j] * batch[j]) return null;
  }
  return strides[dims[dims.length - 1]];
}

/** How q, k or v (shape [..., H, N, D]) reaches the kernels: they need a unit last stride and one batch stride. */
export function inputLayout(shape: readonly number[], strides: readonly number[], batch: readonly number[]): InputLayout {
  let st = strides;
  let layout: InputLayout = 'view';
  if (st[st.length - 1] !== 1 && shape[shape.length - 1] > 1) {
    layout = 'contiguous';
    st = contiguousStrides(shape);
  }
  const lead = shape.length === 2 ? [] : shape.slice(0, -3);
  const leadStrides = shape.length === 2 ? [] : st.slice(0, -3);
  return mergeBatchStride(batch, broadcastStrides(lead, leadStrides, batch)) === null ? 'expand' : layout;
}

/** How the mask reaches the kernels: they index [batch, H, Nq, Nk] with one batch stride. */
export function maskLayout(shape: readonly number[], strides: readonly number[], batch: readonly number[], Hq: number, Nq: number, Nk: number): InputLayout {
  const st = broadcastStrides(shape, strides, [...batch, Hq, Nq, Nk]);
  return mergeBatchStride(batch, st.slice(0, batch.length)) === null ? 'expand' : 'view';
}

function causalOf(fn: string, v: unknown): 'upperLeft' | 'lowerRight' | null {
  if (v === undefined || v === null || v === false) return null;
  if (v === true || v === 'upperLeft') return 'upperLeft';
  if (v === 'lowerRight') return 'lowerRight';
  throw new ValueError(`${fn}: isCausal must be true, false, 'upperLeft' or 'lowerRight', got ${JSON.stringify(v)}`);
}

/** The workgroups of a launch folded over (x, y, z) within maxComputeWorkgroupsPerDimension. */
export function foldGrid(fn: string, what: string, workgroups: number, maxWg: number): [number, number, number] {
  const x = Math.max(1, Math.min(workgroups, maxWg));
  const y = Math.max(1, Math.min(Math.ceil(workgroups / x), maxWg));
  const z = Math.max(1, Math.ceil(workgroups / (x * y)));
  if (z > maxWg || x * y * z >= 2 ** 32) {
    throw new DeviceError(`${fn}: ${what} needs ${workgroups} workgroups, more than this adapter can address (${maxWg} per dimension, 2^32 in all)`);
  }
  return [x, y, z];
}

/** The delta pass's 2-D grid (x, y) of DELTA_WG-thread workgroups. */
function deltaGrid(fn: string, rows: number, maxWg: number): [number, number, number] {
  const n = Math.max(1, Math.ceil(rows / 64));
  const x = Math.min(n, maxWg);
  const y = Math.ceil(n / x);
  if (y > maxWg) throw new DeviceError(`${fn}: ${rows} query rows need ${n} delta workgroups, more than this adapter can address`);
  return [x, y, 1];
}

/** Buffers a call allocates, checked against the adapter's buffer and binding limits before any is made. */
function checkBuffers(fn: string, kd: KilnDevice, buffers: [string, number[], number][]): void {
  const lim = kd.device.limits;
  const max = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize);
  for (const [what, shape, bytesPer] of buffers) {
    const bytes = numel(shape) * bytesPer;
    if (bytes > max) {
      throw new DeviceError(`${fn}: ${what} ${fmtShape(shape)} needs ${bytes} bytes, over this adapter's limit of ${max} bytes per buffer binding (maxStorageBufferBindingSize / maxBufferSize)`);
    }
  }
}

interface Kernel {
  cfg: TileConfig;
  parts: number;
}

function launch(k: Kernel, grid: [number, number, number]): KernelLaunch {
  const { HEAD_DIM_MAX, BLOCK_M, BLOCK_N, THREADS } = k.cfg;
  return { constants: { HEAD_DIM_MAX, BLOCK_M, BLOCK_N, THREADS, PARTS: k.parts }, grid };
}

/** What the matrix planner is told about a call. */
export interface MatrixCall {
  dtype: 'f32' | 'f16';
  mods: boolean;
  Bt: number;
  Hq: number;
  Hk: number;
  Nq: number;
  Nk: number;
  D: number;
  Dv: number;
  needsBackward: boolean;
}

/**
 * The matrix-unit attention forward (src/attention/matrix.ts): its planner and launcher, installed by
 * enableMatrixAttention (Node's init() does; a browser page through kiln/experimental), so that a page which never
 * loads it carries none of its kernel text.
 */
export interface MatrixAttention {
  plan(fn: string, kd: KilnDevice, caps: AdapterCaps, s: MatrixCall): { matrix: MatrixLaunch } | { why: string };
  forward(fn: string, launch: MatrixLaunch, params: ParamValues, t: { q: TensorBase; k: TensorBase; v: TensorBase; mask: TensorBase | null; o: TensorBase; lse: TensorBase }): void;
  backward(fn: string, launch: MatrixLaunch, deltaGrid: readonly [number, number, number], params: ParamValues, t: {
    q: TensorBase; k: TensorBase; v: TensorBase; mask: TensorBase | null; o: TensorBase; dout: TensorBase; lse: TensorBase;
    delta: TensorBase; dq: TensorBase; dk: TensorBase; dv: TensorBase; dmask: TensorBase | null;
  }): void;
}

let matrixAttention: MatrixAttention | null = null;

/** What the rows forward's policy is told about a call. */
export interface RowsCall {
  D: number;
  Dv: number;
  /** k and v, as the kernels will read them (a planned copy, or widened inputs, contiguous from offset 0). */
  kv: readonly { t: Tensor; layout: InputLayout }[];
  widened: boolean;
  /** attention.subgroups is false. */
  subgroupsOff: boolean;
  /** attention.tiles overrides the (tiled) forward's tiles. */
  tileOverride: boolean;
}

/** The register-tiled forward (src/attention/rows.ts): whether it runs a call (throws where forced and it cannot), its tiles, its launcher. */
export interface RowsAttention {
  use(fn: string, c: RowsCall, caps: AdapterCaps): boolean;
  tiles(): Required<TileConfig>;
  forward: typeof import('../launch/attention_rows.js').attentionForwardRows;
}
let rowsAttention: RowsAttention | null = null;

export function installRowsAttention(r: RowsAttention): void {
  rowsAttention = r;
}

export function rowsAttentionImpl(): RowsAttention | null {
  return rowsAttention;
}

export function installMatrixAttention(m: MatrixAttention): void {
  matrixAttention = m;
}

export function matrixAttentionImpl(): MatrixAttention | null {
  return matrixAttention;
}

function planFused(fn: string, kd: KilnDevice, caps: AdapterCaps, s: {
  dtype: 'f32' | 'f16'; batch: number[]; Bt: number; Hq: number; Hk: number; Nq: number; Nk: number; D: number; Dv: number;
  needsBackward: boolean; maskGrad: boolean; layouts: FusedPlan['layouts']; inputs: { q: number[]; k: number[]; v: number[] };
  mods: boolean; kv: RowsCall['kv']; widened: boolean;
}): FusedPlan {
  const tiles = tilesFlag.get();
  const forcedSubgroups = subgroupsFlag.get();
  const half = s.dtype === 'f16';
  const tile = (kind: TileKind) => resolveTiles(fn, kind, s.D, s.Dv, half, caps, tiles?.[kind]);
  const rows = !!rowsAttention?.use(fn, { D: s.D, Dv: s.Dv, kv: s.kv, widened: s.widened, subgroupsOff: forcedSubgroups === false, tileOverride: !!tiles?.forward }, caps);
  const fwdCfg = rows ? rowsAttention!.tiles() : tile('forward');
  // The rows kernel runs in the subgroups variant only (its lanes share k and v through shuffles).
  const sg = rows ? { use: true, parts: 1 } : forwardSubgroups(fwdCfg, caps, forcedSubgroups);
  const maxWg = kd.device.limits.maxComputeWorkgroupsPerDimension;
  const tags = (subgroups: boolean): KernelVariant[] => [...(half ? ['f16' as const] : []), ...(subgroups ? ['subgroups' as const] : [])];
  const sfx = (subgroups: boolean) => `${half ? '.f16' : ''}${subgroups ? '.subgroups' : ''}`;
  const e = bytesPerElement(s.dtype);
  const { Bt, Hq, Hk, Nq, Nk, D, Dv } = s;
  const buffers: [string, number[], number][] = [['the output', [Bt, Hq, Nq, Dv], e]];
  for (const [name, layout] of [['q', s.layouts.q], ['k', s.layouts.k], ['v', s.layouts.v]] as const) {
    if (layout === 'expand') {
      const sp = splitShape(s.inputs[name]);
      buffers.push([`a batch-expanded copy of ${name}`, [...s.batch, sp.H, sp.N, sp.D], e]);
    }
  }
  let backward: FusedPlan['backward'] = null;
  if (s.needsBackward) {
    const dkdvCfg = tile('dkdv'), dqCfg = tile('dq');
    const partsKv = backwardParts(dkdvCfg, caps, forcedSubgroups), partsQ = backwardParts(dqCfg, caps, forcedSubgroups);
    const split = partsKv > 1 || partsQ > 1;
    backward = {
      variant: tags(split),
      label: sfx(split),
      dkdv: launch({ cfg: dkdvCfg, parts: partsKv }, foldGrid(fn, 'the dK/dV pass', Math.ceil(Nk / dkdvCfg.BLOCK_N) * Bt * Hk, maxWg)),
      dq: launch({ cfg: dqCfg, parts: partsQ }, foldGrid(fn, 'the dQ pass', Math.ceil(Nq / dqCfg.BLOCK_M) * Bt * Hq, maxWg)),
      deltaGrid: deltaGrid(fn, Bt * Hq * Nq, maxWg),
    };
    buffers.push(['dq', [Bt, Hq, Nq, D], e], ['dk', [Bt, Hk, Nk, D], e], ['dv', [Bt, Hk, Nk, Dv], e]);
    if (s.maskGrad) buffers.push(['the float mask gradient', [Bt, Hq, Nq, Nk], 4]);
  }
  checkBuffers(fn, kd, buffers);
  const mx = matrixAttention ? matrixAttention.plan(fn, kd, caps, s) : { why: 'enableMatrixAttention() not called' };
  return {
    matrix: 'matrix' in mx ? mx.matrix : null,
    whyScalar: 'why' in mx ? mx.why : null,
    forward: {
      ...launch({ cfg: fwdCfg, parts: sg.parts }, foldGrid(fn, 'the forward', Math.ceil(Nq / fwdCfg.BLOCK_M) * Bt * Hq, maxWg)),
      variant: tags(sg.use),
      label: `attention.forward${sfx(sg.use)}${rows ? '.rows' : ''}`,
      kernel: rows ? 'rows' : 'tiled',
    },
    backward,
    layouts: s.layouts,
  };
}

/**
 * Validates a call of scaledDotProductAttention (v given) or attentionWeights (v null) and plans it. Throws a typed
 * KilnError naming the values at fault; allocates nothing and encodes nothing.
 */
export function planAttention(fn: string, q: Tensor, k: Tensor, v: Tensor | null, options: SdpaOptions | undefined, defaultImpl?: 'fused' | 'reference', gradInputs: readonly Tensor[] = [], mods = false): AttentionPlan {
  const opts = checkOptions(fn, options, v === null ? WEIGHTS_OPTION_KEYS : SDPA_OPTION_KEYS);
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (!t) continue;
    t.buf(fn);
    if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new DTypeError(`${fn}: ${name} must be f32 or f16, got ${t.dtype}`);
    if (t.dtype !== q.dtype) throw new DTypeError(`${fn}: q is ${q.dtype} but ${name} is ${t.dtype}; q, k and v must share a dtype (cast with .to('${q.dtype}'))`);
    if (t.rank < 2) throw new ShapeError(`${fn}: ${name} ${fmtShape(t.shape)} needs at least 2 dims [..., N, D]`);
  }
  if (v && k.rank !== v.rank) throw new ShapeError(`${fn}: k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} must have the same number of dims`);
  const sq = splitShape(q.shape), sk = splitShape(k.shape), sv = v ? splitShape(v.shape) : sk;
  if (sq.D !== sk.D) throw new ShapeError(`${fn}: q ${fmtShape(q.shape)} and k ${fmtShape(k.shape)} disagree on the head dimension (${sq.D} vs ${sk.D})`);
  if (v && sk.N !== sv.N) throw new ShapeError(`${fn}: k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} disagree on the number of keys (${sk.N} vs ${sv.N})`);
  if (v && sk.H !== sv.H) throw new ShapeError(`${fn}: k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} disagree on the number of heads (${sk.H} vs ${sv.H})`);
  // One query head broadcasts over the key/value heads (plain broadcasting, as PyTorch).
  const Hq = sq.H === 1 && sk.H > 1 ? sk.H : sq.H;
  if (Hq !== sk.H && Hq % sk.H !== 0) {
    throw new ShapeError(`${fn}: q has ${Hq} heads and k/v have ${sk.H}: grouped-query attention needs the query heads to be a multiple of the key/value heads (q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)})`);
  }
  if (sq.D === 0 || sv.D === 0) throw new ShapeError(`${fn}: head dimension must be > 0 (q ${fmtShape(q.shape)}, v ${v ? fmtShape(v.shape) : '-'})`);
  const batch = broadcastShapes(fn, sq.batch, sk.batch, sv.batch);
  const Nq = sq.N, Nk = sk.N, D = sq.D, Dv = sv.D, Hk = sk.H;
  const mask = opts.attnMask ?? null;
  let maskKind: 0 | 1 | 2 = 0;
  if (mask) {
    mask.buf(fn);
    if (mask.dtype === 'bool') maskKind = 1;
    else if (mask.dtype === 'f32' || mask.dtype === 'f16') maskKind = 2;
    else throw new DTypeError(`${fn}: attnMask must be bool (true = may attend) or float (added to the scores), got ${mask.dtype}`);
    const full = [...batch, Hq, Nq, Nk];
    let ok = mask.rank <= full.length;
    for (let i = 0; ok && i < mask.rank; i++) {
      const d = mask.shape[mask.rank - 1 - i], f = full[full.length - 1 - i];
      if (d !== 1 && d !== f) ok = false;
    }
    if (!ok) throw new ShapeError(`${fn}: attnMask ${fmtShape(mask.shape)} does not broadcast to the scores' shape ${fmtShape(full)}`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new ValueError(`${fn}: scale must be a finite number, got ${opts.scale}`);
  const dropoutP = opts.dropoutP ?? 0;
  if (typeof dropoutP !== 'number' || !(dropoutP >= 0 && dropoutP < 1)) throw new ValueError(`${fn}: dropoutP must be in [0, 1), got ${opts.dropoutP}`);
  if (opts.seed !== undefined && (!Number.isInteger(opts.seed) || opts.seed < 0)) throw new ValueError(`${fn}: seed must be a non-negative integer, got ${opts.seed}`);
  if (opts.impl !== undefined && opts.impl !== 'fused' && opts.impl !== 'reference') throw new ValueError(`${fn}: impl must be 'fused' or 'reference', got ${JSON.stringify(opts.impl)}`);
  const causal = causalOf(fn, opts.isCausal);
  const kd = gpu();
  const caps = adapterCaps(kd);
  const impl = v === null ? 'reference' : opts.impl ?? defaultImpl ?? implFlag.get() ?? 'fused';
  const dtype = q.dtype as 'f32' | 'f16';
  const widenInputs = dtype === 'f16' && (impl === 'reference' || f16Mode(caps, f16Flag.get()) === 'widen');
  const widenMask = mask?.dtype === 'f16';
  const computeDtype = widenInputs ? 'f32' : dtype;
  const Bt = numel(batch);
  const needsBackward = v !== null && isGradEnabled() && [q, k, v, maskKind === 2 ? mask : null, ...gradInputs].some((t) => t?.requiresGrad);
  const maskGrad = needsBackward && maskKind === 2 && !!mask?.requiresGrad;
  let fused: FusedPlan | null = null;
  if (impl === 'fused' && v) {
    // Widened inputs are fresh contiguous casts: plan their layouts as such.
    const stridesOf = (t: Tensor, widened: boolean) => (widened ? contiguousStrides(t.shape) : t.strides);
    const layouts = {
      q: inputLayout(q.shape, stridesOf(q, widenInputs), batch),
      k: inputLayout(k.shape, stridesOf(k, widenInputs), batch),
      v: inputLayout(v.shape, stridesOf(v, widenInputs), batch),
      mask: mask ? maskLayout(mask.shape, stridesOf(mask, widenMask), batch, Hq, Nq, Nk) : null,
    };
    fused = planFused(fn, kd, caps, {
      dtype: computeDtype, batch, Bt, Hq, Hk, Nq, Nk, D, Dv, needsBackward, maskGrad, layouts,
      inputs: { q: q.shape, k: k.shape, v: v.shape }, mods,
      kv: [{ t: k, layout: layouts.k }, { t: v, layout: layouts.v }], widened: widenInputs,
    });
  } else {
    // The reference path materialises the [..., Hq, Nq, Nk] scores (and their gradient).
    checkBuffers(fn, kd, [['the scores', [Bt, Hq, Nq, Nk], 4]]);
  }
  const outShape = v === null ? [...batch, Hq, Nq, Nk] : q.rank === 2 && k.rank === 2 ? [Nq, Dv] : [...batch, Hq, Nq, Dv];
  return {
    fn, impl, dtype, computeDtype, widenInputs, widenMask, batch, Bt, Hq, Hk, Nq, Nk, D, Dv, scale,
    causal, causalDiag: causal === 'lowerRight' ? Nk - Nq : 0,
    dropoutP, seed: dropoutP > 0 ? (opts.seed ?? nextSeed()) : 0, mask, maskKind, outShape, fused,
  };
}

/**
 * The tiles a fused entry point runs with on this adapter for a head dim: the default, with attention.tiles applied
 * and checked (kiln/experimental).
 */
export function chooseTiles(kind: TileKind, headDim: number, halfTiles = false): TileConfig {
  return resolveTiles('chooseTiles', kind, headDim, headDim, halfTiles, adapterCaps(gpu()), tilesFlag.get()?.[kind]);
}
