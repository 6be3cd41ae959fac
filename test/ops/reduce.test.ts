// Reductions: sum/mean/max/min over every dim set with keepdim, argmax/argmin, on strided inputs, and their gradients.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import type { Ref } from '../reference/core';
import { permute as refPermute } from '../reference/core';
import { checkGradVsRef, expectTensorClose, fromRef, poison, rnd } from '../helpers';

type Dims = number | number[] | undefined;
const dimSets: Dims[] = [undefined, 0, 1, 2, -1, [0, 2], [1, 2], [0, 1, 2]];
const shapes = [[1, 1, 1], [3, 7, 13], [2, 130, 5], [5, 1, 67]];

const reductions: [string, (x: K.Tensor, d: Dims, k: boolean) => K.Tensor, (x: Ref, d: Dims, k: boolean) => Ref, number][] = [
  ['sum', (x, d, k) => K.sum(x, d, k), (x, d, k) => R.sum(x, d, k), 1e-5],
  ['mean', (x, d, k) => K.mean(x, d, k), (x, d, k) => R.mean(x, d, k), 1e-6],
  ['amax', (x, d, k) => K.amax(x, d, k), (x, d, k) => R.max(x, d, k), 0],
  ['amin', (x, d, k) => K.amin(x, d, k), (x, d, k) => R.min(x, d, k), 0],
];

describe('reductions forward', () => {
  for (const [name, kf, rf, tol] of reductions) {
    it(`${name} over dims with and without keepdim`, async () => {
      for (const [si, shape] of shapes.entries()) {
        const x = rnd(shape, 10 + si, -2, 2);
        const xt = fromRef(x);
        for (const dims of dimSets) {
          for (const keep of [false, true]) {
            poison([shape]);
            const y = kf(xt, dims, keep);
            await expectTensorClose(y, rf(x, dims, keep), tol, tol, `${name} ${JSON.stringify(shape)} dims ${JSON.stringify(dims)} keepdim ${keep}`);
            y.dispose();
          }
        }
        xt.dispose();
      }
    });
  }

  it('reduce a non-contiguous (permuted) input', async () => {
    const x = rnd([4, 6, 9], 3);
    const xt = fromRef(x);
    const p = K.permute(xt, [2, 0, 1]);
    const px = refPermute(x, [2, 0, 1]);
    for (const dims of [0, 1, 2, [0, 2]] as Dims[]) {
      await expectTensorClose(K.sum(p, dims), R.sum(px, dims), 1e-5, 1e-5, `sum ${JSON.stringify(dims)}`);
      await expectTensorClose(K.amax(p, dims, true), R.max(px, dims, true), 0, 0, `amax ${JSON.stringify(dims)}`);
    }
  });

  it('methods and i32 / bool sums', async () => {
    const x = fromRef(rnd([3, 5], 4));
    expect(Array.from(await x.sum(1).toArray())).toEqual(Array.from(await K.sum(x, 1).toArray()));
    expect(Array.from(await x.mean().toArray())).toEqual(Array.from(await K.mean(x).toArray()));
    const xi = K.tensor([[1, -2, 3], [40, 5, -6]], { dtype: 'i32' });
    const si = K.sum(xi, 1);
    expect(si.dtype).toBe('i32');
    expect(Array.from(await si.toArray())).toEqual([2, 39]);
    expect(Array.from(await K.max(xi, 0).values.toArray())).toEqual([40, 5, 3]);
    expect(Array.from(await xi.max(0).indices.toArray())).toEqual([1, 1, 0]);
    const b = K.tensor([[true, false, true], [true, true, true]]);
    expect(Array.from(await K.sum(b).toArray())).toEqual([5]);
    expect(await K.sum(xi).item()).toBe(41);
  });

  it('argmax / argmin along each dim, flattened, with ties going to the first index', async () => {
    for (const [si, shape] of [[1], [7], [3, 13], [2, 5, 67], [4, 130]].entries()) {
      // Coarse values so that ties occur.
      const x = R.map(rnd(shape, 30 + si, -2, 2), (v) => Math.round(v * 3));
      const xt = fromRef(x);
      const neg = R.neg(x);
      for (const dim of [undefined, ...shape.map((_, d) => d), -1]) {
        for (const keep of [false, true]) {
          poison([shape]);
          const a = K.argmax(xt, dim, keep);
          expect(a.dtype).toBe('i32');
          await expectTensorClose(a, R.argmax(x, dim, keep), 0, 0, `argmax ${JSON.stringify(shape)} dim ${dim} keep ${keep}`);
          const b = K.argmin(xt, dim, keep);
          await expectTensorClose(b, R.argmax(neg, dim, keep), 0, 0, `argmin ${JSON.stringify(shape)} dim ${dim} keep ${keep}`);
          a.dispose();
          b.dispose();
        }
      }
      xt.dispose();
    }
  });
});

