// gather, indexSelect, scatterAdd and cumsum: float64 references, strided inputs and indices, odd shapes, gradients,
// deterministic scatter, device-side index checks (IndexError at the next sync), NaN/inf through cumsum.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import * as X from '../reference/indexing';
import { type Ref, allClose, ref, rng } from '../reference/core';
import { checkGradVsRef, expectThrows, fromRef, poison, rnd } from '../helpers';

async function close(t: K.Tensor, want: Ref, tol: number, label: string): Promise<void> {
  expect(t.shape, `${label} shape`).toEqual(want.shape);
  const r = allClose(Array.from(await t.toArray()), want.data, { atol: tol, rtol: tol, equalNan: true });
  expect(r.ok, `${label} ${r.message}`).toBe(true);
}

function randIndex(shape: number[], limit: number, seed: number): Ref {
  const g = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return ref(Array.from({ length: n }, () => Math.floor(g.uniform() * limit)), shape);
}

const cases: { x: number[]; dim: number; index: number[] }[] = [
  { x: [1], dim: 0, index: [1] },
  { x: [7], dim: 0, index: [13] },
  { x: [3, 5], dim: 1, index: [3, 8] },
  { x: [3, 5], dim: 0, index: [2, 4] },
  { x: [2, 13, 3], dim: 1, index: [2, 5, 3] },
  { x: [4, 3, 67], dim: -1, index: [3, 2, 100] },
];

