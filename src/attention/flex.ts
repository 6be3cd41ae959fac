// F.flexAttention and createBlockMask: programmable fused attention, as PyTorch's flex_attention. The mods are traced
// once per call into an Expr graph (src/ops/expr.ts), lowered to WGSL (codegen.ts) and compiled into the fused forward
// and backward kernels; kernels are cached by the graph's structure, so a training loop compiles each distinct mod
// once. Everything is validated and traced before anything is allocated or encoded.
import { DeviceError, KilnError, ShapeError, ValueError, checkOptions } from '../errors.js';
import { gpu } from '../gpu/device.js';
import { isGradEnabled } from '../autograd/mode.js';
import { type ExprNode, Expr, ExprTrace, withTrace } from '../ops/expr.js';
import type { Tensor } from '../ops/tensor.js';
import { tensor, empty } from '../ops/creation.js';
import { toDType } from '../ops/elementwise.js';
import { FLEX_IDLE_PARAMS, flexBlockMask, flexCaptureReduce, flexModules } from '../launch/attention.js';
import { type FlexCode, flexConstWords, generateFlex } from './codegen.js';
import { type FlexRun, NO_FLEX_PARAMS, captureScratch, fusedAttention } from './fused.js';
import { type AttentionPlan, planAttention } from './plan.js';

/** scoreMod(score, b, h, qIdx, kvIdx) => the new score (f32 Expr, or a number). */
export type ScoreMod = (score: Expr, b: Expr, h: Expr, qIdx: Expr, kvIdx: Expr) => Expr | number;
/** maskMod(b, h, qIdx, kvIdx) => true where the query may attend the key (bool Expr, or a boolean). */
export type MaskMod = (b: Expr, h: Expr, qIdx: Expr, kvIdx: Expr) => Expr | boolean;

export interface FlexAttentionOptions {
  scoreMod?: ScoreMod | null;
  maskMod?: MaskMod | null;
  blockMask?: BlockMask | null;
  scale?: number;
  dropoutP?: number;
  seed?: number;
  /**
   * The absolute position of the first query: the mods see qIdx = queryOffset + i for query row i (default 0, as
   * PyTorch's). Incremental decoding through a KVCache passes the cache's length before the append (Nk - Nq), so
   * causal, offset and position-bias mods give the same scores as over the full sequence.
   */
  queryOffset?: number;
}

const FLEX_KEYS = ['scoreMod', 'maskMod', 'blockMask', 'scale', 'dropoutP', 'seed', 'queryOffset'] as const;
const BLOCK_KEYS = ['blockSize'] as const;
/** createBlockMask's default block size (PyTorch's): a multiple of every tile the fused kernels choose. */
export const DEFAULT_BLOCK_SIZE = 128;

interface Traced {
  trace: ExprTrace;
  score: ExprNode | null;
  mask: ExprNode | null;
}

function traceMods(fn: string, scoreMod: ScoreMod | null, maskMod: MaskMod | null): Traced {
  const trace = new ExprTrace(fn);
  let score: ExprNode | null = null;
  let mask: ExprNode | null = null;
  withTrace(trace, () => {
    if (maskMod) {
      trace.mod = 'maskMod';
      const r = maskMod(trace.arg(1, 'i32'), trace.arg(2, 'i32'), trace.arg(3, 'i32'), trace.arg(4, 'i32'));
      mask = resultNode(fn, 'maskMod', trace, r, 'bool');
    }
    if (scoreMod) {
      trace.mod = 'scoreMod';
      const r = scoreMod(trace.arg(0, 'f32'), trace.arg(1, 'i32'), trace.arg(2, 'i32'), trace.arg(3, 'i32'), trace.arg(4, 'i32'));
      score = resultNode(fn, 'scoreMod', trace, r, 'f32');
    }
  });
  return { trace, score, mask };
}

