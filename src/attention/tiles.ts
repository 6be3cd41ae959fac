// Tile, subgroup and precision policy of the fused attention kernels, and the one statement of their constraints and
// workgroup-memory formulas (the kernels' header comments state the same: kernels/attention_forward.wgsl,
// kernels/attention_backward.wgsl). Pure functions of the adapter's capabilities (AdapterCaps) and of the flags' values:
// plan.ts reads the flags and the device and decides once.
import { DeviceError, ShapeError, ValueError } from '../errors.js';
import type { KilnDevice } from '../gpu/device.js';

/** The fused entry points that take tile constants: the forward, and the backward's dK/dV and dQ passes. */
export type TileKind = 'forward' | 'dkdv' | 'dq';
export const TILE_KINDS: readonly TileKind[] = ['forward', 'dkdv', 'dq'];

export interface TileConfig {
  /** Capacity of the tiles' rows: >= max(D, Dv), a multiple of 4. */
  HEAD_DIM_MAX: number;
  /** Query rows per tile (a multiple of 4). */
  BLOCK_M: number;
  /** Keys per tile (a multiple of 4). */
  BLOCK_N: number;
  /** Workgroup size of the entry point. */
  THREADS: number;
  /** Lanes per 4 x 4 score block (a power of two; > 1 needs subgroups); chosen by the subgroup policy unless forced. */
  PARTS?: number;
}
export type TileOverride = Partial<TileConfig>;
/** The flag attention.tiles, normalised: an override per kind (a bare override applies to every kind). */
export type TileOverrides = { readonly [K in TileKind]?: TileOverride };

const TILE_FIELDS = ['HEAD_DIM_MAX', 'BLOCK_M', 'BLOCK_N', 'THREADS', 'PARTS'] as const;

/** What the policy reads from the adapter. */
export interface AdapterCaps {
  workgroupStorage: number;
  maxInvocations: number;
  maxWorkgroupSizeX: number;
  isSoftware: boolean;
  hasF16: boolean;
  hasSubgroups: boolean;
  /** Whether invocations fill subgroups in index order (probed at init): the subgroup variants rely on it. */
  subgroupsInOrder: boolean;
  subgroupMinSize: number;
  subgroupMaxSize: number;
}

export function adapterCaps(kd: KilnDevice): AdapterCaps {
  const lim = kd.device.limits;
  return {
    workgroupStorage: lim.maxComputeWorkgroupStorageSize,
    maxInvocations: lim.maxComputeInvocationsPerWorkgroup,
    maxWorkgroupSizeX: lim.maxComputeWorkgroupSizeX,
    isSoftware: kd.info.isSoftware,
    hasF16: kd.hasF16,
    hasSubgroups: kd.hasSubgroups,
    subgroupsInOrder: kd.subgroupsInOrder,
    subgroupMinSize: kd.subgroupMinSize,
    subgroupMaxSize: kd.subgroupMaxSize,
  };
}

/** Row groups a workgroup of `kind` owns: query-row groups (forward, dq) or key groups (dkdv). */
function ownedGroups(kind: TileKind, c: { BLOCK_M: number; BLOCK_N: number }): number {
  return kind === 'dkdv' ? c.BLOCK_N / 4 : c.BLOCK_M / 4;
}

/** Vec4 columns of the accumulators per thread (DVN, DVNK, DVNQ in the kernels); the kernels hold at most 4. */
export function columnsPerThread(kind: TileKind, c: TileConfig): number {
  return Math.ceil(c.HEAD_DIM_MAX / 4 / (c.THREADS / ownedGroups(kind, c)));
}

/**
 * Workgroup memory (bytes) of an entry point: the kernels' header formulas (test/attention/flags.test.ts holds this
 * against the kernels' declarations). E = 16 bytes per vec4 tile element, 8 for the f16 variant's f16 tiles
 * (halfTiles); the u32 admissibility bits add 4 per weight vec4; every workgroup variable counts rounded up to 16 bytes
 * (WebGPU's rule), so the scalar nonfinite_seen adds 16.
 */
