// Row-norm epilogues (src/compile/rownorm.ts, kernels/matmul_rownorm.wgsl): a layerNorm of a matmul's result, and the
// dx of its backward, folded into the matmul. The fused step equals the unfused one (fuse: { layerNorm: false }) and
// eager to the bit (the kernel repeats layernorm.wgsl's sums term for term), on odd shapes with NaN and infinities,
// and the forward equals a float64 layerNorm; N over 64 is not folded. The kernel's whole range (N <= 64) is tested
// with the flag compile.layerNormMaxN at 64; by default only N <= 32 is folded (where it was measured faster).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setFlag } from '../../src/experimental';
import { compile, layerNorm, linear, tensor, tidy, type Tensor } from '../../src/index.node';
import { resetStats, stats } from '../../src/gpu/queue';
import { memory } from '../../src/gpu/memory';
import { layerNorm as layerNormRef } from '../reference/ops';
import { ref } from '../reference/core';

function values(n: number, seed: number, scale = 3): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 31 - 1) * scale;
  });
}

/** Bit-equal (NaN equal to NaN). */
function sameBits(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const a = got[i], b = want[i];
    expect(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)), `${what}[${i}]: ${a} vs ${b}`).toBe(true);
  }
}

type Fn = (...xs: Tensor[]) => Tensor[];

/** fn eagerly, then compiled with the row-norm pass off and on (4 calls each, so plans replay); every result compared. */
async function check(name: string, fn: Fn, inputs: Tensor[]): Promise<{ fused: number; plain: number; explain: string; out: Float32Array[] }> {
  const want = tidy(() => fn(...inputs));
  const wantValues = await Promise.all(want.map(async (t) => (await t.toArray()) as Float32Array));
  for (const t of want) t.dispose();
  const counts: number[] = [];
  let explain = '';
  for (const on of [false, true]) {
    const step = compile((...xs: Tensor[]) => tidy(() => fn(...xs)), { fuse: { layerNorm: on, horizontal: false } });
    for (let k = 0; k < 4; k++) {
      resetStats();
      const r = step(...inputs) as Tensor[];
      counts[on ? 1 : 0] = stats.dispatches;
      for (let j = 0; j < r.length; j++) sameBits((await r[j].toArray()) as Float32Array, wantValues[j], `${name} layerNorm=${on} call ${k} result ${j}`);
      for (const t of r) t.dispose();
    }
    expect(step.fallbackReason, name).toBe(null);
    expect(step.stats.replays, name).toBe(2);
    if (on) explain = step.explain();
    else expect(step.explain(), name).not.toContain('+layerNorm');
    step.dispose();
  }
  return { plain: counts[0], fused: counts[1], explain, out: wantValues };
}

