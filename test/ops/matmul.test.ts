// matmul and linear: odd sizes around the 64x64 tile, batching with broadcast, 1-D operands, transposed views, gradients.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import { transpose as refTranspose } from '../reference/core';
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
  });
});