export function tileBytes(kind: TileKind, c: TileConfig, halfTiles: boolean): number {
  const rs = c.HEAD_DIM_MAX / 4 + 1;
  const e = halfTiles ? 8 : 16;
  const flag = 16;
  if (kind === 'forward') return e * (c.BLOCK_M + c.BLOCK_N) * rs + 16 * (c.BLOCK_N + c.BLOCK_N / 4) * (c.BLOCK_M / 4 + 1) + 4 * c.BLOCK_N * (c.BLOCK_M / 4 + 1) + flag;
  const t = e * rs * (2 * c.BLOCK_M + 2 * c.BLOCK_N);
  if (kind === 'dkdv') return t + 36 * c.BLOCK_M * (c.BLOCK_N / 4 + 1) + 8 * c.BLOCK_M + flag;
  return t + 20 * c.BLOCK_N * (c.BLOCK_M / 4 + 1) + 8 * c.BLOCK_M + flag;
}

/** The tile capacity for a head dim: 32, 64, 128 or 256 (the fused kernels' limit; larger needs impl 'reference'). */
export const FUSED_HEAD_DIM_LIMIT = 256;
function headDimCapacity(headDim: number): number {
  return headDim <= 32 ? 32 : headDim <= 64 ? 64 : headDim <= 128 ? 128 : 256;
}

const defaults = new Map<string, TileConfig>();

/**
 * The default tiles of an entry point, from the adapter's limits. Every kernel is register-blocked (4 x 4 score blocks
 * per thread): a workgroup owns `owned` rows (forward / dq: query rows BLOCK_M; dkdv: keys BLOCK_N) and streams tiles
 * of `streamed` rows of the other side. The first (owned, streamed) in order of decreasing tile area whose workgroup
 * memory fits is taken (larger tiles reuse each loaded row more often), with THREADS = (owned / 4) * (streamed / 4)
 * (one score block each), doubled while a thread would hold more than 4 vec4 columns per owned row in its accumulators
 * (DVN, the kernels' register capacity), or while the workgroup has fewer than 128 threads and DVN > 1 on a hardware
 * adapter (measured on an H100: occupancy beats fewer, fuller threads; the surplus threads idle in the score phase),
 * within min(256, maxComputeInvocationsPerWorkgroup).
 */
export function defaultTiles(kind: TileKind, headDim: number, halfTiles: boolean, caps: AdapterCaps): TileConfig {
  const maxThreads = Math.min(256, caps.maxInvocations, caps.maxWorkgroupSizeX);
  const HEAD_DIM_MAX = headDimCapacity(headDim);
  const key = `${kind}:${HEAD_DIM_MAX}:${caps.workgroupStorage}:${maxThreads}:${caps.isSoftware}:${halfTiles}`;
  const cached = defaults.get(key);
  if (cached) return { ...cached };
  const hd4 = HEAD_DIM_MAX / 4;
  // GPUs want occupancy (128 threads: measured on an H100); a CPU (lavapipe) runs the idle score-phase threads
  // for nothing, so there only the register capacity (DVN <= 4) adds threads.
  const minThreads = caps.isSoftware ? 0 : 128;
  const pairs = [[64, 64], [64, 32], [32, 64], [32, 32], [64, 16], [32, 16], [16, 32], [16, 16], [16, 8], [8, 8], [8, 4], [4, 4]];
  for (const [owned, streamed] of pairs) {
    const og = owned / 4;
    const dvn = (t: number) => Math.ceil(hd4 / (t / og));
    let THREADS = og * (streamed / 4);
    while ((dvn(THREADS) > 4 || (minThreads > THREADS && dvn(THREADS) > 1)) && THREADS * 2 <= maxThreads) THREADS *= 2;
    if (THREADS > maxThreads || dvn(THREADS) > 4) continue;
    const c = kind === 'dkdv' ? { HEAD_DIM_MAX, BLOCK_M: streamed, BLOCK_N: owned, THREADS } : { HEAD_DIM_MAX, BLOCK_M: owned, BLOCK_N: streamed, THREADS };
    if (tileBytes(kind, c, halfTiles) > caps.workgroupStorage) continue;
    defaults.set(key, c);
    return { ...c };
  }
  throw new DeviceError(`scaledDotProductAttention: head dimension ${headDim} does not fit this adapter's ${caps.workgroupStorage} bytes of workgroup memory`);
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** The kernels' constraints on the fields present in `c` (all of them for a complete config); throws ValueError. */
function checkStructure(kind: TileKind, c: TileOverride, where: string): void {
  for (const f of TILE_FIELDS) {
    const x = c[f];
    if (x === undefined) continue;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1) throw new ValueError(`${where} ${f} must be a positive integer, got ${JSON.stringify(x)}`);
    if ((f === 'HEAD_DIM_MAX' || f === 'BLOCK_M' || f === 'BLOCK_N') && x % 4 !== 0) throw new ValueError(`${where} ${f} = ${x} must be a multiple of 4`);
    if (f === 'PARTS' && !isPow2(x)) throw new ValueError(`${where} PARTS = ${x} must be a power of two`);
  }
  const { BLOCK_M, BLOCK_N, THREADS, HEAD_DIM_MAX } = c;
  if (BLOCK_M === undefined || BLOCK_N === undefined || THREADS === undefined) return;
  const og = ownedGroups(kind, { BLOCK_M, BLOCK_N });
  const lanes = (BLOCK_M / 4) * (BLOCK_N / 4) * (c.PARTS ?? 1);
  const owned = kind === 'dkdv' ? 'BLOCK_N / 4' : 'BLOCK_M / 4';
  if (THREADS % og !== 0) throw new ValueError(`${where} THREADS = ${THREADS} must be a multiple of ${owned} = ${og}`);
  if (THREADS < lanes) throw new ValueError(`${where} THREADS = ${THREADS} must be at least (BLOCK_M / 4) * (BLOCK_N / 4) * PARTS = ${lanes}`);
  if (HEAD_DIM_MAX === undefined) return;
  const dvn = columnsPerThread(kind, { HEAD_DIM_MAX, BLOCK_M, BLOCK_N, THREADS });
  if (dvn > 4) throw new ValueError(`${where} THREADS = ${THREADS} leaves each thread ${dvn} vec4 columns of HEAD_DIM_MAX = ${HEAD_DIM_MAX} (at most 4: THREADS >= ${og * Math.ceil(HEAD_DIM_MAX / 16)})`);
}

