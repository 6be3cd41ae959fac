// Elementwise fusion over a trace: a run of adjacent elementwise dispatches (unary, binary, unary_backward of
// kernels/elementwise.wgsl, in f32) where each one's result is a temporary read only by the next becomes one generated
// kernel, `fused.<op>_<op>_...`, that keeps the intermediates in registers. The generated text is elementwise.wgsl
// itself (so every op's forward and backward is the hand-written, tested one) plus, per op of the chain, a copy of
// unary_f / binary_f / unary_grad_f with its op code and scalars written in as constants (an override cannot say
// "this op, then that one"), and one entry point. It binds the same a, b, c, out as elementwise.wgsl (so at most three
// tensors from outside the chain, and up to three more) and goes through the same loader, pipeline cache and profiler
// as any kernel. The next op of a chain may sit a few commands later (past commands that neither touch the
// intermediate nor write what the chain reads: the fused kernel runs where the chain's last op ran). A chain follows a
// reshape where its views can be re-strided over the new shape; a view that cannot (a permuted gradient made
// contiguous and then read as [B, T, E]) is walked in its own shape, written into the kernel text, as long as the
// intermediate is written and read contiguously (the element order is the same on both sides).
import { kernelCode, pipeline, type KernelBinding, type KernelEntry, type KernelModule } from '../gpu/kernels.js';
import type { ParamValues } from '../gpu/recorder.js';
import elementwise from '../launch/kernels/elementwise.js';
import dtypes from '../launch/kernels/dtypes.js';
import type { RecBinding, RecCommand, RecDispatch, RecSlot } from './recording.js';
import { contiguousStrides } from '../tensor/shape.js';

const F32 = dtypes.constants.DT_F32;
const ENTRY = elementwise.entries.unary_backward;
const FIELDS = ENTRY.params!.fields;
const PARAMS_SIZE = Math.ceil(ENTRY.params!.size / 16) * 16;
const UNARY_NOT = elementwise.constants.UNARY_NOT;
const BIND = { a: 1, b: 2, c: 3, out: 4 } as const;
/**
 * Inputs from outside a chain: a, b, c read through elementwise.wgsl's params; up to EXTRA more bind at 8, 9, 10 with
 * their offsets and strides written into the text (a, b, c, out, out_h and three more make the eight storage
 * bindings every adapter allows per stage).
 */
const EXTRA = 3;
const MAX_EXTERNALS = 3 + EXTRA;
const entries = new Map<number, KernelEntry>();
/** The fused entry point's reflection: unary_backward's bindings and params, and `extra` more inputs. */
function entryWith(extra: number): KernelEntry {
  let e = entries.get(extra);
  if (!e) {
    const more: KernelBinding[] = Array.from({ length: extra }, (_, k) => ({ name: `x${3 + k}`, binding: 8 + k, kind: 'read-only-storage' }));
    e = { ...ENTRY, bindings: [...ENTRY.bindings, ...more] };
    entries.set(extra, e);
  }
  return e;
}

const opNames = new Map<string, string>();
for (const [name, code] of Object.entries(elementwise.constants)) {
  const m = /^(UNARY|BINARY)_(\w+)$/.exec(name);
  if (m) opNames.set(`${m[1] === 'UNARY' ? 'u' : 'b'}${code}`, m[2].toLowerCase());
}

/** One op of a chain as the fused kernel evaluates it. */
interface ChainOp {
  readonly d: RecDispatch;
  /** Per operand (a, b, c as the op's entry reads them): the previous op's value, or an external input's index. */
  readonly operands: ('prev' | number)[];
}

interface External {
  slot: number;
  off: number;
  strides: readonly number[];
  /**
   * Set where the view cannot be re-expressed over a later op's shape (a permuted gradient read before a reshape): the
   * shape the view walks in the chain's element order, written into the kernel text with the strides and offset.
   */
  shape?: readonly number[];
}

/** How far past commands that do not touch a chain's intermediate the next op of the chain is looked for. */
const LOOKAHEAD = 8;

/** The slots a command writes. */
export function writes(c: RecCommand): number[] {
  if (c.kind === 'dispatch') return c.bindings.filter((b) => b.writable).map((b) => b.slot);
  if (c.kind === 'copy') return [c.dst];
  if (c.kind === 'clear' || c.kind === 'upload') return [c.slot];
  return [];
}


/** What one fused kernel replaced, for explain(). */
export interface FusionGroup {
  readonly name: string;
  readonly ops: readonly string[];
  readonly module: KernelModule;
}

