// The buffer pool and live-memory accounting. Buffers are pooled by size class; a tensor's storage
// owns one buffer until its last view is disposed, then the buffer returns to the pool.
import { DeviceError, fmtShape } from '../errors.js';
import { gpu, onDeviceInit, onDeviceLost } from './device.js';
import { afterSubmit } from './queue.js';

export const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8; /* COPY_DST */

/** Size classes: powers of two with four steps each, so a buffer wastes at most 25%. */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (b <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 4;
  return Math.ceil(b / step) * step;
}

let nextId = 1;
export interface PooledBuffer {
  buffer: GPUBuffer;
  id: number;
  size: number;
}

const free = new Map<number, PooledBuffer[]>();
let pooledBytes = 0;
let maxPooledBytes = 512 * 1024 * 1024;
let liveBuffers = 0;
let liveBytes = 0;
let peakBytes = 0;

let userPoolLimit = false;
/** Most bytes of free buffers the pool keeps for reuse (default 512 MiB on software adapters, 4 GiB on GPUs). */
export function setPoolLimit(bytes: number): void {
  userPoolLimit = true;
  maxPooledBytes = bytes;
  trimPool();
}

function trimPool(): void {
  if (pooledBytes <= maxPooledBytes) return;
  // Evict the largest classes first: they are the rarest to be reused exactly.
  const classes = [...free.keys()].sort((a, b) => b - a);
  for (const c of classes) {
    const list = free.get(c)!;
    while (list.length && pooledBytes > maxPooledBytes) {
      const pb = list.pop()!;
      pooledBytes -= pb.size;
      // Commands already encoded (not yet submitted) may still use it: destroy after the submit.
      afterSubmit(() => pb.buffer.destroy());
    }
    if (!list.length) free.delete(c);
    if (pooledBytes <= maxPooledBytes) break;
  }
}

/** Takes a storage buffer of at least `bytes` from the pool (or creates one) and counts it live. */
export function acquireBuffer(bytes: number, what = 'tensor'): PooledBuffer {
  const kd = gpu();
  const size = sizeClass(bytes);
  const maxBuf = kd.device.limits.maxBufferSize;
  if (size > maxBuf && bytes <= maxBuf) {
    // The size class overshoots the limit; fall back to the exact size.
  } else if (bytes > maxBuf) {
    throw new DeviceError(`${what}: needs a ${bytes}-byte buffer, over this adapter's maxBufferSize of ${maxBuf} bytes`);
  }
  const realSize = size > maxBuf ? Math.ceil(bytes / 4) * 4 : size;
  let pb = free.get(realSize)?.pop();
  if (pb) {
    pooledBytes -= pb.size;
  } else {
    const buffer = kd.device.createBuffer({ size: realSize, usage: STORAGE_USAGE, label: what });
    pb = { buffer, id: nextId++, size: realSize };
  }
  liveBuffers++;
  liveBytes += pb.size;
  if (liveBytes > peakBytes) peakBytes = liveBytes;
  return pb;
}

/** Returns a buffer to the pool. Safe with pending GPU work: later uses are encoded after earlier ones. */
export function releaseBuffer(pb: PooledBuffer, generation: number): void {
  liveBuffers--;
  liveBytes -= pb.size;
  const kd = currentGeneration();
  if (kd !== generation) return; // the device it belonged to is gone
  let list = free.get(pb.size);
  if (!list) free.set(pb.size, (list = []));
  list.push(pb);
  pooledBytes += pb.size;
  trimPool();
}

let generationNow = 0;
function currentGeneration(): number {
  return generationNow;
}
onDeviceInit((d) => {
  generationNow = d.generation;
  // Software adapters share the host's memory: keep the pool small there. A hardware GPU can keep more
  // free buffers for reuse (large attention scores in reference paths, activations between steps).
  if (!userPoolLimit) maxPooledBytes = d.info.isSoftware ? 512 * 1024 * 1024 : 4 * 1024 * 1024 * 1024;
  free.clear();
  pooledBytes = 0;
});
onDeviceLost(() => {
  free.clear();
  pooledBytes = 0;
});

export interface MemoryInfo {
  /** Buffers owned by live tensors (not pooled free buffers, caches or uniforms). */
  buffers: number;
  bytes: number;
  peakBytes: number;
  /** Free buffers kept for reuse. */
  pooledBytes: number;
}

export function memory(): MemoryInfo {
  return { buffers: liveBuffers, bytes: liveBytes, peakBytes, pooledBytes };
}

export function resetPeak(): void {
  peakBytes = liveBytes;
}

/** Frees every pooled (unused) buffer. */
export function emptyCache(): void {
  for (const list of free.values()) for (const pb of list) afterSubmit(() => pb.buffer.destroy());
  free.clear();
  pooledBytes = 0;
}

export function describeBytes(shape: number[], bytesPerElement: number): string {
  return `${fmtShape(shape)} (${shape.reduce((a, b) => a * b, 1) * bytesPerElement} bytes)`;
}
