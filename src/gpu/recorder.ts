// The recorder compile() (src/compile/) traces a step with: while one is on, every dispatch, copy, clear and upload the
// launch layer encodes is also written down (pipeline, buffers by slot, the packed uniform bytes, workgroups), with
// what a replay cannot repeat on its own: the seeds drawn from the global generator (and which uniform fields and
// uploads derive from them), host state a replay must advance (an optimizer's step count), and reasons a trace cannot
// be replayed at all (a readback, a scheduler stepping inside the step). Buffers are named by slot: one per pooled
// buffer lease, so a buffer freed and handed out again inside the trace is two slots, and the plan can place the
// trace's temporaries itself. This file only records; src/compile/ plans and replays.
import type { PooledBuffer } from './memory.js';

export type ParamValues = Record<string, number | boolean | readonly number[]>;

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
  readonly workgroups: readonly [number, number, number];
  readonly boundBytes: number;
  /** Index checks: the op's label and index shape (a replay registers a fresh check id per call). */
  readonly check: { label: string; shape?: readonly number[]; offset: number } | null;
  /** u32 fields holding a seed drawn in this trace: byte offset and the draw's index. */
  readonly seedFields: readonly { offset: number; draw: number }[];
  /** Fields a replay recomputes from host state (an optimizer's step count, its lr). */
  readonly replay: (() => ParamValues) | null;
  /** What a kernel does, for fusion and explain(): the op and its role of each binding, set by launchers that know. */
  readonly op: RecOp | null;
}

/** Semantic metadata a launcher attaches to its next dispatch (elementwise ops: fusion reads it). */
export interface RecOp {
  readonly name: string;
  readonly [key: string]: unknown;
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

export class Recording {
  readonly commands: RecCommand[] = [];
  readonly slots: RecSlot[] = [];
  /** Seeds drawn, in order (values). */
  readonly draws: number[] = [];
  /** The first reason a replay of this trace would be wrong; null when it can be replayed. */
  reason: string | null = null;
  private readonly byBuffer = new Map<GPUBuffer, RecSlot>();
  private pendingOp: RecOp | null = null;

  /** The slot of a buffer at this point of the trace (a new external or fixed slot on first sight). */
  slotOf(buffer: GPUBuffer, pb: PooledBuffer | null): number {
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
    this.reason ??= reason;
  }

  takeOp(): RecOp | null {
    const op = this.pendingOp;
    this.pendingOp = null;
    return op;
  }
  setOp(op: RecOp): void {
    this.pendingOp = op;
  }

  /** The index of the latest draw of `seed` in this trace, or -1. */
  drawOf(seed: number): number {
    return this.draws.lastIndexOf(seed >>> 0);
  }
}

let active: Recording | null = null;

/** The recording in progress, or null (the launch layer checks this before writing anything down). */
export function recorder(): Recording | null {
  return active;
}

/** Starts recording (compile's trace); nested recordings are refused by the caller. */
export function startRecording(): Recording {
  active = new Recording();
  return active;
}

export function stopRecording(): void {
  active = null;
}

/** Host code with an effect a replay cannot repeat calls this: the trace falls back to eager with `reason`. */
export function refuseReplay(reason: string): void {
  active?.refuse(reason);
}

/** Host state to advance at this point of each replay, as the eager step advanced it (an optimizer's step count). */
export function onReplay(run: () => void): void {
  active?.commands.push({ kind: 'hook', run });
}

/**
 * Notes a seed drawn from a stream (the global generator, a module's own counter): a replay calls `redraw` at this
 * point for the call's seed, and uniform fields named seed* and uploads made from this seed are re-derived from it.
 */
export function noteSeedDraw(seed: number, redraw: () => number): void {
  if (!active) return;
  active.commands.push({ kind: 'draw', index: active.draws.length, redraw });
  active.draws.push(seed >>> 0);
}

/**
 * The upload just recorded was made from a seed drawn in this trace (a dropout mask): a replay regenerates it with
 * `make(newSeed)`. Without a matching draw (a seed the caller gave) the data is constant and nothing is noted.
 */
export function regenerateLastUpload(seed: number, make: (seed: number) => ArrayBufferView): void {
  if (!active) return;
  const draw = active.drawOf(seed);
  if (draw < 0) return;
  for (let i = active.commands.length - 1; i >= 0; i--) {
    const c = active.commands[i];
    if (c.kind === 'upload') {
      c.regen = { draw, make };
      return;
    }
  }
}

/** What the next dispatch computes (elementwise launchers describe their op, for fusion and explain()). */
export function describeNextDispatch(op: RecOp): void {
  active?.setOp(op);
}

// Host settings that change what a step encodes (flags, matmul precision, a module's train/eval mode) bump this; a
// compiled plan traced under another epoch is traced again rather than replayed.
let epoch = 0;
export function bumpTraceEpoch(): void {
  epoch++;
}
export function traceEpoch(): number {
  return epoch;
}
