// softmax / logSoftmax over each dim, layerNorm, embedding, concat and stack: forward and gradients.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import { type Ref, permute as refPermute, reshape as refReshape } from '../reference/core';
import { checkGradVsRef, expectTensorClose, fromRef, poison, rnd } from '../helpers';

const refStack = (list: Ref[], dim: number): Ref => {
  const d = dim < 0 ? dim + list[0].shape.length + 1 : dim;
  return R.concat(list.map((r) => refReshape(r, [...r.shape.slice(0, d), 1, ...r.shape.slice(d)])), d);
};

describe('softmax and logSoftmax', () => {
  for (const shape of [[1], [7], [3, 13], [2, 5, 67], [2, 3, 130]]) {
    it(`every dim of ${JSON.stringify(shape)}`, async () => {
      const x = rnd(shape, shape.length * 7 + shape[shape.length - 1], -4, 4);
      const xt = fromRef(x);
      for (let d = -shape.length; d < shape.length; d++) {
        poison([shape]);
        const s = K.softmax(xt, d);
        await expectTensorClose(s, R.softmax(x, d), 1e-6, 1e-5, `softmax dim ${d}`);
        const l = K.logSoftmax(xt, d);
        await expectTensorClose(l, R.logSoftmax(x, d), 1e-5, 1e-5, `logSoftmax dim ${d}`);
        s.dispose();
        l.dispose();
      }
      xt.dispose();
    });
  }

  it('large logits stay finite; methods and F agree', async () => {
    const x = fromRef({ data: Float64Array.from([1000, 999, -1000, 0]), shape: [4] });
    await expectTensorClose(x.softmax(0), R.softmax({ data: Float64Array.from([1000, 999, -1000, 0]), shape: [4] }, 0), 1e-7, 1e-6);
    await expectTensorClose(K.F.logSoftmax(x, 0), R.logSoftmax({ data: Float64Array.from([1000, 999, -1000, 0]), shape: [4] }, 0), 1e-4, 1e-6);
  });

  it('of a non-contiguous (transposed) input', async () => {
    const x = rnd([5, 6], 3);
    const xt = K.transpose(fromRef(x), 0, 1);
    await expectTensorClose(K.softmax(xt, 1), R.softmax(refPermute(x, [1, 0]), 1), 1e-6, 1e-5);
  });

  it('gradients over each dim', async () => {
    const x = rnd([3, 4, 5], 11, -2, 2);
    for (const d of [0, 1, 2]) {
      await checkGradVsRef((t) => K.softmax(t, d), (t) => R.softmax(t, d), [x], { label: `softmax ${d}` });
      await checkGradVsRef((t) => K.logSoftmax(t, d), (t) => R.logSoftmax(t, d), [x], { label: `logSoftmax ${d}` });
    }
    await checkGradVsRef((t) => K.softmax(K.transpose(t, 0, 1), -1), (t) => R.softmax(refPermute(t, [1, 0]), -1), [rnd([4, 3], 5)], { label: 'softmax of a view' });
  });
});

