// f16 through softmax, logSoftmax, layerNorm, embedding, the losses, dropout and concat: computed in f32 (the
// statistics, exponentials and sums never round to f16) and rounded once, so each result is within one f16 rounding
// of the float64 answer on the f16 inputs (see helpers.ts); gradients reach f16 inputs as f16 and agree with the f32
// gradients of the same inputs; mixed f16/f32 operands; NaN; bad input refused before any GPU work; no leaks.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import { expectNoLeak, expectThrows, poisonF16 } from '../helpers';
import { expectHalfClose, halfOf, rndHalf } from './helpers';

/** The gradients of sum(f(x...) * w) for f16 inputs and for the same values in f32: f16 within a few f16 roundings. */
async function gradsAgree(f: (...xs: K.Tensor[]) => K.Tensor, inputs: { data: Float64Array; shape: number[] }[], tol = 4e-3): Promise<void> {
  await expectNoLeak(async () => {
    const hs = inputs.map((r) => halfOf(r, true));
    const fs = inputs.map((r) => K.tensor(Float32Array.from(r.data), { shape: r.shape, requiresGrad: true }));
    const yh = K.tidy(() => K.sum(K.mul(f(...hs), 1.5)));
    const yf = K.tidy(() => K.sum(K.mul(f(...fs), 1.5)));
    yh.backward();
    yf.backward();
    for (let i = 0; i < inputs.length; i++) {
      expect(hs[i].grad!.dtype).toBe('f16');
      const gh = await hs[i].grad!.toArray(), gf = await fs[i].grad!.toArray();
      for (let k = 0; k < gh.length; k++) expect(Math.abs(gh[k] - gf[k]), `input ${i} [${k}]`).toBeLessThanOrEqual(tol * (Math.abs(gf[k]) + 1));
    }
    for (const t of [yh, yf, ...hs, ...fs]) t.dispose();
  });
}

describe('f16 softmax and logSoftmax', () => {
  it('match float64 within one f16 rounding, along any dim', async () => {
    for (const [shape, dim] of [[[5, 37], 1], [[4, 6, 3], 1], [[1, 130], -1]] as [number[], number][]) {
      const x = rndHalf(shape, 3, -6, 6);
      const xt = halfOf(x);
      poisonF16([shape], 2);
      await expectHalfClose(K.softmax(xt, dim), R.softmax(x, dim < 0 ? shape.length + dim : dim), 1e-7, 1e-6, `softmax ${shape}`);
      await expectHalfClose(K.logSoftmax(xt, dim), R.logSoftmax(x, dim < 0 ? shape.length + dim : dim), 1e-6, 1e-6, `logSoftmax ${shape}`);
      xt.dispose();
    }
  });
  it('NaN rows stay NaN; -inf entries get probability 0', async () => {
    const xt = K.tensor([[1, NaN, 2], [0, -Infinity, 0]], { dtype: 'f16' });
    expect(Array.from(await K.softmax(xt, 1).toArray())).toEqual([NaN, NaN, NaN, 0.5, 0, 0.5]);
  });
  it('gradients', async () => {
    await gradsAgree((x) => K.softmax(x, 1), [rndHalf([3, 11], 4, -3, 3)]);
    await gradsAgree((x) => K.logSoftmax(x, 0), [rndHalf([7, 5], 5, -3, 3)]);
  });
});

describe('f16 layerNorm', () => {
  it('f16 input with f32 or f16 affine, within one f16 rounding of float64; output in the input dtype', async () => {
    const x = rndHalf([6, 33], 7, -3, 3), w = rndHalf([33], 8, 0.5, 1.5), b = rndHalf([33], 9, -0.5, 0.5);
    const xt = halfOf(x);
    poisonF16([[6, 33]], 2);
    await expectHalfClose(K.F.layerNorm(xt, [33], halfOf(w), halfOf(b)), R.layerNorm(x, [33], w, b), 1e-5, 1e-5, 'all f16');
    const wf = K.tensor(Float32Array.from(w.data)), bf = K.tensor(Float32Array.from(b.data));
    await expectHalfClose(K.F.layerNorm(xt, [33], wf, bf), R.layerNorm(x, [33], w, b), 1e-5, 1e-5, 'f32 affine');
    await expectHalfClose(K.F.layerNorm(xt, [33]), R.layerNorm(x, [33]), 1e-5, 1e-5, 'no affine');
  });
  it('gradients to x, weight and bias', async () => {
    await gradsAgree((x, w, b) => K.F.layerNorm(x, [9], w, b), [rndHalf([4, 9], 10, -2, 2), rndHalf([9], 11, 0.5, 1.5), rndHalf([9], 12)], 8e-3);
  });
});

