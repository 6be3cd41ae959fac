// Matmul epilogues over a trace (runs before elementwise fusion): an elementwise op that reads a matmul's result is
// folded into the matmul's store (kernels/matmul.wgsl EPI_*), so the result is not written and read back.
//   residual: y = matmul(...) + r (r contiguous, as a residual connection adds it); the matmul's own result is not
//     kept (it must be read by that add only). The folded matmul runs where the add ran.
//   activation: y = relu(matmul(...)) or gelu(...): the matmul writes both its result (the activation's backward
//     reads it) and the activation (out_act). The folded matmul runs where the matmul ran.
//   activation gradient: dx = relu'(x) * matmul(...) (or gelu'): the matmul's result is the incoming gradient, read by
//     that op only, x contiguous. The folded matmul runs where the gradient op ran.
// The epilogue evaluates the same expressions as elementwise.wgsl, in the same order, so results are bit-identical.
import { pipeline as kernelPipeline } from '../gpu/kernels.js';
import matmulKernel from '../launch/kernels/matmul.js';
import elementwise from '../launch/kernels/elementwise.js';
import dtypes from '../launch/kernels/dtypes.js';
import { contiguousStrides } from '../tensor/shape.js';
import type { RecCommand, RecDispatch, RecSlot } from './recording.js';
import { writes } from './fuse.js';

const F32 = dtypes.constants.DT_F32;
const BINARY_ADD = elementwise.constants.BINARY_ADD;
const ACT = new Map([[elementwise.constants.UNARY_RELU, { code: 1, name: 'relu' }], [elementwise.constants.UNARY_GELU, { code: 2, name: 'gelu' }]]);
/** Commands past the matmul searched for the op to fold (past commands that neither touch its result nor write what it reads). */
const LOOKAHEAD = 8;

export const arr = (v: unknown): number[] => (Array.isArray(v) ? (v as number[]) : [Number(v)]);

/** Whether an elementwise dispatch reads operand `w` (or writes, for 'o') contiguously over its own shape from `off`. */
function contiguousView(d: RecDispatch, w: 'a' | 'b' | 'c' | 'o', off?: number): boolean {
  const v = d.values!;
  const shape = arr(v.shape).slice(0, Number(v.rank));
  const strides = arr(v[`${w}_strides`]).slice(0, shape.length);
  const want = contiguousStrides(shape);
  if (off !== undefined && Number(v[`${w}_off`]) !== off) return false;
  return shape.every((s, k) => s === 1 || strides[k] === want[k]);
}

export const slotAt = (d: RecDispatch, binding: number) => d.bindings.find((b) => b.binding === binding)?.slot ?? -1;

/** Per slot, the indices of the commands that bind, copy, clear or upload it, in order. */
export function slotUsers(commands: readonly RecCommand[]): Map<number, number[]> {
  const users = new Map<number, number[]>();
  commands.forEach((c, i) => {
    const slotsOf = c.kind === 'dispatch' ? c.bindings.map((b) => b.slot) : c.kind === 'copy' ? [c.src, c.dst] : c.kind === 'clear' || c.kind === 'upload' ? [c.slot] : [];
    for (const s of slotsOf) {
      const list = users.get(s);
      if (!list) users.set(s, [i]);
      else if (list[list.length - 1] !== i) list.push(i);
    }
  });
  return users;
}

/**
 * The first command after the matmul at `i` that touches its result `m` (-1 if none within LOOKAHEAD commands that
 * neither touch it nor write what the matmul reads), and whether the matmul may move there (nothing between writes
 * what it reads).
 */
export function nextUser(work: readonly (RecCommand | null)[], i: number, m: number, users: Map<number, number[]>): { k: number; movable: boolean } {
  const d = work[i] as RecDispatch;
  const reads = new Set(d.bindings.filter((b) => !b.writable).map((b) => b.slot));
  let k = -1;
  let skipped = 0;
  for (let j = i + 1; j < work.length; j++) {
    const c = work[j];
    if (!c || c.kind === 'hook' || c.kind === 'draw') continue;
    if (users.get(m)!.includes(j)) {
      k = j;
      break;
    }
    if (++skipped > LOOKAHEAD || writes(c).some((w) => reads.has(w))) break;
  }
  const movable = k >= 0 && work.slice(i + 1, k).every((c) => !c || !writes(c).some((w) => reads.has(w)));
  return { k, movable };
}

