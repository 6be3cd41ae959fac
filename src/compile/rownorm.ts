// Row-normalisation epilogues over a trace (runs after the matmul-epilogue pass): a layerNorm whose input is a
// matmul's result, and the dx of a layerNorm backward whose incoming gradient is one, fold into that matmul, which then
// runs as kernels/matmul_rownorm.wgsl (one thread per row), when the matmul is the scalar f32 kernel with N <= 32 (flag compile.layerNormMaxN, up to 64), the
// norm is over that last dim, and every view involved is contiguous.
//   forward: the matmul (with its bias and residual epilogues) still writes its result, the norm's input, which the
//     backward reads; it also writes y, mean and rstd as layerNorm's forward did. It runs where the norm ran.
//   backward: the matmul still writes the gradient g (the weight and bias gradients' dispatch reads it) and writes dx
//     as layerNorm's backward did, from the saved input, mean and rstd. It runs where that backward ran.
// The kernel follows layernorm.wgsl's sums and expressions term for term, so results equal the unfused chain's.
import { gpu } from '../gpu/device.js';
import { defineFlag } from '../gpu/flags.js';
import { ValueError } from '../errors.js';
import { grid1d, pipeline as kernelPipeline } from '../gpu/kernels.js';
import matmulKernel from '../launch/kernels/matmul.js';
import rownormKernel from '../launch/kernels/matmul_rownorm.js';
import layernormKernel from '../launch/kernels/layernorm.js';
import { contiguousStrides } from '../tensor/shape.js';
import type { RecBinding, RecCommand, RecDispatch } from './recording.js';
import { arr, nextUser, slotAt, slotUsers } from './epilogue.js';

/** A row's columns in one thread's registers (16 quads): the most the kernel can fold. */
const MAX_N = 64;
/**
 * The widest row folded by default: measured on lavapipe (fusion lab, interleaved rounds, 2026-12-03, load 2.7-3.0)
 * the fold wins at N = 32 (step 1.03x at M = 64 rows, 1.34x at M = 512) and loses at N = 64 (0.82x at M = 128, 0.90x
 * at M = 256, 0.87x at M = 512): one thread per row then carries 16 quads of accumulators. The flag
 * compile.layerNormMaxN sets it (1 to 64).
 */
const DEFAULT_MAX_N = 32;
export const layerNormMaxNFlag = defineFlag<number>({
  name: 'compile.layerNormMaxN',
  doc: "the widest row (normalized size) the compiler's layerNorm pass folds into a matmul",
  accepts: 'an integer from 1 to 64',
  defaultDoc: String(DEFAULT_MAX_N),
  parse: (v) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_N) throw new ValueError(`compile.layerNormMaxN: expects an integer from 1 to ${MAX_N}, got ${String(v)}`);
    return v;
  },
});
/** One thread per row (kernels/matmul_rownorm.wgsl WG). */
const ROWS_PER_WORKGROUP = 16;

/** Whether a layernorm.wgsl dispatch reads operand `w` ('x' or 'dy') as [rows, C] contiguous from offset 0. */
function contiguousRows(u: RecDispatch, w: 'x' | 'dy'): boolean {
  const v = u.values!;
  const C = Number(v.C);
  const lead = arr(v.shape).slice(0, Number(v.rank));
  const strides = arr(v[`${w}_strides`]).slice(0, lead.length);
  const want = contiguousStrides(lead).map((s) => s * C);
  return Number(v[`${w}_off`]) === 0 && (C === 1 || Number(v[`${w}_sc`]) === 1) && lead.every((s, k) => s === 1 || strides[k] === want[k]);
}

/** The norm's affine parameter `p` ('w' or 'b') read contiguously (or not at all). */
const contiguousParam = (u: RecDispatch, p: 'w' | 'b', on: boolean) => !on || Number(u.values!.C) === 1 || Number(u.values![`${p}_sc`]) === 1;

