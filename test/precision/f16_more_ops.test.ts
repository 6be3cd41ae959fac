// f16 through the ops beyond the first set: gather, indexSelect, scatterAdd, cumsum, sort, argsort, topk, multinomial,
// einsum, flip, triu / tril, maskedFill, repeat and the f16 KV cache. Indexing, sorting and masking copy f16 values
// exactly (compared bit for bit with the float64 reference on the same f16 inputs); sums (scatterAdd, cumsum, einsum's
// contractions) run in f32 and round once, so each result is within one f16 rounding of the float64 answer plus the
// f32 sums' own error (helpers.ts); gradients reach f16 inputs as f16 and agree with the f32 gradients of the same
// values; NaN and infinities propagate as in f32; nothing leaks.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as Ix from '../reference/indexing';
import * as So from '../reference/sorting';
import * as M from '../reference/more_ops';
import { einsum as refEinsum } from '../reference/einsum';
import { rmsNorm } from '../reference/nn';
import { type Ref, transpose } from '../reference/core';
import { nearestHalf } from '../reference/half';
import { expectNoLeak, poisonF16 } from '../helpers';
import { expectHalfClose, halfOf, rndHalf } from './helpers';

/** The gradients of sum(f(x...) * w) (w fixed, random) for f16 inputs and for the same values in f32. */
async function gradsAgree(f: (...xs: K.Tensor[]) => K.Tensor, inputs: Ref[], tol = 4e-3): Promise<void> {
  await expectNoLeak(async () => {
    const hs = inputs.map((r) => halfOf(r, true));
    const fs = inputs.map((r) => K.tensor(Float32Array.from(r.data), { shape: r.shape, requiresGrad: true }));
    const yh = K.tidy(() => {
      const y = f(...hs);
      return K.sum(K.mul(y, K.randn(y.shape, { seed: 77 }).to('f16')));
    });
    const yf = K.tidy(() => {
      const y = f(...fs);
      return K.sum(K.mul(y, K.randn(y.shape, { seed: 77 }).to('f16').float()));
    });
    yh.backward();
    yf.backward();
    for (let i = 0; i < inputs.length; i++) {
      expect(hs[i].grad!.dtype, `input ${i} grad dtype`).toBe('f16');
      const gh = await hs[i].grad!.toArray(), gf = await fs[i].grad!.toArray();
      for (let k = 0; k < gh.length; k++) expect(Math.abs(gh[k] - gf[k]), `input ${i} [${k}]: ${gh[k]} vs ${gf[k]}`).toBeLessThanOrEqual(tol * (Math.abs(gf[k]) + 1));
    }
    for (const t of [yh, yf, ...hs, ...fs]) t.dispose();
  });
}

/** Bit-for-bit equality with a reference on f16 values (NaN equal to NaN, -0 distinct from +0 is not asked). */
async function expectExact(t: K.Tensor, want: Ref, dtype = 'f16'): Promise<void> {
  expect(t.dtype).toBe(dtype);
  expect(t.shape).toEqual(want.shape);
  expect(Array.from(await t.toArray())).toEqual(Array.from(want.data));
}

function indexRef(shape: number[], L: number, seed: number): Ref {
  const r = rndHalf(shape, seed, 0, L);
  return { data: r.data.map((v) => Math.min(L - 1, Math.floor(v))), shape };
}
const i32Of = (r: Ref) => K.tensor(Int32Array.from(r.data), { shape: r.shape, dtype: 'i32' });

