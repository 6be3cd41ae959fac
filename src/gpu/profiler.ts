// Timestamp profiling of kiln's dispatches, for benchmarks: while a GpuTimer runs, every dispatch gets its own
// compute pass with timestamp writes (see setProfiler in queue.ts), and stop() returns the summed kernel time.
import { gpu } from './device.js';
import { ValueError } from '../errors.js';
import { currentScope, flush, isProfiling, popScope, pushScope, setProfiler, type DispatchProfiler } from './queue.js';

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
  /**
   * Per scope (a module path such as 'layers.0.self_attn', set by Module.forward, or a recordFunction name), the
   * dispatches encoded inside it or inside a scope nested in it (inclusive, as PyTorch's profiler totals); '' holds
   * every dispatch (the outermost module's scope, and work outside any module).
   */
  byScope: Record<string, { count: number; ns: number; bytes: number }>;
  /** One row per (innermost scope, label): what ran where, in first-seen order. */
  rows: { scope: string; label: string; count: number; ns: number; bytes: number }[];
}

/** 'a.b.c' and its enclosing scopes 'a.b', 'a' and '' (module paths nest by their dotted prefixes). */
function enclosing(scope: string): string[] {
  if (!scope) return [''];
  const parts = scope.split('.');
  return ['', ...parts.map((_p, i) => parts.slice(0, i + 1).join('.'))];
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
  const pending: Promise<{ labels: string[]; sizes: number[]; scopes: string[]; stamps: BigUint64Array | null }>[] = [];
  let labels: string[] = [];
  let sizes: number[] = [];
  let scopeOf: string[] = [];
  let untimed = 0;
  let mapAfterSubmit: (() => void) | null = null; // readback of the submit being built; mapped once submitted
  const p: DispatchProfiler = {
    timestampWrites(label, bytes, scope) {
      if (labels.length >= PASSES_PER_SUBMIT) {
        untimed++;
        return undefined;
      }
      const i = labels.length;
      labels.push(label);
      sizes.push(bytes);
      scopeOf.push(scope);
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
      const theseScopes = scopeOf;
      labels = [];
      sizes = [];
      scopeOf = [];
      mapAfterSubmit = () => {
        pending.push(
          read.mapAsync(GPUMapMode.READ).then(
            () => {
              const stamps = new BigUint64Array(read.getMappedRange().slice(0));
              read.unmap();
              read.destroy();
              resolve.destroy();
              return { labels: these, sizes: theseSizes, scopes: theseScopes, stamps };
            },
            () => ({ labels: these, sizes: theseSizes, scopes: theseScopes, stamps: null }),
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
      const out: GpuTiming = { kernelNs: 0, spanNs: 0, dispatches: 0, untimed, byLabel: {}, byScope: {}, rows: [] };
      const rowOf = new Map<string, GpuTiming['rows'][number]>();
      let first = Infinity;
      let last = -Infinity;
      for (const { labels: ls, sizes: sz, scopes: sc, stamps } of parts) {
        if (!stamps) continue;
        ls.forEach((label, i) => {
          const b = Number(stamps[2 * i]);
          const e = Number(stamps[2 * i + 1]);
          const ns = Math.max(0, e - b);
          out.kernelNs += ns;
          out.dispatches++;
          first = Math.min(first, b);
          last = Math.max(last, e);
          const bytes = sz[i] ?? 0;
          const add = (slot: { count: number; ns: number; bytes: number }) => {
            slot.count++;
            slot.ns += ns;
            slot.bytes += bytes;
          };
          add((out.byLabel[label] ??= { count: 0, ns: 0, bytes: 0 }));
          const scope = sc[i] ?? '';
          for (const s of enclosing(scope)) add((out.byScope[s] ??= { count: 0, ns: 0, bytes: 0 }));
          const key = `${scope}\u0000${label}`;
          let row = rowOf.get(key);
          if (!row) {
            row = { scope, label, count: 0, ns: 0, bytes: 0 };
            rowOf.set(key, row);
            out.rows.push(row);
          }
          add(row);
        });
      }
      out.spanNs = out.dispatches ? last - first : 0;
      return out;
    },
  };
}

/**
 * Runs fn inside a profiler scope named `name` (nested in the current one: 'layers.0.self_attn.name'), as PyTorch's
 * torch.profiler.record_function; returns what fn returns. Costs nothing while no timer runs.
 */
export function recordFunction<T>(name: string, fn: () => T): T {
  if (typeof name !== 'string' || !name) throw new ValueError(`recordFunction: name must be a non-empty string, got ${JSON.stringify(name)}`);
  if (!isProfiling()) return fn();
  const outer = currentScope();
  pushScope(outer ? `${outer}.${name}` : name);
  try {
    return fn();
  } finally {
    popScope();
  }
}
