// A compiled step's plan: a trace (gpu/recorder.ts) turned into a dispatch list that replays with no per-op JavaScript.
// Buffers the trace made and freed again are placed here (lifetimes over the command list, equal sizes share a buffer);
// buffers that outlive the trace (parameters, optimizer arenas, gradients, the step's own inputs and outputs) are bound
// as they are and checked, per call, to still be the same lease of the pool. Uniforms live in one buffer the plan owns,
// one 256-byte slot per dispatch; bind groups are made once. A call patches only what the host must supply each time
// (fresh seeds and the masks made from them, an optimizer's step count and lr, index-check ids), then encodes the list.
import { gpu } from '../gpu/device.js';
import { dummyBuffer } from '../gpu/kernels.js';
import { fuseElementwise, type FusionGroup } from './fuse.js';
import { mergeZeroRegions } from './regions.js';
import { foldEpilogues } from './epilogue.js';
import { fuseCrossEntropy } from './crossentropy.js';
import { scheduleByLevel } from './schedule.js';
import { foldRowNorms } from './rownorm.js';
import { mergeHorizontal, type HorizontalGroup } from './horizontal.js';
import { attentionLayout, type AttentionLayoutResult } from './attention_layout.js';
import type { Passes } from './index.js';
import { acquireBuffer, releaseBuffer, type PooledBuffer } from '../gpu/memory.js';
import { afterSubmit, encodeClear, encodeCopy, encodeDispatch, indexCheckBinding, markWritten, uploadToBuffer } from '../gpu/queue.js';
import type { ParamValues } from '../gpu/recorder.js';
import type { RecCommand, RecDispatch, Recording, RecSlot } from './recording.js';

const UNIFORM_SLOT = 256;

/** What a replay binds for a slot. */
interface Physical {
  buffer: GPUBuffer;
  /** Pooled buffers the plan did not make: checked per call to be the lease the trace saw. */
  check: { pb: PooledBuffer; lease: number } | null;
}

type Step =
  | { kind: 'dispatch'; pipeline: GPUComputePipeline; bindGroup: GPUBindGroup; uniformOffset: number | null; workgroups: [number, number, number]; label: string; bytes: number }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; bytes: number }
  | { kind: 'clear'; buffer: GPUBuffer; offset: number; bytes: number };

/** Host work before the list is encoded, in the trace's order (so seeds are drawn as the eager step draws them). */
type Dynamic =
  | { kind: 'draw'; index: number; redraw: () => number }
  | { kind: 'hook'; run: () => void }
  | { kind: 'params'; dispatch: RecDispatch; base: number }
  | { kind: 'upload'; index: number; constOffset: number; draw: number; make: (seed: number) => ArrayBufferView; bytes: number };

export interface PlanSummary {
  dispatches: number;
  copies: number;
  clears: number;
  uploads: number;
  /** Bytes of the buffers the plan owns for the trace's temporaries. */
  plannedBytes: number;
  plannedBuffers: number;
  /** What the trace's temporaries took from the pool (the sum of their sizes, before placement). */
  tempBytes: number;
  boundBuffers: number;
  uniformBytes: number;
  dynamicFields: number;
}

/** Why a recording cannot become a plan, or null. */
export function unplannable(rec: Recording): string | null {
  if (rec.reason) return rec.reason;
  for (const s of rec.slots) {
    if (s.firstRef < 0 || !s.pb) continue;
    if (s.origin === 'external' && (s.releasedAt !== null || s.pb.lease !== s.lease)) {
      return `the compiled function frees a buffer made before it was called that it also uses ('${s.label}'); a replay would use freed memory`;
    }
  }
  return null;
}

