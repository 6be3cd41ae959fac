// The hook compile() (src/compile/) traces a step through. While a recorder is installed, the launch layer reports
// every dispatch, copy, clear and upload it encodes, and the pool every buffer it hands out or takes back; host code
// reports what a replay must redo (seeds drawn, host state advanced) or cannot redo at all (a readback). The recorder
// itself lives in src/compile/, so a program that never compiles a step carries only these few lines.
import type { DispatchSpec, KernelModule, ParamValue } from './kernels.js';
import type { PooledBuffer } from './memory.js';

export type ParamValues = Record<string, ParamValue>;

export interface Recorder {
  /** A dispatch as kernels.ts encoded it (its bind group entries; the uniform entry is the shared ring's). */
  kernel(k: KernelModule, entry: string, spec: DispatchSpec, params: Uint8Array | null, workgroups: readonly [number, number, number], boundBytes: number, entries: readonly GPUBindGroupEntry[]): void;
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void;
  clear(buffer: GPUBuffer, offset: number, bytes?: number): void;
  upload(target: GPUBuffer, offset: number, data: Uint8Array): void;
  acquired(pb: PooledBuffer): void;
  released(pb: PooledBuffer): void;
  refuse(reason: string): void;
  hook(run: () => void): void;
  draw(seed: number, redraw: () => number): void;
  regenerateLastUpload(seed: number, make: (seed: number) => ArrayBufferView): void;
}

let active: Recorder | null = null;

/** The recorder in place, or null (the launch layer checks this before reporting anything). */
export function recorder(): Recorder | null {
  return active;
}

export function setRecorder(r: Recorder | null): void {
  active = r;
}

/** Host code with an effect a replay cannot repeat calls this: the trace falls back to eager with `reason`. */
export function refuseReplay(reason: string): void {
  active?.refuse(reason);
}

/** Host state to advance at this point of each replay, as the eager step advanced it (an optimizer's step count). */
export function onReplay(run: () => void): void {
  active?.hook(run);
}

/**
 * Notes a seed drawn from a stream (the global generator, a module's own counter): a replay calls `redraw` at this
 * point for the call's seed, and uniform fields named seed* and uploads made from this seed are re-derived from it.
 */
export function noteSeedDraw(seed: number, redraw: () => number): void {
  active?.draw(seed, redraw);
}

/**
 * The upload just reported was made from `seed` (a dropout mask): a replay regenerates it with `make(newSeed)` when
 * the seed was drawn in the trace (a seed the caller gave is constant, and so is the data).
 */
export function regenerateLastUpload(seed: number, make: (seed: number) => ArrayBufferView): void {
  active?.regenerateLastUpload(seed, make);
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
