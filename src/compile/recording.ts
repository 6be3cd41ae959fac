// What a trace holds (the Recorder compile() installs in the gpu layer's hook): every dispatch, copy, clear and
// upload (pipeline, buffers by slot, the packed uniform bytes, workgroups), with what a replay cannot repeat on its own:
// the seeds drawn (and which uniform fields and uploads derive from them), host state a replay must advance (an
// optimizer's step count), and reasons a trace cannot be replayed at all (a readback, a scheduler stepping inside the
// step). Buffers are named by slot: one per pooled-buffer lease, so a buffer freed and handed out again inside the trace
// is two slots, and the plan can place the trace's temporaries itself.
import { pooledOf, type PooledBuffer } from '../gpu/memory.js';
import { pipeline as kernelPipeline, type DispatchSpec, type KernelModule } from '../gpu/kernels.js';
import type { ParamValues, Recorder } from '../gpu/recorder.js';


/** One buffer as the trace saw it: a lease of a pooled buffer, or a fixed buffer (a dummy, the index-error flag). */
export interface RecSlot {
  readonly id: number;
  readonly buffer: GPUBuffer;
  /** null for a buffer the pool does not own (dummies, the error flag): bound as it is. */
  readonly pb: PooledBuffer | null;
  readonly lease: number;
  /** 'external': live before the trace began; 'temp': acquired inside it. */
  readonly origin: 'external' | 'temp';
  /** Command index (commands.length at the time) where the trace released it, or null while live. */
  releasedAt: number | null;
  firstRef: number;
  lastRef: number;
  /** A debugging name (the buffer's label). */
  readonly label: string;
}

export interface RecBinding {
  readonly binding: number;
  readonly slot: number;
  readonly writable: boolean;
}

export interface RecDispatch {
  readonly kind: 'dispatch';
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly pipelineKey: string;
  /**
   * The kernel module the pipeline was made from, where known (recorded dispatches; a pass that changes an override
   * makes the pipeline from it).
   */
  readonly module?: KernelModule;
  readonly file: string;
  readonly entry: string;
  readonly label: string;
  readonly bindings: readonly RecBinding[];
  /** The uniform binding (params struct), if any, and its size rounded to 16 bytes. */
  readonly uniform: { binding: number; size: number } | null;
  readonly params: Uint8Array | null;
  readonly fields: readonly { name: string; offset: number; kind: 'u32' | 'i32' | 'f32'; count: number }[];
  /** The params as the launcher gave them (for explain() and fusion). */
  readonly values: ParamValues | null;
  /** The pipeline's override constants. */
  readonly constants: Readonly<Record<string, number>>;
  readonly workgroups: readonly [number, number, number];
  readonly boundBytes: number;
  /** Index checks: the op's label and index shape (a replay registers a fresh check id per call). */
  readonly check: { label: string; shape?: readonly number[]; offset: number } | null;
  /** u32 fields holding a seed drawn in this trace: byte offset and the draw's index. */
  readonly seedFields: readonly { offset: number; draw: number }[];
  /** Fields a replay recomputes from host state (an optimizer's step count, its lr). */
  readonly replay: (() => ParamValues) | null;
  /**
   * A dispatch the horizontal pass merged (horizontal.ts): the dispatches it runs, each with its params block at byte
   * `at` of this one's (the plan patches their dynamic fields there).
   */
  readonly members?: readonly { readonly dispatch: RecDispatch; readonly at: number }[];
}

