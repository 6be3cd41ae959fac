// f16 through the elementwise ops: forward against float64 on the f16-rounded inputs (one f16 rounding of the answer
// plus f32 arithmetic error; see helpers.ts), on NaN-poisoned f16 pools, odd sizes (an odd element count leaves half a
// word; two threads write the halves of one word), strided views, NaN and +-inf, f16 overflow to infinity; gradients
// in f16 against f32 gradients of the same inputs; f16 meeting f32 (promotion to f32, as PyTorch's); no leaks.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import { type Ref, transpose } from '../reference/core';
import { poisonF16, expectNoLeak, expectThrows } from '../helpers';
import { nearestHalf } from '../reference/half';
import { expectHalfClose, halfOf, rndHalf } from './helpers';

type KUnary = (x: K.Tensor) => K.Tensor;
const erfRef = (x: Ref): Ref => R.map(x, R.erf);
const silu = (v: number) => v * R.sigmoidScalar(v);

// [name, kiln fn, reference fn, lo, hi, f32 atol, f32 rtol]
const unaries: [string, KUnary, (x: Ref) => Ref, number, number, number, number][] = [
  ['neg', K.neg, R.neg, -3, 3, 0, 0],
  ['exp', K.exp, R.exp, -4, 4, 1e-6, 2e-6],
  ['log', K.log, R.log, 0.05, 5, 2e-6, 2e-6],
  ['sqrt', K.sqrt, R.sqrt, 0.01, 9, 1e-6, 1e-6],
  ['abs', K.abs, R.abs, -3, 3, 0, 0],
  ['relu', K.relu, R.relu, -3, 3, 0, 0],
  ['gelu', K.gelu, R.gelu, -5, 5, 2e-6, 2e-6],
  ['tanh', K.tanh, R.tanh, -6, 6, 2e-6, 2e-6],
  ['sigmoid', K.sigmoid, R.sigmoid, -12, 12, 1e-6, 2e-6],
  ['silu', K.silu, (x) => R.map(x, silu), -6, 6, 1e-6, 2e-6],
  ['erf', K.erf, erfRef, -3, 3, 2e-7, 2e-7],
  ['pow 3', (x) => K.pow(x, 3), (x) => R.powScalar(x, 3), -3, 3, 1e-5, 1e-5],
  ['clamp', (x) => K.clamp(x, -0.5, 0.7), (x) => R.map(x, (v) => Math.min(Math.max(v, -0.5), Math.fround(0.7))), -2, 2, 0, 0],
  ['add scalar', (x) => K.add(x, 2.5), (x) => R.add(x, 2.5), -1, 1, 0, 0],
  ['mul scalar', (x) => K.mul(x, -3), (x) => R.mul(x, -3), -1, 1, 0, 0],
  ['div scalar', (x) => K.div(x, 4), (x) => R.div(x, 4), -1, 1, 0, 0],
];

const shapes = [[1], [7], [13, 31], [2, 3, 65]];

describe('f16 unary ops', () => {
  for (const [name, fn, ref, lo, hi, atol, rtol] of unaries) {
    it(`${name} matches float64 within one f16 rounding`, async () => {
      for (const [k, shape] of shapes.entries()) {
        const x = rndHalf(shape, 11 + k, lo, hi);
        const xt = halfOf(x);
        poisonF16([shape], 2);
        const y = fn(xt);
        await expectHalfClose(y, ref(x), atol, rtol, `${name} ${shape}`);
        xt.dispose();
        y.dispose();
      }
    });
  }

  it('reads strided views in place and writes odd offsets', async () => {
    const x = rndHalf([5, 9], 3, -2, 2);
    const xt = halfOf(x);
    const v = xt.transpose(0, 1); // [9, 5], strided
    const y = K.exp(v);
    await expectHalfClose(y, R.exp(transpose(x, 0, 1)), 1e-6, 2e-6, 'exp of a transposed view');
    for (const t of [xt, v, y]) t.dispose();
  });

  it('NaN and +-inf as PyTorch; f16 overflow to infinity', async () => {
    const xt = K.tensor([NaN, Infinity, -Infinity, 0, 12, -12], { dtype: 'f16' });
    const e = K.exp(xt);
    // exp(12) = 162754.8 overflows f16 (as torch.exp(torch.tensor(12., dtype=torch.half)) gives inf).
    expect(Array.from(await e.toArray())).toEqual([NaN, Infinity, 0, 1, Infinity, nearestHalf(Math.exp(-12))]);
    const r = K.relu(xt);
    expect(Array.from(await r.toArray())).toEqual([NaN, Infinity, 0, 0, 12, 0]);
    const big = K.mul(K.tensor([300, -300, 60000], { dtype: 'f16' }), 300);
    expect(Array.from(await big.toArray())).toEqual([Infinity, -Infinity, Infinity]);
    for (const t of [xt, e, r, big]) t.dispose();
  });
});