export class Plan {
  private readonly steps: Step[] = [];
  private readonly dynamics: Dynamic[] = [];
  private readonly checks: { pb: PooledBuffer; lease: number }[] = [];
  private readonly owned: PooledBuffer[] = [];
  private readonly written: GPUBuffer[] = [];
  private readonly uniformBuffer: GPUBuffer | null;
  private readonly uniformHost: Uint8Array<ArrayBuffer>;
  private readonly constBuffer: GPUBuffer | null;
  private readonly generation: number;
  readonly summary: PlanSummary;
  /** The commands a replay encodes (the trace's, with fused chains replaced). */
  readonly commands: RecCommand[];
  readonly groups: FusionGroup[];
  /** Adds of zero-filled slice gradients that the zero-region pass removed (regions.ts). */
  readonly zeroRegionsMerged: number;
  /** Fills of merged buffers that the regions cover entirely (regions.ts). */
  readonly zeroFillsDropped: number;
  /** The schedule pass's reordering (schedule.ts): GPU command levels and commands moved. */
  readonly scheduled: { levels: number; moved: number };
  /** Cross-entropy forward / seed / backward triples made one dispatch (crossentropy.ts). */
  readonly crossEntropyFused: number;
  /**
   * What the epilogue passes folded into matmuls, one entry per op: 'residual', 'relu', 'gelu', ... (epilogue.ts),
   * 'layerNorm', 'layerNorm_grad' (rownorm.ts).
   */
  readonly epilogues: string[];
  /** Dispatches the horizontal pass merged (horizontal.ts), and the merged dispatches it made. */
  readonly horizontal: { merged: number; groups: HorizontalGroup[] };
  /** What the attention layout pass removed (attention_layout.ts). */
  readonly attention: Omit<AttentionLayoutResult, 'commands'>;
  private disposed = false;