export interface RecCopy {
  readonly kind: 'copy';
  readonly src: number;
  readonly srcOffset: number;
  readonly dst: number;
  readonly dstOffset: number;
  readonly bytes: number;
}
export interface RecClear {
  readonly kind: 'clear';
  readonly slot: number;
  readonly offset: number;
  readonly bytes: number;
}
export interface RecUpload {
  readonly kind: 'upload';
  readonly slot: number;
  readonly offset: number;
  readonly data: Uint8Array;
  /** Host data a replay regenerates from a seed drawn in the trace (a dropout mask). */
  regen: { draw: number; make: (seed: number) => ArrayBufferView } | null;
}
/** Host state a replay advances at this point (runs before the dispatches after it compute their replay fields). */
export interface RecHook {
  readonly kind: 'hook';
  readonly run: () => void;
}
/** A seed drawn from the global generator: a replay draws a fresh one here, as the eager step would. */
export interface RecDraw {
  readonly kind: 'draw';
  readonly index: number;
  /** Draws the next seed of the same stream, advancing its host state as the eager draw did. */
  readonly redraw: () => number;
}
export type RecCommand = RecDispatch | RecCopy | RecClear | RecUpload | RecHook | RecDraw;

/** The module, entry point and constants a pipeline was built from. */
export interface PipelineSource {
  readonly kernel: KernelModule;
  readonly entry: string;
  readonly constants: Readonly<Record<string, number>>;
}
const sources = new WeakMap<GPUComputePipeline, PipelineSource>();

/**
 * Where a dispatch's pipeline came from (the horizontal pass regenerates its text): known for recorded dispatches; for
 * one a pass made (a matmul with an epilogue, a fused chain, an attention kernel with other overrides), found as its own
 * module or among `modules` of the same file, checked by asking the pipeline cache for the very same pipeline.
 */
export function pipelineSource(d: RecDispatch, modules: Iterable<KernelModule>): PipelineSource | undefined {
  const known = sources.get(d.pipeline);
  if (known) return known;
  for (const kernel of d.module ? [d.module, ...modules] : modules) {
    if (kernel.file !== d.file || !Object.hasOwn(kernel.entries, d.entry)) continue;
    try {
      if (kernelPipeline(kernel, d.entry, d.constants).pipeline !== d.pipeline) continue;
    } catch {
      continue;
    }
    const s = { kernel, entry: d.entry, constants: d.constants };
    sources.set(d.pipeline, s);
    return s;
  }
  return undefined;
}

export class Recording implements Recorder {
  readonly commands: RecCommand[] = [];
  readonly slots: RecSlot[] = [];
  /** Seeds drawn, in order (values). */
  readonly draws: number[] = [];
  /** The first reason a replay of this trace would be wrong; null when it can be replayed. */
  reason: string | null = null;
  private readonly byBuffer = new Map<GPUBuffer, RecSlot>();

  /** The slot of a buffer at this point of the trace (a new external or fixed slot on first sight). */
  slotOf(buffer: GPUBuffer): number {
    const pb = pooledOf(buffer);
    let s = this.byBuffer.get(buffer);
    if (!s || s.releasedAt !== null) {
      s = { id: this.slots.length, buffer, pb, lease: pb?.lease ?? 0, origin: 'external', releasedAt: null, firstRef: -1, lastRef: -1, label: buffer.label };
      this.slots.push(s);
      this.byBuffer.set(buffer, s);
    }
    const at = this.commands.length;
    if (s.firstRef < 0) s.firstRef = at;
    s.lastRef = at;
    return s.id;
  }

  acquired(pb: PooledBuffer): void {
    const s: RecSlot = { id: this.slots.length, buffer: pb.buffer, pb, lease: pb.lease, origin: 'temp', releasedAt: null, firstRef: -1, lastRef: -1, label: pb.buffer.label };
    this.slots.push(s);
    this.byBuffer.set(pb.buffer, s);
  }

  released(pb: PooledBuffer): void {
    const s = this.byBuffer.get(pb.buffer);
    if (s && s.releasedAt === null && s.lease === pb.lease) s.releasedAt = this.commands.length;
  }

  /** Marks the trace as one a replay cannot repeat (the first reason is kept). */
  refuse(reason: string): void {
    // The gpu layer names its reason by a word, so pages that never compile do not carry the sentence.
    if (reason === 'readback') reason = 'a readback inside the compiled function (item(), toArray(), a read of a tensor): the step needs its value on the host';
    this.reason ??= reason;
  }

