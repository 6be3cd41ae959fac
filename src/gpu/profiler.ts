// Timestamp profiling of kiln's dispatches, for benchmarks: while a GpuTimer runs, every dispatch gets its own
// compute pass with timestamp writes (see setProfiler in queue.ts), and stop() returns the summed kernel time.
import { gpu } from './device.js';
import { flush, setProfiler, type DispatchProfiler } from './queue.js';

const PASSES_PER_SUBMIT = 1024; // a query set holds at most 4096 queries; two per pass

export interface GpuTiming {
  /** Sum over timed dispatches of (end - begin), in nanoseconds: kernel time, without the gaps between passes. */
  kernelNs: number;
  /** Last end minus first begin over all timed dispatches, in nanoseconds (includes gaps between passes). */
  spanNs: number;
  /** Dispatches that were timed. */
  dispatches: number;
  /** Dispatches that ran without timestamps (more than PASSES_PER_SUBMIT in one submit). */
  untimed: number;
  /** Kernel time per dispatch label, in nanoseconds. */
  /** Per kernel label: dispatches, summed kernel time, and summed bytes of the storage buffers bound (an upper bound on bytes moved). */
  byLabel: Record<string, { count: number; ns: number; bytes: number }>;
}

/** Whether the live device can time dispatches (the adapter has 'timestamp-query'). */
export function hasTimestampQuery(): boolean {
  return gpu().hasTimestamps;
}

/** The GPUDevice kiln computes on, for benchmarks that run their own raw WebGPU kernels beside kiln's. */
export function gpuDevice(): GPUDevice {
  return gpu().device;
}

/**
 * Starts timing every dispatch kiln encodes from now on; `await timer.stop()` ends it and returns the timing.
 * Only one timer runs at a time. Timing changes encoding (one pass per dispatch), so measure wall-clock
 * time in a separate run.
 */
export function startGpuTimer(): { stop(): Promise<GpuTiming> } {
  const kd = gpu();
  if (!kd.hasTimestamps) throw new Error("kiln: startGpuTimer needs the adapter feature 'timestamp-query'");
  const device = kd.device;
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2 * PASSES_PER_SUBMIT });
  const pending: Promise<{ labels: string[]; sizes: number[]; stamps: BigUint64Array | null }>[] = [];
  let labels: string[] = [];
  let sizes: number[] = [];
  let untimed = 0;
  let mapAfterSubmit: (() => void) | null = null; // readback of the submit being built; mapped once submitted
  const p: DispatchProfiler = {
    timestampWrites(label, bytes) {
      if (labels.length >= PASSES_PER_SUBMIT) {
        untimed++;
        return undefined;
      }
      const i = labels.length;
      labels.push(label);
      sizes.push(bytes);
      return { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
    },
    beforeSubmit(encoder) {
      if (labels.length === 0) return;
      const bytes = 16 * labels.length;
      const resolve = device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      const read = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      encoder.resolveQuerySet(querySet, 0, 2 * labels.length, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, read, 0, bytes);
      const these = labels;
      const theseSizes = sizes;
      labels = [];
      sizes = [];
      mapAfterSubmit = () => {
        pending.push(
          read.mapAsync(GPUMapMode.READ).then(
            () => {
              const stamps = new BigUint64Array(read.getMappedRange().slice(0));
              read.unmap();
              read.destroy();
              resolve.destroy();
              return { labels: these, sizes: theseSizes, stamps };
            },
            () => ({ labels: these, sizes: theseSizes, stamps: null }),
          ),
        );
      };
    },
    afterSubmit() {
      mapAfterSubmit?.();
      mapAfterSubmit = null;
    },
  };
  setProfiler(p);
  return {
    async stop() {
      flush();
      setProfiler(null);
      const parts = await Promise.all(pending);
      querySet.destroy();
      const out: GpuTiming = { kernelNs: 0, spanNs: 0, dispatches: 0, untimed, byLabel: {} };
      let first = Infinity;
      let last = -Infinity;
      for (const { labels: ls, sizes: sz, stamps } of parts) {
        if (!stamps) continue;
        ls.forEach((label, i) => {
          const b = Number(stamps[2 * i]);
          const e = Number(stamps[2 * i + 1]);
          const ns = Math.max(0, e - b);
          out.kernelNs += ns;
          out.dispatches++;
          first = Math.min(first, b);
          last = Math.max(last, e);
          const slot = (out.byLabel[label] ??= { count: 0, ns: 0, bytes: 0 });
          slot.count++;
          slot.ns += ns;
          slot.bytes += sz[i] ?? 0;
        });
      }
      out.spanNs = out.dispatches ? last - first : 0;
      return out;
    },
  };
}