  constructor(
    readonly rec: Recording,
    readonly options: { passes: Passes },
  ) {
    const kd = gpu();
    this.generation = kd.generation;
    const on = options.passes;
    const ce = on.crossEntropy ? fuseCrossEntropy(rec.commands) : { commands: rec.commands, fused: 0 };
    this.crossEntropyFused = ce.fused;
    const epilogues = on.epilogues ? foldEpilogues(ce.commands, rec.slots) : { commands: ce.commands, folded: [] };
    const norms = on.layerNorm ? foldRowNorms(epilogues.commands) : { commands: epilogues.commands, folded: [] };
    this.epilogues = [...epilogues.folded, ...norms.folded];
    const merged = on.regions ? mergeZeroRegions(norms.commands, rec.slots) : { commands: norms.commands, merged: 0, fillsDropped: 0 };
    this.zeroRegionsMerged = merged.merged;
    this.zeroFillsDropped = merged.fillsDropped;
    const laid = on.attentionLayout ? attentionLayout(merged.commands, rec.slots) : { commands: merged.commands, removed: { o: 0, dout: 0, grads: 0 }, deltas: 0 };
    this.attention = { removed: laid.removed, deltas: laid.deltas };
    const fused = on.elementwise ? fuseElementwise(laid.commands, rec.slots) : { commands: laid.commands.slice(), groups: [] };
    this.groups = fused.groups;
    const scheduled = on.schedule ? scheduleByLevel(fused.commands, rec.slots) : { commands: fused.commands, levels: 0, moved: 0 };
    this.scheduled = { levels: scheduled.levels, moved: scheduled.moved };
    const multi = on.horizontal ? mergeHorizontal(scheduled.commands, rec.slots, UNIFORM_SLOT, fused.groups.map((g) => g.module)) : { commands: scheduled.commands, groups: [], merged: 0 };
    this.horizontal = { merged: multi.merged, groups: multi.groups };
    this.commands = multi.commands;
    const physical = this.placeSlots(rec.slots, this.commands);
    const dispatches = this.commands.filter((c): c is RecDispatch => c.kind === 'dispatch');
    // One 256-byte params slot per dispatch; a merged dispatch takes one per member with params.
    const slotBytes = (d: RecDispatch) => Math.max(1, Math.ceil((d.uniform?.size ?? 0) / UNIFORM_SLOT)) * UNIFORM_SLOT;
    this.uniformHost = new Uint8Array(Math.max(UNIFORM_SLOT, dispatches.reduce((n, d) => n + slotBytes(d), 0)));
    this.uniformBuffer = dispatches.some((d) => d.uniform)
      ? kd.device.createBuffer({ size: this.uniformHost.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'kiln compiled uniforms' })
      : null;
    // Upload data lives in one buffer the plan owns; replays copy from it in order with the dispatches.
    let constBytes = 0;
    const constAt: number[] = [];
    for (const c of this.commands) {
      if (c.kind !== 'upload') continue;
      constAt.push(constBytes);
      constBytes += Math.ceil(c.data.byteLength / 4) * 4;
    }
    this.constBuffer = constBytes ? kd.device.createBuffer({ size: constBytes, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: 'kiln compiled constants' }) : null;
    const constHost = new Uint8Array(constBytes);
    let uniformAt = 0;
    let ui = 0;
    let dynamicFields = 0;
    const written = new Set<GPUBuffer>();
    for (const c of this.commands) {
      if (c.kind === 'dispatch') {
        const base = uniformAt;
        uniformAt += slotBytes(c);
        if (c.params) this.uniformHost.set(c.params, base);
        const entries: GPUBindGroupEntry[] = c.bindings.map((b) => ({ binding: b.binding, resource: { buffer: physical[b.slot].buffer } }));
        if (c.uniform) entries.push({ binding: c.uniform.binding, resource: { buffer: this.uniformBuffer!, size: c.uniform.size } });
        for (const b of c.bindings) if (b.writable) written.add(physical[b.slot].buffer);
        const bindGroup = kd.device.createBindGroup({ layout: c.layout, entries, label: c.label });
        this.steps.push({ kind: 'dispatch', pipeline: c.pipeline, bindGroup, uniformOffset: c.uniform ? base : null, workgroups: [...c.workgroups], label: c.label, bytes: c.boundBytes });
        for (const m of c.members ?? [{ dispatch: c, at: 0 }]) {
          const d = m.dispatch;
          if (d.check || d.seedFields.length || d.replay) {
            this.dynamics.push({ kind: 'params', dispatch: d, base: base + m.at });
            dynamicFields++;
          }
        }
      } else if (c.kind === 'copy') {
        this.steps.push({ kind: 'copy', src: physical[c.src].buffer, srcOffset: c.srcOffset, dst: physical[c.dst].buffer, dstOffset: c.dstOffset, bytes: c.bytes });
      } else if (c.kind === 'clear') {
        this.steps.push({ kind: 'clear', buffer: physical[c.slot].buffer, offset: c.offset, bytes: c.bytes });
      } else if (c.kind === 'upload') {
        const at = constAt[ui++];
        constHost.set(c.data, at);
        const bytes = Math.ceil(c.data.byteLength / 4) * 4;
        this.steps.push({ kind: 'copy', src: this.constBuffer!, srcOffset: at, dst: physical[c.slot].buffer, dstOffset: c.offset, bytes });
        if (c.regen) {
          this.dynamics.push({ kind: 'upload', index: ui - 1, constOffset: at, draw: c.regen.draw, make: c.regen.make, bytes: c.data.byteLength });
          dynamicFields++;
        }
      } else if (c.kind === 'hook') {
        this.dynamics.push({ kind: 'hook', run: c.run });
      } else {
        this.dynamics.push({ kind: 'draw', index: c.index, redraw: c.redraw });
      }
    }
    this.written = [...written];
    if (this.uniformBuffer) kd.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniformHost);
    if (this.constBuffer) kd.device.queue.writeBuffer(this.constBuffer, 0, constHost);
    const planned = this.owned.reduce((n, pb) => n + pb.size, 0);
    const temps = rec.slots.filter((s) => s.origin === 'temp' && s.releasedAt !== null && s.firstRef >= 0);
    this.summary = {
      dispatches: dispatches.length,
      copies: this.commands.filter((c) => c.kind === 'copy').length,
      clears: this.commands.filter((c) => c.kind === 'clear').length,
      uploads: ui,
      plannedBytes: planned,
      plannedBuffers: this.owned.length,
      tempBytes: temps.reduce((n, s) => n + (s.pb?.size ?? 0), 0),
      boundBuffers: this.checks.length,
      uniformBytes: this.uniformBuffer ? this.uniformHost.byteLength : 0,
      dynamicFields,
    };
  }

  /**
   * Buffers for every slot the commands use: the trace's temporaries (made and freed inside it) placed by lifetime
   * onto buffers the plan owns, of exactly their size (kernels may read a binding's length); everything else as it is.
   */
  private placeSlots(slots: readonly RecSlot[], commands: readonly RecCommand[]): Physical[] {
    // Lifetimes over the commands a replay encodes (a fused kernel reads its inputs where its last op ran).
    const first = new Map<number, number>();
    const lastUse = new Map<number, number>();
    const ref = (slot: number, i: number) => {
      if (!first.has(slot)) first.set(slot, i);
      lastUse.set(slot, i);
    };
    commands.forEach((c, i) => {
      if (c.kind === 'dispatch') for (const b of c.bindings) ref(b.slot, i);
      else if (c.kind === 'copy') (ref(c.src, i), ref(c.dst, i));
      else if (c.kind === 'clear' || c.kind === 'upload') ref(c.slot, i);
    });
    const out: Physical[] = new Array(slots.length);
    const temps: RecSlot[] = [];
    const readDummy = dummyBuffer(false);
    (out as Physical[] & { [-1]: Physical })[-1] = { buffer: readDummy, check: null };
    for (const s of slots) {
      if (!first.has(s.id)) continue;
      if (!s.pb) out[s.id] = { buffer: s.buffer, check: null };
      else if (s.origin === 'temp' && s.releasedAt !== null) temps.push(s);
      else {
        const check = { pb: s.pb, lease: s.lease };
        out[s.id] = { buffer: s.buffer, check };
        this.checks.push(check);
      }
    }
    const firstRef = (s: RecSlot) => first.get(s.id)!;
    temps.sort((a, b) => firstRef(a) - firstRef(b));
    // Per size: buffers and the last command that uses each.
    const free = new Map<number, { pb: PooledBuffer; until: number }[]>();
    for (const s of temps) {
      const size = s.pb!.size;
      let list = free.get(size);
      if (!list) free.set(size, (list = []));
      let home = list.find((h) => h.until < firstRef(s));
      if (!home) {
        home = { pb: acquireBuffer(size, 'compiled step'), until: -1 };
        this.owned.push(home.pb);
        list.push(home);
      }
      home.until = lastUse.get(s.id)!;
      out[s.id] = { buffer: home.pb.buffer, check: null };
    }
    return out;
  }

  /** One line per command (runs of the same kernel folded), for explain(). */
  describe(wgsl: boolean): string[] {
    const out: string[] = [];
    if (this.epilogues.length) {
      const counts = new Map<string, number>();
      for (const e of this.epilogues) counts.set(e, (counts.get(e) ?? 0) + 1);
      out.push(`  matmul epilogues: ${this.epilogues.length} ops folded into matmuls (${[...counts].map(([k, v]) => `${k} x${v}`).join(', ')})`);
    }
    if (this.crossEntropyFused) out.push(`  cross-entropy: ${this.crossEntropyFused} backward(s) computed in the forward's workgroups (the backward and the seed fill dropped)`);
    if (this.zeroRegionsMerged) out.push(`  zero regions: ${this.zeroRegionsMerged} adds of zero-filled slice gradients removed (each one's region written into the first; ${this.zeroRegionsMerged} fills and ${this.zeroRegionsMerged} adds saved), ${this.zeroFillsDropped} more fills of buffers the regions cover`);
    const { removed, deltas } = this.attention;
    if (removed.o + removed.dout + removed.grads + deltas) {
      out.push(`  attention layout: ${removed.o + removed.dout + removed.grads} layout copies removed (o written in place x${removed.o}, dO read in place x${removed.dout}, gradient copies x${removed.grads}), ${deltas} delta passes folded into dkdv / dq`);
    }
    if (this.scheduled.moved) out.push(`  schedule: ${this.scheduled.moved} commands moved into dependency-level order (dispatches fall in ${this.scheduled.levels} levels)`);
    if (this.groups.length) {
      const saved = this.groups.reduce((n, g) => n + g.ops.length - 1, 0);
      out.push(`  fused kernels: ${this.groups.length} (${saved} dispatches saved)`);
      const seen = new Map<string, number>();
      for (const g of this.groups) seen.set(g.name, (seen.get(g.name) ?? 0) + 1);
      for (const [name, n] of seen) out.push(`    ${name}${n > 1 ? `  x${n}` : ''}: ${this.groups.find((g) => g.name === name)!.ops.join(' -> ')}`);
    }
    if (this.horizontal.groups.length) {
      const h = this.horizontal;
      const seen = new Map<string, number>();
      for (const g of h.groups) seen.set(g.name, (seen.get(g.name) ?? 0) + 1);
      out.push(`  horizontal: ${h.merged} dispatches merged into ${h.groups.length} (groups: ${[...seen].map(([k, v]) => `${k}${v > 1 ? ` x${v}` : ''}`).join(', ')})`);
    }
    out.push('  commands:');
    let prev = '';
    let count = 0;
    let first = 0;
    const flushLine = () => {
      if (count) out.push(`    ${String(first).padStart(4)}  ${prev}${count > 1 ? `  x${count}` : ''}`);
    };
    this.steps.forEach((st, i) => {
      const name = st.kind === 'dispatch' ? st.label : st.kind === 'copy' ? `copy ${st.bytes} B` : `clear ${st.bytes} B`;
      if (name === prev) {
        count++;
        return;
      }
      flushLine();
      prev = name;
      count = 1;
      first = i;
    });
    flushLine();
    if (wgsl) {
      const shown = new Set<string>();
      for (const g of this.groups) {
        if (shown.has(g.module.code)) continue;
        shown.add(g.module.code);
        const at = g.module.code.indexOf('// ---- generated by kiln compile');
        out.push(`  ---- ${g.name} (elementwise.wgsl and these lines) ----`, g.module.code.slice(at));
      }
      for (const g of this.horizontal.groups) {
        if (shown.has(g.module.code)) continue;
        shown.add(g.module.code);
        out.push(`  ---- ${g.name} ----`, g.module.code);
      }
    }
    return out;
  }

  /** Whether every buffer the plan binds is still the one the trace saw (nothing disposed or replaced since). */
  valid(): boolean {
    if (this.disposed || gpu().generation !== this.generation) return false;
    for (const c of this.checks) if (c.pb.lease !== c.lease) return false;
    return true;
  }

  /** Encodes one call: the host's part of the dynamic params and data, then every command of the trace. */
  replay(): void {
    let lo = Infinity;
    let hi = -1;
    const seeds: number[] = [];
    for (const d of this.dynamics) {
      if (d.kind === 'draw') seeds[d.index] = d.redraw() >>> 0;
      else if (d.kind === 'hook') d.run();
      else if (d.kind === 'upload') {
        const data = d.make(seeds[d.draw]);
        uploadToBuffer(this.constBuffer!, d.constOffset, data);
      } else {
        const c = d.dispatch;
        const base = d.base;
        const view = new DataView(this.uniformHost.buffer, base, UNIFORM_SLOT);
        for (const f of c.seedFields) view.setUint32(f.offset, seeds[f.draw] >>> 0, true);
        if (c.check) view.setUint32(c.check.offset, indexCheckBinding(c.check.label, c.check.shape).id, true);
        if (c.replay) packInto(view, c, c.replay());
        lo = Math.min(lo, base);
        hi = Math.max(hi, base + UNIFORM_SLOT);
      }
    }
    if (hi > lo) uploadToBuffer(this.uniformBuffer!, lo, this.uniformHost.subarray(lo, hi));
    for (const s of this.steps) {
      if (s.kind === 'dispatch') encodeDispatch(s.pipeline, s.bindGroup, s.uniformOffset, s.workgroups, s.label, s.bytes);
      else if (s.kind === 'copy') encodeCopy(s.src, s.srcOffset, s.dst, s.dstOffset, s.bytes);
      else encodeClear(s.buffer, s.offset, s.bytes);
    }
    for (const b of this.written) markWritten(b);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const pb of this.owned) releaseBuffer(pb);
    const u = this.uniformBuffer;
    const c = this.constBuffer;
    afterSubmit(() => {
      u?.destroy();
      c?.destroy();
    });
  }
}