describe('f16 gather, indexSelect, scatterAdd', () => {
  it('gather and indexSelect copy f16 values exactly (odd shapes, strided input); gradients sum in f32', async () => {
    const x = rndHalf([5, 7, 3], 1, -100, 100);
    x.data[4] = NaN;
    x.data[9] = Infinity;
    const idx = indexRef([5, 4, 3], 7, 2);
    const xt = halfOf(x), it = i32Of(idx);
    poisonF16([[5, 4, 3]], 2);
    await expectExact(K.gather(xt, 1, it), Ix.gather(x, 1, idx));
    await expectExact(K.indexSelect(xt, 2, K.tensor([2, 0, 2, 1], { dtype: 'i32' })), Ix.indexSelect(x, 2, [2, 0, 2, 1]));
    const xtT = xt.transpose(0, 2);
    await expectExact(K.indexSelect(xtT, 0, K.tensor([1], { dtype: 'i32' })), Ix.indexSelect(transpose(x, 0, 2), 0, [1]));
    // repeated indices: the backward adds every contribution, in f32
    const g = rndHalf([4, 6], 3, -2, 2);
    const gi = K.tensor([[0, 1, 0, 3, 3, 3], [2, 2, 2, 2, 2, 2], [0, 0, 0, 0, 1, 1], [3, 2, 1, 0, 0, 0]], { dtype: 'i32' });
    await gradsAgree((t) => K.gather(t, 0, gi), [g]);
    await gradsAgree((t) => K.indexSelect(t, 1, K.tensor([5, 0, 5, 5, 2], { dtype: 'i32' })), [g]);
  });

  it('scatterAdd sums in f32 and rounds once; both gradients', async () => {
    const x = rndHalf([4, 9], 4, -1, 1), src = rndHalf([6, 9], 5, -1, 1);
    const idx = indexRef([6, 9], 4, 6);
    poisonF16([[4, 9]], 2);
    await expectHalfClose(K.scatterAdd(halfOf(x), 0, i32Of(idx), halfOf(src)), Ix.scatterAdd(x, 0, idx, src), 1e-7, 1e-6, 'scatterAdd');
    // many small contributions into one place: f16 accumulation would stall at 2048 + 1 = 2048; f32 does not
    const n = 3000;
    const ones = K.ones([n], { dtype: 'f16' });
    const s = K.scatterAdd(K.zeros([1], { dtype: 'f16' }), 0, K.zeros([n], { dtype: 'i32' }), ones);
    expect(await s.item()).toBe(3000);
    await gradsAgree((a, b) => K.scatterAdd(a, 0, i32Of(idx), b), [x, src]);
  });
});

describe('f16 cumsum', () => {
  it('running sums in f32, each rounded once, along any dim; NaN and inf propagate', async () => {
    for (const [shape, dim] of [[[3, 130], 1], [[17, 5], 0], [[2, 3, 4], -1]] as [number[], number][]) {
      const x = rndHalf(shape, 7, -1, 1);
      await expectHalfClose(K.cumsum(halfOf(x), dim), Ix.cumsum(x, dim < 0 ? shape.length + dim : dim), 1e-6, 1e-5, `cumsum ${shape}`);
    }
    // 4096 ones: an f16 running sum would stop at 2048
    const c = K.cumsum(K.ones([4096], { dtype: 'f16' }), 0);
    const got = await c.toArray();
    expect(got[4095]).toBe(4096);
    expect([2048, 2050]).toContain(got[2048]); // 2049 is not an f16: rounded once, to a neighbour (WGSL picks either)
    const special = K.cumsum(K.tensor([1, NaN, 2, 3, Infinity, -Infinity, 1], { dtype: 'f16' }).reshape([1, 7]), 1);
    expect(Array.from(await special.toArray())).toEqual([1, NaN, NaN, NaN, NaN, NaN, NaN]);
    const inf = K.cumsum(K.tensor([1, Infinity, 2, 60000, 60000], { dtype: 'f16' }), 0);
    expect(Array.from(await inf.toArray())).toEqual([1, Infinity, Infinity, Infinity, Infinity]);
    const over = K.cumsum(K.tensor([60000, 6000, -60000], { dtype: 'f16' }), 0);
    // 66000 overflows f16 once rounded, but the f32 running sum carries on exactly
    expect(Array.from(await over.toArray())).toEqual([60000, Infinity, 6000]);
    await gradsAgree((t) => K.cumsum(t, 1), [rndHalf([3, 11], 8)]);
  });
});

describe('f16 sort, argsort, topk, multinomial', () => {
  it('sort and topk give the f16 values exactly and the same indices as f32 (stable, NaN largest); argsort', async () => {
    const x = rndHalf([6, 37], 9, -3, 3);
    x.data[5] = NaN;
    x.data[40] = -Infinity;
    x.data[41] = x.data[42]; // a tie
    const xt = halfOf(x);
    for (const descending of [false, true]) {
      const want = So.sortAlong(x, 1, descending);
      const r = K.sort(xt, 1, { descending });
      await expectExact(r.values, want.values);
      await expectExact(r.indices, want.indices, 'i32');
      await expectExact(K.argsort(xt, 1, { descending }), want.indices, 'i32');
    }
    const top = So.sortAlong(x, 0, true, 3);
    const t = K.topk(xt, 3, 0);
    await expectExact(t.values, top.values);
    await expectExact(t.indices, top.indices, 'i32');
    await gradsAgree((a) => K.sort(a, 1).values, [rndHalf([4, 9], 10)]);
    await gradsAgree((a) => K.topk(a, 2, 1, { largest: false }).values, [rndHalf([4, 9], 11)]);
  });

  it('multinomial of f16 weights draws what the f32 weights of the same values draw (same seed)', async () => {
    const w = rndHalf([3, 50], 12, 0, 1);
    const a = K.multinomial(halfOf(w), 20, { replacement: true, seed: 5 });
    const b = K.multinomial(K.tensor(Float32Array.from(w.data), { shape: [3, 50] }), 20, { replacement: true, seed: 5 });
    expect(a.dtype).toBe('i32');
    expect(Array.from(await a.toArray())).toEqual(Array.from(await b.toArray()));
    const c = K.multinomial(halfOf(rndHalf([50], 13, 0, 1)), 10, { seed: 6 });
    expect(new Set(Array.from(await c.toArray())).size).toBe(10);
  });
});