/** The adapter limits on the fields present in `c`; throws DeviceError. */
function checkLimits(kind: TileKind, c: TileOverride, halfTiles: boolean, caps: AdapterCaps, where: string): void {
  if (c.THREADS !== undefined) {
    const max = Math.min(caps.maxInvocations, caps.maxWorkgroupSizeX);
    if (c.THREADS > max) throw new DeviceError(`${where} THREADS = ${c.THREADS} exceeds this adapter's maxComputeInvocationsPerWorkgroup / maxComputeWorkgroupSizeX (${max})`);
  }
  const { HEAD_DIM_MAX, BLOCK_M, BLOCK_N, THREADS } = c;
  if (HEAD_DIM_MAX === undefined || BLOCK_M === undefined || BLOCK_N === undefined || THREADS === undefined) return;
  const bytes = tileBytes(kind, { HEAD_DIM_MAX, BLOCK_M, BLOCK_N, THREADS }, halfTiles);
  if (bytes > caps.workgroupStorage) {
    throw new DeviceError(`${where} HEAD_DIM_MAX = ${HEAD_DIM_MAX}, BLOCK_M = ${BLOCK_M}, BLOCK_N = ${BLOCK_N} need ${bytes} bytes of workgroup memory; this adapter's maxComputeWorkgroupStorageSize is ${caps.workgroupStorage}`);
  }
}

/**
 * Parses the flag attention.tiles: { BLOCK_M?, BLOCK_N?, THREADS?, HEAD_DIM_MAX?, PARTS? } for every kind, or
 * { forward?, dkdv?, dq? } of those. Checks the kernels' constraints on what is given; throws ValueError.
 */