function opName(d: RecDispatch): string {
  const op = d.constants.OP ?? 0;
  if (d.entry === 'binary') return opNames.get(`b${op}`) ?? `binary${op}`;
  if (d.entry === 'binary_backward') return `${opNames.get(`b${op}`) ?? `binary${op}`}_grad_${gradSide(d) === 1 ? 'x' : 'y'}`;
  const n = opNames.get(`u${op}`) ?? `unary${op}`;
  return d.entry === 'unary_backward' ? `${n}_grad` : n;
}

const operandsOf = (d: RecDispatch): ('a' | 'b' | 'c')[] => (d.entry === 'unary' ? ['a'] : d.entry === 'binary' ? ['a', 'b'] : ['a', 'b', 'c']);
/** binary_backward writing one gradient: 1 (dx, through out) or 2 (dy, through out2); 0 otherwise. */
const gradSide = (d: RecDispatch): number => (d.entry === 'binary_backward' ? Number(d.values!.scalar) : 0);
/** The binding a fusible op writes its value through. */
const outBinding = (d: RecDispatch): number => (gradSide(d) === 2 ? 5 : 4);

function fusible(c: RecCommand | undefined): c is RecDispatch {
  if (!c || c.kind !== 'dispatch' || c.file !== 'elementwise.wgsl' || !c.values) return false;
  if (c.entry !== 'unary' && c.entry !== 'binary' && c.entry !== 'unary_backward' && c.entry !== 'binary_backward') return false;
  if (c.entry === 'binary_backward' && gradSide(c) !== 1 && gradSide(c) !== 2) return false;
  if (c.check || c.replay || c.seedFields.length) return false;
  const k = c.constants;
  if (k.A_DT !== F32 || k.OUT_DT !== F32 || (c.entry.endsWith('_backward') && k.C_DT !== F32)) return false;
  if (c.entry === 'unary' && k.OP === UNARY_NOT) return false;
  return true;
}

/**
 * Strides that walk the same elements as (shape, strides) under `to` (same element count), as a view's reshape does;
 * null where no strides can (a gap or a permutation inside a merged run). Both padded to 8 like the kernel's params.
 */
function restride(shape: readonly number[], strides: readonly number[], to: readonly number[]): number[] | null {
  const out = new Array<number>(to.length).fill(0);
  let viewD = to.length - 1;
  let base = strides[shape.length - 1] ?? 1;
  let tensorN = 1;
  let viewN = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    tensorN *= shape[d];
    if (d === 0 || (shape[d - 1] !== 1 && strides[d - 1] !== tensorN * base)) {
      while (viewD >= 0 && (viewN < tensorN || to[viewD] === 1)) {
        out[viewD] = viewN * base;
        viewN *= to[viewD];
        viewD--;
      }
      if (viewN !== tensorN) return null;
      if (d > 0) {
        base = strides[d - 1];
        tensorN = 1;
        viewN = 1;
      }
    }
  }
  return viewD === -1 ? out : null;
}

const shapeOf = (d: RecDispatch): number[] => arr(d.values!.shape).slice(0, Number(d.values!.rank));
const pad = (v: readonly number[]) => [...v, ...new Array(Math.max(0, 8 - v.length)).fill(0)];

function slotAt(d: RecDispatch, binding: number): number {
  return d.bindings.find((b) => b.binding === binding)!.slot;
}
const arr = (v: unknown): number[] => (Array.isArray(v) ? (v as number[]) : [Number(v)]);
const same = (x: readonly number[], y: readonly number[]) => x.length === y.length && x.every((v, i) => v === y[i]);
function operandView(d: RecDispatch, which: 'a' | 'b' | 'c'): { off: number; strides: number[] } {
  return { off: Number(d.values![`${which}_off`]), strides: arr(d.values![`${which}_strides`]) };
}

/**
 * The trace's commands with fusible chains replaced by fused dispatches, and the groups made. `slots` tells which
 * buffers are the trace's own temporaries (only those may vanish into registers).
 */
