// matmul and linear: odd sizes around the 64x64 tile, batching with broadcast, 1-D operands, transposed views, gradients.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import { allClose, transpose as refTranspose, type Ref } from '../reference/core';
import { checkGradVsRef, expectTensorClose, fromRef, poison, rnd } from '../helpers';

const cases: [number[], number[]][] = [
  [[1, 1], [1, 1]],
  [[65, 33], [33, 17]],
  [[130, 7], [7, 66]],
  [[7, 13], [13, 31]],
  [[3, 1, 5, 7], [2, 7, 4]],
  [[2, 3, 4], [4, 5]],
  [[5], [5, 3]],
  [[4, 5], [5]],
  [[6], [6]],
  [[2, 3, 5], [5]],
  [[7], [2, 7, 3]],
];

describe('matmul forward', () => {
  for (const [sa, sb] of cases) {
    it(`${JSON.stringify(sa)} @ ${JSON.stringify(sb)}`, async () => {
      const a = rnd(sa, sa.length * 10 + sa[0]);
      const b = rnd(sb, sb.length * 20 + sb[0]);
      const want = R.matmul(a, b);
      const at = fromRef(a);
      const bt = fromRef(b);
      poison([want.shape]);
      const y = K.matmul(at, bt);
      const K_ = sa[sa.length - 1];
      await expectTensorClose(y, want, 2e-6 * K_, 1e-5, 'matmul');
      const m = at.matmul(bt);
      expect(Array.from(await m.toArray())).toEqual(Array.from(await y.toArray()));
      for (const t of [at, bt, y, m]) t.dispose();
    });
  }

  it('transposed and sliced views as operands (no copy needed)', async () => {
    const a = rnd([33, 65], 1); // used as a^T: [65, 33]
    const b = rnd([17, 33], 2); // used as b^T: [33, 17]
    const at = K.transpose(fromRef(a), 0, 1);
    const bt = fromRef(b).transpose(0, 1);
    expect(at.isContiguous).toBe(false);
    poison([[65, 17]]);
    await expectTensorClose(K.matmul(at, bt), R.matmul(refTranspose(a, 0, 1), refTranspose(b, 0, 1)), 1e-4, 1e-5);
    // A batched transpose of the last two dims, and a permuted batch.
    const c = rnd([3, 9, 5], 3);
    const d = rnd([3, 9, 4], 4);
    const ct = K.transpose(fromRef(c), -1, -2);
    await expectTensorClose(K.matmul(ct, fromRef(d)), R.matmul(refTranspose(c, -1, -2), d), 1e-5, 1e-5);
    const e = rnd([5, 3, 4], 5);
    const ep = K.permute(fromRef(e), [1, 0, 2]); // [3, 5, 4]
    await expectTensorClose(K.matmul(ep, fromRef(rnd([4, 2], 6))), R.matmul(refTranspose(e, 0, 1), rnd([4, 2], 6)), 1e-5, 1e-5);
    // A strided slice as the left operand.
    const f = rnd([10, 6], 7);
    const fs = K.slice(fromRef(f), 0, 1, 10, 3); // rows 1, 4, 7
    const rows = [1, 4, 7].flatMap((r) => Array.from(f.data.subarray(r * 6, r * 6 + 6)));
    await expectTensorClose(K.matmul(fs, fromRef(rnd([6, 2], 8))), R.matmul({ data: Float64Array.from(rows), shape: [3, 6] }, rnd([6, 2], 8)), 1e-5, 1e-5);
  });

  it('linear with and without bias, batched input', async () => {
    const x = rnd([2, 3, 7], 1);
    const w = rnd([5, 7], 2);
    const b = rnd([5], 3);
    poison([[2, 3, 5]]);
    await expectTensorClose(K.linear(fromRef(x), fromRef(w), fromRef(b)), R.linear(x, w, b), 1e-5, 1e-5);
    await expectTensorClose(K.F.linear(fromRef(x), fromRef(w)), R.linear(x, w), 1e-5, 1e-5);
  });

  it('linear: the bias in the matmul epilogue equals the product plus a separate add, on odd shapes, offset and strided biases, NaN and infinities', async () => {
    // N = 67 (scalar loads of B) and 68 (vec4 loads), M and K odd, past one 16 x 64 tile.
    for (const [M, K_, N] of [[37, 13, 67], [37, 13, 68], [1, 1, 1], [17, 65, 3]]) {
      const x = rnd([M, K_], M + N, -2, 2);
      const w = rnd([N, K_], N, -2, 2);
      const b = rnd([N], K_ + 1);
      const clean = K.linear(fromRef(x), fromRef(w), fromRef(b));
      await expectTensorClose(clean, R.linear(x, w, b), 1e-5, 1e-5, `[${M},${K_},${N}] against float64`);
      clean.dispose();
      x.data[5 % x.data.length] = NaN;
      if (N > 2) {
        b.data[1] = Infinity;
        b.data[2] = -Infinity;
      }
      // The bias as a view at an offset of a longer buffer (as a parameter in an optimizer's arena).
      const host = Float32Array.from([9, 9, 9, ...b.data, 9]);
      const base = K.tensor(host, { shape: [host.length] });
      const bias = K.slice(base, 0, 3, 3 + N);
      poison([[M, N]]);
      const xt = fromRef(x), wt = fromRef(w);
      const y = K.linear(xt, wt, bias);
      const want = K.tidy(() => K.add(K.matmul(xt, K.transpose(wt, 0, 1)), bias));
      const got = await y.toArray(), ref = await want.toArray();
      for (let i = 0; i < got.length; i++) expect(Object.is(got[i], ref[i]) || (Number.isNaN(got[i]) && Number.isNaN(ref[i])), `[${M},${K_},${N}] element ${i}: ${got[i]} vs ${ref[i]}`).toBe(true);
      // A strided bias (every other element) takes the separate add.
      const host2 = new Float32Array(2 * N);
      b.data.forEach((v, i) => (host2[2 * i] = v));
      const base2 = K.tensor(host2, { shape: [2 * N] });
      const strided = K.slice(base2, 0, 0, 2 * N, 2);
      const viaAddT = K.linear(xt, wt, strided);
      const viaAdd = await viaAddT.toArray();
      for (let i = 0; i < got.length; i++) expect(Object.is(viaAdd[i], ref[i]) || (Number.isNaN(viaAdd[i]) && Number.isNaN(ref[i])), `[${M},${K_},${N}] strided bias, element ${i}`).toBe(true);
      for (const t of [xt, wt, y, want, base, bias, base2, strided, viaAddT]) t.dispose();
    }
  });

  it('property: random shapes with broadcast batch dims and 1-D operands agree with the reference', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
        fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 5 }),
        async (M, Kd, N, batch, mask, mode) => {
          // Each batch dim of each side independently broadcasts (size 1) or is dropped.
          const ba = batch.map((d, i) => ((mask >> i) & 1 ? 1 : d));
          const bb = batch.map((d, i) => ((mask >> (i + 2)) & 1 ? 1 : d)).slice((mask >> 4) & 1);
          const sa = mode === 1 ? [Kd] : [...ba, M, Kd];
          const sb = mode === 2 ? [Kd] : [...bb, Kd, N];
          const a = rnd(sa, M * 31 + Kd);
          const b = rnd(sb, N * 17 + Kd);
          const at = fromRef(a);
          const bt = fromRef(b);
          const y = K.matmul(at, bt);
          await expectTensorClose(y, R.matmul(a, b), 1e-5 * Kd, 1e-5, `${JSON.stringify(sa)} @ ${JSON.stringify(sb)}`);
          for (const t of [at, bt, y]) t.dispose();
        },
      ),
      { numRuns: 20, seed: 1234 },
    );
  });
});

