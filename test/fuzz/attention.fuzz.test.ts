// Property fuzzing: fused attention (forward and backward) against the reference path over random
// shapes, masks, causal flags, head counts and dropout seeds; broadcasting ops against float64.
// CI runs a short seeded slice; `npm run fuzz` runs KILN_FUZZ_RUNS (default 1000) cases and prints the
// seed and path of any failure (re-run with KILN_FUZZ_SEED=<seed>).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { F, tensor, tidy, memory, type Tensor, add, mul, sub, maximum, deviceInfo } from '../../src/index.node';
import { setFlag } from '../../src/experimental';
import { type Ref, allClose, broadcastShapes } from '../reference/core';
import { add as addRef, mul as mulRef, sub as subRef, maximum as maxRef } from '../reference/ops';
import { rnd, fromRef } from '../helpers';
import { nearestHalf } from '../reference/half';

const RUNS = Number(process.env.KILN_FUZZ_RUNS ?? 24);
const SEED = Number(process.env.KILN_FUZZ_SEED ?? 20261122);

const caseArb = fc.record({
  B: fc.integer({ min: 1, max: 2 }), Hk: fc.integer({ min: 1, max: 3 }), g: fc.integer({ min: 1, max: 3 }),
  Nq: fc.integer({ min: 1, max: 40 }), Nk: fc.integer({ min: 1, max: 40 }),
  D: fc.integer({ min: 1, max: 40 }).map((d) => d * 2), Dv: fc.integer({ min: 1, max: 36 }).map((d) => d * 2),
  causal: fc.constantFrom(false, true, 'lowerRight' as const),
  mask: fc.constantFrom('none', 'bool-key', 'bool-full', 'float-bias', 'float-key'),
  dropout: fc.constantFrom(0, 0, 0.2),
  seed: fc.integer({ min: 0, max: 2 ** 30 }),
  // f16: q, k, v in binary16 (the native f16 kernel variant where the adapter has shader-f16) against the reference
  // path, which widens to f32; subgroups: the forward's row folds by shuffles or in workgroup memory.
  dtype: fc.constantFrom('f32', 'f32', 'f16'),
  subgroups: fc.boolean(),
});

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

