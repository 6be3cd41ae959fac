// f16 attention: q, k, v (and dO) stored as binary16, every score, exponent and accumulator in f32. Checked against the
// float64 reference evaluated on the same (already rounded) f16 inputs, for the native f16 kernel variant (adapters with
// shader-f16) and for the widening path (any adapter), forward and gradients.
import { afterEach, describe, expect, it } from 'vitest';
import {
  F, type Tensor, DTypeError, deviceInfo, memory, tensor, tidy,
} from '../../src/index.node';
import { setFlag, startGpuTimer, hasTimestampQuery } from '../../src/experimental';
import { type Ref, allClose, ref } from '../reference/core';
import { sdpa, sdpaBackward } from '../reference/attention';
import { nearestHalf } from '../reference/half';
import { expectThrows, poisonF16, rnd } from '../helpers';

type Mode = 'native' | 'widen';
const hasF16 = () => deviceInfo().features.includes('shader-f16');

interface Case {
  name: string;
  q: number[];
  k: number[];
  v: number[];
  causal?: boolean;
  keyMask?: boolean;
  bias?: 'f32' | 'f16';
  logitScale?: number;
  selfAttention?: boolean;
}

/** Random values already rounded to binary16, so the GPU and the float64 reference see the same numbers. */
function rndHalf(shape: number[], seed: number, scale = 1): Ref {
  const r = rnd(shape, seed);
  for (let i = 0; i < r.data.length; i++) r.data[i] = nearestHalf(r.data[i] * scale);
  return r;
}

const half = (r: Ref, requiresGrad = false): Tensor => tensor(Float32Array.from(r.data), { shape: [...r.shape], dtype: 'f16', requiresGrad });

// The output is rounded to f16 once: half an f16 ulp is 2^-11 relative (4.9e-4); the f32 arithmetic adds ~1e-6.
const OUT_TOL = { atol: 2e-5, rtol: 5e-4 };
// Gradients are rounded once too (half an ulp: 4.9e-4 at magnitude 1), and the native variant's delta =
// rowsum(dO o O) reads the f16-rounded O (as FlashAttention's f16 kernels do), which dS carries into dq and dk.
// Measured worst absolute errors on lavapipe: 1.2e-4 to 7.4e-4 (logits x50, gradients near 1.5).
const GRAD_TOL = { atol: 1e-3, rtol: 2e-3 };