/** Writes params into a dispatch's uniform slot, as kernels.ts packs them. */
function packInto(view: DataView, c: RecDispatch, values: ParamValues): void {
  for (const f of c.fields) {
    const v = values[f.name];
    if (v === undefined) continue;
    const arr = typeof v === 'number' ? [v] : typeof v === 'boolean' ? [v ? 1 : 0] : v;
    const n = Math.min(arr.length, f.count);
    for (let i = 0; i < n; i++) {
      const o = f.offset + 4 * i;
      if (f.kind === 'f32') view.setFloat32(o, arr[i], true);
      else if (f.kind === 'i32') view.setInt32(o, arr[i], true);
      else view.setUint32(o, arr[i] >>> 0, true);
    }
  }
}

/** Byte ranges of a dispatch's params that a replay rewrites (not compared between traces). */
function dynamicBytes(c: RecDispatch): Set<number> {
  const out = new Set<number>();
  const mark = (offset: number, count: number) => {
    for (let i = 0; i < 4 * count; i++) out.add(offset + i);
  };
  for (const f of c.seedFields) mark(f.offset, 1);
  if (c.check) mark(c.check.offset, 1);
  if (c.replay) {
    const keys = Object.keys(c.replay());
    for (const f of c.fields) if (keys.includes(f.name)) mark(f.offset, f.count);
  }
  return out;
}

