// Fused attention (and the reference path) against the float64 CPU reference: forward and gradients,
// masks of every broadcast shape, grouped-query heads, causal with Nq != Nk, fully masked rows,
// large logits, dropout, strided inputs, bad input.
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  F, type Tensor, DeviceError, DTypeError, ShapeError, ValueError, memory, resetPeak, tensor, randn, permute, tidy,
  deviceInfo,
} from '../../src/index.node';
import { setFlag, startGpuTimer, hasTimestampQuery } from '../../src/experimental';
import { attnDropoutKeep } from '../../src/tensor/random';
import { type Ref, allClose, ref } from '../reference/core';
import { sdpa, sdpaBackward } from '../reference/attention';
import { rnd, fromRef, poison } from '../helpers';

type Impl = 'fused' | 'reference';

interface Case {
  name: string;
  q: number[];
  k: number[];
  v: number[];
  causal?: boolean;
  bool?: number[];
  float?: number[];
  floatGrad?: boolean;
  scale?: number;
  logitScale?: number;
  maskedRows?: number[];
}

function boolMaskRef(shape: number[], seed: number, maskedRows: number[] = []): Ref {
  const r = rnd(shape, seed);
  const nk = shape[shape.length - 1];
  const nq = shape.length >= 2 ? shape[shape.length - 2] : 1;
  for (let i = 0; i < r.data.length; i++) {
    const row = Math.floor(i / nk) % nq;
    r.data[i] = maskedRows.includes(row) ? 0 : r.data[i] > -0.6 ? 1 : 0;
  }
  return r;
}

function floatMaskRef(shape: number[], seed: number, maskedRows: number[] = []): Ref {
  const r = rnd(shape, seed, -2, 2);
  const nk = shape[shape.length - 1];
  const nq = shape.length >= 2 ? shape[shape.length - 2] : 1;
  for (let i = 0; i < r.data.length; i++) {
    const row = Math.floor(i / nk) % nq;
    if (maskedRows.includes(row) || (i * 7919) % 11 === 0) r.data[i] = -Infinity;
  }
  return r;
}

async function check(c: Case, impl: Impl, seed: number): Promise<void> {
  const before = memory().buffers;
  const qr = rnd(c.q, seed), kr = rnd(c.k, seed + 1), vr = rnd(c.v, seed + 2);
  if (c.logitScale) for (const a of [qr.data, kr.data]) for (let i = 0; i < a.length; i++) a[i] = Math.fround(a[i] * Math.sqrt(c.logitScale));
  const br = c.bool ? boolMaskRef(c.bool, seed + 3, c.maskedRows) : undefined;
  const fr = c.float ? floatMaskRef(c.float, seed + 4, c.maskedRows) : undefined;
  const opts = { isCausal: c.causal, scale: c.scale, boolMask: br, floatMask: fr };
  const want = sdpa(qr, kr, vr, opts);
  const outShape = want.out.shape;
  const dOr = rnd(outShape, seed + 5);
  const wantG = sdpaBackward(qr, kr, vr, dOr, opts);
  poison([c.q, c.k, c.v, outShape], 4096);
  const q = fromRef(qr, { requiresGrad: true }), k = fromRef(kr, { requiresGrad: true }), v = fromRef(vr, { requiresGrad: true });
  const mask = br ? tensor(Uint8Array.from(br.data), { shape: br.shape, dtype: 'bool' }) : fr ? fromRef(fr, { requiresGrad: !!c.floatGrad }) : null;
  const out = F.scaledDotProductAttention(q, k, v, { attnMask: mask, isCausal: c.causal, scale: c.scale, impl });
  expect(out.shape).toEqual(outShape);
  const tol = { atol: 2e-5 * (c.logitScale ? 10 : 1), rtol: 1e-4 };
  const got = await out.toArray();
  const r = allClose(Array.from(got), want.out.data, tol);
  expect(r.ok, `${impl} ${c.name} forward: ${r.message}`).toBe(true);
  const dO = fromRef(dOr);
  const loss = tidy(() => out.mul(dO).sum());
  loss.backward();
  const gtol = { atol: 1e-4 * (c.logitScale ? 20 : 1), rtol: 1e-3 };
  for (const [name, t, w] of [['dq', q, wantG.dq], ['dk', k, wantG.dk], ['dv', v, wantG.dv]] as const) {
    expect(t.grad, `${name} exists`).toBeTruthy();
    expect(t.grad!.shape).toEqual(w.shape);
    const rr = allClose(Array.from(await t.grad!.toArray()), w.data, gtol);
    expect(rr.ok, `${impl} ${c.name} ${name}: ${rr.message}`).toBe(true);
  }
  if (c.floatGrad && mask) {
    expect(mask.grad!.shape).toEqual(fr!.shape);
    const rr = allClose(Array.from(await mask.grad!.toArray()), wantG.dFloatMask!.data, gtol);
    expect(rr.ok, `${impl} ${c.name} dmask: ${rr.message}`).toBe(true);
  }
  for (const t of [q, k, v, out, dO, loss, ...(mask ? [mask] : [])]) t.dispose();
  expect(memory().buffers, `${c.name} leaks`).toBe(before);
}

