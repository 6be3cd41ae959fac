// Shared helpers for the GPU op tests: float64 references in, kiln tensors out, NaN-poisoned pools,
// leak checks and gradient checks against float64 finite differences.
import { expect } from 'vitest';
import { type Tensor, full, memory, tensor, tidy, mul, sum } from '../src/index.node';
import { type Ref, allClose, numel, randArr, ref, rng } from './reference/core';
import { checkGrad, numericGrad } from './reference/gradcheck';
import { stats } from '../src/gpu/queue';

/** GPU work encoded so far (dispatches, copies and uploads), to assert that a failing call encoded none. */
export function encodedWork(): number {
  const s = stats as { dispatches: number; uploads: number; copies?: number };
  return s.dispatches + s.uploads + (s.copies ?? 0);
}

/** A float64 reference input whose values are exactly representable in f32 (so both sides see the same numbers). */
export function rnd(shape: readonly number[], seed: number, lo = -1, hi = 1): Ref {
  const r = randArr(shape, seed, lo, hi);
  for (let i = 0; i < r.data.length; i++) r.data[i] = Math.fround(r.data[i]);
  return r;
}

/** Like rnd but bounded away from zero in magnitude (for div, log of |x|, kinks at 0). */
export function rndAway(shape: readonly number[], seed: number, minAbs = 0.3, maxAbs = 1.5): Ref {
  const g = rng(seed);
  const x: Ref = { data: new Float64Array(numel(shape)), shape: [...shape] };
  for (let i = 0; i < x.data.length; i++) {
    const m = minAbs + (maxAbs - minAbs) * g.uniform();
    x.data[i] = Math.fround(g.uniform() < 0.5 ? -m : m);
  }
  return x;
}

/** A kiln f32 tensor holding a reference's values. */
export function fromRef(r: Ref, opts: { requiresGrad?: boolean; dtype?: 'f32' | 'i32' | 'bool' } = {}): Tensor {
  return tensor(Float32Array.from(r.data), { shape: [...r.shape], ...opts });
}

export async function toRef(t: Tensor): Promise<Ref> {
  const a = await t.toArray();
  return ref(Array.from(a), t.shape);
}

/** Asserts that a kiln tensor matches a float64 reference in shape and values (allClose with the worst element reported). */
export async function expectTensorClose(t: Tensor, want: Ref, atol = 1e-5, rtol = 1e-5, label = ''): Promise<void> {
  expect(t.shape, `${label} shape`).toEqual(want.shape);
  const got = await t.toArray();
  const r = allClose(Array.from(got), want.data, { atol, rtol });
  expect(r.ok, `${label} ${r.message}`).toBe(true);
}

export async function expectTensorEqual(t: Tensor, want: ArrayLike<number>, shape?: number[]): Promise<void> {
  if (shape) expect(t.shape).toEqual(shape);
  expect(Array.from(await t.toArray())).toEqual(Array.from(want));
}

/**
 * Fills the buffer pool with NaN: for each shape (and every size class up to `maxElements`) a few tensors full of NaN are
 * created and disposed, so the next allocations of those sizes get buffers whose contents are NaN. An op that forgets to
 * write an element of its output (or reads an uninitialised one) then shows NaN instead of a lucky zero.
 */
export function poison(shapes: (readonly number[])[] = [], maxElements = 256, copies = 1): void {
  const sizes = new Set<number>();
  for (const s of shapes) sizes.add(Math.max(1, numel(s)));
  // One size per pool size class (256 bytes, then four classes per power of two), so every small allocation is covered.
  sizes.add(64);
  for (let p = 256; p * 4 <= maxElements * 4 * 2; p *= 2) for (let k = 5; k <= 8; k++) if ((p * k) / 16 <= maxElements) sizes.add((p * k) / 16);
  const made: Tensor[] = [];
  for (const n of sizes) for (let c = 0; c < copies + (shapes.some((s) => numel(s) === n) ? 1 : 0); c++) made.push(full([n], NaN));
  for (const t of made) t.dispose();
}

/** Runs fn (which may throw) and asserts that no tensor buffer leaked. */
export async function expectNoLeak(fn: () => unknown | Promise<unknown>): Promise<void> {
  const before = memory().buffers;
  await fn();
  expect(memory().buffers).toBe(before);
}

/**
 * Asserts that `fn` throws an error of class `cls` whose message matches every pattern, and that the failed call
 * leaves live memory as it found it and encoded no GPU work (create the inputs before the call).
 */