async function runCase(c: Case): Promise<void> {
  const before = memory().buffers;
  const Hq = c.Hk * c.g;
  const qr = rnd([c.B, Hq, c.Nq, c.D], c.seed), kr = rnd([c.B, c.Hk, c.Nk, c.D], c.seed + 1), vr = rnd([c.B, c.Hk, c.Nk, c.Dv], c.seed + 2);
  if (c.dtype === 'f16') for (const r of [qr, kr, vr]) for (let i = 0; i < r.data.length; i++) r.data[i] = nearestHalf(r.data[i]);
  let mask: Tensor | null = null;
  if (c.mask === 'bool-key') mask = tensor(Uint8Array.from({ length: c.B * c.Nk }, (_, i) => ((i * 2654435761 + c.seed) >>> 0) % 5 !== 0 ? 1 : 0), { shape: [c.B, 1, 1, c.Nk], dtype: 'bool' });
  if (c.mask === 'bool-full') mask = tensor(Uint8Array.from({ length: c.Nq * c.Nk }, (_, i) => ((i * 2246822519 + c.seed) >>> 0) % 3 !== 0 ? 1 : 0), { shape: [c.Nq, c.Nk], dtype: 'bool' });
  if (c.mask === 'float-bias') mask = fromRef(rnd([c.Nq, c.Nk], c.seed + 3, -2, 2), { requiresGrad: true });
  if (c.mask === 'float-key') mask = fromRef(rnd([c.B, 1, 1, c.Nk], c.seed + 4, -2, 2), { requiresGrad: true });
  const w = fromRef(rnd([c.B, Hq, c.Nq, c.Dv], c.seed + 5));
  const results: Float32Array[][] = [];
  const f16 = c.dtype === 'f16';
  const input = (r: Ref) => (f16 ? tensor(Float32Array.from(r.data), { shape: [...r.shape], dtype: 'f16', requiresGrad: true }) : fromRef(r, { requiresGrad: true }));
  setFlag('attention.subgroups', c.subgroups && !!deviceInfo().subgroups?.inOrder ? undefined : false);
  for (const impl of ['fused', 'reference'] as const) {
    const q = input(qr), k = input(kr), v = input(vr);
    if (mask?.grad) { mask.grad.dispose(); mask.grad = null; }
    const out = F.scaledDotProductAttention(q, k, v, { attnMask: mask, isCausal: c.causal, dropoutP: c.dropout, seed: c.seed, impl });
    const loss = tidy(() => out.float().mul(w).sum());
    loss.backward();
    const r = [await out.toArray(), await q.grad!.toArray(), await k.grad!.toArray(), await v.grad!.toArray()] as Float32Array[];
    if (mask?.requiresGrad) r.push((await mask.grad!.toArray()) as Float32Array);
    results.push(r);
    for (const t of [q, k, v, out, loss]) t.dispose();
  }
  const names = ['out', 'dq', 'dk', 'dv', 'dmask'];
  for (let i = 0; i < results[0].length; i++) {
    const a = Array.from(results[0][i]);
    expect(a.every(Number.isFinite), `${names[i]} finite`).toBe(true);
    // f16: both sides round their outputs and gradients to binary16 (half an ulp is 4.9e-4 relative), and the native
    // variant's delta reads the rounded O.
    // The float mask's gradient sums dS over the dims the mask broadcasts, and those rounding errors (independent signs)
    // add up like a random walk: its f16 tolerance grows with the square root of the number of summed terms.
    const summed = names[i] === 'dmask' && mask ? (c.B * Hq * c.Nq * c.Nk) / mask.size : 1;
    const tol = f16
      ? { atol: i === 0 ? 1e-3 : 3e-3 * Math.sqrt(summed), rtol: i === 0 ? 2e-3 : 1e-2 }
      : { atol: i === 0 ? 3e-5 : 2e-4, rtol: 1e-3 };
    const r = allClose(a, Array.from(results[1][i]), tol);
    expect(r.ok, `${names[i]}: ${r.message}`).toBe(true);
  }
  setFlag('attention.subgroups', undefined);
  mask?.dispose();
  w.dispose();
  expect(memory().buffers, 'no leak').toBe(before);
}

describe('fuzz: fused attention vs reference path', () => {
  it(`${RUNS} random cases (seed ${SEED})`, async () => {
    const t0 = Date.now();
    const out = await fc.check(fc.asyncProperty(caseArb, runCase), { numRuns: RUNS, seed: SEED, endOnFailure: true });
    if (out.failed) {
      console.error(`fuzz failure: seed ${out.seed}, path ${out.counterexamplePath}, case ${JSON.stringify(out.counterexample)}\n${out.errorInstance}`);
    }
    console.log(`fuzz: ${out.numRuns} attention cases in ${((Date.now() - t0) / 1000).toFixed(1)} s, seed ${SEED}`);
    expect(out.failed).toBe(false);
  });
});

describe('fuzz: broadcasting ops vs float64', () => {
  const shapeArb = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 4 });
  it('add/sub/mul/maximum over random broadcastable shapes', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb, fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 1e6 }), async (shape, ones, seed) => {
        const sa = shape.map((d, i) => (ones[i] ? 1 : d));
        const sb = shape.slice(Math.floor(seed % (shape.length + 1)));
        const ar = rnd(sa, seed), br = rnd(sb, seed + 1);
        broadcastShapes(sa, sb);
        for (const [op, ref] of [[add, addRef], [sub, subRef], [mul, mulRef], [maximum, maxRef]] as const) {
          const a = fromRef(ar), b = fromRef(br);
          const o = op(a, b);
          const want = ref(ar, br);
          expect(o.shape).toEqual(want.shape);
          const r = allClose(Array.from(await o.toArray()), want.data, { atol: 1e-6, rtol: 1e-6 });
          expect(r.ok, r.message).toBe(true);
          for (const t of [a, b, o]) t.dispose();
        }
      }),
      { numRuns: Math.max(10, Math.round(RUNS / 2)), seed: SEED },
    );
  });
});