/** Whether the forward's rows kernel can run case c here (kiln/experimental's flag attention.forwardKernel 'rows'). */
function rowsRuns(c: Case): boolean {
  const sg = deviceInfo().subgroups;
  const D = c.q[c.q.length - 1], Dv = c.v[c.v.length - 1];
  return !!sg?.inOrder && sg.minSize === 8 && sg.maxSize === 8 && Math.max(D, Dv) <= 64 && D % 4 === 0 && Dv % 4 === 0;
}

const cases: Case[] = [
  { name: 'N=1', q: [1, 1, 1, 8], k: [1, 1, 1, 8], v: [1, 1, 1, 8] },
  { name: 'primes', q: [2, 3, 7, 16], k: [2, 3, 13, 16], v: [2, 3, 13, 16] },
  { name: 'causal Nq<Nk', q: [1, 2, 7, 32], k: [1, 2, 13, 32], v: [1, 2, 13, 32], causal: true },
  { name: 'causal Nq>Nk', q: [1, 2, 13, 32], k: [1, 2, 7, 32], v: [1, 2, 7, 32], causal: true },
  { name: 'causal 37 D=64', q: [1, 2, 37, 64], k: [1, 2, 37, 64], v: [1, 2, 37, 64], causal: true },
  { name: 'D=80 Dv=24', q: [1, 2, 9, 80], k: [1, 2, 11, 80], v: [1, 2, 11, 24] },
  { name: 'D=128', q: [1, 1, 19, 128], k: [1, 1, 17, 128], v: [1, 1, 17, 128] },
  { name: 'Dv != D', q: [2, 2, 5, 16], k: [2, 2, 6, 16], v: [2, 2, 6, 40] },
  { name: 'GQA 4/2', q: [2, 4, 9, 16], k: [2, 2, 11, 16], v: [2, 2, 11, 16] },
  { name: 'GQA 6/2 causal', q: [1, 6, 8, 8], k: [1, 2, 8, 8], v: [1, 2, 8, 8], causal: true },
  { name: 'MQA 4/1', q: [1, 4, 6, 16], k: [1, 1, 6, 16], v: [1, 1, 6, 16] },
  { name: 'MQA 3/1, B=2, key mask (found by the fuzzer)', q: [2, 3, 13, 28], k: [2, 1, 2, 28], v: [2, 1, 2, 56], bool: [2, 1, 1, 2] },
  { name: 'bool key mask [B,1,1,Nk]', q: [2, 2, 7, 16], k: [2, 2, 9, 16], v: [2, 2, 9, 16], bool: [2, 1, 1, 9] },
  { name: 'bool [Nq,Nk]', q: [2, 2, 7, 16], k: [2, 2, 9, 16], v: [2, 2, 9, 16], bool: [7, 9] },
  { name: 'bool full + causal', q: [2, 2, 7, 16], k: [2, 2, 7, 16], v: [2, 2, 7, 16], bool: [2, 2, 7, 7], causal: true },
  { name: 'bool [1,1,1,Nk]', q: [1, 2, 5, 16], k: [1, 2, 8, 16], v: [1, 2, 8, 16], bool: [1, 1, 1, 8] },
  { name: 'float bias [Nq,Nk] with grad', q: [2, 2, 6, 16], k: [2, 2, 7, 16], v: [2, 2, 7, 16], float: [6, 7], floatGrad: true },
  { name: 'float [B,H,Nq,Nk] with grad', q: [2, 2, 5, 8], k: [2, 2, 6, 8], v: [2, 2, 6, 8], float: [2, 2, 5, 6], floatGrad: true },
  { name: 'float [B,1,1,Nk] with grad', q: [2, 3, 5, 8], k: [2, 3, 6, 8], v: [2, 3, 6, 8], float: [2, 1, 1, 6], floatGrad: true },
  { name: 'fully masked rows (bool)', q: [1, 2, 6, 16], k: [1, 2, 5, 16], v: [1, 2, 5, 16], bool: [6, 5], maskedRows: [0, 3] },
  { name: 'fully masked rows (float -inf)', q: [1, 2, 6, 16], k: [1, 2, 5, 16], v: [1, 2, 5, 16], float: [6, 5], maskedRows: [2], floatGrad: true },
  { name: 'logits x50', q: [1, 2, 9, 16], k: [1, 2, 9, 16], v: [1, 2, 9, 16], logitScale: 50, causal: true },
  { name: 'custom scale', q: [1, 1, 5, 16], k: [1, 1, 5, 16], v: [1, 1, 5, 16], scale: 0.37 },
  { name: '3-D inputs', q: [3, 7, 16], k: [3, 9, 16], v: [3, 9, 16] },
  { name: 'broadcast batch', q: [2, 2, 5, 8], k: [1, 2, 6, 8], v: [1, 2, 6, 8] },
  { name: 'one query head broadcast over 3 kv heads', q: [2, 1, 5, 8], k: [2, 3, 6, 8], v: [2, 3, 6, 8] },
  { name: '3-D query broadcast over batch', q: [1, 4, 8], k: [3, 6, 8], v: [3, 6, 8] },
];