async function check(c: Case, mode: Mode, impl: 'fused' | 'reference', seed: number): Promise<{ out: number; grad: number }> {
  setFlag('attention.f16', mode);
  const before = memory().buffers;
  const s = c.logitScale ? Math.sqrt(c.logitScale) : 1;
  const qr = rndHalf(c.q, seed, s);
  const kr = c.selfAttention ? qr : rndHalf(c.k, seed + 1, s);
  const vr = c.selfAttention ? qr : rndHalf(c.v, seed + 2);
  const Nq = c.q[c.q.length - 2], Nk = c.k[c.k.length - 2];
  let boolMask: Ref | undefined;
  if (c.keyMask) {
    const B = c.q[0];
    boolMask = ref(Array.from({ length: B * Nk }, (_, i) => ((i % Nk) % 3 === 1 || (i >= Nk && i < 2 * Nk) ? 0 : 1)), [B, 1, 1, Nk]);
    // batch 1 has every key masked: its rows must come out zero with zero gradients
  }
  const floatMask = c.bias ? rndHalf([Nq, Nk], seed + 3, 2) : undefined;
  const opts = { isCausal: c.causal, boolMask, floatMask };
  const want = sdpa(qr, kr, vr, opts);
  const dOr = rndHalf(want.out.shape as number[], seed + 5);
  const wantG = sdpaBackward(qr, kr, vr, dOr, opts);
  poisonF16([c.q, c.k, c.v, want.out.shape], 2);
  const q = half(qr, true);
  const k = c.selfAttention ? q : half(kr, true);
  const v = c.selfAttention ? q : half(vr, true);
  const mask = boolMask
    ? tensor(Uint8Array.from(boolMask.data), { shape: boolMask.shape as number[], dtype: 'bool' })
    : floatMask
      ? tensor(Float32Array.from(floatMask.data), { shape: [Nq, Nk], dtype: c.bias, requiresGrad: true })
      : null;
  const dO = half(dOr);
  const out = F.scaledDotProductAttention(q, k, v, { attnMask: mask, isCausal: c.causal, impl });
  expect(out.dtype).toBe('f16');
  expect(out.shape).toEqual(want.out.shape);
  const got = Array.from(await out.toArray());
  const r = allClose(got, want.out.data, OUT_TOL);
  expect(r.ok, `${mode} ${impl} ${c.name} forward: ${r.message}`).toBe(true);
  const loss = tidy(() => out.float().mul(dO.float()).sum());
  loss.backward();
  let worstGrad = 0;
  const grads: [string, Tensor, Ref][] = c.selfAttention
    ? [['dq+dk+dv', q, ref(wantG.dq.data.map((x, i) => x + wantG.dk.data[i] + wantG.dv.data[i]), wantG.dq.shape)]]
    : [['dq', q, wantG.dq], ['dk', k, wantG.dk], ['dv', v, wantG.dv]];
  for (const [name, t, w] of grads) {
    expect(t.grad!.dtype, `${name} dtype`).toBe('f16');
    const g = Array.from(await t.grad!.toArray());
    const rr = allClose(g, w.data, GRAD_TOL);
    expect(rr.ok, `${mode} ${impl} ${c.name} ${name}: ${rr.message}`).toBe(true);
    for (let i = 0; i < g.length; i++) worstGrad = Math.max(worstGrad, Math.abs(g[i] - w.data[i]));
  }
  if (c.bias) {
    expect(mask!.grad!.dtype).toBe(c.bias);
    const rr = allClose(Array.from(await mask!.grad!.toArray()), wantG.dFloatMask!.data, GRAD_TOL);
    expect(rr.ok, `${mode} ${impl} ${c.name} dmask: ${rr.message}`).toBe(true);
  }
  let worstOut = 0;
  for (let i = 0; i < got.length; i++) worstOut = Math.max(worstOut, Math.abs(got[i] - want.out.data[i]));
  for (const t of new Set([q, k, v, out, dO, loss, ...(mask ? [mask] : [])])) t.dispose();
  expect(memory().buffers, `${c.name} leaks`).toBe(before);
  return { out: worstOut, grad: worstGrad };
}

const cases: Case[] = [
  { name: 'primes', q: [2, 3, 7, 16], k: [2, 3, 13, 16], v: [2, 3, 13, 16] },
  { name: 'causal Nq<Nk D=32', q: [1, 2, 7, 32], k: [1, 2, 13, 32], v: [1, 2, 13, 32], causal: true },
  { name: 'causal 37 D=64', q: [1, 2, 37, 64], k: [1, 2, 37, 64], v: [1, 2, 37, 64], causal: true },
  { name: 'D=80 Dv=24 (odd element counts per row)', q: [1, 2, 9, 80], k: [1, 2, 11, 80], v: [1, 2, 11, 24] },
  { name: 'D=5 (rows start at odd elements)', q: [1, 3, 7, 5], k: [1, 3, 9, 5], v: [1, 3, 9, 3] },
  { name: 'GQA 4/2', q: [2, 4, 9, 16], k: [2, 2, 11, 16], v: [2, 2, 11, 16] },
  { name: 'key mask with a fully masked batch', q: [3, 2, 5, 8], k: [3, 2, 7, 8], v: [3, 2, 7, 8], keyMask: true },
  { name: 'f32 bias [Nq,Nk] with grad', q: [2, 2, 6, 16], k: [2, 2, 7, 16], v: [2, 2, 7, 16], bias: 'f32' },
  { name: 'f16 bias [Nq,Nk] with grad', q: [2, 2, 6, 16], k: [2, 2, 7, 16], v: [2, 2, 7, 16], bias: 'f16' },
  { name: 'logits x50', q: [1, 2, 9, 16], k: [1, 2, 9, 16], v: [1, 2, 9, 16], logitScale: 50, causal: true },
  { name: 'self-attention, one f16 tensor as q, k and v', q: [2, 2, 6, 8], k: [2, 2, 6, 8], v: [2, 2, 6, 8], selfAttention: true },
  { name: '3-D inputs', q: [3, 7, 16], k: [3, 9, 16], v: [3, 9, 16] },
];

afterEach(() => setFlag('attention.f16', undefined));