describe('layerNorm', () => {
  const cases: [number[], number[]][] = [[[1, 1], [1]], [[3, 7], [7]], [[2, 5, 13], [13]], [[2, 3, 5], [3, 5]], [[4, 131], [131]]];
  for (const [shape, ns] of cases) {
    it(`${JSON.stringify(shape)} over ${JSON.stringify(ns)}, with and without weight/bias`, async () => {
      const x = rnd(shape, 3 + shape.length, -3, 3);
      const w = rnd(ns, 4, 0.5, 1.5);
      const b = rnd(ns, 5);
      const xt = fromRef(x);
      for (const [wt, bt] of [[null, null], [fromRef(w), null], [null, fromRef(b)], [fromRef(w), fromRef(b)]] as const) {
        poison([shape]);
        const y = K.layerNorm(xt, ns, wt, bt);
        // A single-element row has variance 0: x - mean is exactly 0, so y = bias.
        await expectTensorClose(y, R.layerNorm(x, ns, wt ? w : null, bt ? b : null), 2e-5, 2e-5, `weight ${!!wt} bias ${!!bt}`);
        y.dispose();
      }
    });
  }

  it('accepts a number as normalizedShape, eps, and a non-contiguous input', async () => {
    const x = rnd([6, 4], 8);
    const xt = K.transpose(fromRef(x), 0, 1); // [4, 6]
    await expectTensorClose(K.F.layerNorm(xt, 6, null, null, 1e-3), R.layerNorm(refPermute(x, [1, 0]), 6, null, null, 1e-3), 2e-5, 2e-5);
  });

  it('gradients for x, weight and bias', async () => {
    const x = rnd([2, 3, 5], 9, -2, 2);
    const w = rnd([5], 10, 0.5, 1.5);
    const b = rnd([5], 11);
    await checkGradVsRef((a, ww, bb) => K.layerNorm(a, [5], ww, bb), (a, ww, bb) => R.layerNorm(a, [5], ww, bb), [x, w, b], { label: 'affine' });
    await checkGradVsRef((a) => K.layerNorm(a, [3, 5]), (a) => R.layerNorm(a, [3, 5]), [x], { label: 'plain 2-D normalized shape' });
    await checkGradVsRef((a, ww) => K.layerNorm(a, [3, 5], ww), (a, ww) => R.layerNorm(a, [3, 5], ww), [x, rnd([3, 5], 12, 0.5, 1.5)], { label: 'weight only' });
  });

  it('weight and bias gradients in one dispatch: bias only, more rows than a workgroup, strided dy, NaN and infinity in dy', async () => {
    // 131 rows x 7: more rows than the kernel has threads in a workgroup (64; one thread per column sums the rows).
    const x = rnd([131, 7], 21, -2, 2);
    await checkGradVsRef((a, bb) => K.layerNorm(a, [7], null, bb), (a, bb) => R.layerNorm(a, [7], null, bb), [x, rnd([7], 22)], { label: 'bias only' });
    await checkGradVsRef((a, ww, bb) => K.layerNorm(a, [7], ww, bb), (a, ww, bb) => R.layerNorm(a, [7], ww, bb), [x, rnd([7], 23, 0.5, 1.5), rnd([7], 24)], { label: '131 rows' });
    // dy with a NaN in column 2 and an infinity in column 5 (row 100): those columns' dweight and dbias are NaN /
    // infinite as the float64 sums are; the other columns stay finite. dy is a transposed (strided) view.
    const C = 7;
    const xt = fromRef(x, { requiresGrad: true });
    const wt = fromRef(rnd([C], 25, 0.5, 1.5), { requiresGrad: true });
    const bt = fromRef(rnd([C], 26), { requiresGrad: true });
    const dyData = rnd([C, 131], 27).data.slice();
    dyData[2 * 131 + 100] = NaN;
    dyData[5 * 131 + 100] = Infinity;
    const dyBase = K.tensor(Float32Array.from(dyData), { shape: [C, 131] });
    const dy = K.transpose(dyBase, 0, 1);
    const y = K.layerNorm(xt, [C], wt, bt);
    y.backward(dy);
    const gw = await wt.grad!.toArray();
    const gb = await bt.grad!.toArray();
    const xd = x.data;
    for (let c = 0; c < C; c++) {
      let sw = 0;
      let sb = 0;
      for (let r = 0; r < 131; r++) {
        const row = Array.from({ length: C }, (_, j) => xd[r * C + j]);
        const mu = row.reduce((p, q) => p + q, 0) / C;
        const rstd = 1 / Math.sqrt(row.reduce((p, q) => p + (q - mu) ** 2, 0) / C + 1e-5);
        const g = dyData[c * 131 + r];
        sw += g * (row[c] - mu) * rstd;
        sb += g;
      }
      for (const [got, want, name] of [[gw[c], sw, 'dweight'], [gb[c], sb, 'dbias']] as const) {
        if (!Number.isFinite(want)) expect(Object.is(got, want) || (Number.isNaN(want) && Number.isNaN(got)), `${name}[${c}] ${got} vs ${want}`).toBe(true);
        else expect(Math.abs(got - want), `${name}[${c}] ${got} vs ${want}`).toBeLessThan(1e-4 * (1 + Math.abs(want)));
      }
    }
    for (const t of [xt, wt, bt, dyBase, dy, y]) t.dispose();
  });
});

describe('embedding', () => {
  it('gathers rows for any index shape, repeated indices included', async () => {
    const w = rnd([11, 7], 1);
    const idx = [3, 0, 10, 3, 7, 7];
    poison([[2, 3, 7]]);
    const it_ = K.tensor(Int32Array.from(idx), { shape: [2, 3] });
    const y = K.embedding(it_, fromRef(w));
    await expectTensorClose(y, R.embedding(w, { data: Float64Array.from(idx), shape: [2, 3] }), 0, 0);
    const y1 = K.F.embedding(K.tensor(Int32Array.from([5]), { shape: [1] }), fromRef(w));
    await expectTensorClose(y1, R.embedding(w, [5]), 0, 0);
  });

  it('gradient accumulates repeated rows (scatter-add)', async () => {
    const idx = { data: Float64Array.from([1, 4, 1, 1, 0, 4]), shape: [3, 2] };
    await checkGradVsRef(
      (w) => {
        const i = K.tensor(Int32Array.from(idx.data), { shape: idx.shape });
        const y = K.embedding(i, w);
        i.dispose();
        return y;
      },
      (w) => R.embedding(w, idx),
      [rnd([5, 3], 2)],
    );
  });
});