describe('scaledDotProductAttention vs float64 reference', () => {
  for (const impl of ['fused', 'reference'] as const) {
    for (const [i, c] of cases.entries()) {
      it(`${impl}: ${c.name}`, async () => {
        await check(c, impl, 100 + i * 10);
      });
    }
  }
  // 'fused' above runs the default forward kernel (on lavapipe the rows kernel where it can run: head dims up to 64 and
  // multiples of 4). Each is also forced here, over every case it can run.
  for (const kernel of ['tiled', 'rows'] as const) {
    for (const [i, c] of cases.entries()) {
      it(`fused, forward kernel '${kernel}': ${c.name}`, async () => {
        setFlag('attention.forwardKernel', kernel);
        try {
          if (kernel === 'rows' && !rowsRuns(c)) {
            // Forced where it cannot run (a head dim over 64 or not a multiple of 4, or no in-order 8-lane subgroups):
            // a DeviceError saying why, before any allocation.
            const [q, k, v] = [c.q, c.k, c.v].map((shape, j) => randn(shape, { seed: 100 + i * 10 + j }));
            const before = memory().buffers;
            expect(() => F.scaledDotProductAttention(q!, k!, v!, { isCausal: c.causal })).toThrow(DeviceError);
            expect(() => F.scaledDotProductAttention(q!, k!, v!, { isCausal: c.causal })).toThrow(/attention.forwardKernel is 'rows', but/);
            expect(memory().buffers).toBe(before);
            for (const t of [q, k, v]) t!.dispose();
            return;
          }
          await check(c, 'fused', 100 + i * 10);
        } finally {
          setFlag('attention.forwardKernel', undefined);
        }
      });
    }
  }
  // The tiled forward's row folds: by subgroup shuffles where the adapter allows, or in workgroup memory. Each side is also forced here,
  // over cases that cover head dims 32 and 64, masks, grouped-query heads, causal and the float-mask gradient (on
  // lavapipe every new pipeline costs 4 to 6 s of compiling, so the subset is kept small).
  const sgCases = ['N=1', 'primes', 'causal Nq<Nk', 'causal 37 D=64', 'GQA 4/2', 'bool key mask [B,1,1,Nk]', 'float [B,H,Nq,Nk] with grad', 'fully masked rows (float -inf)', 'logits x50'];
  for (const sg of [true, false]) {
    for (const name of sgCases) {
      const c = cases.find((x) => x.name === name)!;
      it(`fused, row folds ${sg ? 'by subgroup shuffles' : 'in workgroup memory'}: ${c.name}`, async (ctx) => {
        if (sg && !deviceInfo().subgroups?.inOrder) ctx.skip();
        setFlag('attention.subgroups', sg);
        setFlag('attention.forwardKernel', 'tiled');
        try {
          await check(c, 'fused', 100 + cases.indexOf(c) * 10);
        } finally {
          setFlag('attention.subgroups', undefined);
          setFlag('attention.forwardKernel', undefined);
        }
      });
    }
  }

  // The head-dim split of score blocks over subgroup lanes (PARTS > 1): on by default on hardware adapters only, so
  // here it is forced with tiles where blocks x PARTS fills the workgroup (forward: with CG x PARTS = 8 lanes).
  const splits = [
    { PARTS: 8, forward: { BLOCK_M: 8, BLOCK_N: 4, THREADS: 16, PARTS: 8 }, tiles: { BLOCK_M: 8, BLOCK_N: 8, THREADS: 32, PARTS: 8 }, cases: cases.filter((c) => sgCases.includes(c.name) && c.name !== 'causal 37 D=64') },
    {
      PARTS: 4, forward: { BLOCK_M: 16, BLOCK_N: 8, THREADS: 32, PARTS: 4 }, tiles: { BLOCK_M: 8, BLOCK_N: 16, THREADS: 32, PARTS: 4 },
      cases: cases.filter((c) => ['primes', 'causal Nq<Nk', 'GQA 4/2', 'float [B,H,Nq,Nk] with grad'].includes(c.name)),
    },
  ];
  for (const sp of splits) {
    for (const c of sp.cases) {
      it(`fused forward and backward, head dim split over ${sp.PARTS} subgroup lanes: ${c.name}`, async (ctx) => {
        const sg = deviceInfo().subgroups;
        if (!sg?.inOrder || sg.minSize < sp.PARTS) ctx.skip();
        setFlag('attention.tiles', { forward: sp.forward, dkdv: sp.tiles, dq: sp.tiles });
        try {
          await check(c, 'fused', 100 + cases.indexOf(c) * 10);
        } finally {
          setFlag('attention.tiles', undefined);
        }
      });
    }
  }

  it('uses the subgroup variant exactly where the adapter allows, and says why not when forced', async (ctx) => {
    const q = randn([1, 2, 40, 16], { seed: 1 });
    const labelsOf = async (fn: () => Tensor) => {
      if (!hasTimestampQuery()) return null;
      const timer = startGpuTimer();
      await fn().toArray();
      return Object.keys((await timer.stop()).byLabel);
    };
    const info = deviceInfo();
    const sg = info.subgroups;
    // The default on a software adapter with subgroups of 8 in order is the rows kernel (in the subgroups variant).
    const rowsDefault = info.isSoftware && !!sg?.inOrder && sg.minSize === 8 && sg.maxSize === 8;
    const labelsDefault = await labelsOf(() => F.scaledDotProductAttention(q, q, q));
    if (!labelsDefault) ctx.skip();
    expect(labelsDefault).toContain(rowsDefault ? 'attention.forward.subgroups.rows' : sg?.inOrder && sg.minSize >= 8 ? 'attention.forward.subgroups' : 'attention.forward');
    setFlag('attention.forwardKernel', 'tiled');
    const labels = await labelsOf(() => F.scaledDotProductAttention(q, q, q));
    if (sg?.inOrder && sg.minSize >= 8) expect(labels).toContain('attention.forward.subgroups');
    else expect(labels).toContain('attention.forward');
    if (sg?.inOrder && sg.minSize >= 8) {
      setFlag('attention.subgroups', true);
      expect(await labelsOf(() => F.scaledDotProductAttention(q, q, q))).toContain('attention.forward.subgroups');
    }
    setFlag('attention.subgroups', false);
    expect(await labelsOf(() => F.scaledDotProductAttention(q, q, q))).toContain('attention.forward');
    // 64 keys per tile = 16 key groups: more than lavapipe's 8-lane subgroups
    setFlag('attention.tiles', { forward: { BLOCK_M: 16, BLOCK_N: 64, THREADS: 64 } });
    setFlag('attention.subgroups', true);
    try {
      if (!sg || sg.minSize < 16) expect(() => F.scaledDotProductAttention(q, q, q)).toThrow(/attention.subgroups = true, but/);
      // The rows kernel needs subgroups: forced without them, a DeviceError naming why (before any allocation).
      setFlag('attention.tiles', undefined);
      setFlag('attention.subgroups', false);
      setFlag('attention.forwardKernel', 'rows');
      const before = memory().buffers;
      expect(() => F.scaledDotProductAttention(q, q, q)).toThrow(/attention.forwardKernel is 'rows', but it needs subgroups, and attention.subgroups is false/);
      expect(memory().buffers).toBe(before);
    } finally {
      setFlag('attention.tiles', undefined);
      setFlag('attention.subgroups', undefined);
      setFlag('attention.forwardKernel', undefined);
    }
    q.dispose();
  });

  it('fused: N = 300+ with causal', async () => {
    await check({ name: 'N=301', q: [1, 1, 301, 16], k: [1, 1, 301, 16], v: [1, 1, 301, 16], causal: true }, 'fused', 7);
  });

  it('fully masked rows give zeros, never NaN', async () => {
    const q = randn([1, 1, 3, 8], { seed: 1 }), k = randn([1, 1, 4, 8], { seed: 2 }), v = randn([1, 1, 4, 8], { seed: 3 });
    const m = tensor([[true, true, false, false], [false, false, false, false], [true, false, false, false]]);
    for (const impl of ['fused', 'reference'] as const) {
      const o = await F.scaledDotProductAttention(q, k, v, { attnMask: m, impl }).toArray();
      expect(Array.from(o).every(Number.isFinite)).toBe(true);
      expect(Array.from(o.slice(8, 16))).toEqual(new Array(8).fill(0));
    }
  });

  it('strided inputs: heads split from [B, N, H, D] by permute, no copy needed', async () => {
    const qr = rnd([2, 7, 3, 16], 5), kr = rnd([2, 9, 3, 16], 6), vr = rnd([2, 9, 3, 16], 7);
    const perm = (r: Ref) => {
      const [B, N, H, D] = r.shape;
      const out = new Float64Array(r.data.length);
      for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) out[((b * H + h) * N + n) * D + d] = r.data[((b * N + n) * H + h) * D + d];
      return ref(out, [B, H, N, D]);
    };
    const want = sdpa(perm(qr), perm(kr), perm(vr), { isCausal: true });
    const [q, k, v] = [qr, kr, vr].map((r) => permute(fromRef(r), [0, 2, 1, 3]));
    const o = F.scaledDotProductAttention(q, k, v, { isCausal: true });
    const r = allClose(Array.from(await o.toArray()), want.out.data, { atol: 2e-5, rtol: 1e-4 });
    expect(r.ok, r.message).toBe(true);
  });

  it('attentionWeights returns the probabilities', async () => {
    const qr = rnd([1, 2, 5, 8], 1), kr = rnd([1, 2, 6, 8], 2);
    const want = sdpa(qr, kr, rnd([1, 2, 6, 8], 3), { isCausal: true });
    const w = F.attentionWeights(fromRef(qr), fromRef(kr), { isCausal: true });
    expect(w.shape).toEqual([1, 2, 5, 6]);
    const r = allClose(Array.from(await w.toArray()), want.probs.data, { atol: 1e-6, rtol: 1e-5 });
    expect(r.ok, r.message).toBe(true);
  });
});

