// Command batching: every dispatch, upload and copy is encoded into one command encoder; the encoder
// is submitted only at sync points (a readback, an explicit flush, or when the batch grows large).
import { DeviceError, IndexError, KilnError } from '../errors.js';
import { checkGeneration, gpu, onDeviceInit, onDeviceLost, onUncapturedError, type KilnDevice } from './device.js';
import type { PooledBuffer } from './memory.js';
import { recorder } from './recorder.js';

const UNIFORM_SLOT = 256; // >= minUniformBufferOffsetAlignment on every adapter
const UNIFORM_SLOTS = 1024;
const MAX_PENDING_DISPATCHES = 2048;

interface Batch {
  kd: KilnDevice;
  encoder: GPUCommandEncoder;
  pass: GPUComputePassEncoder | null;
  uniformBytes: Uint8Array;
  uniformUsed: number;
  dispatches: number;
  afterSubmit: (() => void)[];
}

let uniformRing: GPUBuffer | null = null;
let batch: Batch | null = null;
let firstError: KilnError | null = null;

/** Work encoded since resetStats(); `copies` counts buffer-to-buffer copies (staged uploads and readbacks included). */
export const stats = { dispatches: 0, submits: 0, uploads: 0, readbacks: 0, copies: 0 };
export function resetStats(): void {
  stats.dispatches = stats.submits = stats.uploads = stats.readbacks = stats.copies = 0;
}

/** Profiling hook: when set, each dispatch runs in its own pass with timestamp writes. */
export interface DispatchProfiler {
  /**
   * `bytes`: the sizes of the storage buffers the dispatch binds (an upper bound on the bytes it moves); `scope`: the
   * module path (or recordFunction names) the dispatch was encoded in, '' outside any.
   */
  timestampWrites(label: string, bytes: number, scope: string): GPUComputePassTimestampWrites | undefined;
  beforeSubmit(encoder: GPUCommandEncoder): void;
  afterSubmit(): void;
}
let profiler: DispatchProfiler | null = null;
export function setProfiler(p: DispatchProfiler | null): void {
  flush();
  profiler = p;
}
/** Whether a profiler is recording (modules only track their scopes then). */
export function isProfiling(): boolean {
  return profiler !== null;
}

// Profiler scopes, as PyTorch's record_function: Module.forward pushes its path ('layers.0.self_attn'), recordFunction
// its name; each dispatch is reported with the innermost.
const scopes: string[] = [];
export function pushScope(path: string): void {
  scopes.push(path);
}
export function popScope(): void {
  scopes.pop();
}
export function currentScope(): string {
  return scopes.length ? scopes[scopes.length - 1] : '';
}

onDeviceInit(() => {
  uniformRing = null;
  batch = null;
  firstError = null;
  errorFlag = null;
  errorDirty = false;
  checks.clear();
});
// Work encoded for a lost device is dropped: never submitted, never mixed into the next device's batches.
onDeviceLost(() => {
  batch = null;
  uniformRing = null;
  errorFlag = null;
  errorDirty = false;
  checks.clear();
});

onUncapturedError((message) => recordAsyncError(new DeviceError(`kiln: GPU validation error: ${message}`)));

let firstIsRootCause = false;
/**
 * Records an error found asynchronously (compile errors, validation) so that the next sync point reports it.
 * `rootCause` marks an error that explains later ones (a shader that failed to compile makes its pipeline and every
 * submit using it invalid): it replaces a symptom recorded before it, so the report names the kernel file and line.
 */
export function recordAsyncError(err: KilnError, rootCause = false): void {
  if (!firstError || (rootCause && !firstIsRootCause)) {
    firstError = err;
    firstIsRootCause = rootCause;
  }
}
export function takeAsyncError(): KilnError | null {
  const e = firstError;
  firstError = null;
  firstIsRootCause = false;
  return e;
}

export function uniformRingBuffer(): GPUBuffer {
  if (!uniformRing) {
    uniformRing = gpu().device.createBuffer({
      size: UNIFORM_SLOT * UNIFORM_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'kiln uniforms',
    });
  }
  return uniformRing;
}

