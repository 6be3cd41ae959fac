// The buffer pool and live-memory accounting. Buffers are pooled by size class; a tensor's storage
// owns one buffer until its last view is disposed, then the buffer returns to the pool.
import { DeviceError } from '../errors.js';
import { checkGeneration, gpu, onDeviceInit, onDeviceLost } from './device.js';
import { afterSubmit } from './queue.js';
import { recorder } from './recorder.js';

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
  /** The device generation the buffer was created on (see device.ts checkGeneration). */
  generation: number;
  /**
   * Moves on each time the pool hands the buffer out or takes it back: a compiled step checks that a buffer it binds is
   * still the lease its trace saw (not freed, not someone else's since).
   */
  lease: number;
}

const pooledByBuffer = new WeakMap<GPUBuffer, PooledBuffer>();
/** The pooled buffer record of a GPU buffer (null for buffers the pool did not make: dummies, staging, uniforms). */
export function pooledOf(buffer: GPUBuffer): PooledBuffer | null {
  return pooledByBuffer.get(buffer) ?? null;
}

/** Throws a DeviceError when a pooled buffer belongs to a device that is no longer the live one. */
export function checkBuffer(fn: string, pb: PooledBuffer, what = 'a buffer'): void {
  checkGeneration(fn, pb.generation, what);
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

/**
 * The most bytes one tensor buffer may hold: every one is bound to kernels as a storage buffer, so it must fit both
 * maxBufferSize and maxStorageBufferBindingSize (a larger one could be created but never used).
 */
export function maxTensorBytes(): number {
  const limits = gpu().device.limits;
  return Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
}

/**
 * Takes a storage buffer of at least `bytes` from the pool (or creates one) and counts it live. A size over the
 * adapter's limits fails here, before any buffer exists, so memory() is unchanged by the failed call.
 */
export function acquireBuffer(bytes: number, what = 'tensor'): PooledBuffer {
  const kd = gpu();
  const limits = kd.device.limits;
  const max = maxTensorBytes();
  if (!(bytes >= 0) || !Number.isFinite(bytes) || bytes > max) {
    const which = limits.maxStorageBufferBindingSize <= limits.maxBufferSize ? 'maxStorageBufferBindingSize' : 'maxBufferSize';
    throw new DeviceError(`${what}: needs a ${bytes}-byte buffer, over this adapter's ${which} of ${max} bytes`);
  }
  // The size class may overshoot the limit; then the exact size (whole words) is used.
  const size = sizeClass(bytes);
  const realSize = size > max ? Math.ceil(bytes / 4) * 4 : size;
  let pb = free.get(realSize)?.pop();
  if (pb) {
    pooledBytes -= pb.size;
  } else {
    const buffer = kd.device.createBuffer({ size: realSize, usage: STORAGE_USAGE, label: what });
    pb = { buffer, id: nextId++, size: realSize, generation: kd.generation, lease: 0 };
    pooledByBuffer.set(buffer, pb);
  }
  pb.lease++;
  recorder()?.acquired(pb);
  liveBuffers++;
  liveBytes += pb.size;
  if (liveBytes > peakBytes) peakBytes = liveBytes;
  return pb;
}

/**
 * Returns a buffer to the pool. Safe with pending GPU work: later uses are encoded after earlier ones. A buffer of a
 * device that is gone is dropped (never pooled, never handed out again) and no longer counts: memory() counts the
 * live device's buffers, which were all zero when it was acquired.
 */
export function releaseBuffer(pb: PooledBuffer, generation = pb.generation): void {
  if (generation !== generationNow || pb.generation !== generationNow || lostNow) return;
  recorder()?.released(pb);
  pb.lease++;
  liveBuffers--;
  liveBytes -= pb.size;
  let list = free.get(pb.size);
  if (!list) free.set(pb.size, (list = []));
  list.push(pb);
  pooledBytes += pb.size;
  trimPool();
}

let generationNow = 0;
let lostNow = false;
onDeviceInit((d) => {
  generationNow = d.generation;
  lostNow = false;
  // A new device holds no buffers yet; tensors of the old one are dead and are not counted.
  liveBuffers = 0;
  liveBytes = 0;
  peakBytes = 0;
  // Software adapters share the host's memory: keep the pool small there. A hardware GPU can keep more
  // free buffers for reuse (large attention scores in reference paths, activations between steps).
  if (!userPoolLimit) maxPooledBytes = d.info.isSoftware ? 512 * 1024 * 1024 : 4 * 1024 * 1024 * 1024;
  free.clear();
  pooledBytes = 0;
});
onDeviceLost(() => {
  // The device's memory is gone: nothing of it is pooled or counted any more.
  lostNow = true;
  free.clear();
  pooledBytes = 0;
  liveBuffers = 0;
  liveBytes = 0;
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
