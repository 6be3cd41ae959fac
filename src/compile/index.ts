// compile(fn): trace a step (forward, backward, optimizer step) once per input signature, then replay its recorded
// dispatch list. See plan.ts for the plan and recorder.ts (gpu layer) for what a trace holds.
//
// A call with a new signature runs fn eagerly with the recorder on (its results are real). A plan is made once two
// consecutive traces agree (the first call often differs: an optimizer builds its state, a table is uploaded once);
// until then, and wherever the trace cannot be replayed (a readback, host data that changes each call, a tensor freed
// and replaced between calls), calls run eagerly and `step.fallbackReason` says why. fn receives the step's own copies
// of its tensor arguments (contiguous), so a replay only copies the new arguments' contents in.
import { ValueError, checkOptions } from '../errors.js';
import { encodeCopy } from '../gpu/queue.js';
import { recorder, setRecorder, traceEpoch } from '../gpu/recorder.js';
import { Recording } from './recording.js';
import { Storage, keep } from '../tensor/base.js';
import { bytesPerElement } from '../tensor/dtype.js';
import { isGradEnabled } from '../autograd/mode.js';
import { Tensor } from '../ops/tensor.js';
import { empty } from '../ops/creation.js';
import { contiguous } from '../ops/views.js';
import { noGrad } from '../autograd/mode.js';
import { acquireBuffer } from '../gpu/memory.js';
import { Plan, compareRecordings, unplannable, type PlanSummary } from './plan.js';
import { explainPlan } from './explain.js';

export interface CompileOptions {
  /**
   * The compiler passes (default true: all of them); false: replay the trace as recorded; or an object switching
   * passes one by one ({ horizontal: false }: every pass but that one), for studying what each contributes.
   */
  fuse?: boolean | FusePasses;
  /** Input signatures (shapes, dtypes, other arguments) kept at once; the least recently used is dropped (default 8). */
  cacheSize?: number;
  /** Traces of one signature tried before falling back to eager for good (default 4). */
  maxTraces?: number;
}

/** The compiler's passes, in the order they run (src/compile/plan.ts); each defaults to true. */
export interface FusePasses {
  /** Cross-entropy's backward (with loss.backward()'s seed) computed by its forward's workgroups (crossentropy.ts). */
  crossEntropy?: boolean;
  /** Matmul epilogues: residual adds, relu/gelu and their gradients folded into the matmul's store (epilogue.ts). */
  epilogues?: boolean;
  /** Row norms: a layerNorm of a matmul's result, and the dx of its backward, folded into the matmul (rownorm.ts). */
  layerNorm?: boolean;
  /** Zero regions: adds of zero-filled slice gradients become writes into one buffer (regions.ts). */
  regions?: boolean;
  /**
   * Attention layout: the fused attention writes o where its layout copy put it, its backward reads dO where that copy
   * read it, computes the delta rows itself and writes dq, dk, dv into their final places (attention_layout.ts).
   */
  attentionLayout?: boolean;
  /** Elementwise chains become one generated kernel each (fuse.ts). */
  elementwise?: boolean;
  /** Commands reordered by dependency level, so independent ones sit side by side (schedule.ts). */
  schedule?: boolean;
  /** Independent neighbouring dispatches become one dispatch of a generated kernel, `multi.a+b` (horizontal.ts). */
  horizontal?: boolean;
}

export const PASS_NAMES = ['crossEntropy', 'epilogues', 'layerNorm', 'regions', 'attentionLayout', 'elementwise', 'schedule', 'horizontal'] as const satisfies readonly (keyof FusePasses)[];
export type Passes = Readonly<Record<(typeof PASS_NAMES)[number], boolean>>;

function passesOf(fuse: unknown): Passes {
  if (typeof fuse === 'boolean') return Object.fromEntries(PASS_NAMES.map((n) => [n, fuse])) as unknown as Passes;
  if (fuse === null || typeof fuse !== 'object' || Array.isArray(fuse)) throw new ValueError(`compile: fuse must be true, false or an object of pass switches, got ${String(fuse)}`);
  const o = checkOptions('compile fuse', fuse as Record<string, unknown>, PASS_NAMES as unknown as string[]);
  const out: Record<string, boolean> = {};
  for (const n of PASS_NAMES) {
    const v = (o as Record<string, unknown>)[n] ?? true;
    if (typeof v !== 'boolean') throw new ValueError(`compile: fuse.${n} must be true or false, got ${String(v)}`);
    out[n] = v;
  }
  return out as unknown as Passes;
}