// The kernel: 16 x 64 output tiles of 8 x 4 threads, 4 x 8 outputs a thread; B read as vec4 (`main_vec`) when N, B's
// offset and its strides are multiples of 4 and its rows contiguous, else with scalar strided reads (`main`).
describe('matmul kernel edges', () => {
  async function check(at: K.Tensor, bt: K.Tensor, a: Ref, b: Ref, label: string): Promise<void> {
    const want = R.matmul(a, b);
    poison([want.shape]);
    const y = K.matmul(at, bt);
    await expectTensorClose(y, want, 2e-6 * Math.max(1, a.shape[a.shape.length - 1]), 1e-5, label);
    y.dispose();
  }

  it('odd M, N, K around the 16 x 64 tile and the 4 x 8 thread tile, both read paths', async () => {
    const dims: [number, number, number][] = [
      [1, 1, 1], [1, 64, 1], [16, 64, 1], [17, 65, 3], [15, 63, 2], [4, 8, 5], [5, 9, 7], [3, 4, 1], [33, 4, 129],
      [16, 68, 16], [31, 128, 17], [1, 260, 33], [70, 1, 19], [2, 12, 64],
    ];
    for (const [M, N, Kd] of dims) {
      const a = rnd([M, Kd], M * 7 + Kd), b = rnd([Kd, N], N * 11 + Kd);
      const at = fromRef(a), bt = fromRef(b);
      await check(at, bt, a, b, `[${M},${Kd}] @ [${Kd},${N}]`);
      at.dispose();
      bt.dispose();
    }
  });

  it('K = 1 (outer products) and K = 0', async () => {
    const a = rnd([19, 1], 1), b = rnd([1, 72], 2);
    await check(fromRef(a), fromRef(b), a, b, 'outer');
    const z = K.matmul(K.zeros([5, 0]), K.zeros([0, 8]));
    expect(Array.from(await z.toArray())).toEqual(new Array(40).fill(0));
  });

  it('views of B: aligned and unaligned offsets, row strides that are and are not multiples of 4, column strides', async () => {
    const big = rnd([40, 72], 3);
    const bigT = fromRef(big);
    const a = rnd([9, 6], 4);
    const aT = fromRef(a);
    const sub = (r0: number, c0: number, rows: number, cols: number, step = 1): Ref => {
      const data: number[] = [];
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data.push(big.data[(r0 + r) * 72 + c0 + c * step]);
      return { data: Float64Array.from(data), shape: [rows, cols] };
    };
    // Rows 4..10, columns 8..24 (offset and row stride multiples of 4: vec4 reads).
    await check(aT, K.slice(K.slice(bigT, 0, 4, 10), 1, 8, 24), a, sub(4, 8, 6, 16), 'aligned view');
    // Columns 1..17: offset 1 (scalar reads).
    await check(aT, K.slice(K.slice(bigT, 0, 4, 10), 1, 1, 17), a, sub(4, 1, 6, 16), 'unaligned offset');
    // Every other column: column stride 2.
    await check(aT, K.slice(K.slice(bigT, 0, 4, 10), 1, 0, 32, 2), a, sub(4, 0, 6, 16, 2), 'column stride 2');
    // A row stride of 6 (not a multiple of 4) with N = 4.
    const b6 = rnd([7, 6], 5);
    const b6T = K.slice(fromRef(b6), 1, 0, 4);
    const want6: Ref = { data: Float64Array.from(Array.from({ length: 28 }, (_, i) => b6.data[Math.floor(i / 4) * 6 + (i % 4)])), shape: [7, 4] };
    const a7 = rnd([5, 7], 6);
    await check(fromRef(a7), b6T, a7, want6, 'row stride 6');
    // B transposed (column-major): scalar reads.
    const bt = rnd([24, 6], 7);
    await check(aT, K.transpose(fromRef(bt), 0, 1), a, refTranspose(bt, 0, 1), 'B transposed');
  });

  it('batch broadcast on either side, with vec4 and scalar reads of B', async () => {
    const shapes: [number[], number[]][] = [
      [[3, 1, 17, 5], [1, 2, 5, 68]],
      [[1, 17, 5], [4, 5, 68]],
      [[2, 3, 18, 6], [3, 6, 7]],
      [[5, 2, 3], [3, 8]],
      [[2, 1, 1, 2, 9, 3], [3, 1, 3, 4]],
    ];
    for (const [sa, sb] of shapes) {
      const a = rnd(sa, sa.length + sa[0]), b = rnd(sb, 3 * sb.length + sb[0]);
      await check(fromRef(a), fromRef(b), a, b, `${JSON.stringify(sa)} @ ${JSON.stringify(sb)}`);
    }
    // An expanded (stride 0) batch dim of B.
    const b = rnd([1, 4, 8], 9);
    const a = rnd([3, 5, 4], 10);
    const be = K.expand(fromRef(b), [3, 4, 8]);
    const want = R.matmul(a, { data: Float64Array.from([...b.data, ...b.data, ...b.data]), shape: [3, 4, 8] });
    const y = K.matmul(fromRef(a), be);
    await expectTensorClose(y, want, 1e-5, 1e-5, 'expanded batch');
  });

  it('NaN and inf propagate as IEEE sums of the products, and only into their own rows and columns', async () => {
    for (const [M, N, Kd] of [[17, 68, 9], [5, 7, 3]] as [number, number, number][]) {
      const a = rnd([M, Kd], 11), b = rnd([Kd, N], 12);
      a.data[2 * Kd + 1] = NaN; // row 2
      a.data[4 * Kd] = Infinity; // row 4: +inf * b[0, j]
      b.data[2 * N + 3] = -Infinity; // column 3: -inf * a[i, 2]; meets +inf in row 4 only if a[4, 2] > 0 ... as IEEE
      b.data[1 * N + (N - 1)] = NaN; // last column
      const want = R.matmul(a, b);
      const y = K.matmul(fromRef(a), fromRef(b));
      const got = await y.toArray();
      const r = allClose(Array.from(got), want.data, { atol: 1e-4, rtol: 1e-4, equalNan: true });
      expect(r.ok, `${M}x${N}x${Kd}: ${r.message}`).toBe(true);
      expect(Number.isNaN(got[0])).toBe(false);
    }
  });
});