function resultNode(fn: string, mod: string, trace: ExprTrace, r: unknown, want: 'f32' | 'bool'): ExprNode {
  if (want === 'bool' && typeof r === 'boolean') return trace.constant(r, 'bool').node;
  if (want === 'f32' && typeof r === 'number') return trace.constant(r, 'f32').node;
  if (!(r instanceof Expr)) {
    const what = r === undefined ? 'undefined (did the mod forget to return?)' : r === null ? 'null' : typeof r === 'object' ? `a ${(r as object).constructor?.name ?? 'object'} (a Tensor? mods compute on their Expr arguments; read tensors with t.at(...))` : typeof r;
    throw new ValueError(`${fn}: ${mod} must return ${want === 'bool' ? 'a bool Expr (a comparison)' : 'an f32 Expr (the new score)'}, got ${what}`);
  }
  trace.check(r, mod);
  if (want === 'bool' && r.kind !== 'bool') throw new ValueError(`${fn}: ${mod} must return a bool Expr (true = may attend), got ${r.kind} ${r.toString()}`);
  if (want === 'f32' && r.kind === 'bool') throw new ValueError(`${fn}: ${mod} must return the new score (f32), got bool ${r.toString()} (masks belong in maskMod)`);
  return r.kind === 'i32' ? trace.node('to', 'f32', [r.node]) : r.node;
}

function checkMod(fn: string, name: string, m: unknown): void {
  if (m !== undefined && m !== null && typeof m !== 'function') throw new ValueError(`${fn}: ${name} must be a function, got ${typeof m}`);
}

function blockSizes(fn: string, blockSize: unknown): [number, number] {
  const bs = blockSize ?? DEFAULT_BLOCK_SIZE;
  const pair = typeof bs === 'number' ? [bs, bs] : Array.isArray(bs) && bs.length === 2 ? bs : null;
  if (!pair || !pair.every((x) => Number.isInteger(x) && x > 0 && x % 4 === 0)) {
    throw new ValueError(`${fn}: blockSize must be a positive multiple of 4 or [queryBlock, keyBlock], got ${JSON.stringify(blockSize)}`);
  }
  return [pair[0], pair[1]];
}

/** Words of the block-mask lists: kv counts, kv indices, q counts, q indices. */
function listLayout(rows: number, nqb: number, nkb: number) {
  const kvIdx = rows * nqb;
  const qCnt = kvIdx + rows * nqb * nkb;
  const qIdx = qCnt + rows * nkb;
  return { kvIdx, qCnt, qIdx, words: qIdx + rows * nkb * nqb };
}

/**
 * Which (query block, key block) pairs of [B, H, Nq, Nk] hold an admissible entry under a maskMod, and which are full;
 * made by createBlockMask on the GPU. flexAttention visits only the listed blocks (and skips the maskMod inside full
 * ones). B or H 1 broadcasts (null at creation).
 */
export class BlockMask {
  /** @internal */
  constructor(
    readonly maskMod: MaskMod,
    readonly B: number,
    readonly H: number,
    readonly Nq: number,
    readonly Nk: number,
    readonly blockSize: readonly [number, number],
    /** The kernels' lists (u32 words as i32; layout in kernels/attention_flex.wgsl). */
    readonly data: Tensor,
  ) {}

  get numQueryBlocks(): number {
    return Math.ceil(this.Nq / this.blockSize[0]);
  }

  get numKeyBlocks(): number {
    return Math.ceil(this.Nk / this.blockSize[1]);
  }

  /** Counts of visited and full blocks (reads back): visited / total is the share of work flexAttention does. */
  async stats(): Promise<{ total: number; visited: number; full: number }> {
    const rows = this.B * this.H, nqb = this.numQueryBlocks, nkb = this.numKeyBlocks;
    const words = Int32Array.from(await this.data.toArray());
    const lay = listLayout(rows, nqb, nkb);
    let visited = 0, full = 0;
    for (let r = 0; r < rows * nqb; r++) {
      const n = words[r];
      visited += n;
      for (let t = 0; t < n; t++) if (words[lay.kvIdx + r * nkb + t] < 0) full++;
    }
    return { total: rows * nqb * nkb, visited, full };
  }