describe('i32 reductions are exact', () => {
  it('max / min / argmax / argmin tell apart integers above 2^24 (short and long rows)', async () => {
    for (const R_ of [5, 130]) {
      const vals = Array.from({ length: R_ }, (_, i) => 16777216 + ((i * 7919) % R_) - (i % 3 === 0 ? 2 * 16777216 : 0));
      const x = K.tensor(Int32Array.from([...vals, ...vals.map((v) => -v)]), { shape: [2, R_] });
      poison([[2]]);
      const mx = K.max(x, 1).values;
      expect(mx.dtype).toBe('i32');
      const rows = [vals, vals.map((v) => -v)];
      expect(Array.from(await mx.toArray())).toEqual(rows.map((r) => Math.max(...r)));
      expect(Array.from(await K.min(x, 1).values.toArray())).toEqual(rows.map((r) => Math.min(...r)));
      expect(Array.from(await K.argmax(x, 1).toArray())).toEqual(rows.map((r) => r.indexOf(Math.max(...r))));
      expect(Array.from(await K.argmin(x, 1).toArray())).toEqual(rows.map((r) => r.indexOf(Math.min(...r))));
      expect(Array.from(await K.sum(x, 1).toArray())).toEqual(rows.map((r) => r.reduce((a, b) => a + b, 0)));
    }
    const pair = K.tensor(Int32Array.from([16777216, 16777217]));
    expect(await K.max(pair).item()).toBe(16777217);
    expect(await K.argmax(pair).item()).toBe(1);
    expect(await K.argmin(pair).item()).toBe(0);
  });
});

describe('reduction gradients', () => {
  for (const [name, kf, rf] of reductions) {
    it(name, async () => {
      const x = rnd([3, 4, 5], 77);
      for (const dims of [undefined, 1, [0, 2]] as Dims[]) {
        for (const keep of [false, true]) {
          await checkGradVsRef((t) => kf(t, dims, keep), (t) => rf(t, dims, keep), [x], { label: `${name} ${JSON.stringify(dims)} ${keep}` });
        }
      }
    });
  }

  it('amax splits the gradient evenly among ties; max(dim) sends it to the index it returns', async () => {
    const x = K.tensor([[1, 3, 3], [2, 0, -1]], { requiresGrad: true });
    K.amax(x, 1).sum().backward();
    expect(Array.from(await x.grad!.toArray())).toEqual([0, 0.5, 0.5, 1, 0, 0]);
    x.grad = null;
    K.max(x, 1).values.sum().backward();
    expect(Array.from(await x.grad!.toArray())).toEqual([0, 1, 0, 1, 0, 0]);
    x.dispose();
  });

  it('through a permuted view', async () => {
    await checkGradVsRef((t) => K.sum(K.permute(t, [1, 0, 2]), [0], true), (t) => R.sum(refPermute(t, [1, 0, 2]), [0], true), [rnd([2, 3, 5], 5)]);
  });
});

describe('max / min along a dim: { values, indices } as PyTorch', () => {
  it('values and indices for every dim, ties to the first index, NaN wins, keepdim, gradients to the index', async () => {
    for (const [si, shape] of [[1], [7], [3, 13], [2, 5, 67], [4, 130]].entries()) {
      const x = R.map(rnd(shape, 300 + si, -2, 2), (v) => (v > 1.9 ? NaN : Math.round(v * 3)));
      const xt = fromRef(x);
      for (let dim = -1; dim < shape.length; dim++) {
        for (const keep of [false, true]) {
          const d = dim < 0 ? dim + shape.length : dim;
          const mx = K.max(xt, dim, keep);
          const mn = xt.min(dim, keep);
          expect(mx.indices.dtype).toBe('i32');
          const wantIdx = R.argmax(x, d, keep);
          await expectTensorClose(mx.indices, wantIdx, 0, 0, `max indices ${shape} ${dim} ${keep}`);
          const got = Array.from(await mx.values.toArray());
          const want = R.max(x, d, keep);
          expect(mx.values.shape).toEqual(want.shape);
          got.forEach((v, i) => expect(Object.is(v, want.data[i]) || v === want.data[i], `max values ${shape} ${dim}`).toBe(true));
          const wantMin = R.min(x, d, keep);
          Array.from(await mn.values.toArray()).forEach((v, i) => expect(Object.is(v, wantMin.data[i]) || v === wantMin.data[i]).toBe(true));
        }
      }
      xt.dispose();
    }
    const s = K.max(K.tensor(4), 0);
    expect(s.values.shape).toEqual([]);
    expect(await s.indices.item()).toBe(0);
  });

  it('gradient flows to the returned index alone', async () => {
    const x = rnd([3, 5, 4], 320);
    const pick = (a: Ref, d: number) => {
      const idx = R.argmax(a, d, true);
      const out = R.max(a, d);
      void idx;
      return out;
    };
    await checkGradVsRef((t) => K.max(t, 1).values, (t) => pick(t, 1), [x]);
    await checkGradVsRef((t) => K.min(t, -1, true).values, (t) => R.min(t, -1, true), [x]);
  });

  it('a list of dims is amax / amin', () => {
    const x = K.tensor([[1, 2]]);
    expect(() => K.max(x, [0, 1] as never)).toThrow(/amax/);
    x.dispose();
  });
});