function currentBatch(): Batch {
  const kd = gpu();
  if (batch && batch.kd !== kd) batch = null;
  if (!batch) {
    batch = {
      kd,
      encoder: kd.device.createCommandEncoder(),
      pass: null,
      uniformBytes: new Uint8Array(UNIFORM_SLOT * UNIFORM_SLOTS),
      uniformUsed: 0,
      dispatches: 0,
      afterSubmit: [],
    };
  }
  return batch;
}

function endPass(b: Batch): void {
  if (b.pass) {
    b.pass.end();
    b.pass = null;
  }
}

/** Reserves a uniform slot for the next dispatch and returns its byte offset in the ring. */
export function allocUniform(bytes: Uint8Array): number {
  let b = currentBatch();
  if (bytes.byteLength > UNIFORM_SLOT) throw new KilnError(`kernel params of ${bytes.byteLength} bytes exceed ${UNIFORM_SLOT}`);
  if (b.uniformUsed >= UNIFORM_SLOTS) {
    flush();
    b = currentBatch();
  }
  const offset = b.uniformUsed * UNIFORM_SLOT;
  b.uniformBytes.set(bytes, offset);
  b.uniformUsed++;
  return offset;
}

export function encodeDispatch(
  pipeline: GPUComputePipeline,
  bindGroup: GPUBindGroup,
  uniformOffset: number | null,
  workgroups: [number, number, number],
  label: string,
  boundBytes = 0,
): void {
  const b = currentBatch();
  const tw = profiler?.timestampWrites(label, boundBytes, currentScope());
  if (tw) {
    endPass(b);
    const pass = b.encoder.beginComputePass({ timestampWrites: tw, label });
    pass.setPipeline(pipeline);
    if (uniformOffset === null) pass.setBindGroup(0, bindGroup);
    else pass.setBindGroup(0, bindGroup, [uniformOffset]);
    pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    pass.end();
  } else {
    if (!b.pass) b.pass = b.encoder.beginComputePass();
    b.pass.setPipeline(pipeline);
    if (uniformOffset === null) b.pass.setBindGroup(0, bindGroup);
    else b.pass.setBindGroup(0, bindGroup, [uniformOffset]);
    b.pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
  }
  b.dispatches++;
  stats.dispatches++;
  if (b.dispatches >= MAX_PENDING_DISPATCHES) flush();
}

// Writes per buffer (dispatches binding it read_write, copies into it, clears, uploads): a tensor's host copy of its
// values (Tensor.toString) is current while its buffer's count has not moved since the copy was taken.
const writeCounts = new WeakMap<GPUBuffer, number>();
/** Counts a write into `buffer`. */
export function markWritten(buffer: GPUBuffer): void {
  writeCounts.set(buffer, (writeCounts.get(buffer) ?? 0) + 1);
}
/** How many writes `buffer` has had (see markWritten). */
export function writesOf(buffer: GPUBuffer): number {
  return writeCounts.get(buffer) ?? 0;
}

/** Encodes a clear (to zero) of a buffer range, in order with the dispatches. */
export function encodeClear(buffer: GPUBuffer, offset = 0, bytes?: number): void {
  recorder()?.clear(buffer, offset, bytes);
  const b = currentBatch();
  endPass(b);
  markWritten(buffer);
  b.encoder.clearBuffer(buffer, offset, bytes);
}

/** Encodes a buffer-to-buffer copy in order with the dispatches. */
export function encodeCopy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
  recorder()?.copy(src, srcOffset, dst, dstOffset, bytes);
  copyRaw(src, srcOffset, dst, dstOffset, bytes);
}

function copyRaw(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
  const b = currentBatch();
  endPass(b);
  b.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  markWritten(dst);
  stats.copies++;
}