/** Commands with layerNorms folded into matmuls, and what was folded ('layerNorm', 'layerNorm_grad'), for explain(). */
export function foldRowNorms(commands: readonly RecCommand[]): { commands: RecCommand[]; folded: string[] } {
  const users = slotUsers(commands);
  const work: (RecCommand | null)[] = commands.slice();
  const folded: string[] = [];
  const limit = gpu().device.limits.maxStorageBuffersPerShaderStage;
  for (let i = 0; i < work.length; i++) {
    const d = work[i];
    if (!d || d.kind !== 'dispatch' || d.file !== matmulKernel.file || (d.entry !== 'main' && d.entry !== 'main_vec') || !d.values || !d.params) continue;
    if (d.constants.EPI_ACT || d.constants.EPI_ACT_GRAD || d.check || d.replay) continue;
    const M = Number(d.values.M), N = Number(d.values.N);
    const batchShape = arr(d.values.batch_shape);
    // The norm's weight and bias offsets travel in a_bs[0] and b_bs[0], free when batch_shape[0] is 1.
    if (N > (layerNormMaxNFlag.get() ?? DEFAULT_MAX_N) || batchShape[0] !== 1) continue;
    const m = slotAt(d, 3);
    const { k, movable } = nextUser(work, i, m, users);
    const u = k >= 0 ? work[k] : null;
    if (!movable || !u || u.kind !== 'dispatch' || u.file !== layernormKernel.file || !u.values || u.check || u.replay || u.seedFields.length) continue;
    const rows = M * batchShape.reduce((p, q) => p * q, 1);
    if (Number(u.values.rows) !== rows || Number(u.values.C) !== N) continue;
    const hasW = (u.constants.HAS_WEIGHT ?? 1) === 1;
    const hasB = (u.constants.HAS_BIAS ?? 1) === 1;
    let entry: 'main_ln' | 'main_ln_grad';
    let ln: Record<string, number>;
    if (u.entry === 'forward') {
      // y = layerNorm(the matmul's result)
      if (slotAt(u, 1) !== m || !contiguousRows(u, 'x') || !contiguousParam(u, 'w', hasW) || !contiguousParam(u, 'b', hasB)) continue;
      entry = 'main_ln';
      ln = { out_act: slotAt(u, 4), ln_weight: slotAt(u, 2), ln_bias: slotAt(u, 3), ln_mean: slotAt(u, 5), ln_rstd: slotAt(u, 6) };
    } else if (u.entry === 'backward') {
      // dx of a layerNorm whose incoming gradient is the matmul's result
      if (slotAt(u, 7) !== m || slotAt(u, 1) === m || !contiguousRows(u, 'dy') || !contiguousRows(u, 'x') || !contiguousParam(u, 'w', hasW)) continue;
      entry = 'main_ln_grad';
      ln = { out_act: slotAt(u, 10), ln_weight: slotAt(u, 2), ln_x: slotAt(u, 1), ln_saved_mean: slotAt(u, 8), ln_saved_rstd: slotAt(u, 9) };
    } else continue;
    const vec = d.entry === 'main_vec';
    const constants = {
      HAS_BIAS: d.constants.HAS_BIAS ?? 0, EPI_RESIDUAL: d.constants.EPI_RESIDUAL ?? 0, NQ: Math.ceil(N / 4), WG: ROWS_PER_WORKGROUP,
      LN_WEIGHT: hasW ? 1 : 0, LN_BIAS: hasB && entry === 'main_ln' ? 1 : 0, LN_EPS: Number(u.values.eps),
    };
    const entryName = vec ? (entry === 'main_ln' ? 'main_vec_ln' : 'main_vec_ln_grad') : entry;
    const p = kernelPipeline(rownormKernel, entryName, constants);
    const storage = p.info.bindings.filter((b) => b.kind !== 'uniform');
    if (storage.length > limit) continue;
    // The matmul's own bindings by name, then the norm's.
    const byName = new Map<string, number>(matmulKernel.entries[d.entry].bindings.filter((b) => b.kind !== 'uniform').map((b) => [b.name, slotAt(d, b.binding)]));
    for (const [name, slot] of Object.entries(ln)) byName.set(name, slot);
    const bindings: RecBinding[] = storage.map((b) => ({ binding: b.binding, slot: byName.get(b.name)!, writable: b.kind === 'storage' }));
    // Every written slot distinct and read by nothing else the dispatch binds (aliasing a writable binding is an error).
    const written = bindings.filter((b) => b.writable).map((b) => b.slot);
    if (bindings.some((b) => b.slot === undefined || b.slot < 0) || new Set(written).size !== written.length || bindings.some((b) => !b.writable && written.includes(b.slot))) continue;
    const params = d.params.slice();
    const view = new DataView(params.buffer, params.byteOffset, params.byteLength);
    const wOff = hasW ? Number(u.values.w_off) : 0;
    const bOff = hasB && entry === 'main_ln' ? Number(u.values.b_off) : 0;
    const field = (name: string) => d.fields.find((f) => f.name === name)!.offset;
    view.setUint32(field('a_bs'), wOff, true);
    view.setUint32(field('b_bs'), bOff, true);
    const name = entry === 'main_ln' ? 'layerNorm' : 'layerNorm_grad';
    work[k] = {
      ...d, pipeline: p.pipeline, layout: p.layout, pipelineKey: p.key, module: rownormKernel, file: rownormKernel.file, entry: entryName,
      constants, params, bindings, label: `${d.label}+${name}`, boundBytes: d.boundBytes + u.boundBytes,
      workgroups: grid1d(Math.ceil(M / ROWS_PER_WORKGROUP) * (rows / M)),
      values: { ...d.values, a_bs: [wOff, ...arr(d.values.a_bs).slice(1)], b_bs: [bOff, ...arr(d.values.b_bs).slice(1)] },
    };
    work[i] = null;
    folded.push(name);
  }
  return { commands: work.filter((c): c is RecCommand => c !== null), folded };
}