const binaries: [string, (a: K.Tensor, b: K.Tensor) => K.Tensor, (a: Ref, b: Ref) => Ref][] = [
  ['add', K.add, R.add],
  ['sub', K.sub, R.sub],
  ['mul', K.mul, R.mul],
  ['div', K.div, R.div],
  ['maximum', K.maximum, R.maximum],
  ['minimum', K.minimum, R.minimum],
];

describe('f16 binary ops', () => {
  for (const [name, fn, ref] of binaries) {
    it(`${name} with broadcasting matches float64 within one f16 rounding`, async () => {
      for (const [sa, sb] of [[[7], [7]], [[3, 1, 5], [4, 5]], [[13, 31], [1]]]) {
        const a = rndHalf(sa, 5, -3, 3);
        const b = name === 'div' ? R.map(rndHalf(sb, 6, 0.3, 2), (v) => v) : rndHalf(sb, 6, -3, 3);
        const at = halfOf(a), bt = halfOf(b);
        poisonF16([R.add(a, b).shape], 2);
        const y = fn(at, bt);
        await expectHalfClose(y, ref(a, b), 0, 1e-7, `${name} ${sa} ${sb}`);
        for (const t of [at, bt, y]) t.dispose();
      }
    });
  }

  it('comparisons, where and casts to i32 and bool', async () => {
    const a = K.tensor([1, 2, NaN, -0.5, 3], { dtype: 'f16' });
    const b = K.tensor([1, 3, NaN, -1, 2], { dtype: 'f16' });
    expect(Array.from(await K.lt(a, b).toArray())).toEqual([0, 1, 0, 0, 0]);
    expect(Array.from(await K.ne(a, b).toArray())).toEqual([0, 1, 1, 1, 1]);
    expect(Array.from(await K.ge(a, 2).toArray())).toEqual([0, 1, 0, 0, 1]);
    const w = K.where(K.gt(a, b), a, b);
    expect(w.dtype).toBe('f16');
    expect(Array.from(await w.toArray())).toEqual([1, 3, NaN, -0.5, 3]);
    // NaN to i32 is undefined (in PyTorch too): only the others are checked.
    const asInt = Array.from(await a.to('i32').toArray());
    expect([asInt[0], asInt[1], asInt[3], asInt[4]]).toEqual([1, 2, 0, 3]);
    expect(Array.from(await a.to('bool').toArray())).toEqual([1, 1, 1, 1, 1]);
    expect(Array.from(await K.tensor([7, -3], { dtype: 'i32' }).to('f16').toArray())).toEqual([7, -3]);
  });

  it('f16 meeting f32 gives f32 (PyTorch promotion); a 0-d f32 does not widen an f16 tensor', async () => {
    const h = K.tensor([1.5, 2.25, -3], { dtype: 'f16', requiresGrad: true });
    const f = K.tensor([0.1, 0.2, 0.3], { requiresGrad: true });
    const y = K.mul(h, f);
    expect(y.dtype).toBe('f32');
    const got = await y.toArray();
    [1.5 * Math.fround(0.1), 2.25 * Math.fround(0.2), -3 * Math.fround(0.3)].forEach((v, i) => expect(got[i]).toBeCloseTo(v, 6));
    const s = K.mul(h, K.tensor(2));
    expect(s.dtype).toBe('f16');
    expect(Array.from(await s.toArray())).toEqual([3, 4.5, -6]);
    K.sum(y).backward();
    expect(h.grad!.dtype).toBe('f16');
    expect(f.grad!.dtype).toBe('f32');
    Array.from(await h.grad!.toArray()).forEach((v, i) => expect(v).toBeCloseTo([0.1, 0.2, 0.3][i], 3));
    expect(Array.from(await f.grad!.toArray())).toEqual([1.5, 2.25, -3]);
  });
});

