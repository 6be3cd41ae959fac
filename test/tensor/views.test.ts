// View ops (reshape, transpose, permute, unsqueeze, squeeze, expand, slice, select, contiguous, flatten), toArray on
// non-contiguous views, and gradients through views.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import { type Ref, broadcastTo, numel, permute as refPermute, reshape as refReshape, transpose as refTranspose } from '../reference/core';
import { checkGradVsRef, expectTensorClose, fromRef, poison, rnd } from '../helpers';

/** x[start:end:step] along dim, in float64. */
function refSlice(x: Ref, dim: number, start: number, end: number, step: number): Ref {
  const d = dim < 0 ? dim + x.shape.length : dim;
  const idx: number[] = [];
  for (let i = start; i < end; i += step) idx.push(i);
  const outer = numel(x.shape.slice(0, d));
  const inner = numel(x.shape.slice(d + 1));
  const size = x.shape[d];
  const data: number[] = [];
  for (let o = 0; o < outer; o++) for (const i of idx) for (let k = 0; k < inner; k++) data.push(x.data[(o * size + i) * inner + k]);
  const shape = x.shape.slice();
  shape[d] = idx.length;
  return { data: Float64Array.from(data), shape };
}
const refSelect = (x: Ref, dim: number, i: number): Ref => {
  const d = dim < 0 ? dim + x.shape.length : dim;
  const s = refSlice(x, d, i, i + 1, 1);
  return { data: s.data, shape: s.shape.filter((_, k) => k !== d) };
};

describe('views forward (read back through toArray, and through contiguous())', () => {
  const x = rnd([3, 5, 7], 1);

  const views: [string, (t: K.Tensor) => K.Tensor, (r: Ref) => Ref][] = [
    ['reshape', (t) => K.reshape(t, [15, 7]), (r) => refReshape(r, [15, 7])],
    ['reshape -1', (t) => t.reshape([5, -1]), (r) => refReshape(r, [5, 21])],
    ['reshape of a transpose (copies)', (t) => K.reshape(K.transpose(t, 0, 2), [-1, 3]), (r) => refReshape(refTranspose(r, 0, 2), [35, 3])],
    ['reshape of a transpose, merging untouched dims', (t) => K.reshape(K.transpose(t, 0, 1), [5, 21]), (r) => refReshape(refTranspose(r, 0, 1), [5, 21])],
    ['view', (t) => t.view([105]), (r) => refReshape(r, [105])],
    ['transpose', (t) => K.transpose(t, 0, 2), (r) => refTranspose(r, 0, 2)],
    ['transpose default (last two)', (t) => t.transpose(), (r) => refTranspose(r, -2, -1)],
    ['permute', (t) => K.permute(t, [1, 2, 0]), (r) => refPermute(r, [1, 2, 0])],
    ['permute negative dims', (t) => t.permute([-1, 0, 1]), (r) => refPermute(r, [2, 0, 1])],
    ['unsqueeze 0', (t) => K.unsqueeze(t, 0), (r) => refReshape(r, [1, 3, 5, 7])],
    ['unsqueeze -1', (t) => t.unsqueeze(-1), (r) => refReshape(r, [3, 5, 7, 1])],
    ['unsqueeze middle of a transpose', (t) => K.unsqueeze(K.transpose(t, 0, 1), 1), (r) => refReshape(refTranspose(r, 0, 1), [5, 1, 3, 7])],
    ['squeeze all', (t) => K.squeeze(K.reshape(t, [3, 1, 5, 1, 7])), (r) => r],
    ['squeeze one dim', (t) => K.squeeze(K.reshape(t, [3, 1, 5, 1, 7]), 3), (r) => refReshape(r, [3, 1, 5, 7])],
    ['squeeze a non-1 dim is a no-op', (t) => t.squeeze(0), (r) => r],
    ['expand', (t) => K.expand(K.reshape(K.select(t, 1, 2), [3, 1, 7]), [2, 3, 4, 7]), (r) => broadcastTo(refReshape(refSelect(r, 1, 2), [3, 1, 7]), [2, 3, 4, 7])],
    ['expand with -1', (t) => K.expand(K.slice(t, 1, 0, 1), [-1, 6, -1]), (r) => broadcastTo(refSlice(r, 1, 0, 1, 1), [3, 6, 7])],
    ['slice', (t) => K.slice(t, 2, 1, 6), (r) => refSlice(r, 2, 1, 6, 1)],
    ['slice with step', (t) => t.slice(2, 1, 7, 3), (r) => refSlice(r, 2, 1, 7, 3)],
    ['slice negative bounds', (t) => K.slice(t, 1, -4, -1, 2), (r) => refSlice(r, 1, 1, 4, 2)],
    ['slice of a slice', (t) => K.slice(K.slice(t, 2, 1, 7, 2), 2, 1), (r) => refSlice(refSlice(r, 2, 1, 7, 2), 2, 1, 3, 1)],
    ['select', (t) => K.select(t, 1, 3), (r) => refSelect(r, 1, 3)],
    ['select negative index', (t) => t.select(-1, -2), (r) => refSelect(r, 2, 5)],
    ['flatten', (t) => K.flatten(t), (r) => refReshape(r, [105])],
    ['flatten range', (t) => t.flatten(1, 2), (r) => refReshape(r, [3, 35])],
    ['flatten of a permute', (t) => K.flatten(K.permute(t, [2, 0, 1]), 0, 1), (r) => refReshape(refPermute(r, [2, 0, 1]), [21, 5])],
    ['contiguous', (t) => K.contiguous(K.permute(t, [2, 1, 0])), (r) => refPermute(r, [2, 1, 0])],
    ['detach', (t) => K.detach(t), (r) => r],
  ];
  for (const [name, kf, rf] of views) {
    it(name, async () => {
      const xt = fromRef(x);
      const v = kf(xt);
      const want = rf(x);
      await expectTensorClose(v, want, 0, 0, 'view');
      poison([want.shape]);
      const c = K.contiguous(v);
      expect(c.isContiguous).toBe(true);
      await expectTensorClose(c, want, 0, 0, 'contiguous');
      // Views compose with ops: an elementwise op on the view reads it through its strides.
      const y = K.mul(v, 2);
      await expectTensorClose(y, R.mul(want, 2), 0, 0, 'op on view');
      for (const t of [xt, v, c, y]) t.dispose();
    });
  }

  it('views share storage (no copy) and stay valid after the base is disposed', async () => {
    const base = fromRef(x);
    const before = K.memory().buffers;
    const t = K.transpose(base, 0, 2);
    const s = K.slice(t, 0, 1, 7, 2);
    expect(K.memory().buffers).toBe(before);
    base.dispose();
    await expectTensorClose(s, refSlice(refTranspose(x, 0, 2), 0, 1, 7, 2), 0, 0);
    t.dispose();
    expect(K.memory().buffers).toBe(before);
    s.dispose();
    expect(K.memory().buffers).toBe(before - 1);
  });

  it('toArray of 0-d, size-1 and bool/i32 views; item', async () => {
    const s = K.tensor(3.5);
    expect(s.shape).toEqual([]);
    expect(await s.item()).toBe(3.5);
    const xt = fromRef(x);
    expect(await K.select(K.select(K.select(xt, 0, 2), 0, 4), 0, 6).item()).toBe(Math.fround(x.data[2 * 35 + 4 * 7 + 6]));
    expect(await K.sum(xt).item()).toBeCloseTo(R.sum(x).data[0], 4);
    const b = K.transpose(K.tensor([[true, false, false], [true, true, false]]), 0, 1);
    expect(Array.from(await b.toArray())).toEqual([1, 1, 0, 1, 0, 0]);
    const i = K.slice(K.tensor(Int32Array.from([1, 2, 3, 4, 5, 6, 7]), { shape: [7] }), 0, 1, 7, 2);
    expect(Array.from(await i.toArray())).toEqual([2, 4, 6]);
    expect(await K.tensor([[[42]]]).item()).toBe(42);
    expect(await K.tensor([[1, 2], [3, 4]]).toNested()).toEqual([[1, 2], [3, 4]]);
  });
});