describe('f16 einsum, flip, triu / tril, maskedFill, repeat', () => {
  it('einsum computes in f32 and rounds once (a three-operand chain too); gradients', async () => {
    const a = rndHalf([3, 5], 14), b = rndHalf([5, 4], 15), c = rndHalf([4, 2], 16), d = rndHalf([2, 3, 3], 17);
    await expectHalfClose(K.einsum('ij,jk->ik', halfOf(a), halfOf(b)), refEinsum('ij,jk->ik', a, b), 1e-6, 1e-5, 'matmul');
    await expectHalfClose(K.einsum('ij,jk,kl->il', halfOf(a), halfOf(b), halfOf(c)), refEinsum('ij,jk,kl->il', a, b, c), 1e-6, 1e-5, 'chain');
    await expectHalfClose(K.einsum('bii->b', halfOf(d)), refEinsum('bii->b', d), 1e-6, 1e-5, 'trace');
    await expectHalfClose(K.einsum('ij->j', halfOf(a)), refEinsum('ij->j', a), 1e-6, 1e-5, 'sum');
    await gradsAgree((x, y) => K.einsum('ij,jk->ki', x, y), [a, b]);
    await gradsAgree((x) => K.einsum('bii->bi', x), [d]);
  });

  it('flip, triu, tril, maskedFill and repeat copy f16 values exactly (odd lengths: halves of shared words)', async () => {
    const x = rndHalf([3, 5, 7], 18, -100, 100);
    x.data[3] = NaN;
    const xt = halfOf(x);
    poisonF16([[3, 5, 7]], 2);
    await expectExact(K.flip(xt, [0, 2]), M.flip(x, [0, 2]));
    await expectExact(K.flip(xt.transpose(1, 2), 1), M.flip(transpose(x, 1, 2), [1]));
    await expectExact(K.triu(xt, 1), M.triangle(x, 1, true));
    await expectExact(K.tril(xt, -2), M.triangle(x, -2, false));
    const mask = rndHalf([5, 1], 19, 0, 1);
    const maskRef = { data: mask.data.map((v) => (v > 0.5 ? 1 : 0)), shape: [5, 1] };
    const mt = K.tensor(Array.from(maskRef.data, Boolean), { shape: [5, 1], dtype: 'bool' });
    await expectExact(K.maskedFill(xt, mt, -0.1), M.maskedFill(x, maskRef, nearestHalf(-0.1)));
    await expectExact(K.maskedFill(xt, mt, K.tensor(70000, { dtype: 'f16' })), M.maskedFill(x, maskRef, Infinity));
    await expectExact(K.repeat(xt, 2, 1, 1, 3), M.repeat(x, [2, 1, 1, 3]));
    const g = rndHalf([4, 5], 20);
    await gradsAgree((t) => K.flip(t, 1), [g]);
    await gradsAgree((t) => K.triu(t), [g]);
    await gradsAgree((t) => K.maskedFill(t, K.tensor([true, false, false, true, true], { dtype: 'bool' }), 2), [g]);
    await gradsAgree((t) => K.repeat(t, 3, 2), [g]);
  });
});

describe('f16 nn.RMSNorm', () => {
  it('mean of squares in f32 (no f16 overflow from |x| = 256), rounded once; default eps is f16 machine epsilon, as PyTorch', async () => {
    const x = rndHalf([4, 13], 21, -600, 600);
    const norm = new K.nn.RMSNorm(13);
    const y = norm.forward(halfOf(x));
    await expectHalfClose(y, rmsNorm(x, [13], null, 2 ** -10), 1e-6, 1e-5, 'rmsNorm');
    const small = rndHalf([3, 7], 22, -0.01, 0.01);
    const norm2 = new K.nn.RMSNorm(7, { eps: 1e-6 });
    await expectHalfClose(norm2.forward(halfOf(small)), rmsNorm(small, [7], null, 1e-6), 1e-6, 1e-5, 'rmsNorm eps given');
    const plain = new K.nn.RMSNorm(7, { elementwiseAffine: false }); // a weight's .grad would outlive gradsAgree's leak check
    await gradsAgree((t) => plain.forward(t), [rndHalf([3, 7], 23)], 8e-3);
    for (const m of [norm, norm2, plain]) m.dispose();
  });
});