describe('attention dropout', () => {
  const shape = [2, 2, 16, 8];
  it('same seed gives the same output, another seed another; fused equals reference', async () => {
    const q = randn(shape, { seed: 1 }), k = randn(shape, { seed: 2 }), v = randn(shape, { seed: 3 });
    const a = await F.scaledDotProductAttention(q, k, v, { dropoutP: 0.3, seed: 42 }).toArray();
    const b = await F.scaledDotProductAttention(q, k, v, { dropoutP: 0.3, seed: 42 }).toArray();
    const c = await F.scaledDotProductAttention(q, k, v, { dropoutP: 0.3, seed: 43 }).toArray();
    const r = await F.scaledDotProductAttention(q, k, v, { dropoutP: 0.3, seed: 42, impl: 'reference' }).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    expect(allClose(Array.from(a), Array.from(r), { atol: 2e-5, rtol: 1e-4 }).ok).toBe(true);
  });

  it('keeps the output mean (1/(1-p) scaling)', async () => {
    // With v = 1 everywhere, each output is (number kept / (1-p)) weighted: its mean over many rows is 1.
    const q = randn([1, 4, 64, 8], { seed: 4 }), k = randn([1, 4, 64, 8], { seed: 5 });
    const v = tensor(new Float32Array(4 * 64 * 8).fill(1), { shape: [1, 4, 64, 8] });
    const o = await F.scaledDotProductAttention(q, k, v, { dropoutP: 0.25, seed: 9 }).toArray();
    const mean = Array.from(o).reduce((s, x) => s + x, 0) / o.length;
    expect(Math.abs(mean - 1)).toBeLessThan(0.05);
  });

  it('backward matches a reference that applies the same mask', async () => {
    const p = 0.3, seed = 77;
    const qr = rnd(shape, 11), kr = rnd(shape, 12), vr = rnd(shape, 13), dOr = rnd(shape, 14);
    const Hq = shape[1];
    const dropoutMask = (b: number, h: number, i: number, j: number) => (attnDropoutKeep(seed, 0, b * Hq + h, i, j, p) ? 1 / (1 - p) : 0);
    const want = sdpa(qr, kr, vr, { dropoutMask });
    const wantG = sdpaBackward(qr, kr, vr, dOr, { dropoutMask });
    const q = fromRef(qr, { requiresGrad: true }), k = fromRef(kr, { requiresGrad: true }), v = fromRef(vr, { requiresGrad: true });
    const o = F.scaledDotProductAttention(q, k, v, { dropoutP: p, seed });
    expect(allClose(Array.from(await o.toArray()), want.out.data, { atol: 2e-5, rtol: 1e-4 }).ok).toBe(true);
    o.mul(fromRef(dOr)).sum().backward();
    for (const [t, w] of [[q, wantG.dq], [k, wantG.dk], [v, wantG.dv]] as const) {
      const r = allClose(Array.from(await t.grad!.toArray()), w.data, { atol: 1e-4, rtol: 1e-3 });
      expect(r.ok, r.message).toBe(true);
    }
  });
});

