// The matrix-unit matmul (kernels/matmul_mma.wgsl) through its portable body, which CI runs (flag matmul.matrixBody =
// 'portable'): f16 operands (f16 tile products, f32 sums, f16 output rounded once), and f32 operands under
// setMatmulPrecision('medium') (inputs rounded to f16) and 'high' (hi + lo halves, three products). Every case is compared
// with float64: of the f16-rounded inputs (what the matrix units multiply) and of the original ones. Odd sizes around the
// 32 x 32 tile and its 16 x 16 x 16 blocks, K = 1, views, batch broadcast, NaN and inf. Without the flag, on an adapter
// with no trusted subgroup-matrix config (lavapipe), the precision setting changes nothing.
import { afterEach, describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { DTypeError, ValueError, deviceInfo, getMatmulPrecision, setMatmulPrecision } from '../../src/index.node';
import { setFlag } from '../../src/experimental';
import * as R from '../reference/ops';
import { allClose, transpose as refTranspose, type Ref } from '../reference/core';
import { expectThrows, fromRef, poison, rnd } from '../helpers';

/** Round to the nearest binary16 value (ties to even), as a float64. */
function f16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity;
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  const ulp = 2 ** (e - 10);
  let q = a / ulp;
  const fl = Math.floor(q);
  q = q - fl > 0.5 || (q - fl === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  return Math.sign(x) * q * ulp;
}
const roundRef = (r: Ref): Ref => ({ data: r.data.map(f16), shape: r.shape });
const hasF16 = () => deviceInfo().features.includes('shader-f16');

afterEach(() => {
  setFlag('matmul.matrixBody', undefined);
  setMatmulPrecision('highest');
});

async function close(y: K.Tensor, want: Ref, atol: number, rtol: number, label: string): Promise<void> {
  expect(y.shape, label).toEqual(want.shape);
  const got = Array.from(await y.toArray());
  const r = allClose(got, want.data, { atol, rtol, equalNan: true });
  expect(r.ok, `${label}: ${r.message}`).toBe(true);
}

const dims: [number, number, number][] = [
  [1, 1, 1], [32, 32, 32], [33, 31, 17], [31, 33, 33], [16, 16, 16], [5, 70, 1], [70, 5, 47], [1, 40, 64], [17, 1, 9],
];

describe('setMatmulPrecision', () => {
  it("defaults to 'highest', takes the three values, rejects others with a ValueError", () => {
    expect(getMatmulPrecision()).toBe('highest');
    for (const p of ['high', 'medium', 'highest'] as const) {
      setMatmulPrecision(p);
      expect(getMatmulPrecision()).toBe(p);
    }
    expectThrows(() => setMatmulPrecision('low' as never), ValueError, "'low'", "'highest', 'high' or 'medium'");
    expect(getMatmulPrecision()).toBe('highest');
  });

  it('changes nothing where no subgroup-matrix config is trusted and the portable body is not forced', async () => {
    if (deviceInfo().subgroupMatrix?.matmul) return;
    const a = rnd([33, 47], 1), b = rnd([47, 29], 2);
    const at = fromRef(a), bt = fromRef(b);
    const want = Array.from(await K.matmul(at, bt).toArray());
    for (const p of ['medium', 'high'] as const) {
      setMatmulPrecision(p);
      expect(Array.from(await K.matmul(at, bt).toArray()), p).toEqual(want);
    }
  });
});

describe('matrix matmul, portable body (needs shader-f16: f16 tiles)', () => {
  it("f32 'medium': exact products of the f16-rounded inputs, f32 sums", async () => {
    if (!hasF16()) return;
    setFlag('matmul.matrixBody', 'portable');
    setMatmulPrecision('medium');
    for (const [M, N, Kd] of dims) {
      const a = rnd([M, Kd], M + 3 * Kd), b = rnd([Kd, N], N + 5 * Kd);
      poison([[M, N]]);
      const y = K.matmul(fromRef(a), fromRef(b));
      const label = `medium [${M},${Kd}] @ [${Kd},${N}]`;
      // Against float64 of the rounded inputs: only f32 summation error; against the inputs themselves: f16's 2^-11.
      await close(y, R.matmul(roundRef(a), roundRef(b)), 2e-6 * Kd, 1e-5, label);
      await close(y, R.matmul(a, b), 1e-3 * Kd, 1e-3, label);
      y.dispose();
    }
  });

  it("f32 'high': three f16 products give f32-level accuracy", async () => {
    if (!hasF16()) return;
    setFlag('matmul.matrixBody', 'portable');
    setMatmulPrecision('high');
    for (const [M, N, Kd] of dims) {
      const a = rnd([M, Kd], 7 * M + Kd), b = rnd([Kd, N], 11 * N + Kd);
      const y = K.matmul(fromRef(a), fromRef(b));
      // The dropped lo x lo product and lo's own rounding: relative 2^-22 a product, far below 'medium''s 2^-11.
      await close(y, R.matmul(a, b), 4e-6 * Kd, 1e-5, `high [${M},${Kd}] @ [${Kd},${N}]`);
      y.dispose();
    }
  });

  it('f16 operands: f16 in, f32 sums, f16 out rounded once', async () => {
    if (!hasF16()) return;
    setFlag('matmul.matrixBody', 'portable');
    for (const [M, N, Kd] of dims) {
      const a = roundRef(rnd([M, Kd], M + Kd)), b = roundRef(rnd([Kd, N], N * Kd));
      const at = K.tensor(Float32Array.from(a.data), { shape: [M, Kd], dtype: 'f16' });
      const bt = K.tensor(Float32Array.from(b.data), { shape: [Kd, N], dtype: 'f16' });
      const y = K.matmul(at, bt);
      expect(y.dtype).toBe('f16');
      const exact = R.matmul(a, b);
      // One rounding to f16 of an f32 sum: half an f16 ulp of the result, plus the f32 sum's own error.
      const want = exact.data;
      const got = Array.from(await y.toArray());
      for (let i = 0; i < got.length; i++) {
        const tol = Math.abs(want[i]) * 2 ** -11 + 2e-6 * Kd + 6e-8;
        if (!(Math.abs(got[i] - want[i]) <= tol)) throw new Error(`f16 [${M},${Kd}] @ [${Kd},${N}]: entry ${i} is ${got[i]}, float64 ${want[i]}`);
      }
      for (const t of [at, bt, y]) t.dispose();
    }
    // Mixed dtypes are refused before any work.
    const h = K.tensor([1, 2], { shape: [1, 2], dtype: 'f16' }), f = K.tensor([1, 2], { shape: [2, 1] });
    expectThrows(() => K.matmul(h, f), DTypeError, 'f16 and f32');
  });

  it('views, batch broadcast and the transposes of autograd, through the matrix path', async () => {
    if (!hasF16()) return;
    setFlag('matmul.matrixBody', 'portable');
    setMatmulPrecision('high');
    const a = rnd([3, 1, 35, 9], 1), b = rnd([2, 9, 40], 2);
    await close(K.matmul(fromRef(a), fromRef(b)), R.matmul(a, b), 4e-5, 1e-5, 'broadcast');
    const c = rnd([40, 33], 3), d = rnd([21, 40], 4);
    const ct = K.transpose(fromRef(c), 0, 1), dt = K.transpose(fromRef(d), 0, 1);
    await close(K.matmul(ct, dt), R.matmul(refTranspose(c, 0, 1), refTranspose(d, 0, 1)), 2e-4, 1e-5, 'transposed views');
    const e = rnd([12, 10], 5);
    const es = K.slice(fromRef(e), 0, 1, 12, 2); // rows 1, 3, ..., 11: row stride 20
    const rows = [1, 3, 5, 7, 9, 11].flatMap((r) => Array.from(e.data.subarray(r * 10, r * 10 + 10)));
    const f = rnd([10, 3], 6);
    await close(K.matmul(es, fromRef(f)), R.matmul({ data: Float64Array.from(rows), shape: [6, 10] }, f), 4e-5, 1e-5, 'strided slice');
    // Gradients run the same path (matmul with transposed views).
    const x = K.tensor(Float32Array.from(rnd([5, 7], 7).data), { shape: [5, 7], requiresGrad: true });
    const w = fromRef(rnd([7, 3], 8));
    K.sum(K.matmul(x, w)).backward();
    const wr = rnd([7, 3], 8);
    const gx = Array.from({ length: 35 }, (_, i) => wr.data[(i % 7) * 3] + wr.data[(i % 7) * 3 + 1] + wr.data[(i % 7) * 3 + 2]);
    await close(x.grad!, { data: Float64Array.from(gx), shape: [5, 7] }, 4e-6, 1e-5, 'grad');
  });

  it("NaN and inf propagate as IEEE sums ('medium', f16), into their own rows and columns only ('high' too)", async () => {
    if (!hasF16()) return;
    setFlag('matmul.matrixBody', 'portable');
    for (const p of ['medium', 'high'] as const) {
      setMatmulPrecision(p);
      const M = 33, N = 34, Kd = 20;
      const a = rnd([M, Kd], 11), b = rnd([Kd, N], 12);
      a.data[2 * Kd + 1] = NaN;
      a.data[4 * Kd] = Infinity;
      b.data[2 * N + 3] = -Infinity;
      b.data[N + N - 1] = NaN;
      const y = K.matmul(fromRef(a), fromRef(b));
      const want = R.matmul(roundRef(a), roundRef(b));
      const got = Array.from(await y.toArray());
      for (let i = 0; i < got.length; i++) {
        const w = want.data[i];
        // 'high' may turn an inf of the f32 result into NaN (a lo half times the inf; documented): never a finite value.
        const sameNonFinite = Object.is(got[i], w) || (Number.isNaN(got[i]) && (Number.isNaN(w) || p === 'high'));
        if (!Number.isFinite(w)) expect(sameNonFinite, `${p} entry ${i}: ${got[i]} vs ${w}`).toBe(true);
        else expect(Number.isFinite(got[i]), `${p} entry ${i} should be finite`).toBe(true);
      }
    }
  });

  it("K = 1 and K = 0, and the flag's value is checked", async () => {
    if (!hasF16()) return;
    setFlag('matmul.matrixBody', 'portable');
    setMatmulPrecision('medium');
    const a = rnd([40, 1], 1), b = rnd([1, 36], 2);
    await close(K.matmul(fromRef(a), fromRef(b)), R.matmul(roundRef(a), roundRef(b)), 1e-7, 1e-6, 'outer');
    const z = K.matmul(K.zeros([3, 0]), K.zeros([0, 5]));
    expect(Array.from(await z.toArray())).toEqual(new Array(15).fill(0));
    expectThrows(() => setFlag('matmul.matrixBody', 'tensor-cores'), ValueError, 'matmul.matrixBody');
  });
});