describe('to() and clone()', () => {
  it('convert dtypes and keep the tape for same-dtype to() and clone()', async () => {
    const x = K.tensor([1.7, -1.7, 0, 2], { requiresGrad: true });
    expect(Array.from(await x.to('i32').toArray())).toEqual([1, -1, 0, 2]);
    expect(Array.from(await x.to('bool').toArray())).toEqual([1, 1, 0, 1]);
    expect(Array.from(await K.tensor([3, -4], { dtype: 'i32' }).to('f32').toArray())).toEqual([3, -4]);
    const same = x.to('f32');
    expect(same.requiresGrad).toBe(true);
    K.tidy(() => K.sum(K.add(K.mul(same, 2), K.mul(x.clone(), 3))).backward());
    expect(Array.from(await x.grad!.toArray())).toEqual([5, 5, 5, 5]);
    same.dispose();
    x.dispose();
  });
});

describe('gradients through views', () => {
  const x = rnd([2, 3, 4], 2);
  const cases: [string, (t: K.Tensor) => K.Tensor, (r: Ref) => Ref][] = [
    ['reshape', (t) => K.reshape(t, [4, -1]), (r) => refReshape(r, [4, 6])],
    ['transpose then reshape (copy path)', (t) => K.reshape(K.transpose(t, 0, 2), [-1]), (r) => refReshape(refTranspose(r, 0, 2), [24])],
    ['permute', (t) => K.permute(t, [2, 0, 1]), (r) => refPermute(r, [2, 0, 1])],
    ['unsqueeze + expand (sums over the expanded dim)', (t) => K.expand(K.unsqueeze(t, 1), [2, 5, 3, 4]), (r) => broadcastTo(refReshape(r, [2, 1, 3, 4]), [2, 5, 3, 4])],
    ['squeeze', (t) => K.squeeze(K.slice(t, 1, 1, 2)), (r) => refSelect(r, 1, 1)],
    ['slice with step', (t) => K.slice(t, 2, 0, 4, 3), (r) => refSlice(r, 2, 0, 4, 3)],
    ['select', (t) => K.select(t, 0, 1), (r) => refSelect(r, 0, 1)],
    ['flatten', (t) => K.flatten(t, 0, 1), (r) => refReshape(r, [6, 4])],
    ['contiguous of a transpose', (t) => K.contiguous(K.transpose(t, 1, 2)), (r) => refTranspose(r, 1, 2)],
    ['two overlapping slices', (t) => K.add(K.slice(t, 2, 0, 3), K.slice(t, 2, 1, 4)), (r) => R.add(refSlice(r, 2, 0, 3, 1), refSlice(r, 2, 1, 4, 1))],
  ];
  for (const [name, kf, rf] of cases) {
    it(name, async () => {
      await checkGradVsRef((t) => K.mul(kf(t), kf(t)), (r) => R.mul(rf(r), rf(r)), [x], { label: name });
    });
  }
});