describe('concat and stack', () => {
  it('concat along each dim with odd sizes', async () => {
    const a = rnd([2, 3, 5], 1);
    const b = rnd([2, 1, 5], 2);
    const c = rnd([2, 7, 5], 3);
    poison([[2, 11, 5]]);
    await expectTensorClose(K.concat([fromRef(a), fromRef(b), fromRef(c)], 1), R.concat([a, b, c], 1), 0, 0);
    await expectTensorClose(K.concat([fromRef(a), fromRef(rnd([2, 3, 1], 4))], -1), R.concat([a, rnd([2, 3, 1], 4)], -1), 0, 0);
    await expectTensorClose(K.concat([fromRef(a), fromRef(a)], 0), R.concat([a, a], 0), 0, 0);
    // A non-contiguous piece.
    const t = K.transpose(fromRef(rnd([5, 3], 5)), 0, 1); // [3, 5]
    const want = R.concat([refPermute(rnd([5, 3], 5), [1, 0]), rnd([2, 5], 6)], 0);
    await expectTensorClose(K.concat([t, fromRef(rnd([2, 5], 6))], 0), want, 0, 0);
  });

  it('stack along each dim', async () => {
    const xs = [rnd([3, 5], 1), rnd([3, 5], 2), rnd([3, 5], 3)];
    for (const d of [0, 1, 2, -1]) {
      poison([[3, 3, 5]]);
      const y = K.stack(xs.map((x) => fromRef(x)), d);
      await expectTensorClose(y, refStack(xs, d), 0, 0, `stack dim ${d}`);
    }
  });

  it('gradients split back to each piece', async () => {
    await checkGradVsRef((a, b, c) => K.concat([a, b, c], 1), (a, b, c) => R.concat([a, b, c], 1), [rnd([2, 3], 1), rnd([2, 1], 2), rnd([2, 4], 3)]);
    await checkGradVsRef((a, b) => K.stack([a, b], 1), (a, b) => refStack([a, b], 1), [rnd([2, 3], 4), rnd([2, 3], 5)]);
    await checkGradVsRef((a) => K.concat([a, K.mul(a, a)], 0), (a) => R.concat([a, R.mul(a, a)], 0), [rnd([3, 2], 6)], { label: 'same tensor twice' });
  });
});

describe('inputs that are contiguous but start at an offset (a selected row, a slice)', () => {
  it('softmax, logSoftmax, layerNorm and embedding read from the view offset', async () => {
    const x = rnd([3, 2, 9], 21, -2, 2);
    const xt = fromRef(x);
    const row = K.select(xt, 0, 2); // [2, 9], contiguous, offset 36
    expect(row.isContiguous).toBe(true);
    expect(row.offset).toBeGreaterThan(0);
    const rowRef: Ref = { data: x.data.slice(36, 54), shape: [2, 9] };
    poison([[2, 9]]);
    await expectTensorClose(K.softmax(row, -1), R.softmax(rowRef, -1), 1e-6, 1e-5, 'softmax');
    await expectTensorClose(K.logSoftmax(row, 0), R.logSoftmax(rowRef, 0), 1e-5, 1e-5, 'logSoftmax');
    await expectTensorClose(K.softmax(K.select(row, 1, 4), 0), R.softmax({ data: Float64Array.of(rowRef.data[4], rowRef.data[13]), shape: [2] }, 0), 1e-6, 1e-5, 'strided softmax');
    const w = rnd([2, 9], 22, 0.5, 1.5);
    const wt = K.select(K.unsqueeze(fromRef(w), 0), 0, 0);
    const wRow = K.select(fromRef(w), 0, 1); // weight [9] at offset 9
    const wRowRef: Ref = { data: w.data.slice(9), shape: [9] };
    await expectTensorClose(K.layerNorm(row, [9], wRow, wRow), R.layerNorm(rowRef, [9], wRowRef, wRowRef), 2e-5, 2e-5, 'layerNorm');
    const table = K.slice(fromRef(rnd([6, 4], 23)), 0, 2); // rows 2.. of the table, offset 8
    const tableRef: Ref = { data: rnd([6, 4], 23).data.slice(8), shape: [4, 4] };
    const idx = K.slice(K.tensor(Int32Array.from([9, 9, 3, 0, 2])), 0, 2); // [3, 0, 2], offset 2
    await expectTensorClose(K.embedding(idx, table), R.embedding(tableRef, [3, 0, 2]), 0, 0, 'embedding');
    wt.dispose();
  });

  it('gradients through offset views', async () => {
    await checkGradVsRef((t) => K.softmax(K.select(t, 0, 1), -1), (t) => R.softmax({ data: t.data.slice(5, 10), shape: [5] }, -1), [rnd([2, 5], 24)]);
    await checkGradVsRef(
      (t, w) => K.layerNorm(K.select(t, 0, 1), [5], K.select(w, 0, 1)),
      (t, w) => R.layerNorm({ data: t.data.slice(5, 10), shape: [5] }, [5], { data: w.data.slice(5), shape: [5] }),
      [rnd([2, 5], 25), rnd([2, 5], 26, 0.5, 1.5)],
    );
    await checkGradVsRef(
      (w) => {
        const i = K.tensor(Int32Array.from([1, 1, 0]));
        const y = K.embedding(i, K.slice(w, 0, 1));
        i.dispose();
        return y;
      },
      (w) => R.embedding({ data: w.data.slice(3), shape: [2, 3] }, [1, 1, 0]),
      [rnd([3, 3], 27)],
    );
  });
});