  toString(): string {
    return `BlockMask([${this.B}, ${this.H}, ${this.Nq}, ${this.Nk}], blockSize [${this.blockSize.join(', ')}])`;
  }

  dispose(): void {
    this.data.dispose();
  }
}

function captureLabel(fn: string, code: FlexCode): string {
  return `${fn}: a captured-tensor read (reads: ${code.sites.join('; ') || 'none'}; position = [read, dim])`;
}

function flexConsts(traced: Traced, code: FlexCode, gradOffsets: number[], queryOffset = 0): Tensor {
  const words = flexConstWords(traced.trace, code, gradOffsets, queryOffset);
  return tensor(new Int32Array(words.buffer), { dtype: 'i32' });
}

/**
 * The block mask of maskMod over [B, H, Nq, Nk] (B or H null: broadcast), in blocks of blockSize (default 128, or
 * [queryBlock, keyBlock]): maskMod is evaluated on the GPU for every entry, once.
 */
export function createBlockMask(maskMod: MaskMod, B: number | null, H: number | null, Nq: number, Nk: number, options?: { blockSize?: number | [number, number] }): BlockMask {
  const fn = 'createBlockMask';
  const opts = checkOptions(fn, options, BLOCK_KEYS);
  if (typeof maskMod !== 'function') throw new ValueError(`${fn}: maskMod must be a function, got ${typeof maskMod}`);
  for (const [name, x, nullable] of [['B', B, true], ['H', H, true], ['Nq', Nq, false], ['Nk', Nk, false]] as const) {
    if (x === null && nullable) continue;
    if (!Number.isInteger(x) || (x as number) < 1) throw new ValueError(`${fn}: ${name} must be a positive integer${nullable ? ' or null' : ''}, got ${x}`);
  }
  const [qbs, kbs] = blockSizes(fn, opts.blockSize);
  const Bm = B ?? 1, Hm = H ?? 1;
  const traced = traceMods(fn, null, maskMod);
  const code = generateFlex(traced.trace, null, traced.mask, []);
  const rows = Bm * Hm, nqb = Math.ceil(Nq / qbs), nkb = Math.ceil(Nk / kbs);
  const lay = listLayout(rows, nqb, nkb);
  if (lay.words >= 2 ** 31) throw new DeviceError(`${fn}: ${rows * nqb * nkb} blocks are too many; use a larger blockSize`);
  const modules = flexModules(code);
  const consts = flexConsts(traced, code, []);
  const status = empty([rows * nqb * nkb], 'i32');
  const lists = empty([lay.words], 'i32');
  try {
    flexBlockMask(fn, {
      modules, consts, captures: traced.trace.captures.map((c) => c.tensor), checkLabel: captureLabel(fn, code), checkShape: [Math.max(1, code.sites.length), 8],
    }, {
      ...FLEX_IDLE_PARAMS, Nq, Nk, qbs, kbs, nqb, nkb, rows, Hm, kv_idx: lay.kvIdx, q_cnt: lay.qCnt, q_idx: lay.qIdx, check_id: 0,
    }, { status, lists }, { blocks: rows * nqb * nkb, lists: rows * nqb + rows * nkb });
  } catch (e) {
    lists.dispose();
    throw e;
  } finally {
    status.dispose();
    consts.dispose();
  }
  return new BlockMask(maskMod, Bm, Hm, Nq, Nk, [qbs, kbs], lists);
}