export function expectThrows(fn: () => unknown, cls: new (...args: never[]) => Error, ...patterns: (RegExp | string)[]): void {
  const before = memory().buffers;
  const work = encodedWork();
  let caught: unknown = null;
  try {
    tidy(() => {
      fn();
    });
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${cls.name}`).toBeInstanceOf(cls);
  const msg = (caught as Error).message;
  for (const p of patterns) {
    if (typeof p === 'string') expect(msg).toContain(p);
    else expect(msg).toMatch(p);
  }
  expect(memory().buffers, `leak after failing call: ${msg}`).toBe(before);
  expect(encodedWork(), `GPU work encoded by a failing call: ${msg}`).toBe(work);
}

/** As expectThrows, without the tidy wrapper (so the check also covers buffers an op allocates before failing). */
export function expectThrowsRaw(fn: () => unknown, cls: new (...args: never[]) => Error, ...patterns: (RegExp | string)[]): void {
  const before = memory().buffers;
  const work = encodedWork();
  let caught: unknown = null;
  try {
    const r = fn();
    if (r && typeof r === 'object' && 'dispose' in r) (r as Tensor).dispose();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${cls.name}`).toBeInstanceOf(cls);
  const msg = (caught as Error).message;
  for (const p of patterns) {
    if (typeof p === 'string') expect(msg).toContain(p);
    else expect(msg).toMatch(p);
  }
  expect(memory().buffers, `leak after failing call: ${msg}`).toBe(before);
  expect(encodedWork(), `GPU work encoded by a failing call: ${msg}`).toBe(work);
}

export interface RefGradOptions {
  atol?: number;
  rtol?: number;
  seed?: number;
  /** Which inputs get gradients checked (default: all). */
  wrt?: number[];
  /** Finite-difference step for the float64 reference. */
  eps?: number;
  label?: string;
}

/**
 * kiln's analytic gradients of sum(fn(inputs) * W) (W fixed random) against float64 central differences of the same
 * function written with test/reference. Inputs are given as references; kiln sees them rounded to f32, so does the reference.
 */
export async function checkGradVsRef(
  kilnFn: (...xs: Tensor[]) => Tensor,
  refFn: (...xs: Ref[]) => Ref,
  inputs: Ref[],
  opts: RefGradOptions = {},
): Promise<void> {
  const { atol = 2e-3, rtol = 2e-3, seed = 99, eps = 1e-6, label = '' } = opts;
  const wrt = opts.wrt ?? inputs.map((_, i) => i);
  const before = memory().buffers;
  const xs = inputs.map((r, i) => fromRef(r, { requiresGrad: wrt.includes(i) }));
  const outRef = refFn(...inputs);
  const W = rnd(outRef.shape, seed);
  const Wt = fromRef(W);
  const loss = tidy(() => {
    const y = kilnFn(...xs);
    expect(y.shape, `${label} output shape`).toEqual(outRef.shape);
    return sum(mul(y, Wt));
  });
  // Gradient buffers come from a NaN-poisoned pool too, so a backward kernel that skips an element shows.
  poison(inputs.map((r) => r.shape));
  loss.backward();
  const analytic: Float64Array[] = [];
  for (const i of wrt) {
    const g = xs[i].grad;
    expect(g, `${label} input ${i} has no grad`).not.toBeNull();
    expect(g!.shape, `${label} grad ${i} shape`).toEqual(inputs[i].shape);
    analytic.push(Float64Array.from(await g!.toArray()));
  }
  loss.dispose();
  Wt.dispose();
  for (const x of xs) x.dispose();
  expect(memory().buffers, `${label} leaked buffers in forward+backward`).toBe(before);
  const f = (vals: Float64Array[]): number => {
    const args = inputs.map((r) => ({ data: r.data, shape: r.shape }));
    wrt.forEach((k, j) => (args[k] = { data: vals[j], shape: inputs[k].shape }));
    const y = refFn(...args);
    let acc = 0;
    for (let i = 0; i < y.data.length; i++) acc += y.data[i] * W.data[i];
    return acc;
  };
  const numeric = numericGrad(f, wrt.map((i) => inputs[i].data), eps);
  const r = checkGrad(analytic, numeric, { atol, rtol });
  expect(r.ok, `${label} ${r.message}`).toBe(true);
}

export { ref, rng, numel, type Ref };

/**
 * The f16 counterpart of poison(): f32 NaN (0x7fc00000) read as two halves is a zero and a NaN, so f16 outputs get
 * pooled buffers whose every half is an f16 NaN (0x7e00) instead.
 */
export function poisonF16(shapes: (readonly number[])[] = [], copies = 1): void {
  const made: Tensor[] = [];
  for (const s of shapes) for (let c = 0; c < copies; c++) made.push(full([Math.max(1, numel(s))], NaN, { dtype: 'f16' }));
  for (const t of made) t.dispose();
}