describe('gather and indexSelect', () => {
  it('gather against float64 along each case, f32 and i32', async () => {
    for (const [ci, c] of cases.entries()) {
      const d = c.dim < 0 ? c.dim + c.x.length : c.dim;
      const x = rnd(c.x, 10 + ci);
      const idx = randIndex(c.index, c.x[d], 20 + ci);
      const xt = fromRef(x), it_ = fromRef(idx, { dtype: 'i32' });
      poison([c.index]);
      await close(K.gather(xt, c.dim, it_), X.gather(x, c.dim, idx), 0, `gather ${JSON.stringify(c)}`);
      const xi = R.map(x, (v) => Math.round(v * 1000));
      await close(fromRef(xi, { dtype: 'i32' }).gather(c.dim, it_), X.gather(xi, c.dim, idx), 0, `gather i32 ${JSON.stringify(c)}`);
      xt.dispose();
      it_.dispose();
    }
  });

  it('gather reads transposed inputs and indices in place; gradients with repeated indices', async () => {
    const x = rnd([5, 4], 30);
    const xT = ref(Array.from({ length: 20 }, (_, i) => x.data[(i % 5) * 4 + Math.floor(i / 5)]), [4, 5]);
    const idx = randIndex([3, 4], 4, 31);
    const idxT = ref(Array.from({ length: 12 }, (_, i) => idx.data[(i % 3) * 4 + Math.floor(i / 3)]), [4, 3]);
    const out = K.gather(fromRef(x).transpose(0, 1), 1, fromRef(idx, { dtype: 'i32' }).transpose(0, 1));
    await close(out, X.gather(xT, 1, idxT), 0, 'strided gather');
    for (const [ci, c] of cases.entries()) {
      const d = c.dim < 0 ? c.dim + c.x.length : c.dim;
      const idx2 = randIndex(c.index, c.x[d], 40 + ci);
      const it_ = fromRef(idx2, { dtype: 'i32' });
      await checkGradVsRef((a) => K.gather(a, c.dim, it_), (a) => X.gather(a, c.dim, idx2), [rnd(c.x, 50 + ci)], { label: `gather grad ${JSON.stringify(c)}` });
      it_.dispose();
    }
  });

  it('indexSelect along each dim, repeated and strided indices, gradients', async () => {
    const x = rnd([4, 7, 3], 60);
    const xt = fromRef(x);
    for (let d = 0; d < 3; d++) {
      for (const n of [1, 5, 11]) {
        const idx = Array.from(randIndex([n], x.shape[d], 61 + d * 10 + n).data);
        const it_ = K.tensor(idx, { dtype: 'i32' });
        await close(xt.indexSelect(d, it_), X.indexSelect(x, d, idx), 0, `indexSelect d ${d} n ${n}`);
        await checkGradVsRef((a) => K.indexSelect(a, d, it_), (a) => X.indexSelect(a, d, idx), [x], { label: `indexSelect grad ${d} ${n}` });
        it_.dispose();
      }
    }
    const strided = K.tensor([2, 9, 0, 9, 1, 9], { dtype: 'i32' }).slice(0, 0, 6, 2);
    await close(K.indexSelect(xt, 1, strided), X.indexSelect(x, 1, [2, 0, 1]), 0, 'strided index');
    const scalarIdx = K.tensor(3, { dtype: 'i32' });
    await close(K.indexSelect(xt, 0, scalarIdx), X.indexSelect(x, 0, [3]), 0, '0-d index');
    xt.dispose();
  });

  it('out-of-range indices raise IndexError at the next sync, naming the op, position and value; nothing is read', async () => {
    const x = K.tensor([[1, 2, 3], [4, 5, 6]]);
    const bad = K.tensor([[0, 3, 1], [1, 0, -1]], { dtype: 'i32' });
    const y = K.gather(x, 1, bad);
    await expect(y.toArray()).rejects.toThrow(K.IndexError);
    const z = K.gather(x, 1, bad);
    await expect(z.toArray()).rejects.toThrow(/gather: index 3 at position \[0, 1\] is out of range for 3/);
    const sel = K.indexSelect(x, 0, K.tensor([1, 2], { dtype: 'i32' }));
    await expect(sel.toArray()).rejects.toThrow(/indexSelect: index 2 at position \[1\] is out of range for 2/);
    const sa = K.scatterAdd(K.zeros([2, 3]), 1, bad, K.ones([2, 3]));
    await expect(sa.toArray()).rejects.toThrow(/scatterAdd: index (3|-1) at position \[(0, 1|1, 2)\] is out of range for 3/);
    // The device is fine afterwards.
    expect(Array.from(await K.gather(x, 1, K.tensor([[2], [0]], { dtype: 'i32' })).toArray())).toEqual([3, 4]);
  });

  it('bad arguments fail before any work', () => {
    const x = K.tensor([[1, 2], [3, 4]]);
    const i32 = K.tensor([[0, 1]], { dtype: 'i32' });
    const f = K.tensor([[0, 1]]);
    const big = K.tensor([[0, 1, 0], [1, 1, 1], [0, 0, 0]], { dtype: 'i32' });
    const flat = K.tensor([0, 1], { dtype: 'i32' });
    expectThrows(() => K.gather(x, 1, f), K.DTypeError, 'index must be i32', 'f32');
    expectThrows(() => K.gather(x, 1, flat), K.ShapeError, 'same number of dims');
    expectThrows(() => K.gather(x, 1, big), K.ShapeError, 'dim 0', '3 > 2');
    expectThrows(() => K.gather(x, 2, i32), K.ShapeError, 'gather');
    expectThrows(() => K.indexSelect(x, 0, i32), K.ShapeError, '1-D', '[1,2]');
    const srcI = K.tensor([[1, 2]], { dtype: 'i32' });
    expectThrows(() => K.scatterAdd(x, 0, i32, srcI), K.DTypeError, 'src dtype i32');
    srcI.dispose();
    expectThrows(() => K.scatterAdd(x, 0, big, x), K.ShapeError, 'larger than src');
    for (const t of [x, i32, f, big, flat]) t.dispose();
  });
});