export interface ExplainOptions {
  /** Also print the WGSL of every generated (fused) kernel. */
  wgsl?: boolean;
}

export interface CompiledStats {
  /** Calls that ran fn eagerly while tracing. */
  traces: number;
  /** Calls that replayed a plan. */
  replays: number;
  /** Calls that ran fn eagerly because the signature falls back. */
  eager: number;
}

export type CompiledStep<A extends unknown[], R> = ((...args: A) => R) & {
  /** Why the last call's signature runs eagerly (null while it is traced or replayed). */
  readonly fallbackReason: string | null;
  readonly stats: CompiledStats;
  /** The plan of the last call's signature: kernels, what each fused, dispatches, planned memory. */
  explain(options?: ExplainOptions): string;
  /** The last call's plan summary, or null before a plan exists. */
  readonly summary: PlanSummary | null;
  /** Frees the plans, the step's copies of its arguments and its buffers. */
  dispose(): void;
};

interface Entry {
  readonly key: string;
  /** The step's copies of the tensor arguments, which fn receives. */
  readonly inputs: Tensor[];
  state: 'tracing' | 'replay' | 'eager';
  reason: string | null;
  last: Recording | null;
  /** fn's own results of the last trace (a plan writes into their buffers; each call returns copies). */
  outputs: Tensor[];
  /** Those of them the trace made (the step disposes them; others, such as a parameter returned, are not its own). */
  owned: Tensor[];
  /** The non-tensor parts of the result, and where the tensors go. */
  shape: ResultShape | null;
  plan: Plan | null;
  traces: number;
  epoch: number;
}

type ResultShape = { kind: 'tensor'; index: number } | { kind: 'array'; items: ResultShape[] } | { kind: 'object'; items: [string, ResultShape][] } | { kind: 'value'; value: unknown };

function describeResult(value: unknown, tensors: Tensor[]): ResultShape | string {
  if (value instanceof Tensor) {
    tensors.push(value);
    return { kind: 'tensor', index: tensors.length - 1 };
  }
  if (Array.isArray(value)) {
    const items: ResultShape[] = [];
    for (const v of value) {
      const d = describeResult(v, tensors);
      if (typeof d === 'string') return d;
      items.push(d);
    }
    return { kind: 'array', items };
  }
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const items: [string, ResultShape][] = [];
    for (const [k, v] of Object.entries(value)) {
      const d = describeResult(v, tensors);
      if (typeof d === 'string') return d;
      items.push([k, d]);
    }
    return { kind: 'object', items };
  }
  if (value === undefined || value === null || typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') return { kind: 'value', value };
  return `the compiled function returned ${typeof value === 'object' ? (value.constructor?.name ?? 'an object') : typeof value}; a compiled step returns tensors, numbers, strings, booleans, and arrays or plain objects of them`;
}

function buildResult(shape: ResultShape, tensors: readonly Tensor[]): unknown {
  if (shape.kind === 'tensor') return tensors[shape.index];
  if (shape.kind === 'array') return shape.items.map((s) => buildResult(s, tensors));
  if (shape.kind === 'object') return Object.fromEntries(shape.items.map(([k, s]) => [k, buildResult(s, tensors)]));
  return shape.value;
}

function sameShapeOf(a: ResultShape, b: ResultShape): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function dropGraphs(value: unknown): void {
  if (value instanceof Tensor) {
    const link = value.gradFn;
    if (link) {
      value.gradFn = null;
      link.drop();
    }
  } else if (Array.isArray(value)) for (const v of value) dropGraphs(v);
  else if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) dropGraphs(v);
}

/** A new tensor the caller owns holding `t`'s values (same view over a copy of its storage). */
function copyOut(t: Tensor): Tensor {
  const s = t.buf('compile');
  const bytes = Math.ceil((s.numel * bytesPerElement(s.dtype)) / 4) * 4;
  const pb = acquireBuffer(Math.max(bytes, 4), 'compiled step output');
  encodeCopy(s.buffer.buffer, 0, pb.buffer, 0, Math.max(4, bytes));
  const out = new Tensor(new Storage(pb, s.numel, s.dtype), t.shape.slice(), t.strides.slice(), t.offset, t.dtype);
  out.label = t.label;
  return out;
}