  kernel(k: KernelModule, entry: string, spec: DispatchSpec, params: Uint8Array | null, workgroups: readonly [number, number, number], boundBytes: number, entries: readonly GPUBindGroupEntry[]): void {
    // The pipeline is cached: asking again returns the one the launcher just used.
    const { pipeline, layout, info, key } = kernelPipeline(k, entry, spec.constants);
    sources.set(pipeline, { kernel: k, entry, constants: spec.constants ?? {} });
    const fields = info.params?.fields ?? [];
    const seedFields: { offset: number; draw: number }[] = [];
    if (params) {
      const view = new DataView(params.buffer, params.byteOffset, params.byteLength);
      for (const f of fields) {
        if (!f.name.startsWith('seed') || f.kind !== 'u32' || f.count !== 1) continue;
        const draw = this.drawOf(view.getUint32(f.offset, true));
        if (draw >= 0) seedFields.push({ offset: f.offset, draw });
      }
    }
    const checkField = fields.find((f) => f.name === 'check_id');
    // The launch fills check_id (nonzero) where it bound the index-error flag.
    const checked = !!params && !!checkField && new DataView(params.buffer, params.byteOffset).getUint32(checkField.offset, true) !== 0;
    const bindings: RecBinding[] = [];
    let uniform: { binding: number; size: number } | null = null;
    for (const b of info.bindings) {
      if (b.kind === 'uniform') {
        uniform = { binding: b.binding, size: Math.ceil(info.params!.size / 16) * 16 };
        continue;
      }
      const e = entries.find((x) => x.binding === b.binding)!;
      bindings.push({ binding: b.binding, slot: this.slotOf((e.resource as GPUBufferBinding).buffer), writable: b.kind === 'storage' });
    }
    const label = spec.label ?? `${k.file.replace('.wgsl', '')}:${entry}`;
    this.commands.push({
      kind: 'dispatch', pipeline, layout, pipelineKey: key, module: k, file: k.file, entry, label, bindings, uniform, params, fields, values: spec.params ?? null, constants: spec.constants ?? {}, workgroups, boundBytes,
      check: checked && checkField ? { label: spec.label ?? `${k.file}:${entry}`, shape: spec.indexShape ? [...spec.indexShape] : undefined, offset: checkField.offset } : null,
      seedFields, replay: spec.replay ?? null,
    });
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    const s = this.slotOf(src);
    const t = this.slotOf(dst);
    this.commands.push({ kind: 'copy', src: s, srcOffset, dst: t, dstOffset, bytes });
  }

  clear(buffer: GPUBuffer, offset: number, bytes = buffer.size - offset): void {
    this.commands.push({ kind: 'clear', slot: this.slotOf(buffer), offset, bytes });
  }

  upload(target: GPUBuffer, offset: number, data: Uint8Array): void {
    this.commands.push({ kind: 'upload', slot: this.slotOf(target), offset, data: data.slice(), regen: null });
  }

  hook(run: () => void): void {
    this.commands.push({ kind: 'hook', run });
  }

  draw(seed: number, redraw: () => number): void {
    this.commands.push({ kind: 'draw', index: this.draws.length, redraw });
    this.draws.push(seed >>> 0);
  }

  regenerateLastUpload(seed: number, make: (seed: number) => ArrayBufferView): void {
    const draw = this.drawOf(seed);
    if (draw < 0) return;
    for (let i = this.commands.length - 1; i >= 0; i--) {
      const c = this.commands[i];
      if (c.kind === 'upload') {
        c.regen = { draw, make };
        return;
      }
    }
  }

  /** The index of the latest draw of `seed` in this trace, or -1. */
  drawOf(seed: number): number {
    return this.draws.lastIndexOf(seed >>> 0);
  }
}