export function fuseElementwise(commands: readonly RecCommand[], slots: readonly RecSlot[]): { commands: RecCommand[]; groups: FusionGroup[] } {
  // Which commands reference each slot.
  const users = new Map<number, Set<number>>();
  const note = (slot: number, i: number) => {
    let s = users.get(slot);
    if (!s) users.set(slot, (s = new Set()));
    s.add(i);
  };
  commands.forEach((c, i) => {
    if (c.kind === 'dispatch') for (const b of c.bindings) note(b.slot, i);
    else if (c.kind === 'copy') (note(c.src, i), note(c.dst, i));
    else if (c.kind === 'clear' || c.kind === 'upload') note(c.slot, i);
  });
  const out: RecCommand[] = [];
  const groups: FusionGroup[] = [];
  let i = 0;
  while (i < commands.length) {
    const first = commands[i];
    if (!fusible(first)) {
      out.push(first);
      i++;
      continue;
    }
    const externals: External[] = [];
    const extIndex = (e: External): number => {
      const k = externals.findIndex((x) => x.slot === e.slot && x.off === e.off && same(x.strides, e.strides));
      if (k >= 0) return k;
      externals.push(e);
      return externals.length - 1;
    };
    const chain: ChainOp[] = [{ d: first, operands: operandsOf(first).map((w) => extIndex({ slot: slotAt(first, BIND[w]), ...operandView(first, w) })) }];
    let j = i + 1;
    const inChain = new Set<number>([i]);
    // The next op of the chain is the next command that touches the last op's result, looked for past host-only
    // commands (seed draws, hooks) and up to LOOKAHEAD commands that neither touch it nor write what the chain reads
    // (the fused kernel runs where the chain's last op ran, so its earlier ops move past them).
    const nextUser = (from: number, mid: number, reads: ReadonlySet<number>): number => {
      let skipped = 0;
      for (let k = from; k < commands.length; k++) {
        const c = commands[k];
        if (c.kind === 'hook' || c.kind === 'draw') continue;
        if (users.get(mid)?.has(k)) return k;
        if (++skipped > LOOKAHEAD || writes(c).some((w) => reads.has(w))) return -1;
      }
      return -1;
    };
    for (;;) {
      const last = chain[chain.length - 1].d;
      const k = nextUser(j, slotAt(last, outBinding(last)), new Set(externals.map((x) => x.slot)));
      const next = k < 0 ? undefined : commands[k];
      if (!fusible(next)) break;
      const lv = last.values!;
      const nv = next.values!;
      if (lv.n !== nv.n) break;
      // A reshape between the ops (linear's [rows, out] result read as [B, T, out]): the chain's views so far are
      // re-expressed over the next op's shape, where they can be.
      const from = shapeOf(last);
      const to = shapeOf(next);
      let outStrides = arr(lv.o_strides);
      let trial: External[] = externals.map((x) => ({ ...x }));
      if (!same(from, to)) {
        let movedOut = restride(from, outStrides.slice(0, from.length), to);
        // An intermediate written and read contiguously keeps the element order (the reshape of a contiguous copy),
        // even where the strides of its views do not carry over.
        if (movedOut === null && Number(lv.o_off) === 0 && same(outStrides.slice(0, from.length), contiguousStrides(from))) movedOut = contiguousStrides(to);
        if (movedOut === null) break;
        // Views that do not carry over keep the shape they walk (written into the kernel).
        trial = externals.map((x) => {
          if (x.shape) return { ...x };
          const moved = restride(from, x.strides.slice(0, from.length), to);
          return moved ? { ...x, strides: pad(moved) } : { ...x, shape: from.slice() };
        });
        outStrides = pad(movedOut);
      }
      const mid = slotAt(last, outBinding(last));
      const s = slots[mid];
      const lastIndex = commands.indexOf(last);
      // The intermediate must be the trace's own, written by `last` and read by `next` only.
      if (s.origin !== 'temp' || s.releasedAt === null) break;
      const u = users.get(mid)!;
      if (u.size !== 2 || !u.has(lastIndex) || !u.has(k)) break;
      const outView = { off: Number(lv.o_off), strides: outStrides };
      const operands: ('prev' | number)[] = [];
      let ok = true;
      let readsPrev = false;
      for (const w of operandsOf(next)) {
        const slot = slotAt(next, BIND[w]);
        const view = operandView(next, w);
        if (slot === mid) {
          if (view.off !== outView.off || !same(view.strides, outView.strides)) ok = false;
          operands.push('prev');
          readsPrev = true;
          continue;
        }
        let e = trial.findIndex((x) => !x.shape && x.slot === slot && x.off === view.off && same(x.strides, view.strides));
        if (e < 0) {
          trial.push({ slot, ...view });
          e = trial.length - 1;
        }
        operands.push(e);
      }
      // The fused kernel writes next's output while reading the externals: they must not share a buffer.
      const nextOut = slotAt(next, outBinding(next));
      if (!ok || !readsPrev || trial.length > MAX_EXTERNALS || trial.some((x) => x.slot === nextOut)) break;
      externals.length = 0;
      externals.push(...trial);
      chain.push({ d: next, operands });
      inChain.add(k);
      j = k + 1;
    }
    if (chain.length < 2) {
      out.push(first);
      i++;
      continue;
    }
    // Commands the chain stepped over (host-only ones, independent ones) keep their order, ahead of the fused dispatch.
    for (let k = i; k < j; k++) if (!inChain.has(k)) out.push(commands[k]);
    const fused = fusedDispatch(chain, externals);
    out.push(fused.dispatch);
    groups.push(fused.group);
    i = j;
  }
  return { commands: out, groups };
}