describe('f16 gradients', () => {
  // f16 gradients are the f32 rule's value rounded once: compare against the same rule in f32 on the same inputs.
  const ops: [string, (x: K.Tensor, y: K.Tensor) => K.Tensor][] = [
    ['exp * y', (x, y) => K.mul(K.exp(x), y)],
    ['tanh / y', (x, y) => K.div(K.tanh(x), y)],
    ['gelu + maximum', (x, y) => K.add(K.gelu(x), K.maximum(x, y))],
    ['sigmoid - silu(y)', (x, y) => K.sub(K.sigmoid(x), K.silu(y))],
    ['pow(x, 2) * relu(y)', (x, y) => K.mul(K.pow(x, 2), K.relu(y))],
  ];
  for (const [name, fn] of ops) {
    it(`${name}: f16 gradients within an f16 rounding of the f32 ones`, async () => {
      await expectNoLeak(async () => {
        const xr = rndHalf([3, 17], 21, -2, 2), yr = rndHalf([17], 22, 0.5, 2);
        const xh = halfOf(xr, true), yh = halfOf(yr, true);
        const xf = K.tensor(Float32Array.from(xr.data), { shape: xr.shape, requiresGrad: true });
        const yf = K.tensor(Float32Array.from(yr.data), { shape: yr.shape, requiresGrad: true });
        poisonF16([[3, 17]], 2);
        const lh = K.tidy(() => K.sum(fn(xh, yh)));
        const lf = K.tidy(() => K.sum(fn(xf, yf)));
        lh.backward();
        lf.backward();
        lh.dispose();
        lf.dispose();
        expect(xh.grad!.dtype).toBe('f16');
        expect(yh.grad!.dtype).toBe('f16');
        // Each step of the f16 chain rounds once, so allow a few f16 roundings relative to the f32 gradient.
        for (const [h, f] of [[xh, xf], [yh, yf]]) {
          const gh = await h.grad!.toArray(), gf = await f.grad!.toArray();
          for (let i = 0; i < gh.length; i++) expect(Math.abs(gh[i] - gf[i])).toBeLessThanOrEqual(4e-3 * (Math.abs(gf[i]) + 1));
        }
        for (const t of [xh, yh, xf, yf]) t.dispose();
      });
    });
  }
});