describe('scatterAdd', () => {
  it('against float64 with many repeated indices, src larger than index, i32', async () => {
    const specs = [
      { x: [5], src: [9], index: [9], dim: 0 },
      { x: [3, 5], src: [4, 5], index: [4, 5], dim: 0 },
      { x: [3, 5], src: [3, 7], index: [2, 6], dim: 1 },
      { x: [2, 13, 3], src: [2, 30, 3], index: [2, 29, 3], dim: 1 },
    ];
    for (const [si, s] of specs.entries()) {
      const x = rnd(s.x, 70 + si), src = rnd(s.src, 80 + si);
      const idx = randIndex(s.index, s.x[s.dim], 90 + si);
      const it_ = fromRef(idx, { dtype: 'i32' });
      poison([s.x]);
      await close(K.scatterAdd(fromRef(x), s.dim, it_, fromRef(src)), X.scatterAdd(x, s.dim, idx, src), 1e-5, `scatterAdd ${JSON.stringify(s)}`);
      const xi = R.map(x, (v) => Math.round(v * 100)), srci = R.map(src, (v) => Math.round(v * 100));
      await close(fromRef(xi, { dtype: 'i32' }).scatterAdd(s.dim, it_, fromRef(srci, { dtype: 'i32' })), X.scatterAdd(xi, s.dim, idx, srci), 0, `i32 ${JSON.stringify(s)}`);
      await checkGradVsRef((a, b) => K.scatterAdd(a, s.dim, it_, b), (a, b) => X.scatterAdd(a, s.dim, idx, b), [x, src], { label: `grad ${JSON.stringify(s)}` });
      it_.dispose();
    }
  });

  it('is deterministic: the same sums bit for bit, run after run', async () => {
    const src = K.randn([1, 4000], { seed: 3 });
    const idx = K.tensor(Array.from({ length: 4000 }, (_, i) => (i * 7) % 3), { dtype: 'i32', shape: [1, 4000] });
    const first = Array.from(await K.scatterAdd(K.zeros([1, 3]), 1, idx, src).toArray());
    for (let r = 0; r < 3; r++) expect(Array.from(await K.scatterAdd(K.zeros([1, 3]), 1, idx, src).toArray())).toEqual(first);
    // The gradient of gather (a scatter of repeated indices) is deterministic too.
    const x = K.randn([3], { seed: 4, requiresGrad: true });
    const grads: number[][] = [];
    for (let r = 0; r < 3; r++) {
      x.grad = null;
      K.gather(x, 0, idx.reshape([4000])).mul(K.randn([4000], { seed: 5 })).sum().backward();
      grads.push(Array.from(await x.grad!.toArray()));
    }
    expect(grads[1]).toEqual(grads[0]);
    expect(grads[2]).toEqual(grads[0]);
  });
});

describe('cumsum', () => {
  it('along every dim, short and long rows, strided, NaN and inf propagate, i32 and bool', async () => {
    for (const [si, shape] of [[1], [7], [3, 5], [2, 13, 3], [2, 1000], [5000, 3]].entries()) {
      const x = rnd(shape, 100 + si);
      const xt = fromRef(x);
      for (let d = -1; d < shape.length; d++) {
        poison([shape]);
        await close(K.cumsum(xt, d), X.cumsum(x, d), 2e-5 * Math.sqrt(shape[d < 0 ? shape.length - 1 : d]), `cumsum ${shape} ${d}`);
      }
      xt.dispose();
    }
    const special = ref([1, NaN, 2, 3, Infinity, -Infinity, 1, 2, 3], [3, 3]);
    await close(fromRef(special).cumsum(1), X.cumsum(special, 1), 0, 'special');
    expect(Array.from(await K.cumsum(K.tensor([[1, 0, -3]], { dtype: 'i32' }), 1).toArray())).toEqual([1, 1, -2]);
    const b = K.cumsum(K.tensor([true, false, true, true]), 0);
    expect(b.dtype).toBe('i32');
    expect(Array.from(await b.toArray())).toEqual([1, 1, 2, 3]);
    const x = rnd([6, 4], 120);
    const xT = ref(Array.from({ length: 24 }, (_, i) => x.data[(i % 6) * 4 + Math.floor(i / 6)]), [4, 6]);
    await close(fromRef(x).transpose(0, 1).cumsum(1), X.cumsum(xT, 1), 1e-6, 'transposed');
  });

  it('gradients (a reversed cumsum), short and long rows', async () => {
    await checkGradVsRef((a) => K.cumsum(a, 1), (a) => X.cumsum(a, 1), [rnd([3, 7], 130)]);
    await checkGradVsRef((a) => K.cumsum(a, 0), (a) => X.cumsum(a, 0), [rnd([5, 2, 3], 131)]);
    await checkGradVsRef((a) => K.cumsum(a, -1), (a) => X.cumsum(a, -1), [rnd([1, 300], 132)], { atol: 5e-3, rtol: 5e-3 });
  });

  it('bad input and live memory', async () => {
    const x = K.tensor([1, 2]);
    expectThrows(() => K.cumsum(x, 1), K.ShapeError, 'cumsum');
    const before = K.memory().buffers;
    K.tidy(() => {
      const a = K.randn([4, 9], { seed: 1, requiresGrad: true });
      const i = K.tensor([[0, 3], [8, 8], [1, 2], [5, 5]], { dtype: 'i32' });
      K.gather(a, 1, i).sum().add(K.cumsum(a, 0).sum()).add(K.indexSelect(a, 1, K.tensor([3, 3], { dtype: 'i32' })).sum())
        .add(K.scatterAdd(a, 1, i, K.ones([4, 2])).sum()).backward();
      a.dispose();
    });
    expect(K.memory().buffers).toBe(before);
    x.dispose();
  });
});