const modules = new Map<string, KernelModule>();

function extractFn(code: string, name: string): string {
  const start = code.indexOf(`fn ${name}(`);
  if (start < 0) throw new Error(`kiln: elementwise.wgsl has no fn ${name}`);
  let depth = 0;
  for (let k = code.indexOf('{', start); k < code.length; k++) {
    if (code[k] === '{') depth++;
    else if (code[k] === '}' && --depth === 0) return code.slice(start, k + 1);
  }
  throw new Error(`kiln: unbalanced fn ${name}`);
}

const f32Literal = (v: number): string => {
  const bits = new Uint32Array(new Float32Array([v]).buffer)[0];
  return `bitcast<f32>(${bits}u)`;
};

/** The WGSL of a chain: elementwise.wgsl, one specialised function per op, and the `fused` entry point. */
function chainSource(chain: readonly ChainOp[], externals: readonly External[]): string {
  const base = kernelCode(elementwise);
  const parts: string[] = [base, '', '// ---- generated by kiln compile (src/compile/fuse.ts) ----'];
  const lines: string[] = [];
  externals.forEach((x, e) => {
    if (x.shape) {
      // A view walked in its own shape (it did not carry over a reshape in the chain): element i of the chain is
      // element i of this shape.
      const name = e < 3 ? 'abc'[e] : `x${e}`;
      if (e >= 3) parts.push(`@group(0) @binding(${8 + e - 3}) var<storage, read> x${e}: array<u32>;`);
      parts.push(`fn ld_v${e}(i: u32) -> f32 {`, `  var rem = i;`, `  var at = ${x.off}u;`);
      for (let d = x.shape.length - 1; d >= 0; d--) {
        parts.push(`  at += (rem % ${x.shape[d]}u) * ${x.strides[d]}u;`);
        if (d > 0) parts.push(`  rem = rem / ${x.shape[d]}u;`);
      }
      parts.push(`  return bitcast<f32>(${name}[at]);`, `}`);
      lines.push(`  let e${e} = ld_v${e}(i);`);
      return;
    }
    if (e < 3) {
      lines.push(`  let e${e} = ld_${'abc'[e]}(o.${'xyz'[e]});`);
      return;
    }
    // Inputs past c: their view (offset, strides) is part of the kernel text.
    parts.push(
      `@group(0) @binding(${8 + e - 3}) var<storage, read> x${e}: array<u32>;`,
      `fn ld_x${e}(i: u32) -> f32 {`,
      `  var strides = array<u32, 8>(${x.strides.map((v) => `${v}u`).join(', ')});`,
      `  var rem = i;`,
      `  var at = ${x.off}u;`,
      `  var d = i32(params.rank) - 1;`,
      `  loop {`,
      `    if (d < 0) { break; }`,
      `    let du = u32(d);`,
      `    let size = params.shape[du / 4u][du % 4u];`,
      `    at += (rem % size) * strides[du];`,
      `    rem = rem / size;`,
      `    d -= 1;`,
      `  }`,
      `  return bitcast<f32>(x${e}[at]);`,
      `}`,
    );
    lines.push(`  let e${e} = ld_x${e}(i);`);
  });
  chain.forEach((op, k) => {
    const d = op.d;
    const fnName = d.entry === 'unary' ? 'unary_f' : d.entry === 'binary' ? 'binary_f' : d.entry === 'binary_backward' ? 'binary_grad_f' : 'unary_grad_f';
    const s1 = f32Literal(Number(d.values!.scalar ?? 0));
    const s2 = f32Literal(Number(d.values!.scalar2 ?? 0));
    const body = extractFn(base, fnName)
      .replace(`fn ${fnName}(`, `fn op${k}_${fnName}(`)
      .replace(/\bOP\b/g, `${d.constants.OP ?? 0}u`)
      .replace(/params\.scalar2\b/g, s2)
      .replace(/params\.scalar\b/g, s1);
    parts.push(`// op ${k}: ${opName(d)}`, body);
    const args = op.operands.map((x) => (x === 'prev' ? `v${k - 1}` : `e${x}`));
    const pick = d.entry === 'binary_backward' ? (gradSide(d) === 1 ? '.x' : '.y') : '';
    lines.push(`  let v${k} = op${k}_${fnName}(${args.join(', ')})${pick};`);
  });
  parts.push(
    '@compute @workgroup_size(WG)',
    'fn fused(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {',
    '  let i = linear_id(gid, nwg);',
    '  if (i >= params.n) { return; }',
    '  let o = offsets(i);',
    ...lines,
    `  put(o.w, v${chain.length - 1});`,
    '}',
  );
  return parts.join('\n');
}