describe('f16 embedding, losses, dropout, concat', () => {
  it('embedding of an f16 table is exact, with an f16 gradient', async () => {
    const w = rndHalf([10, 6], 13);
    const wt = halfOf(w);
    const idx = K.tensor([3, 0, 9, 3], { dtype: 'i32' });
    const e = K.F.embedding(idx, wt);
    await expectHalfClose(e, R.embedding(w, [3, 0, 9, 3]), 0, 0, 'embedding');
    await gradsAgree((t) => K.F.embedding(idx, t), [w]);
  });

  it('crossEntropy, mseLoss and binaryCrossEntropyWithLogits in f32, rounded once', async () => {
    const logits = rndHalf([6, 9], 14, -4, 4);
    const targets = [1, 8, 0, 3, 3, 5];
    const lt = halfOf(logits);
    const tt = K.tensor(targets, { dtype: 'i32' });
    await expectHalfClose(K.F.crossEntropy(lt, tt), R.crossEntropy(logits, targets), 1e-6, 1e-6, 'crossEntropy');
    await expectHalfClose(K.F.crossEntropy(lt, tt, { reduction: 'none', labelSmoothing: 0.1 }), R.crossEntropy(logits, targets, { reduction: 'none', labelSmoothing: 0.1 }), 1e-6, 1e-6, 'crossEntropy none');
    const a = rndHalf([5, 7], 15), b = rndHalf([5, 7], 16);
    await expectHalfClose(K.F.mseLoss(halfOf(a), halfOf(b)), R.mseLoss(a, b), 1e-7, 1e-6, 'mse');
    const mixed = K.F.mseLoss(halfOf(a), K.tensor(Float32Array.from(b.data), { shape: [5, 7] }));
    expect(mixed.dtype).toBe('f32');
    const y = R.map(rndHalf([5, 7], 17, 0, 1), Math.round);
    await expectHalfClose(K.F.binaryCrossEntropyWithLogits(halfOf(a), halfOf(y)), R.binaryCrossEntropyWithLogits(a, y), 1e-7, 1e-6, 'bce');
    await gradsAgree((x) => K.F.crossEntropy(x, tt), [logits]);
    await gradsAgree((x, t) => K.F.mseLoss(x, t), [a, b]);
  });

  it('crossEntropy of f16 logits that would overflow f16 in exp stays finite (the log-sum-exp is f32)', async () => {
    const lt = K.tensor([[60000, 0, -60000]], { dtype: 'f16' });
    const loss = K.F.crossEntropy(lt, K.tensor([1], { dtype: 'i32' }));
    expect(await loss.item()).toBe(60000);
  });

  it('dropout keeps f16, zeroes as the f32 mask does and scales in f32', async () => {
    const x = rndHalf([64], 18, 1, 2);
    const xh = halfOf(x);
    const xf = K.tensor(Float32Array.from(x.data));
    const dh = K.F.dropout(xh, 0.3, { seed: 5 });
    const df = K.F.dropout(xf, 0.3, { seed: 5 });
    expect(dh.dtype).toBe('f16');
    const gh = await dh.toArray(), gf = await df.toArray();
    for (let i = 0; i < 64; i++) expect(Math.abs(gh[i] - gf[i])).toBeLessThanOrEqual(gf[i] * 2 ** -10);
  });

  it('concat and stack of f16 tensors (odd lengths: halves of shared words)', async () => {
    const a = K.tensor([1, 2, 3], { dtype: 'f16' }), b = K.tensor([4, 5], { dtype: 'f16' });
    const c = K.concat([a, b, a]);
    expect(c.dtype).toBe('f16');
    expect(Array.from(await c.toArray())).toEqual([1, 2, 3, 4, 5, 1, 2, 3]);
    const m = K.tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'f16' });
    expect(Array.from(await K.concat([m, m], 1).toArray())).toEqual([1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
    expect(Array.from(await K.stack([a, a], 1).toArray())).toEqual([1, 1, 2, 2, 3, 3]);
  });

  it('bad input is refused before any GPU work', () => {
    const h = K.tensor([[1, 2], [3, 4]], { dtype: 'f16' });
    const w = K.tensor([1, 2, 3], { dtype: 'f16' });
    const f = K.tensor([0, 1]);
    const i = K.tensor([[1, 2], [3, 4]], { dtype: 'i32' });
    expectThrows(() => K.softmax(h, 2), K.ShapeError);
    expectThrows(() => K.F.layerNorm(h, [2], w), K.ShapeError, 'weight');
    expectThrows(() => K.F.crossEntropy(h, f), K.DTypeError, 'i32');
    expectThrows(() => K.F.embedding(f, h), K.DTypeError, 'i32');
    expectThrows(() => K.F.mseLoss(h, i), K.DTypeError);
  });
});