it('F exposes the functional ops', () => {
  for (const name of ['softmax', 'logSoftmax', 'layerNorm', 'embedding', 'concat', 'stack', 'linear', 'relu', 'gelu', 'tanh', 'sigmoid']) {
    expect(typeof (K.F as Record<string, unknown>)[name]).toBe('function');
  }
});

describe('kernels read strided views in place', () => {
  // A [3, 5, 7] block whose view is permuted and sliced: every op must give what it gives on the dense copy.
  const base = rnd([4, 7, 6], 31, -3, 3);
  const view = (t: K.Tensor) => K.slice(K.permute(t, [2, 0, 1]), 0, 1, 6, 1); // [5, 4, 7], offset 1, non-contiguous
  const refView = (r: Ref): Ref => {
    const p = refPermute(r, [2, 0, 1]);
    const out = { data: new Float64Array(5 * 4 * 7), shape: [5, 4, 7] };
    out.data.set(p.data.subarray(4 * 7, 6 * 4 * 7));
    return out;
  };

  it('softmax / logSoftmax forward and backward over every dim of a permuted, offset view', async () => {
    for (const d of [0, 1, 2]) {
      await checkGradVsRef((x) => K.softmax(view(x), d), (x) => R.softmax(refView(x), d), [base], { label: `softmax dim ${d}` });
      await checkGradVsRef((x) => K.logSoftmax(view(x), d), (x) => R.logSoftmax(refView(x), d), [base], { label: `logSoftmax dim ${d}` });
    }
  });

  it('layerNorm over a view, with weight and bias that are views at an offset', async () => {
    const wb = rnd([2, 7], 5, 0.5, 1.5);
    const wOf = (t: K.Tensor) => K.select(t, 0, 1); // offset 7
    const refW = (r: Ref): Ref => ({ data: r.data.slice(7, 14), shape: [7] });
    const bRef = rnd([9], 6);
    const bOf = (t: K.Tensor) => K.slice(t, 0, 2, 9); // offset 2
    const refB = (r: Ref): Ref => ({ data: r.data.slice(2, 9), shape: [7] });
    await checkGradVsRef(
      (x, w, b) => K.layerNorm(view(x), [7], wOf(w), bOf(b)),
      (x, w, b) => R.layerNorm(refView(x), [7], refW(w), refB(b)),
      [base, wb, bRef],
      { label: 'layerNorm view' },
    );
    // Normalized dims that are not one strided run (a permuted [4, 7] block) still give the dense answer.
    const t = fromRef(base);
    const v = K.permute(t, [0, 2, 1]); // [4, 6, 7] -> normalize over [6, 7] permuted
    const y = K.layerNorm(v, [6, 7]);
    await expectTensorClose(y, R.layerNorm(refPermute(base, [0, 2, 1]), [6, 7]), 1e-5, 1e-5, 'layerNorm permuted block');
    for (const x of [t, v, y]) x.dispose();
  });
});
