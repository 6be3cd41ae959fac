// Command batching: every dispatch, upload and copy is encoded into one command encoder; the encoder
// is submitted only at sync points (a readback, an explicit flush, or when the batch grows large).
import { DeviceError, KilnError } from '../errors.js';
import { gpu, onDeviceInit, onUncapturedError, type KilnDevice } from './device.js';
import type { PooledBuffer } from './memory.js';

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

export const stats = { dispatches: 0, submits: 0, uploads: 0, readbacks: 0 };
export function resetStats(): void {
  stats.dispatches = stats.submits = stats.uploads = stats.readbacks = 0;
}

/** Profiling hook: when set, each dispatch runs in its own pass with timestamp writes. */
export interface DispatchProfiler {
  /** `bytes`: the sizes of the storage buffers the dispatch binds (an upper bound on the bytes it moves). */
  timestampWrites(label: string, bytes: number): GPUComputePassTimestampWrites | undefined;
  beforeSubmit(encoder: GPUCommandEncoder): void;
  afterSubmit(): void;
}
let profiler: DispatchProfiler | null = null;
export function setProfiler(p: DispatchProfiler | null): void {
  flush();
  profiler = p;
}

onDeviceInit(() => {
  uniformRing = null;
  batch = null;
  firstError = null;
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
  const tw = profiler?.timestampWrites(label, boundBytes);
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

/** Encodes a buffer-to-buffer copy in order with the dispatches. */
export function encodeCopy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
  const b = currentBatch();
  endPass(b);
  b.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
}

/** Writes host data into a buffer, ordered after every pending use of that buffer. */
export function uploadToBuffer(target: GPUBuffer, offset: number, data: ArrayBufferView): void {
  const kd = gpu();
  stats.uploads++;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const padded = Math.ceil(bytes.byteLength / 4) * 4;
  if (padded === 0) return;
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
  encodeCopy(staging, 0, target, offset, padded);
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
  const buf = 'buffer' in src ? src.buffer : src;
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  const alignedOffset = offset - (offset % 4);
  const extra = offset - alignedOffset;
  const copySize = Math.ceil((size + extra) / 4) * 4;
  const staging = kd.device.createBuffer({ size: copySize, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  encodeCopy(buf, alignedOffset, staging, 0, Math.min(copySize, buf.size - alignedOffset));
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
  const out = staging.getMappedRange().slice(extra, extra + bytes);
  staging.unmap();
  staging.destroy();
  const err = takeAsyncError();
  if (err) throw err;
  return out;
}

/** Waits until the GPU has finished everything submitted so far. */
export async function sync(): Promise<void> {
  const kd = gpu();
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