describe('matmul gradients', () => {
  const gcases: [number[], number[]][] = [
    [[3, 5], [5, 4]],
    [[2, 1, 3, 4], [3, 4, 2]],
    [[4], [4, 3]],
    [[3, 4], [4]],
    [[5], [5]],
    [[2, 3, 4], [4, 1]],
  ];
  for (const [sa, sb] of gcases) {
    it(`${JSON.stringify(sa)} @ ${JSON.stringify(sb)}`, async () => {
      await checkGradVsRef(K.matmul, R.matmul, [rnd(sa, 1), rnd(sb, 2)], { label: 'matmul' });
    });
  }

  it('through transposed inputs', async () => {
    await checkGradVsRef(
      (a, b) => K.matmul(K.transpose(a, 0, 1), b),
      (a, b) => R.matmul(refTranspose(a, 0, 1), b),
      [rnd([5, 3], 3), rnd([5, 2], 4)],
    );
  });

  it('linear (x, weight, bias)', async () => {
    await checkGradVsRef(K.linear, R.linear, [rnd([2, 3, 4], 5), rnd([6, 4], 6), rnd([6], 7)]);
    // One node: dx = g @ w, dw = g^T @ x, db = column sums of g, on odd shapes past one tile.
    await checkGradVsRef(K.linear, R.linear, [rnd([37, 13], 8), rnd([67, 13], 9), rnd([67], 10)], { label: '37x13 @ 13x67' });
    await checkGradVsRef((a, ww) => K.linear(a, ww), (a, ww) => R.linear(a, ww), [rnd([3, 5], 11), rnd([4, 5], 12)], { label: 'no bias' });
  });
});