/** Copies a user's argument into the step's own contiguous copy of it. */
function copyIn(src: Tensor, dst: Tensor): void {
  const bytes = Math.ceil((src.size * bytesPerElement(src.dtype)) / 4) * 4;
  if (bytes === 0) return;
  const dense = src.isContiguous && (src.offset * bytesPerElement(src.dtype)) % 4 === 0 ? src : noGrad(() => contiguous(src));
  encodeCopy(dense.buf('compile').buffer.buffer, dense.offset * bytesPerElement(dense.dtype), dst.buf('compile').buffer.buffer, 0, bytes);
  if (dense !== src) dense.dispose();
}

/**
 * `compile(fn, options?)`: a function with fn's signature and results whose calls replay a traced plan (see the file
 * comment). fn must be synchronous and take tensors (and numbers, strings, booleans, which are part of the signature).
 */
export function compile<A extends unknown[], R>(fn: (...args: A) => R, options?: CompileOptions): CompiledStep<A, R> {
  const o = checkOptions('compile', options, ['fuse', 'cacheSize', 'maxTraces']);
  if (typeof fn !== 'function') throw new ValueError(`compile: expects a function, got ${typeof fn}`);
  const passes = passesOf(o.fuse ?? true);
  const cacheSize = o.cacheSize ?? 8;
  if (!Number.isInteger(cacheSize) || cacheSize < 1) throw new ValueError(`compile: cacheSize must be an integer >= 1, got ${cacheSize}`);
  const maxTraces = o.maxTraces ?? 4;
  if (!Number.isInteger(maxTraces) || maxTraces < 2) throw new ValueError(`compile: maxTraces must be an integer >= 2, got ${maxTraces}`);

  const cache = new Map<string, Entry>();
  const stats: CompiledStats = { traces: 0, replays: 0, eager: 0 };
  let lastEntry: Entry | null = null;
  let lastReason: string | null = null;
  let disposed = false;

  const dropEntry = (e: Entry) => {
    e.plan?.dispose();
    e.plan = null;
    for (const t of e.owned) t.dispose();
    e.outputs = [];
    e.owned = [];
    for (const t of e.inputs) t.dispose();
    e.inputs.length = 0;
    e.last = null;
  };
  const fallBack = (e: Entry, reason: string) => {
    e.state = 'eager';
    e.reason = reason;
    e.plan?.dispose();
    e.plan = null;
    for (const t of e.owned) t.dispose();
    e.outputs = [];
    e.owned = [];
    e.last = null;
  };

  const signature = (args: unknown[]): { key: string; tensors: Tensor[] } | string => {
    const parts: string[] = [isGradEnabled() ? 'grad' : 'nograd'];
    const tensors: Tensor[] = [];
    for (const [i, a] of args.entries()) {
      if (a instanceof Tensor) {
        a.buf('compile');
        if (a.requiresGrad) return `argument ${i} requires grad (a compiled step takes data; parameters are reached through the closure)`;
        tensors.push(a);
        parts.push(`${a.dtype}[${a.shape.join(',')}]`);
      } else if (a === undefined || a === null || typeof a === 'number' || typeof a === 'string' || typeof a === 'boolean') {
        parts.push(JSON.stringify(a) ?? 'undefined');
      } else {
        return `argument ${i} is ${typeof a === 'object' ? (a.constructor?.name ?? 'an object') : typeof a}; a compiled step takes tensors, numbers, strings and booleans`;
      }
    }
    return { key: parts.join('|'), tensors };
  };

  const step = ((...args: A): R => {
    if (disposed) throw new ValueError('compile: the compiled step was disposed');
    // Inside another step's trace, this one is part of that trace.
    if (recorder()) return fn(...args);
    const sig = signature(args);
    if (typeof sig === 'string') {
      lastReason = sig;
      lastEntry = null;
      stats.eager++;
      return fn(...args);
    }
    let e = cache.get(sig.key);
    if (e) {
      cache.delete(sig.key);
      cache.set(sig.key, e);
    } else {
      e = { key: sig.key, inputs: [], state: 'tracing', reason: null, last: null, outputs: [], owned: [], shape: null, plan: null, traces: 0, epoch: traceEpoch() };
      cache.set(sig.key, e);
      while (cache.size > cacheSize) {
        const [k, old] = cache.entries().next().value!;
        cache.delete(k);
        dropEntry(old);
      }
    }
    lastEntry = e;
    if (e.state === 'eager') {
      lastReason = e.reason;
      stats.eager++;
      return fn(...args);
    }
    lastReason = null;
    if (e.plan && (e.epoch !== traceEpoch() || !e.plan.valid() || e.outputs.some((t) => t.isDisposed))) {
      // Something the plan binds was freed or replaced, or a setting changed: trace again.
      e.plan.dispose();
      e.plan = null;
      e.last = null;
      e.state = 'tracing';
    }
    if (e.inputs.length === 0) for (const t of sig.tensors) e.inputs.push(keep(empty(t.shape.slice(), t.dtype, 'compiled step input')));
    sig.tensors.forEach((t, i) => copyIn(t, e.inputs[i]));
    if (e.plan) {
      stats.replays++;
      e.plan.replay();
      return buildResult(e.shape!, e.outputs.map(copyOut)) as R;
    }
    return trace(e, args);
  }) as CompiledStep<A, R>;

  const trace = (e: Entry, args: A): R => {
    stats.traces++;
    e.traces++;
    let k = 0;
    const fnArgs = args.map((a) => (a instanceof Tensor ? e.inputs[k++] : a)) as A;
    const epoch = traceEpoch();
    const rec = new Recording();
    setRecorder(rec);
    let out: R;
    try {
      out = fn(...fnArgs);
      // Results come back detached: what autograd saved for a backward that never runs would otherwise outlive the
      // trace (and keep alive buffers the plan binds, such as a parameter the caller later replaces).
      if (!(out && typeof (out as { then?: unknown }).then === 'function')) dropGraphs(out);
    } finally {
      setRecorder(null);
    }
    if (out && typeof (out as { then?: unknown }).then === 'function') {
      fallBack(e, 'the compiled function is async (it returned a Promise); a compiled step is synchronous, with no reads inside');
      lastReason = e.reason;
      return out;
    }
    const tensors: Tensor[] = [];
    const shape = describeResult(out, tensors);
    const reason = typeof shape === 'string' ? shape : unplannable(rec);
    if (reason !== null) {
      fallBack(e, reason);
      lastReason = reason;
      return out;
    }
    const resultShape = shape as ResultShape;
    const made = new Set(rec.slots.filter((sl) => sl.origin === 'temp' && sl.releasedAt === null).map((sl) => sl.buffer));
    const owned = tensors.filter((t, i) => made.has(t.buf('compile').buffer.buffer) && tensors.indexOf(t) === i);
    for (const t of owned) keep(t);
    let diff: string | null = 'first trace';
    if (e.last && e.shape && sameShapeOf(e.shape, resultShape) && e.epoch === epoch) diff = compareRecordings(e.last, rec);
    for (const t of e.owned) t.dispose();
    e.outputs = tensors;
    e.owned = owned;
    e.shape = resultShape;
    e.last = rec;
    e.epoch = epoch;
    const result = buildResult(resultShape, tensors.map(copyOut)) as R;
    if (diff === null) {
      e.plan = new Plan(rec, { passes });
      e.state = 'replay';
      e.last = null;
    } else if (e.traces >= maxTraces) {
      fallBack(e, `the step's GPU work differs between calls: ${diff}`);
      lastReason = e.reason;
    }
    return result;
  };

  Object.defineProperties(step, {
    fallbackReason: { get: () => lastReason },
    stats: { get: () => ({ ...stats }) },
    summary: { get: () => lastEntry?.plan?.summary ?? null },
  });
  step.explain = (opts?: ExplainOptions) => {
    const eo = checkOptions('explain', opts, ['wgsl']);
    const e = lastEntry;
    if (!e) return lastReason ? `compiled step: runs eagerly: ${lastReason}` : 'compiled step: not called yet';
    if (e.state === 'eager') return `compiled step [${e.key}]: runs eagerly: ${e.reason}`;
    if (!e.plan) return `compiled step [${e.key}]: tracing (${e.traces} trace${e.traces === 1 ? '' : 's'} so far; a plan is made when two consecutive traces agree)`;
    return explainPlan(e.key, e.plan, { wgsl: eo.wgsl ?? false });
  };
  step.dispose = () => {
    if (disposed) return;
    disposed = true;
    for (const e of cache.values()) dropEntry(e);
    cache.clear();
    lastEntry = null;
  };
  return step;
}