/** Writes host data into a buffer, ordered after every pending use of that buffer. */
export function uploadToBuffer(target: GPUBuffer, offset: number, data: ArrayBufferView): void {
  const kd = gpu();
  stats.uploads++;
  markWritten(target);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const padded = Math.ceil(bytes.byteLength / 4) * 4;
  if (padded === 0) return;
  recorder()?.upload(target, offset, bytes);
  // With nothing encoded, the queue orders this write after every submitted command. Once anything is
  // encoded (a dispatch or a copy that may still touch this pooled buffer), the write must be encoded too.
  if (!batch) {
    if (padded === bytes.byteLength) kd.device.queue.writeBuffer(target, offset, bytes as Uint8Array<ArrayBuffer>);
    else {
      const tmp = new Uint8Array(padded);
      tmp.set(bytes);
      kd.device.queue.writeBuffer(target, offset, tmp);
    }
    return;
  }
  const staging = kd.device.createBuffer({ size: padded, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
  new Uint8Array(staging.getMappedRange()).set(bytes);
  staging.unmap();
  copyRaw(staging, 0, target, offset, padded);
  currentBatch().afterSubmit.push(() => staging.destroy());
}

/** Runs fn once the commands encoded so far are submitted (at once when nothing is pending). */
export function afterSubmit(fn: () => void): void {
  if (batch) batch.afterSubmit.push(fn);
  else fn();
}

/** Submits everything encoded so far. */
export function flush(): void {
  const b = batch;
  if (!b) return;
  batch = null;
  if (b.kd.lost) return;
  endPass(b);
  if (b.uniformUsed > 0) {
    b.kd.device.queue.writeBuffer(uniformRingBuffer(), 0, b.uniformBytes as Uint8Array<ArrayBuffer>, 0, b.uniformUsed * UNIFORM_SLOT);
  }
  profiler?.beforeSubmit(b.encoder);
  b.kd.device.queue.submit([b.encoder.finish()]);
  stats.submits++;
  profiler?.afterSubmit();
  for (const fn of b.afterSubmit) fn();
}

function deviceError(kd: KilnDevice, e: unknown): KilnError {
  if (kd.lost) return new DeviceError(`kiln: ${kd.lost}`);
  if (e instanceof KilnError) return e;
  return new DeviceError(`kiln: GPU readback failed: ${(e as Error)?.message ?? e}`);
}

/** Copies `bytes` from a buffer back to the host. The only forced sync in kiln. */
export async function readBuffer(src: PooledBuffer | GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
  const kd = gpu();
  recorder()?.refuse('readback');
  if ('buffer' in src) checkGeneration('read', src.generation, 'the buffer read');
  const buf = 'buffer' in src ? src.buffer : src;
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  const alignedOffset = offset - (offset % 4);
  const extra = offset - alignedOffset;
  const copySize = Math.ceil((size + extra) / 4) * 4;
  // The index-error words ride along in the same staging buffer, after the data.
  const flagAt = errorDirty ? copySize : -1;
  const staging = kd.device.createBuffer({ size: copySize + (flagAt >= 0 ? ERROR_BYTES : 0), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  encodeCopy(buf, alignedOffset, staging, 0, Math.min(copySize, buf.size - alignedOffset));
  const cutoff = flagAt >= 0 ? takeErrorFlag(staging, flagAt) : 0;
  flush();
  stats.readbacks++;
  try {
    await staging.mapAsync(GPUMapMode.READ);
  } catch (e) {
    staging.destroy();
    throw deviceError(kd, e);
  }
  if (kd.lost) {
    staging.destroy();
    throw new DeviceError(`kiln: ${kd.lost}`);
  }
  const mapped = staging.getMappedRange();
  const out = mapped.slice(extra, extra + bytes);
  const indexError = flagAt >= 0 ? decodeErrorFlag(new Uint32Array(mapped, flagAt, ERROR_WORDS), cutoff) : null;
  staging.unmap();
  staging.destroy();
  const err = takeAsyncError();
  if (err) throw err;
  if (indexError) throw indexError;
  return out;
}

/** Waits until the GPU has finished everything submitted so far. */
export async function sync(): Promise<void> {
  const kd = gpu();
  if (errorDirty) {
    // A kernel with index checks ran since the last sync: read its error words (that read is the wait).
    await readBuffer(errorFlagBuffer(kd), 0, 4);
    return;
  }
  flush();
  try {
    await kd.device.queue.onSubmittedWorkDone();
  } catch (e) {
    throw deviceError(kd, e);
  }
  if (kd.lost) throw new DeviceError(`kiln: ${kd.lost}`);
  const err = takeAsyncError();
  if (err) throw err;
}

// ---- Device-side index checks ----
//
// A kernel that takes indices (embedding ids, class targets) cannot throw, and must not read outside a tensor. It
// declares a storage binding with the reserved name `kiln_errors` (ERROR_WORDS u32 words, see
// kernels/index_check.wgsl) and a `check_id` params field; dispatch() binds this device's error flag and fills
// check_id with a fresh id that remembers the dispatch's label (and the index tensor's shape, when the launcher gives
// it). The first bad index a kernel meets is recorded with an atomic compare-exchange on the code word. At the next
// sync (every readback, and sync()) the words are copied into the same staging buffer as the data and the flag is
// cleared in the same submit; a set flag makes that sync throw an IndexError naming the op, the position and the value,
// as PyTorch's device-side asserts do. Syncs after which no checking kernel ran copy nothing.

/** The reserved binding name of the error flag (dispatch() binds it; op code never does). */
export const ERROR_BINDING = 'kiln_errors';
/** code, check id, position, value, limit, and three spare words. */
const ERROR_WORDS = 8;
const ERROR_BYTES = ERROR_WORDS * 4;
/** Kinds of index error (the code word), as kernels/index_check.wgsl names them. */
const CHECK_KINDS: Record<number, { noun: string; unit: string }> = {
  1: { noun: 'index', unit: 'rows' },
  2: { noun: 'target', unit: 'classes' },
};
const MAX_CHECKS = 1 << 16;

let errorFlag: { kd: KilnDevice; buf: GPUBuffer } | null = null;
/** Whether a checking kernel was encoded since the flag was last copied out. */
let errorDirty = false;
let nextCheckId = 1;
const checks = new Map<number, { label: string; shape?: readonly number[] }>();

function errorFlagBuffer(kd: KilnDevice): GPUBuffer {
  if (!errorFlag || errorFlag.kd !== kd) {
    errorFlag = {
      kd,
      buf: kd.device.createBuffer({ size: ERROR_BYTES, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: 'kiln index errors' }),
    };
  }
  return errorFlag.buf;
}

/**
 * The error flag to bind as `kiln_errors` for one dispatch, and the check id to put in its params. `label` names the
 * op in the error; `shape` (the index tensor's) turns the flat position into a multi-index.
 */
export function indexCheckBinding(label: string, shape?: readonly number[]): { buffer: GPUBuffer; id: number } {
  const kd = gpu();
  const buffer = errorFlagBuffer(kd);
  if (nextCheckId >= 0x7fffffff) nextCheckId = 1;
  const id = nextCheckId++;
  if (checks.size >= MAX_CHECKS) checks.delete(checks.keys().next().value!);
  checks.set(id, { label, shape: shape ? [...shape] : undefined });
  errorDirty = true;
  return { buffer, id };
}

/** Encodes the copy of the error words into `staging` at `at` and the clear of the flag; returns the id cutoff. */
function takeErrorFlag(staging: GPUBuffer, at: number): number {
  const flag = errorFlagBuffer(gpu());
  // (A readback refuses a trace, so these need not stay out of it.)
  encodeCopy(flag, 0, staging, at, ERROR_BYTES);
  encodeClear(flag);
  errorDirty = false;
  return nextCheckId;
}

/** The IndexError the copied words describe (null when clear); forgets the checks the copy covered. */
function decodeErrorFlag(words: Uint32Array, cutoff: number): IndexError | null {
  const [code, id, position, value, limit] = words;
  const ctx = code ? checks.get(id) : undefined;
  for (const k of checks.keys()) {
    if (k >= cutoff) break;
    checks.delete(k);
  }
  if (!code) return null;
  const kind = CHECK_KINDS[code] ?? { noun: 'index', unit: 'entries' };
  const label = ctx?.label ?? 'kiln';
  const at = ctx?.shape && ctx.shape.length > 0 ? unravel(position, ctx.shape) : [position];
  const v = value | 0;
  return new IndexError(`${label}: ${kind.noun} ${v} at position [${at.join(', ')}] is out of range for ${limit} ${kind.unit}`);
}

function unravel(flat: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let rem = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = rem % shape[d];
    rem = Math.floor(rem / shape[d]);
  }
  return out;
}