export function parseTilesFlag(value: unknown): TileOverrides {
  const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObject(value)) throw new ValueError('a tile override object is expected');
  const keys = Object.keys(value);
  const perKind = keys.some((k) => (TILE_KINDS as readonly string[]).includes(k));
  const override = (x: unknown, where: string): TileOverride => {
    if (!isObject(x)) throw new ValueError(`${where} must be an object of ${TILE_FIELDS.join(', ')}`);
    for (const k of Object.keys(x)) if (!(TILE_FIELDS as readonly string[]).includes(k)) throw new ValueError(`${where} has an unknown field '${k}' (fields: ${TILE_FIELDS.join(', ')})`);
    const o: TileOverride = {};
    for (const f of TILE_FIELDS) if (x[f] !== undefined) o[f] = x[f] as number;
    return o;
  };
  const out: { [K in TileKind]?: TileOverride } = {};
  if (perKind) {
    for (const k of keys) if (!(TILE_KINDS as readonly string[]).includes(k)) throw new ValueError(`'${k}' next to per-kind overrides (give ${TILE_KINDS.join(', ')}, or the fields alone for every kind)`);
    for (const kind of TILE_KINDS) if (value[kind] !== undefined) out[kind] = override(value[kind], kind);
  } else {
    const o = override(value, 'the override');
    for (const kind of TILE_KINDS) out[kind] = o;
  }
  for (const kind of TILE_KINDS) if (out[kind]) checkStructure(kind, out[kind]!, `${kind}:`);
  return out;
}

/** attention.tiles against a device: THREADS within its limits, complete configs within its workgroup memory. */
export function checkTilesOnDevice(value: TileOverrides, kd: KilnDevice): void {
  const caps = adapterCaps(kd);
  for (const kind of TILE_KINDS) if (value[kind]) checkLimits(kind, value[kind]!, caps.hasF16, caps, `${kind}:`);
}

/**
 * The tiles an entry point runs with for head dims D and Dv: the adapter's default with the override's fields on top,
 * checked against every kernel constraint and adapter limit (ValueError / DeviceError naming the field and the limit).
 */
export function resolveTiles(fn: string, kind: TileKind, D: number, Dv: number, halfTiles: boolean, caps: AdapterCaps, override?: TileOverride): TileConfig {
  const headDim = Math.max(D, Dv);
  if (headDim > FUSED_HEAD_DIM_LIMIT && override?.HEAD_DIM_MAX === undefined) {
    throw new ShapeError(`${fn}: the fused kernel supports head dimensions up to ${FUSED_HEAD_DIM_LIMIT} (D ${D}, Dv ${Dv}); use impl: 'reference'`);
  }
  const c: TileConfig = { ...defaultTiles(kind, Math.min(headDim, FUSED_HEAD_DIM_LIMIT), halfTiles, caps), ...(override ?? {}) };
  const where = `${fn}: attention.tiles (${kind})`;
  if (c.HEAD_DIM_MAX < headDim) throw new ValueError(`${where} HEAD_DIM_MAX = ${c.HEAD_DIM_MAX} is below the head dimension max(D, Dv) = ${headDim}`);
  checkStructure(kind, c, where);
  checkLimits(kind, c, halfTiles, caps, where);
  return c;
}

/** Why the forward's subgroup variant cannot run with these tiles and PARTS (null: it can). */
function forwardSubgroupsBlocker(cfg: TileConfig, parts: number, caps: AdapterCaps): string | null {
  const CG = cfg.BLOCK_N / 4, RG = cfg.BLOCK_M / 4;
  const lanes = RG * CG * parts;
  if (!caps.hasSubgroups) return 'the adapter has no subgroups';
  if (!caps.subgroupsInOrder) return "the adapter's invocations do not fill subgroups in index order";
  if (!isPow2(CG) || !isPow2(parts)) return `BLOCK_N / 4 = ${CG} and PARTS = ${parts} must be powers of two`;
  if (CG * parts > caps.subgroupMinSize) return `BLOCK_N / 4 = ${CG} key groups x PARTS ${parts} exceed the smallest subgroup (${caps.subgroupMinSize})`;
  if (lanes > cfg.THREADS) return `${RG * CG} score blocks x PARTS ${parts} exceed THREADS = ${cfg.THREADS}`;
  if (lanes !== cfg.THREADS && lanes % caps.subgroupMaxSize !== 0) return `the ${lanes} score lanes are not whole subgroups of ${caps.subgroupMaxSize}`;
  return null;
}

/**
 * Whether the forward kernel folds its row maxima and sums with subgroup shuffles (attention_rows_subgroups.wgsl), and
 * how many lanes split each score block's head dim (PARTS): subgroups where the adapter has them, its invocations fill
 * subgroups in index order (probed at init), the CG = BLOCK_N / 4 key groups of a row group times PARTS fit in the
 * smallest subgroup, and the RG * CG * PARTS score lanes are whole subgroups (or the whole workgroup). PARTS > 1 on
 * hardware adapters only, where RG * CG < THREADS leaves threads idle in the score phase. `forced` (the flag
 * attention.subgroups) forces the variant (true where it cannot run is an error); cfg.PARTS may force PARTS.
 */