function checkBlockMask(fn: string, bm: BlockMask, p: AttentionPlan): Record<string, number> {
  if (!(bm instanceof BlockMask)) throw new ValueError(`${fn}: blockMask must be a BlockMask from createBlockMask`);
  bm.data.buf(fn);
  const Hq = p.Hq, Bt = p.Bt;
  if (bm.Nq !== p.Nq || bm.Nk !== p.Nk) throw new ShapeError(`${fn}: blockMask ${bm} was made for Nq ${bm.Nq}, Nk ${bm.Nk}, but q and k have Nq ${p.Nq}, Nk ${p.Nk}`);
  if (bm.B !== 1 && bm.B !== Bt) throw new ShapeError(`${fn}: blockMask ${bm} has B ${bm.B}, but the batch is ${Bt} (make it with B ${Bt} or null)`);
  if (bm.H !== 1 && bm.H !== Hq) throw new ShapeError(`${fn}: blockMask ${bm} has H ${bm.H}, but q has ${Hq} heads (make it with H ${Hq} or null)`);
  const [qbs, kbs] = bm.blockSize;
  const f = p.fused!;
  const tiles: [string, { BLOCK_M: number; BLOCK_N: number }][] = [['forward', f.forward.constants]];
  if (f.backward) tiles.push(['dq', f.backward.dq.constants], ['dkdv', f.backward.dkdv.constants]);
  for (const [pass, c] of tiles) {
    if (qbs % c.BLOCK_M !== 0 || kbs % c.BLOCK_N !== 0) {
      throw new ValueError(`${fn}: blockMask blocks [${qbs}, ${kbs}] must be multiples of the ${pass} kernel's tiles [${c.BLOCK_M}, ${c.BLOCK_N}] on this adapter (use createBlockMask's default blockSize ${DEFAULT_BLOCK_SIZE})`);
    }
  }
  const rows = bm.B * bm.H, nqb = bm.numQueryBlocks, nkb = bm.numKeyBlocks;
  const lay = listLayout(rows, nqb, nkb);
  return {
    bm_on: 1, bm_qbs: qbs, bm_kbs: kbs, bm_nqb: nqb, bm_nkb: nkb, bm_sb: bm.B > 1 ? bm.H : 0, bm_sh: bm.H > 1 ? 1 : 0,
    bm_kv_idx: lay.kvIdx, bm_q_cnt: lay.qCnt, bm_q_idx: lay.qIdx,
  };
}

/** i32 a * qIdx + b * kvIdx + c, or null: a linear form of the query and key positions (for causalDiagonal). */
type Linear = { a: number; b: number; c: number };

function linearForm(trace: ExprTrace, n: ExprNode): Linear | null {
  if (n.kind !== 'i32') return null;
  const ab = (x: ExprNode, y: ExprNode, sign: number): Linear | null => {
    const l = linearForm(trace, x), r = linearForm(trace, y);
    return l && r ? { a: l.a + sign * r.a, b: l.b + sign * r.b, c: l.c + sign * r.c } : null;
  };
  switch (n.op) {
    case 'arg': return n.slot === 3 ? { a: 1, b: 0, c: 0 } : n.slot === 4 ? { a: 0, b: 1, c: 0 } : null;
    case 'const': return { a: 0, b: 0, c: trace.consts[n.slot] };
    case 'add': return ab(n.args[0], n.args[1], 1);
    case 'sub': return ab(n.args[0], n.args[1], -1);
    case 'neg': {
      const l = linearForm(trace, n.args[0]);
      return l && { a: -l.a, b: -l.b, c: -l.c };
    }
    default: return null;
  }
}

/**
 * d when the maskMod implies kvIdx <= qIdx + d (a conjunct of the form j <= i + d, i - j >= -d, j < i + d + 1, ...,
 * over i32 positions and constants), else null. The fused kernels then also apply their built-in causal rule with that
 * diagonal, which skips the key tiles past it (and, in the backward, the query tiles before it) as plain causal
 * attention does; where the maskMod holds, the rule holds, so results are unchanged. The value comes from the call's
 * constants, so it costs no compile.
 */