describe('attention: fused and reference agree on random shapes (fast-check)', () => {
  it('forward and gradients', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          B: fc.integer({ min: 1, max: 2 }), Hk: fc.integer({ min: 1, max: 2 }), g: fc.integer({ min: 1, max: 3 }),
          Nq: fc.integer({ min: 1, max: 23 }), Nk: fc.integer({ min: 1, max: 23 }), D: fc.constantFrom(8, 16, 24, 32),
          Dv: fc.constantFrom(8, 16, 40), causal: fc.boolean(), mask: fc.constantFrom('none', 'key', 'float'), seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async (s) => {
          const Hq = s.Hk * s.g;
          const c: Case = {
            name: JSON.stringify(s), q: [s.B, Hq, s.Nq, s.D], k: [s.B, s.Hk, s.Nk, s.D], v: [s.B, s.Hk, s.Nk, s.Dv], causal: s.causal,
            bool: s.mask === 'key' ? [s.B, 1, 1, s.Nk] : undefined, float: s.mask === 'float' ? [s.Nq, s.Nk] : undefined, floatGrad: s.mask === 'float',
          };
          await check(c, 'fused', s.seed);
        },
      ),
      { numRuns: 12, seed: 20261122 },
    );
  });
});

describe('attention: bad input is rejected before any GPU work, and leaks nothing', () => {
  let q: Tensor;
  beforeAll(() => {
    q = randn([2, 4, 8, 16], { seed: 1 });
  });
  const cases: [string, () => unknown, unknown, RegExp][] = [
    ['head dims differ', () => F.scaledDotProductAttention(q, randn([2, 4, 8, 32]), randn([2, 4, 8, 32])), ShapeError, /q \[2,4,8,16\] and k \[2,4,8,32\] disagree on the head dimension \(16 vs 32\)/],
    ['k/v lengths differ', () => F.scaledDotProductAttention(q, randn([2, 4, 8, 16]), randn([2, 4, 9, 16])), ShapeError, /number of keys \(8 vs 9\)/],
    ['GQA heads do not divide', () => F.scaledDotProductAttention(q, randn([2, 3, 8, 16]), randn([2, 3, 8, 16])), ShapeError, /4 heads and k\/v have 3/],
    ['mask does not broadcast', () => F.scaledDotProductAttention(q, q, q, { attnMask: tensor(new Uint8Array(7), { shape: [7], dtype: 'bool' }) }), ShapeError, /attnMask \[7\] does not broadcast/],
    ['i32 mask', () => F.scaledDotProductAttention(q, q, q, { attnMask: tensor(new Int32Array(8), { shape: [8] }) }), DTypeError, /attnMask must be bool/],
    ['dropout out of range', () => F.scaledDotProductAttention(q, q, q, { dropoutP: 1 }), ValueError, /dropoutP must be in \[0, 1\), got 1/],
    ['NaN scale', () => F.scaledDotProductAttention(q, q, q, { scale: NaN }), ValueError, /scale must be a finite number/],
    ['1-D q', () => F.scaledDotProductAttention(tensor([1, 2]), q, q), ShapeError, /needs at least 2 dims/],
    ['i32 q', () => F.scaledDotProductAttention(tensor(new Int32Array(16), { shape: [1, 16] }), q, q), DTypeError, /q must be f32/],
  ];
  for (const [name, fn, cls, msg] of cases) {
    it(name, () => {
      const before = memory().buffers;
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(cls as never);
      expect((err as Error).message).toMatch(msg);
      // The operands created inside fn() are the caller's; only those stay.
      expect(memory().buffers - before).toBeLessThanOrEqual(3);
    });
  }
});

describe('attention memory', () => {
  it('fused causal attention at N=4096 keeps peak memory far below one N x N buffer', async () => {
    const N = 4096, D = 8;
    const q = randn([1, 1, N, D], { seed: 1 }), k = randn([1, 1, N, D], { seed: 2 }), v = randn([1, 1, N, D], { seed: 3 });
    resetPeak();
    const base = memory().bytes;
    const o = F.scaledDotProductAttention(q, k, v, { isCausal: true });
    const row = await o.slice(2, N - 1, N).toArray();
    expect(Array.from(row).every(Number.isFinite)).toBe(true);
    const extra = memory().peakBytes - base;
    expect(extra).toBeLessThan((N * N * 4) / 50);
    for (const t of [q, k, v, o]) t.dispose();
  });
});