describe('f16 attention', () => {
  // The widening path is casts around the f32 kernels (tested over every case in sdpa.test.ts): it runs here over the
  // cases with head dims <= 32, which on lavapipe share one set of compiled pipelines (a new set costs ~20 s).
  const widenCases = cases.filter((c) => Math.max(c.q.at(-1)!, c.v.at(-1)!) <= 32);
  for (const mode of ['native', 'widen'] as const) {
    for (const c of mode === 'native' ? cases : widenCases) {
      it(`${mode}: ${c.name}`, async (ctx) => {
        if (mode === 'native' && !hasF16()) ctx.skip();
        const w = await check(c, mode, "fused", 100 + cases.indexOf(c) * 10);
        if (process.env.KILN_F16_REPORT) console.log(`WORST ${mode} ${c.name}: out ${w.out.toExponential(2)} grad ${w.grad.toExponential(2)}`);
      });
    }
  }

  it('the reference path takes f16 inputs too', async () => {
    await check(cases[1], 'native', 'reference', 7);
  });

  it('runs the f16 kernel variant natively where the adapter has shader-f16, else widens', async (ctx) => {
    if (!hasTimestampQuery()) ctx.skip();
    const q = half(rndHalf([1, 2, 8, 16], 1), true);
    const timer = startGpuTimer();
    const o = F.scaledDotProductAttention(q, q, q, { isCausal: true });
    const loss = tidy(() => o.float().sum());
    loss.backward();
    await q.grad!.toArray();
    const labels = Object.keys((await timer.stop()).byLabel);
    if (hasF16()) {
      // (.rows: the register-tiled forward, the default on lavapipe.)
      expect(labels.some((l) => /^attention\.forward\.f16(\.subgroups)?(\.rows)?$/.test(l)), labels.join(' ')).toBe(true);
      expect(labels).toEqual(expect.arrayContaining(['attention.backward.dkdv.f16', 'attention.backward.dq.f16']));
      expect(labels.some((l) => /^attention\.forward(\.subgroups)?(\.rows)?$/.test(l))).toBe(false);
    } else {
      expect(labels.some((l) => /^attention\.forward(\.subgroups)?(\.rows)?$/.test(l)), labels.join(' ')).toBe(true);
    }
    for (const t of [q, o, loss]) t.dispose();
  });

  it('native and widened outputs agree to f16 rounding', async (ctx) => {
    if (!hasF16()) ctx.skip();
    const q = half(rndHalf([2, 2, 19, 32], 3)), k = half(rndHalf([2, 2, 23, 32], 4)), v = half(rndHalf([2, 2, 23, 32], 5));
    setFlag('attention.f16', 'native');
    const a = await F.scaledDotProductAttention(q, k, v).toArray();
    setFlag('attention.f16', 'widen');
    const b = await F.scaledDotProductAttention(q, k, v).toArray();
    const r = allClose(Array.from(a), Array.from(b), { atol: 1e-6, rtol: 1e-3 });
    expect(r.ok, r.message).toBe(true);
    for (const t of [q, k, v]) t.dispose();
  });

  it('refuses mixed dtypes before any GPU work', () => {
    const q16 = tensor(new Float32Array(16), { shape: [1, 1, 2, 8], dtype: 'f16' });
    const k32 = tensor(new Float32Array(16), { shape: [1, 1, 2, 8] });
    expectThrows(() => F.scaledDotProductAttention(q16, k32, k32), DTypeError, 'q is f16 but k is f32', ".to('f16')");
    const i32 = tensor(new Int32Array(16), { shape: [1, 1, 2, 8] });
    expectThrows(() => F.scaledDotProductAttention(i32, i32, i32), DTypeError, 'q must be f32 or f16, got i32');
    for (const t of [q16, k32, i32]) t.dispose();
  });

  it('attentionWeights of f16 inputs are f16 probabilities', async () => {
    const qr = rndHalf([1, 5, 8], 8), kr = rndHalf([1, 6, 8], 9);
    const q = half(qr), k = half(kr);
    const w = F.attentionWeights(q, k, { isCausal: true });
    expect(w.dtype).toBe('f16');
    const r = allClose(Array.from(await w.toArray()), sdpa(qr, kr, rndHalf([1, 6, 4], 1), { isCausal: true }).probs.data, OUT_TOL);
    expect(r.ok, r.message).toBe(true);
    for (const t of [q, k, w]) t.dispose();
  });
});