export function forwardSubgroups(cfg: TileConfig, caps: AdapterCaps, forced: boolean | undefined): { use: boolean; parts: number } {
  if (forced === false) {
    if ((cfg.PARTS ?? 1) > 1) throw new DeviceError(`scaledDotProductAttention: PARTS = ${cfg.PARTS} needs the subgroups variant, and attention.subgroups is false`);
    return { use: false, parts: 1 };
  }
  let parts = cfg.PARTS ?? 1;
  if (cfg.PARTS === undefined && !caps.isSoftware && forwardSubgroupsBlocker(cfg, 1, caps) === null) {
    while (forwardSubgroupsBlocker(cfg, parts * 2, caps) === null && parts * 2 <= cfg.HEAD_DIM_MAX / 4) parts *= 2;
  }
  const reason = forwardSubgroupsBlocker(cfg, parts, caps);
  if (reason && (forced === true || parts > 1)) throw new DeviceError(`scaledDotProductAttention: ${forced === true ? 'attention.subgroups = true' : `PARTS = ${parts}`}, but ${reason}`);
  return { use: reason === null, parts };
}

/**
 * Lanes per 4 x 4 score block in the backward kernels (PARTS, splitting the head dim; see attention_backward.wgsl):
 * the largest power of two that keeps blocks * PARTS within the workgroup, at most HEAD_DIM_MAX / 4 and the smallest
 * subgroup, where the adapter has subgroups that fill in index order, and with the score threads whole subgroups
 * (or the whole workgroup), on hardware adapters. 1 otherwise, and with attention.subgroups = false. cfg.PARTS may
 * force PARTS.
 */
export function backwardParts(cfg: TileConfig, caps: AdapterCaps, forced: boolean | undefined): number {
  const blocks = (cfg.BLOCK_M / 4) * (cfg.BLOCK_N / 4);
  const usable = forced !== false && caps.hasSubgroups && caps.subgroupsInOrder && caps.subgroupMinSize > 0;
  const uniform = (parts: number) => blocks * parts === cfg.THREADS || (blocks * parts) % caps.subgroupMaxSize === 0;
  if (cfg.PARTS !== undefined) {
    const P = cfg.PARTS;
    if (P === 1) return 1;
    const ok = usable && isPow2(P) && P <= caps.subgroupMinSize && blocks * P <= cfg.THREADS && uniform(P);
    if (!ok) throw new DeviceError(`scaledDotProductAttention: attention.tiles PARTS = ${P} needs subgroups in index order, a power of two <= the smallest subgroup (${caps.subgroupMinSize}) and ${blocks} blocks x PARTS <= THREADS (${cfg.THREADS}) as whole subgroups`);
    return P;
  }
  // On a CPU (lavapipe) idle score-phase threads cost nothing, and the fold does: D 128 forward+backward went from
  // 44 to 53 ms with PARTS 4. There only attention.tiles turns it on.
  if (!usable || caps.isSoftware) return 1;
  let parts = 1;
  while (parts * 2 <= caps.subgroupMinSize && parts * 2 <= cfg.HEAD_DIM_MAX / 4 && blocks * parts * 2 <= cfg.THREADS) parts *= 2;
  while (parts > 1 && !uniform(parts)) parts /= 2;
  return parts;
}

/**
 * How f16 attention runs: 'native' (the kernels' f16 variant: f16 loads and stores, f32 arithmetic; needs
 * shader-f16) or 'widen' (cast to f32, run the f32 kernels, round the output to f16; any adapter). `forced` is the flag
 * attention.f16; by default native where the adapter has shader-f16.
 */
export function f16Mode(caps: AdapterCaps, forced: 'native' | 'widen' | undefined): 'native' | 'widen' {
  if (forced === 'native' && !caps.hasF16) throw new DeviceError("scaledDotProductAttention: attention.f16 = 'native' needs the adapter feature shader-f16, which this device lacks");
  return forced ?? (caps.hasF16 ? 'native' : 'widen');
}