function fieldAt(c: RecDispatch, byte: number): string {
  const f = c.fields.find((x) => byte >= x.offset && byte < x.offset + 4 * x.count);
  return f ? `'${f.name}'` : `byte ${byte}`;
}

/**
 * Why two traces of the same step differ in a way a replay cannot reproduce (null when they agree): the same commands
 * and kernels, the same uniforms apart from the fields a replay supplies, the same upload data apart from masks made
 * from drawn seeds, and the same buffers (the same ones where they outlive the trace; the same pattern of reuse for
 * the temporaries).
 */
export function compareRecordings(a: Recording, b: Recording): string | null {
  const ca = a.commands;
  const cb = b.commands;
  const gpuCount = (r: readonly RecCommand[]) => r.filter((c) => c.kind !== 'hook' && c.kind !== 'draw').length;
  if (ca.length !== cb.length) return `the calls encode different work (${gpuCount(ca)} vs ${gpuCount(cb)} GPU commands, ${a.draws.length} vs ${b.draws.length} seeds drawn)`;
  const ab = new Map<number, number>();
  const ba = new Map<number, number>();
  const sameSlot = (x: number, y: number): boolean => {
    const sx = a.slots[x];
    const sy = b.slots[y];
    // Buffers live before the call must be the very same; the call's own (freed again, or escaping into a gradient
    // or an output) must follow the same pattern.
    const kind = (s: RecSlot) => (s.origin === 'external' ? 'external' : s.releasedAt !== null ? 'temp' : 'escaped');
    const kx = kind(sx);
    if (kx !== kind(sy)) return false;
    if (kx === 'external') return sx.buffer === sy.buffer && sx.lease === sy.lease;
    if (sx.pb?.size !== sy.pb?.size) return false;
    const m = ab.get(x);
    const n = ba.get(y);
    if (m === undefined && n === undefined) {
      ab.set(x, y);
      ba.set(y, x);
      return true;
    }
    return m === y && n === x;
  };
  for (let i = 0; i < ca.length; i++) {
    const x = ca[i];
    const y = cb[i];
    const where = `command ${i} (${x.kind === 'dispatch' ? x.label : x.kind})`;
    if (x.kind !== y.kind) return `${where}: the calls encode different work (${x.kind} vs ${y.kind})`;
    if (x.kind === 'dispatch' && y.kind === 'dispatch') {
      if (x.pipeline !== y.pipeline) return `${where}: different kernels (${x.label} vs ${y.label})`;
      if (x.workgroups.join() !== y.workgroups.join()) return `${where}: different workgroup counts`;
      if (x.bindings.length !== y.bindings.length || x.bindings.some((bx, k) => bx.binding !== y.bindings[k].binding || !sameSlot(bx.slot, y.bindings[k].slot))) {
        return `${where}: binds different buffers (a tensor that outlives the step was replaced between calls)`;
      }
      if (x.seedFields.map((f) => f.draw).join() !== y.seedFields.map((f) => f.draw).join()) return `${where}: seeds drawn in a different order`;
      if (!!x.check !== !!y.check || !!x.replay !== !!y.replay) return `${where}: different params`;
      if (x.params && y.params) {
        const skip = dynamicBytes(x);
        for (let k = 0; k < x.params.length; k++) {
          if (!skip.has(k) && x.params[k] !== y.params[k]) {
            return `${where}: kernel param ${fieldAt(x, k)} changes between calls (host state the trace cannot follow, such as a seed or a scalar computed on the host)`;
          }
        }
      }
    } else if (x.kind === 'copy' && y.kind === 'copy') {
      if (x.bytes !== y.bytes || x.srcOffset !== y.srcOffset || x.dstOffset !== y.dstOffset || !sameSlot(x.src, y.src) || !sameSlot(x.dst, y.dst)) return `${where}: different copies`;
    } else if (x.kind === 'clear' && y.kind === 'clear') {
      if (x.bytes !== y.bytes || x.offset !== y.offset || !sameSlot(x.slot, y.slot)) return `${where}: different clears`;
    } else if (x.kind === 'upload' && y.kind === 'upload') {
      if (x.offset !== y.offset || x.data.byteLength !== y.data.byteLength || !sameSlot(x.slot, y.slot)) return `${where}: different uploads`;
      if (x.regen && y.regen) {
        if (x.regen.draw !== y.regen.draw) return `${where}: seeds drawn in a different order`;
      } else if (x.regen || y.regen || !sameBytes(x.data, y.data)) {
        return `${where}: uploads different data each call (${x.data.byteLength} bytes made on the host, e.g. a tensor() of changing values or randn inside the step)`;
      }
    } else if (x.kind === 'draw' && y.kind === 'draw') {
      if (x.index !== y.index) return `${where}: seeds drawn in a different order`;
    }
  }
  return null;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