function causalDiagonal(trace: ExprTrace, mask: ExprNode | null): number | null {
  if (!mask) return null;
  if (mask.op === 'logicalAnd') {
    const ds = mask.args.map((x) => causalDiagonal(trace, x)).filter((d): d is number => d !== null);
    return ds.length ? Math.min(...ds) : null;
  }
  const [x, y] = mask.args;
  if (!['le', 'lt', 'ge', 'gt'].includes(mask.op) || x.kind !== 'i32' || y.kind !== 'i32') return null;
  // L <= 0 (or L < 0) with L = x - y for le / lt, y - x for ge / gt.
  const l = mask.op === 'le' || mask.op === 'lt' ? linearForm(trace, x) : linearForm(trace, y);
  const r = mask.op === 'le' || mask.op === 'lt' ? linearForm(trace, y) : linearForm(trace, x);
  if (!l || !r) return null;
  const L = { a: l.a - r.a, b: l.b - r.b, c: l.c - r.c };
  // -qIdx + kvIdx + c <= 0, i.e. kvIdx <= qIdx - c (strict: kvIdx <= qIdx - c - 1).
  if (L.a !== -1 || L.b !== 1) return null;
  const d = -L.c - (mask.op === 'lt' || mask.op === 'gt' ? 1 : 0);
  return Number.isSafeInteger(d) && Math.abs(d) < 2 ** 30 ? d : null;
}

const MAX_CAPTURE_BINDINGS = (): number => Math.max(0, gpu().device.limits.maxStorageBuffersPerShaderStage - 13);

/**
 * Attention with programmable scores and masks, fused (as PyTorch's flex_attention): softmax over the admissible keys
 * of scoreMod(scale * q.k, b, h, i, j), admissible where maskMod(b, h, i, j) (and the blockMask's blocks) hold, times v.
 * Shapes, GQA, broadcasting, dropout and the f16 handling are scaledDotProductAttention's; with no mods it equals it.
 */