describe('compile: layerNorm folded into matmul epilogues', () => {
  beforeAll(() => setFlag('compile.layerNormMaxN', 64));
  afterAll(() => setFlag('compile.layerNormMaxN', undefined));

  it('by default rows up to 32 wide are folded, 64 wide are not (measured slower); the flag is checked', async () => {
    setFlag('compile.layerNormMaxN', undefined);
    try {
      const M = 9, K = 5;
      const x = tensor(values(M * K, 40), { shape: [M, K] });
      for (const N of [32, 64]) {
        const w = tensor(values(N * K, 41, 0.5), { shape: [N, K] });
        const lw = tensor(values(N, 42), { shape: [N] });
        const res = await check(`default, N=${N}`, (p, q, g) => [layerNorm(p.matmul(q.transpose(0, 1)), N, g, null)], [x, w, lw]);
        expect(res.fused, `N=${N}`).toBe(N === 32 ? res.plain - 1 : res.plain);
        for (const t of [w, lw]) t.dispose();
      }
      x.dispose();
      expect(() => setFlag('compile.layerNormMaxN', 65)).toThrow(/integer from 1 to 64, got 65/);
      expect(() => setFlag('compile.layerNormMaxN', 2.5)).toThrow(/integer from 1 to 64/);
    } finally {
      setFlag('compile.layerNormMaxN', 64);
    }
  });

  // One test per N (each fused pipeline compiles cold in seconds on lavapipe; a test holds at most six of them).
  it.each([5, 32, 64])('forward: linear (+ residual) -> layerNorm for N = %i and M = 37, with and without bias, residual and affine; equal to unfused, eager and float64; NaN and infinities', async (N) => {
    const M = 37, K = 13;
    const before = memory().bytes;
    {
      const x = tensor(values(M * K, 1), { shape: [M, K] });
      const w = tensor(values(N * K, 2, 0.5), { shape: [N, K] });
      const b = tensor(values(N, 3), { shape: [N] });
      const r = tensor(values(M * N, 4), { shape: [M, N] });
      const lw = tensor(values(N, 5), { shape: [N] });
      const lb = tensor(values(N, 6), { shape: [N] });
      const cases: [string, Fn, Tensor[]][] = [
        ['linear + residual -> layerNorm(affine)', (p, q, c, s, g, e) => [layerNorm(linear(p, q, c).add(s), N, g, e)], [x, w, b, r, lw, lb]],
        ['residual + matmul -> layerNorm(weight only)', (p, q, s, g) => [layerNorm(s.add(p.matmul(q.transpose(0, 1))), N, g, null)], [x, w, r, lw]],
        ['linear -> layerNorm(no affine)', (p, q, c) => [layerNorm(linear(p, q, c), N)], [x, w, b]],
        ['matmul -> layerNorm(bias only, eps 1e-3)', (p, q, e) => [layerNorm(p.matmul(q.transpose(0, 1)), N, null, e, 1e-3)], [x, w, lb]],
      ];
      const outs: Float32Array[] = [];
      for (const [name, fn, inputs] of cases) {
        const res = await check(`${name}, N=${N}`, fn, inputs);
        expect(res.explain, name).toContain('+layerNorm');
        expect(res.explain, name).toContain('layerNorm x1');
        expect(res.fused, name).toBe(res.plain - 1);
        outs.push(res.out[0]);
      }
      // float64: the first case.
      const [xv, wv, bv, rv, lwv, lbv] = await Promise.all([x, w, b, r, lw, lb].map(async (t) => Array.from((await t.toArray()) as Float32Array)));
      const pre = new Float64Array(M * N);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += xv[i * K + k] * wv[j * K + k];
          pre[i * N + j] = Math.fround(Math.fround(s + bv[j]) + rv[i * N + j]);
        }
      }
      const want = layerNormRef(ref(pre, [M, N]), N, ref(lwv, [N]), ref(lbv, [N])).data;
      for (let i = 0; i < want.length; i++) expect(Math.abs(outs[0][i] - want[i]), `N=${N} [${i}]`).toBeLessThanOrEqual(2e-5 * Math.max(1, Math.abs(want[i])));
      for (const t of [x, w, b, r, lw, lb]) t.dispose();
    }
    // NaN, +inf, -inf in rows 2, 17, 33 of the residual: those rows of y are NaN, the others finite and equal.
    {
      const x = tensor(values(M * K, 7), { shape: [M, K] });
      const w = tensor(values(N * K, 8, 0.5), { shape: [N, K] });
      const rv = values(M * N, 9);
      rv[2 * N + 1] = NaN;
      rv[17 * N] = Infinity;
      rv[33 * N + N - 1] = -Infinity;
      const r = tensor(rv, { shape: [M, N] });
      const lw = tensor(values(N, 10), { shape: [N] });
      const lb = tensor(values(N, 11), { shape: [N] });
      const { out, explain } = await check(`NaN and infinities, N=${N}`, (p, q, s, g, e) => [layerNorm(linear(p, q, null).add(s), N, g, e)], [x, w, r, lw, lb]);
      expect(explain).toContain('+layerNorm');
      for (let i = 0; i < M; i++) {
        const row = out[0].subarray(i * N, (i + 1) * N);
        expect(row.every((v) => ([2, 17, 33].includes(i) ? Number.isNaN(v) : Number.isFinite(v))), `row ${i}`).toBe(true);
      }
      for (const t of [x, w, r, lw, lb]) t.dispose();
    }
    expect(memory().bytes).toBe(before);
  });

  it('forward with batch dims ([3, 7, K] input, batched matmul), and N = 65 (rows over one tile) not folded', async () => {
    const K = 11;
    const x = tensor(values(3 * 7 * K, 12), { shape: [3, 7, K] });
    for (const N of [24, 65]) {
      const w = tensor(values(N * K, 13, 0.5), { shape: [N, K] });
      const b = tensor(values(N, 14), { shape: [N] });
      const r = tensor(values(3 * 7 * N, 15), { shape: [3, 7, N] });
      const lw = tensor(values(N, 16), { shape: [N] });
      const res = await check(`[3, 7, ${K}] linear + residual -> layerNorm, N=${N}`, (p, q, c, s, g) => [layerNorm(linear(p, q, c).add(s), N, g, null)], [x, w, b, r, lw]);
      if (N === 65) {
        expect(res.explain).not.toContain('layerNorm x');
        expect(res.fused).toBe(res.plain);
      } else {
        expect(res.explain).toContain('+layerNorm');
        expect(res.fused).toBe(res.plain - 1);
      }
      for (const t of [w, b, r, lw]) t.dispose();
    }
    x.dispose();
  });

  it.each([[5, false], [32, false], [64, false], [32, true]] as const)('backward: a post-norm block (linear + residual -> layerNorm, twice) under a linear head, N = %i (NaN upstream: %s); dx of both norms folded (one with the gradient sum as residual); gradients equal unfused and eager', async (N, poison) => {
    const M = 29, K = 19;
    {
      const x = tensor(values(M * K, 20), { shape: [M, K] });
      const w1 = tensor(values(N * K, 21, 0.5), { shape: [N, K] });
      const b1 = tensor(values(N, 22), { shape: [N] });
      const w2 = tensor(values(N * N, 23, 0.3), { shape: [N, N] });
      const lw = tensor(values(N, 24), { shape: [N] });
      const lb = tensor(values(N, 25), { shape: [N] });
      const w3 = tensor(values(7 * N, 26, 0.5), { shape: [7, N] });
      const tv = values(M * 7, 27);
      if (poison) tv[3 * 7 + 2] = NaN;
      const t = tensor(tv, { shape: [M, 7] });
      const step = (p: Tensor) => {
        const params = [w1, b1, w2, lw, lb].map((q) => {
          const d = q.detach();
          d.requiresGrad = true;
          return d;
        });
        const [pw1, pb1, pw2, plw, plb] = params;
        const a = layerNorm(linear(p, pw1, pb1), N, plw, plb);
        const h = a.add(linear(a, pw2, null));
        const z = layerNorm(h, N, plw, null);
        const loss = linear(z, w3, null).mul(t).sum();
        loss.backward();
        const grads = params.map((q) => q.grad!);
        for (const q of params) q.grad = null;
        for (const q of params) q.dispose();
        return [loss, ...grads];
      };
      const res = await check(`post-norm block backward, N=${N}${poison ? ', NaN upstream' : ''}`, step, [x]);
      expect(res.explain).toContain('layerNorm x2');
      expect(res.explain).toContain('layerNorm_grad x2');
      expect(res.explain).toContain('+residual+layerNorm_grad');
      expect(res.fused).toBe(res.plain - 4);
      if (poison) expect(Number.isNaN(res.out[0][0])).toBe(true);
      else for (const g of res.out) expect(g.every(Number.isFinite)).toBe(true);
      for (const q of [x, w1, b1, w2, lw, lb, w3, t]) q.dispose();
    }
  });

  it('backward against float64: the weight gradient through linear -> layerNorm -> linear head, the norm\'s dx folded into the head\'s dX matmul (N = 5, 32)', async () => {
    const M = 13, K = 7, V = 6;
    for (const N of [5, 32]) {
      const data = { x: values(M * K, 30), w1: values(N * K, 31, 0.5), lw: values(N, 32), lb: values(N, 33), w3: values(V * N, 34, 0.5), t: values(M * V, 35) };
      const x = tensor(data.x, { shape: [M, K] });
      const w1 = tensor(data.w1, { shape: [N, K] });
      const lw = tensor(data.lw, { shape: [N] });
      const lb = tensor(data.lb, { shape: [N] });
      const w3 = tensor(data.w3, { shape: [V, N] });
      const t = tensor(data.t, { shape: [M, V] });
      const step = (p: Tensor) => {
        const pw1 = w1.detach();
        pw1.requiresGrad = true;
        const loss = linear(layerNorm(linear(p, pw1, null), N, lw, lb), w3, null).mul(t).sum();
        loss.backward();
        const g = pw1.grad!;
        pw1.grad = null;
        pw1.dispose();
        return [g];
      };
      const res = await check(`float64 backward, N=${N}`, step, [x]);
      expect(res.explain).toContain('matmul+layerNorm_grad');
      // float64: h = x w1^T; dz = t w3; g = dz * lw; dh = rstd (g - mean(g) - xhat mean(g xhat)); dW1 = dh^T x.
      const dh = new Float64Array(M * N);
      for (let i = 0; i < M; i++) {
        const h = Array.from({ length: N }, (_, j) => {
          let s = 0;
          for (let k = 0; k < K; k++) s += data.x[i * K + k] * data.w1[j * K + k];
          return s;
        });
        const mu = h.reduce((a, b) => a + b, 0) / N;
        const rstd = 1 / Math.sqrt(h.reduce((a, b) => a + (b - mu) ** 2, 0) / N + 1e-5);
        const xhat = h.map((v) => (v - mu) * rstd);
        const g = Array.from({ length: N }, (_, j) => {
          let s = 0;
          for (let v = 0; v < V; v++) s += data.t[i * V + v] * data.w3[v * N + j];
          return s * data.lw[j];
        });
        const mg = g.reduce((a, b) => a + b, 0) / N;
        const mgx = g.reduce((a, b, j) => a + b * xhat[j], 0) / N;
        for (let j = 0; j < N; j++) dh[i * N + j] = rstd * (g[j] - mg - xhat[j] * mgx);
      }
      for (let j = 0; j < N; j++) {
        for (let k = 0; k < K; k++) {
          let want = 0;
          for (let i = 0; i < M; i++) want += dh[i * N + j] * data.x[i * K + k];
          expect(Math.abs(res.out[0][j * K + k] - want), `N=${N} dW1[${j}, ${k}]`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want)));
        }
      }
      for (const q of [x, w1, lw, lb, w3, t]) q.dispose();
    }
  });
});