describe('f16 reductions (accumulated in f32, rounded once)', () => {
  const f32err = (n: number) => 2e-7 * n; // f32 accumulation error, relative to the sum of |x|
  it('sum, mean, max, min, argmax over dims, keepdim, strided input', async () => {
    for (const [shape, dims] of [[[13, 31], [1]], [[2, 3, 65], [0, 2]], [[257], [0]], [[7, 5], [0]]] as [number[], number[]][]) {
      const x = rndHalf(shape, 31, -4, 4);
      const xt = halfOf(x);
      poisonF16([shape], 2);
      const n = dims.reduce((a, d) => a * shape[d], 1);
      await expectHalfClose(K.sum(xt, dims), R.sum(x, dims), f32err(n) * 4, 0, `sum ${shape} ${dims}`);
      await expectHalfClose(K.mean(xt, dims, true), R.mean(x, dims, true), f32err(n) * 4 / n, 0, `mean ${shape} ${dims}`);
      await expectHalfClose(K.amax(xt, dims), R.max(x, dims), 0, 0, `amax ${shape}`);
      await expectHalfClose(K.amin(xt, dims), R.min(x, dims), 0, 0, `amin ${shape}`);
      const m = K.max(xt, dims[0]);
      await expectHalfClose(m.values, R.max(x, [dims[0]]), 0, 0, `max ${shape} ${dims[0]}`);
      expect(Array.from(await m.indices.toArray())).toEqual(Array.from(R.argmax(x, dims[0]).data));
      xt.dispose();
    }
    const x = rndHalf([9, 6], 4);
    const xt = halfOf(x);
    const am = K.argmax(xt, 1);
    expect(am.dtype).toBe('i32');
    expect(Array.from(await am.toArray())).toEqual(Array.from(R.argmax(x, 1).data));
    await expectHalfClose(K.sum(xt.transpose(0, 1), 1), R.sum(transpose(x, 0, 1), [1]), 1e-5, 0, 'sum of a transposed view');
  });

  it('a long row (two-stage reduction) rounds once, and a sum past 65504 overflows to inf as PyTorch', async () => {
    const n = 1 << 17;
    const x = rndHalf([n], 8, 0, 1);
    const xt = halfOf(x);
    const s = K.sum(xt);
    await expectHalfClose(s, R.sum(x), f32err(n) * n, 0, 'sum of 2^17');
    // mean of the same: the f32 sum (~65536) is past f16's range, but the mean is not: no overflow in between.
    await expectHalfClose(K.mean(xt), R.mean(x), 1e-5, 0, 'mean of 2^17');
    const ones = K.ones([70000], { dtype: 'f16' });
    expect(await K.sum(ones).item()).toBe(Infinity);
  });

  it('var, std, logsumexp in f32 and rounded once; NaN propagates', async () => {
    const x = rndHalf([6, 40], 9, -3, 3);
    const xt = halfOf(x);
    const lse = K.logsumexp(xt, 1);
    await expectHalfClose(lse, R.logSumExp(x, 1), 1e-5, 1e-6, 'logsumexp');
    const v = K.var(xt, 1);
    expect(v.dtype).toBe('f16');
    const mu = R.mean(x, [1], true);
    const d = R.sub(x, mu);
    await expectHalfClose(v, R.div(R.sum(R.mul(d, d), [1]), 39), 1e-5, 1e-6, 'var');
    await expectHalfClose(K.std(xt, 1), R.sqrt(R.div(R.sum(R.mul(d, d), [1]), 39)), 1e-5, 1e-6, 'std');
    const nan = K.tensor([[1, NaN, 2], [1, 2, 3]], { dtype: 'f16' });
    expect(Array.from(await K.sum(nan, 1).toArray())).toEqual([NaN, 6]);
    expect(Array.from(await K.max(nan, 1).values.toArray())).toEqual([NaN, 3]);
  });

  it('gradients of sum, mean, max reach f16 inputs as f16', async () => {
    await expectNoLeak(async () => {
      const x = K.tensor([[1, 5, 5], [2, -1, 0.5]], { dtype: 'f16', requiresGrad: true });
      const loss = K.tidy(() => K.add(K.add(K.sum(K.mean(x, 1)), K.sum(K.amax(x, 1))), K.sum(x)));
      loss.backward();
      loss.dispose();
      expect(x.grad!.dtype).toBe('f16');
      const third = nearestHalf(1 / 3);
      const g = Array.from(await x.grad!.toArray());
      [1 + third, 1 + third + 0.5, 1 + third + 0.5, 1 + third + 1, 1 + third, 1 + third].forEach((w, i) => expect(Math.abs(g[i] - w)).toBeLessThan(2e-3));
      x.dispose();
    });
  });
});

describe('f16 bad input', () => {
  it('f16 meeting i32 or bool is a DTypeError before any GPU work; so is an f16 logical op', () => {
    const h = K.tensor([1, 2], { dtype: 'f16' });
    const i = K.tensor([1, 2], { dtype: 'i32' });
    const b = K.tensor([1, 0], { dtype: 'bool' });
    expectThrows(() => K.add(h, i), K.DTypeError, 'f16', 'i32');
    expectThrows(() => K.mul(h, b), K.DTypeError, 'f16', 'bool');
    expectThrows(() => K.logicalAnd(h, h), K.DTypeError, 'f16');
    expectThrows(() => K.where(b, h, i), K.DTypeError, 'f16', 'i32');
    for (const t of [h, i, b]) t.dispose();
  });
});