/** The matmul with its epilogue switched on: new constants, bindings rebound, res_off written into its params. */
function withEpilogue(d: RecDispatch, constants: Record<string, number>, rebind: Map<number, number>, resOff: number, name: string): RecDispatch {
  const all = { ...d.constants, ...constants };
  const p = kernelPipeline(matmulKernel, d.entry as 'main' | 'main_vec', all);
  const params = d.params ? d.params.slice() : null;
  const field = d.fields.find((f) => f.name === 'res_off');
  if (params && field) new DataView(params.buffer, params.byteOffset).setUint32(field.offset, resOff, true);
  return {
    ...d, pipeline: p.pipeline, layout: p.layout, pipelineKey: p.key, constants: all, params, label: `${d.label}+${name}`,
    values: d.values ? { ...d.values, res_off: resOff } : d.values,
    bindings: d.bindings.map((b) => (rebind.has(b.binding) ? { binding: b.binding, slot: rebind.get(b.binding)!, writable: b.binding === 3 || b.binding === 7 } : b)),
  };
}

/** Commands with matmul epilogues folded in, and the names of what was folded (for explain()). */
export function foldEpilogues(commands: readonly RecCommand[], slots: readonly RecSlot[]): { commands: RecCommand[]; folded: string[] } {
  const users = slotUsers(commands);
  const temp = (s: number) => s >= 0 && slots[s].origin === 'temp' && slots[s].releasedAt !== null && !!slots[s].pb;
  const work: (RecCommand | null)[] = commands.slice();
  const folded: string[] = [];
  for (let i = 0; i < work.length; i++) {
    const d = work[i];
    if (!d || d.kind !== 'dispatch' || d.file !== matmulKernel.file || (d.entry !== 'main' && d.entry !== 'main_vec') || !d.values) continue;
    if (d.constants.EPI_RESIDUAL || d.constants.EPI_ACT || d.constants.EPI_ACT_GRAD || d.check || d.replay) continue;
    const m = slotAt(d, 3);
    if (!temp(m)) continue;
    const reads = new Set(d.bindings.filter((b) => !b.writable).map((b) => b.slot));
    // The first command after the matmul that touches its result; the matmul may move there when `movable`.
    const { k, movable } = nextUser(work, i, m, users);
    const u = k >= 0 ? work[k] : null;
    if (!u || u.kind !== 'dispatch' || u.file !== 'elementwise.wgsl' || !u.values || u.check || u.replay || u.seedFields.length) continue;
    if ((u.constants.A_DT ?? F32) !== F32 || (u.constants.OUT_DT ?? F32) !== F32) continue;
    const n = Number(u.values.n);
    const M = Number(d.values.M), N = Number(d.values.N);
    const batch = arr(d.values.batch_shape).reduce((p, q) => p * q, 1);
    if (n !== M * N * batch || !contiguousView(u, 'o', 0)) continue;
    const y = slotAt(u, 4);
    // (A buffer both read and written by one dispatch is an aliasing error in WebGPU.)
    if (y < 0 || users.get(y)![0] !== k || reads.has(y)) continue;
    if (u.entry === 'binary' && u.constants.OP === BINARY_ADD) {
      // residual: the matmul's result read (contiguously) by this add only, the other operand contiguous.
      const a = slotAt(u, 1), b = slotAt(u, 2);
      const [mine, other] = a === m ? (['a', 'b'] as const) : b === m ? (['b', 'a'] as const) : [null, null];
      if (!mine || a === b || users.get(m)!.length !== 2 || !contiguousView(u, mine, 0) || !contiguousView(u, other)) continue;
      const r = slotAt(u, other === 'a' ? 1 : 2);
      if (r === y) continue;
      // The matmul moves to the add: what it reads must not change on the way.
      if (!movable) continue;
      work[k] = withEpilogue(d, { EPI_RESIDUAL: 1 }, new Map([[3, y], [6, r]]), Number(u.values[`${other}_off`]), 'residual');
      work[i] = null;
      folded.push('residual');
    } else if (u.entry === 'unary_backward' && ACT.has(u.constants.OP ?? -1) && (u.constants.C_DT ?? F32) === F32) {
      // activation gradient: the matmul's result is the incoming gradient (c), read by this op only; the
      // activation's input (a) contiguous. The folded matmul runs where the gradient op ran.
      const x = slotAt(u, 1);
      if (slotAt(u, 3) !== m || x === m || users.get(m)!.length !== 2 || !contiguousView(u, 'c', 0) || !contiguousView(u, 'a')) continue;
      if (!movable) continue;
      const act = ACT.get(u.constants.OP!)!;
      work[k] = withEpilogue(d, { EPI_ACT_GRAD: act.code }, new Map([[3, y], [6, x]]), Number(u.values.a_off), `${act.name}_grad`);
      work[i] = null;
      folded.push(`${act.name}_grad`);
    } else if (u.entry === 'unary' && ACT.has(u.constants.OP ?? -1)) {
      if (!contiguousView(u, 'a', 0)) continue;
      const act = ACT.get(u.constants.OP!)!;
      // The activation is written where the matmul runs: nothing may use its buffer before the unary op did.
      work[i] = withEpilogue(d, { EPI_ACT: act.code }, new Map([[7, y]]), 0, act.name);
      work[k] = null;
      folded.push(act.name);
    }
  }
  return { commands: work.filter((c): c is RecCommand => c !== null), folded };
}
