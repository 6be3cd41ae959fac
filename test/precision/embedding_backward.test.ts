// embedding's backward without float atomics (flag embedding.backward, default 'sorted'): the indices are sorted
// (stable) and each gradient row sums its contributions in their original order, so repeats give the same bits. The
// gradient against float64 (repeated ids, strided and broadcast index views, an f16 table), against the atomic path
// (the same sums, possibly in another order: within f32 rounding), and bit-identical across repeats; no leaks.
import { afterAll, describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { setFlag } from '../../src/experimental';
import { expectNoLeak, expectTensorClose } from '../helpers';
import { rng } from '../reference/core';

afterAll(() => setFlag('embedding.backward', undefined));

/** The gradient of sum(embedding(ids, W) * G) with respect to W, for fixed random G: rows of G summed by id. */
function gradRef(ids: number[], G: Float64Array, V: number, C: number): Float64Array {
  const out = new Float64Array(V * C);
  ids.forEach((v, r) => { for (let c = 0; c < C; c++) out[v * C + c] += G[r * C + c]; });
  return out;
}

async function expectClose(got: Float32Array, want: ArrayLike<number>, V: number, C: number, label: string): Promise<void> {
  const t = K.tensor(got, { shape: [V, C] });
  await expectTensorClose(t, { data: Float64Array.from(want), shape: [V, C] }, 1e-4, 1e-5, label);
  t.dispose();
}

async function weightGrad(ids: K.Tensor, V: number, C: number, G: K.Tensor, dtype: 'f32' | 'f16' = 'f32'): Promise<Float32Array> {
  const w = K.randn([V, C], { seed: 3, dtype, requiresGrad: true });
  K.tidy(() => K.sum(K.mul(K.embedding(ids, w), G)).backward());
  const g = (await w.grad!.toArray()) as Float32Array;
  w.dispose();
  return g;
}

describe('embedding backward: deterministic (sorted) by default', () => {
  it('matches float64 with many repeats, strided ids, empty rows; the same bits on every run', async () => {
    await expectNoLeak(async () => {
      const V = 37, C = 19, R = 3000;
      const g = rng(4);
      // Mostly a few hot ids (many repeats, long sums), some never used (zero rows).
      const idsArr = Array.from({ length: R }, () => (g.uniform() < 0.7 ? Math.floor(g.uniform() * 3) : Math.floor(g.uniform() * (V - 5))));
      const ids = K.tensor(idsArr, { dtype: 'i32', shape: [60, 50] });
      const G = K.randn([60, 50, C], { seed: 5 });
      const Gv = Float64Array.from(await G.toArray());
      const first = await weightGrad(ids, V, C, G);
      const want = gradRef(idsArr, Gv, V, C);
      await expectClose(first, want, V, C, 'sorted');
      for (let rep = 0; rep < 3; rep++) expect(Array.from(await weightGrad(ids, V, C, G))).toEqual(Array.from(first));
      // A transposed (strided) index view: the ids are read in its row-major order.
      const idsT = ids.transpose(0, 1);
      const GT = K.randn([50, 60, C], { seed: 6 });
      const dense = idsT.contiguous();
      const tArr = Array.from(await dense.toArray());
      const got = await weightGrad(idsT, V, C, GT);
      await expectClose(got, gradRef(tArr, Float64Array.from(await GT.toArray()), V, C), V, C, 'strided ids');
      // The atomic path adds the same values (in whatever order): equal within f32 rounding.
      setFlag('embedding.backward', 'atomic');
      const atomic = await weightGrad(ids, V, C, G);
      setFlag('embedding.backward', undefined);
      await expectClose(atomic, first, V, C, 'atomic vs sorted');
      for (const t of [ids, G, GT, idsT, dense]) t.dispose();
    });
  });

  it('an f16 table gets an f16 gradient summed in f32; NaN in the incoming gradient stays in its row', async () => {
    const ids = K.tensor([2, 0, 2, 2], { dtype: 'i32' });
    const G = K.tensor([[1, 2], [3, 4], [NaN, 5], [0.5, 0.25]]);
    const w = K.zeros([4, 2], { dtype: 'f16', requiresGrad: true });
    K.tidy(() => K.sum(K.mul(K.embedding(ids, w), G)).backward());
    expect(w.grad!.dtype).toBe('f16');
    expect(Array.from(await w.grad!.toArray())).toEqual([3, 4, 0, 0, NaN, 7.25, 0, 0]);
    for (const t of [ids, G, w]) t.dispose();
  });
});