export function flexAttention(q: Tensor, k: Tensor, v: Tensor, options?: FlexAttentionOptions): Tensor {
  const fn = 'flexAttention';
  const opts = checkOptions(fn, options, FLEX_KEYS);
  checkMod(fn, 'scoreMod', opts.scoreMod);
  checkMod(fn, 'maskMod', opts.maskMod);
  const bm = opts.blockMask ?? null;
  if (bm !== null && !(bm instanceof BlockMask)) throw new ValueError(`${fn}: blockMask must be a BlockMask from createBlockMask, got ${typeof bm}`);
  if (bm && opts.maskMod && opts.maskMod !== bm.maskMod) {
    throw new ValueError(`${fn}: maskMod and blockMask.maskMod differ; the block mask's maskMod is the mask (pass the maskMod to createBlockMask only, or the same function to both)`);
  }
  const queryOffset = opts.queryOffset ?? 0;
  if (!Number.isInteger(queryOffset) || queryOffset < 0 || queryOffset >= 2 ** 31) {
    throw new ValueError(`${fn}: queryOffset must be a non-negative integer (the absolute position of the first query), got ${String(opts.queryOffset)}`);
  }
  if (bm && queryOffset !== 0) {
    throw new ValueError(`${fn}: a blockMask lists blocks at query positions 0..Nq-1, so it does not combine with queryOffset ${queryOffset}; decode without a block mask`);
  }
  const maskMod = opts.maskMod ?? bm?.maskMod ?? null;
  const traced = traceMods(fn, opts.scoreMod ?? null, maskMod);
  const caps = traced.trace.captures;
  if (caps.length > MAX_CAPTURE_BINDINGS()) {
    const limit = gpu().device.limits.maxStorageBuffersPerShaderStage;
    throw new DeviceError(`${fn}: the mods capture ${caps.length} tensors, over this adapter's limit of ${MAX_CAPTURE_BINDINGS()} captured tensors (maxStorageBuffersPerShaderStage ${limit}, of which the attention kernels use 13); stack them into one tensor (t.at reads any rank)`);
  }
  // Gradients reach captured f32 tensors that require grad and are read by the score mod.
  const scoreSlots = new Set(traced.trace.reads.filter((r) => r.mod === 'scoreMod').map((r) => r.capture));
  const gradSlots = isGradEnabled() ? caps.map((c, s) => (c.dtype === 'f32' && c.tensor.requiresGrad && scoreSlots.has(s) ? s : -1)).filter((s) => s >= 0) : [];
  const p = planAttention(fn, q, k, v, { scale: opts.scale, dropoutP: opts.dropoutP, seed: opts.seed }, 'fused', gradSlots.map((s) => caps[s].tensor), true);
  if (!p.fused) throw new KilnError(`${fn}: internal: no fused plan`);
  const code = generateFlex(traced.trace, traced.score, traced.mask, gradSlots);
  const bmParams = bm ? checkBlockMask(fn, bm, p) : {};
  const gradCaptures: { tensor: Tensor; offset: number }[] = [];
  const gradOffsets: number[] = [];
  let gradTotal = 0;
  for (const s of gradSlots) {
    gradOffsets[s] = gradTotal;
    gradCaptures.push({ tensor: caps[s].tensor, offset: gradTotal });
    gradTotal += caps[s].tensor.numel;
  }
  if (gradTotal >= 2 ** 24) throw new DeviceError(`${fn}: captured tensors with gradients hold ${gradTotal} elements; the fused backward accumulates at most 2^24`);
  if (gradCaptures.length && p.fused.backward) {
    const words = captureScratch(p, code.gradSites, gradTotal).words;
    const max = Math.min(gpu().device.limits.maxStorageBufferBindingSize, gpu().device.limits.maxBufferSize);
    if (words * 4 > max) {
      throw new DeviceError(`${fn}: the captured gradients need ${words * 4} bytes of per-tile partial sums (${gradTotal} elements per query tile), over this adapter's ${max} bytes per binding; capture smaller tensors or fewer query tiles`);
    }
  }
  // A causal conjunct of the maskMod lets the kernels skip the tiles past the diagonal (in the kernel's query rows).
  const diag = causalDiagonal(traced.trace, traced.mask);
  const causalParams: Record<string, number> = diag === null ? {} : { causal: 1, causal_diag: diag + queryOffset };
  // Validated: from here on, GPU work.
  const modules = flexModules(code);
  const consts = flexConsts(traced, code, gradOffsets, queryOffset);
  try {
    const run: FlexRun = {
      bind: { modules, consts, captures: caps.map((c) => c.tensor), checkLabel: captureLabel(fn, code), checkShape: [Math.max(1, code.sites.length), 8] },
      params: { ...NO_FLEX_PARAMS, ...bmParams, ...causalParams },
      blockMask: bm ? bm.data : null,
      gradCaptures,
      gradTotal,
      gradSites: code.gradSites,
      reduceCaptures: flexCaptureReduce,
    };
    if (!p.widenInputs) return fusedAttention(q, k, v, null, p, run);
    const [qc, kc, vc] = [q, k, v].map((t) => toDType(t, 'f32'));
    try {
      const out = fusedAttention(qc, kc, vc, null, p, run);
      const o16 = toDType(out, 'f16');
      out.dispose();
      return o16;
    } finally {
      for (const t of new Set([qc, kc, vc])) t.dispose();
    }
  } finally {
    consts.dispose();
  }
}

/** @internal For tests: a mod's generated WGSL and structure key. */
export function flexSource(scoreMod: ScoreMod | null, maskMod: MaskMod | null): FlexCode {
  const traced = traceMods('flexSource', scoreMod, maskMod);
  return generateFlex(traced.trace, traced.score, traced.mask, []);
}