function fusedModule(name: string, code: string, extra: number): KernelModule {
  let m = modules.get(code);
  if (!m) {
    if (modules.size >= 256) modules.delete(modules.keys().next().value!);
    m = { file: name, code, includes: [], entries: { fused: entryWith(extra) }, overrides: elementwise.overrides, constants: {} };
    modules.set(code, m);
  }
  return m;
}

function fusedDispatch(chain: readonly ChainOp[], externals: readonly External[]): { dispatch: RecDispatch; group: FusionGroup } {
  const ops = chain.map((c) => opName(c.d));
  const name = `fused.${ops.join('_')}`;
  const extra = Math.max(0, externals.length - 3);
  const module = fusedModule(name, chainSource(chain, externals), extra);
  const constants = { OP: 0, A_DT: F32, C_DT: F32, OUT_DT: F32 };
  const p = pipeline(module, 'fused', constants);
  const last = chain[chain.length - 1].d;
  const lv = last.values!;
  const values: ParamValues = { ...lv, check_id: 0, scalar: 0, scalar2: 0 };
  const dummy: RecBinding[] = [];
  (['a', 'b', 'c'] as const).forEach((w, e) => {
    const x = externals[e];
    // A view walked in its own shape has its offset and strides in the kernel text.
    values[`${w}_off`] = x && !x.shape ? x.off : 0;
    values[`${w}_strides`] = x && !x.shape ? x.strides : new Array(8).fill(0);
    if (x) dummy.push({ binding: BIND[w], slot: x.slot, writable: false });
  });
  // Inputs the chain does not use bind a placeholder (slot -1); the outputs are the last op's.
  for (let e = 3; e < externals.length; e++) dummy.push({ binding: 8 + e - 3, slot: externals[e].slot, writable: false });
  const bindings: RecBinding[] = entryWith(extra).bindings
    .filter((b) => b.kind !== 'uniform')
    .map((b) => {
      if (b.binding === BIND.out) return { binding: b.binding, slot: slotAt(last, outBinding(last)), writable: true };
      return dummy.find((x) => x.binding === b.binding) ?? (b.binding > BIND.c && b.binding < 8 ? last.bindings.find((x) => x.binding === b.binding) : undefined) ?? { binding: b.binding, slot: -1, writable: false };
    });
  const params = new Uint8Array(PARAMS_SIZE);
  const view = new DataView(params.buffer);
  for (const f of FIELDS) {
    const v = values[f.name];
    const list = typeof v === 'number' ? [v] : typeof v === 'boolean' ? [v ? 1 : 0] : (v ?? []);
    for (let k = 0; k < Math.min(list.length, f.count); k++) {
      if (f.kind === 'f32') view.setFloat32(f.offset + 4 * k, list[k], true);
      else if (f.kind === 'i32') view.setInt32(f.offset + 4 * k, list[k], true);
      else view.setUint32(f.offset + 4 * k, list[k] >>> 0, true);
    }
  }
  const uniformBinding = ENTRY.bindings.find((b) => b.kind === 'uniform')!.binding;
  const dispatch: RecDispatch = {
    kind: 'dispatch', pipeline: p.pipeline, layout: p.layout, pipelineKey: p.key, module, file: name, entry: 'fused', label: name,
    bindings, uniform: { binding: uniformBinding, size: PARAMS_SIZE }, params, fields: FIELDS, values, constants,
    workgroups: last.workgroups, boundBytes: last.boundBytes, check: null, seedFields: [], replay: null,
  };
  return { dispatch, group: { name, ops, module } };
}
