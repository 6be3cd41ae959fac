// Elementwise ops: forward against the float64 reference at odd shapes on a NaN-poisoned pool, and gradients against
// float64 finite differences (including broadcasting, where gradients must be summed back to each input's shape).
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import { type Ref, broadcastShapes } from '../reference/core';
import { checkGradVsRef, expectTensorClose, fromRef, poison, rnd, rndAway, toRef } from '../helpers';

type KUnary = (x: K.Tensor) => K.Tensor;
type KBinary = (a: K.Tensor, b: K.Tensor) => K.Tensor;

// kiln's bounds are f32 (uniform params), so the reference clamps to the f32-rounded bounds.
const clampRef = (x: Ref, lo: number, hi: number): Ref => R.map(x, (v) => Math.min(Math.max(v, Math.fround(lo)), Math.fround(hi)));

// [name, kiln fn, reference fn, input generator, atol, rtol]
const unaries: [string, KUnary, (x: Ref) => Ref, (shape: number[], seed: number) => Ref, number, number][] = [
  ['neg', K.neg, R.neg, (s, k) => rnd(s, k, -3, 3), 0, 0],
  ['exp', K.exp, R.exp, (s, k) => rnd(s, k, -4, 4), 1e-6, 2e-6],
  ['log', K.log, R.log, (s, k) => rnd(s, k, 0.05, 5), 2e-6, 2e-6],
  ['sqrt', K.sqrt, R.sqrt, (s, k) => rnd(s, k, 0.01, 9), 1e-6, 1e-6],
  ['rsqrt', K.rsqrt, (x) => R.map(x, (v) => 1 / Math.sqrt(v)), (s, k) => rnd(s, k, 0.05, 9), 1e-6, 2e-6],
  ['abs', K.abs, R.abs, (s, k) => rnd(s, k, -3, 3), 0, 0],
  ['relu', K.relu, R.relu, (s, k) => rnd(s, k, -3, 3), 0, 0],
  ['gelu', K.gelu, R.gelu, (s, k) => rnd(s, k, -5, 5), 2e-6, 2e-6],
  ['tanh', K.tanh, R.tanh, (s, k) => rnd(s, k, -6, 6), 2e-6, 2e-6],
  ['sigmoid', K.sigmoid, R.sigmoid, (s, k) => rnd(s, k, -12, 12), 1e-6, 2e-6],
  ['pow 2', (x) => K.pow(x, 2), (x) => R.powScalar(x, 2), (s, k) => rnd(s, k, -3, 3), 1e-6, 1e-6],
  ['pow 3 (negative base)', (x) => K.pow(x, 3), (x) => R.powScalar(x, 3), (s, k) => rnd(s, k, -3, 3), 1e-5, 1e-5],
  ['pow -1', (x) => K.pow(x, -1), (x) => R.powScalar(x, -1), (s, k) => rndAway(s, k, 0.2, 3), 1e-6, 1e-6],
  ['pow 0.5', (x) => K.pow(x, 0.5), (x) => R.powScalar(x, 0.5), (s, k) => rnd(s, k, 0, 4), 1e-6, 1e-6],
  ['pow 1.7', (x) => K.pow(x, 1.7), (x) => R.powScalar(x, 1.7), (s, k) => rnd(s, k, 0.01, 4), 1e-5, 1e-5],
  ['clamp', (x) => K.clamp(x, -0.5, 0.7), (x) => clampRef(x, -0.5, 0.7), (s, k) => rnd(s, k, -2, 2), 0, 0],
  ['clamp min only', (x) => K.clamp(x, 0.1), (x) => clampRef(x, 0.1, Infinity), (s, k) => rnd(s, k, -2, 2), 0, 0],
  ['add scalar', (x) => K.add(x, 2.5), (x) => R.add(x, 2.5), (s, k) => rnd(s, k), 1e-7, 1e-7],
  ['sub scalar', (x) => K.sub(x, 0.75), (x) => R.sub(x, 0.75), (s, k) => rnd(s, k), 1e-7, 1e-7],
  ['mul scalar', (x) => K.mul(x, -3), (x) => R.mul(x, -3), (s, k) => rnd(s, k), 1e-7, 1e-7],
  ['div scalar', (x) => K.div(x, 4), (x) => R.div(x, 4), (s, k) => rnd(s, k), 1e-7, 1e-7],
];

const shapes: number[][] = [[1], [7], [13, 31], [2, 3, 65], [257]];

describe('unary ops forward', () => {
  for (const [name, kf, rf, gen, atol, rtol] of unaries) {
    it(name, async () => {
      for (const [si, shape] of shapes.entries()) {
        const x = gen(shape, 11 + si);
        const xt = fromRef(x);
        poison([shape]);
        const y = kf(xt);
        await expectTensorClose(y, rf(x), atol, rtol, `${name} ${JSON.stringify(shape)}`);
        xt.dispose();
        y.dispose();
      }
    });
  }

  it('methods agree with the functions', async () => {
    const x = fromRef(rnd([5, 3], 3, 0.1, 2));
    const pairs: [K.Tensor, K.Tensor][] = [
      [x.exp(), K.exp(x)], [x.log(), K.log(x)], [x.sqrt(), K.sqrt(x)], [x.rsqrt(), K.rsqrt(x)], [x.neg(), K.neg(x)],
      [x.abs(), K.abs(x)], [x.relu(), K.relu(x)], [x.gelu(), K.gelu(x)], [x.tanh(), K.tanh(x)], [x.sigmoid(), K.sigmoid(x)],
      [x.pow(3), K.pow(x, 3)], [x.clamp(0.5, 1), K.clamp(x, 0.5, 1)], [x.add(1), K.add(x, 1)], [x.mul(x), K.mul(x, x)],
    ];
    for (const [a, b] of pairs) expect(Array.from(await a.toArray())).toEqual(Array.from(await b.toArray()));
    for (const [a, b] of pairs) (a.dispose(), b.dispose());
    x.dispose();
  });

  it('neg/add/sub/mul on i32 stay exact integers', async () => {
    const x = K.tensor([[-3, 7, 0], [2147483, -5, 11]], { dtype: 'i32' });
    expect(Array.from(await K.neg(x).toArray())).toEqual([3, -7, 0, -2147483, 5, -11]);
    const y = K.tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'i32' });
    const s = K.add(x, y);
    expect(s.dtype).toBe('i32');
    expect(Array.from(await s.toArray())).toEqual([-2, 9, 3, 2147487, 0, 17]);
    expect(Array.from(await K.mul(x, y).toArray())).toEqual([-3, 14, 0, 8589932, -25, 66]);
    expect(Array.from(await K.sub(x, y).toArray())).toEqual([-4, 5, -3, 2147479, -10, 5]);
  });
});

const binaries: [string, KBinary, (a: Ref, b: Ref) => Ref, boolean][] = [
  ['add', K.add, R.add, false],
  ['sub', K.sub, R.sub, false],
  ['mul', K.mul, R.mul, false],
  ['div', K.div, R.div, true],
  ['maximum', K.maximum, R.maximum, false],
  ['minimum', K.minimum, R.minimum, false],
];

const bshapes: [number[], number[]][] = [
  [[1], [1]],
  [[7], [7]],
  [[13, 31], [31]],
  [[3, 1, 5], [4, 1]],
  [[1, 65], [17, 1]],
  [[2, 3, 1, 7], [1, 3, 5, 1]],
  [[], [3, 2]],
];

describe('binary ops forward with broadcasting', () => {
  for (const [name, kf, rf, awayFromZero] of binaries) {
    it(name, async () => {
      for (const [si, [sa, sb]] of bshapes.entries()) {
        const a = rnd(sa, 100 + si, -2, 2);
        const b = awayFromZero ? rndAway(sb, 200 + si) : rnd(sb, 200 + si, -2, 2);
        const at = fromRef(a);
        const bt = fromRef(b);
        poison([broadcastShapes(sa, sb)]);
        const y = kf(at, bt);
        await expectTensorClose(y, rf(a, b), 1e-6, 1e-6, `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`);
        const y2 = kf(bt, at);
        await expectTensorClose(y2, rf(b, a), 1e-6, 1e-6, `${name} swapped`);
        for (const t of [at, bt, y, y2]) t.dispose();
      }
    });
  }

  it('pow with a tensor exponent', async () => {
    const a = rnd([4, 7], 1, 0.1, 3);
    const b = rnd([7], 2, -2, 2);
    const y = K.pow(fromRef(a), fromRef(b));
    await expectTensorClose(y, R.pow(a, b), 1e-5, 1e-5);
  });
});

describe('comparisons, logical ops and where', () => {
  const cmps: [string, (a: K.Tensor, b: K.Tensor | number) => K.Tensor, (a: Ref | number, b: Ref | number) => Ref][] = [
    ['eq', K.eq, R.eq], ['ne', K.ne, R.ne], ['lt', K.lt, R.lt], ['le', K.le, R.le], ['gt', K.gt, R.gt], ['ge', K.ge, R.ge],
  ];
  for (const [name, kf, rf] of cmps) {
    it(name, async () => {
      // Values on a coarse grid so that equality actually happens.
      const a = R.map(rnd([5, 13], 7, -2, 2), (v) => Math.round(v * 2) / 2);
      const b = R.map(rnd([13], 8, -2, 2), (v) => Math.round(v * 2) / 2);
      poison([[5, 13]]);
      const y = kf(fromRef(a), fromRef(b));
      expect(y.dtype).toBe('bool');
      await expectTensorClose(y, rf(a, b), 0, 0, name);
      const s = kf(fromRef(a), 0.5);
      await expectTensorClose(s, rf(a, 0.5), 0, 0, `${name} scalar`);
      const ai = K.tensor(Int32Array.from(a.data, (v) => Math.round(v * 2)), { shape: [5, 13] });
      const bi = K.tensor(Int32Array.from(b.data, (v) => Math.round(v * 2)), { shape: [13] });
      await expectTensorClose(kf(ai, bi), rf(a, b), 0, 0, `${name} i32`);
    });
  }

  it('integer and bool tensors against fractional numbers compare by value', async () => {
    const i = K.tensor([1, 2, 3], { dtype: 'i32' });
    expect(Array.from(await K.lt(i, 2.5).toArray())).toEqual([1, 1, 0]);
    expect(Array.from(await K.ge(i, 2.5).toArray())).toEqual([0, 0, 1]);
    expect(Array.from(await K.eq(i, 2.5).toArray())).toEqual([0, 0, 0]);
    expect(Array.from(await K.eq(i, 2).toArray())).toEqual([0, 1, 0]);
    expect(Array.from(await K.gt(K.tensor([true, false]), 0.5).toArray())).toEqual([1, 0]);
  });

  it('logicalAnd / logicalOr / logicalNot', async () => {
    const a = K.tensor([[true, false, true], [false, false, true]]);
    const b = K.tensor([true, false, false]);
    expect(a.dtype).toBe('bool');
    poison([[2, 3]]);
    expect(Array.from(await K.logicalAnd(a, b).toArray())).toEqual([1, 0, 0, 0, 0, 0]);
    expect(Array.from(await K.logicalOr(a, b).toArray())).toEqual([1, 0, 1, 1, 0, 1]);
    expect(Array.from(await K.logicalNot(a).toArray())).toEqual([0, 1, 0, 1, 1, 0]);
    expect(Array.from(await a.logicalNot().toArray())).toEqual([0, 1, 0, 1, 1, 0]);
  });

  it('where broadcasts cond, a and b (f32 and i32)', async () => {
    const c = R.map(rnd([3, 1, 7], 5), (v) => (v > 0 ? 1 : 0));
    const a = rnd([4, 7], 6);
    const b = rnd([3, 4, 1], 7);
    poison([[3, 4, 7]]);
    const ct = K.tensor(Uint8Array.from(c.data), { shape: c.shape, dtype: 'bool' });
    const y = K.where(ct, fromRef(a), fromRef(b));
    await expectTensorClose(y, R.where(c, a, b), 0, 0);
    const yi = K.where(ct, K.tensor(Int32Array.from(a.data, (v) => Math.round(v * 100)), { shape: [4, 7] }), K.tensor(Int32Array.from(b.data, (v) => Math.round(v * 100)), { shape: [3, 4, 1] }));
    expect(yi.dtype).toBe('i32');
    await expectTensorClose(yi, R.where(c, R.map(a, (v) => Math.round(v * 100)), R.map(b, (v) => Math.round(v * 100))), 0, 0);
    // cond from a comparison, as the method form.
    const at = fromRef(a);
    const m = fromRef(a).where(K.gt(at, 0), K.zerosLike(at));
    await expectTensorClose(m, R.relu(a), 0, 0);
  });
});

describe('elementwise gradients against float64 finite differences', () => {
  const shapesG: number[][] = [[1], [3, 5]];
  const grads: [string, KUnary, (x: Ref) => Ref, (shape: number[], seed: number) => Ref][] = [
    ['neg', K.neg, R.neg, (s, k) => rnd(s, k)],
    ['exp', K.exp, R.exp, (s, k) => rnd(s, k, -2, 2)],
    ['log', K.log, R.log, (s, k) => rnd(s, k, 0.3, 3)],
    ['sqrt', K.sqrt, R.sqrt, (s, k) => rnd(s, k, 0.3, 3)],
    ['rsqrt', K.rsqrt, (x) => R.map(x, (v) => 1 / Math.sqrt(v)), (s, k) => rnd(s, k, 0.3, 3)],
    ['abs', K.abs, R.abs, (s, k) => rndAway(s, k, 0.05, 2)],
    ['relu', K.relu, R.relu, (s, k) => rndAway(s, k, 0.05, 2)],
    ['gelu', K.gelu, R.gelu, (s, k) => rnd(s, k, -3, 3)],
    ['tanh', K.tanh, R.tanh, (s, k) => rnd(s, k, -2, 2)],
    ['sigmoid', K.sigmoid, R.sigmoid, (s, k) => rnd(s, k, -4, 4)],
    ['pow 3', (x) => K.pow(x, 3), (x) => R.powScalar(x, 3), (s, k) => rnd(s, k, -2, 2)],
    ['pow -0.5', (x) => K.pow(x, -0.5), (x) => R.powScalar(x, -0.5), (s, k) => rnd(s, k, 0.3, 2)],
    ['pow 2', (x) => x.pow(2), (x) => R.powScalar(x, 2), (s, k) => rnd(s, k, -2, 2)],
    ['clamp', (x) => K.clamp(x, -0.4, 0.6), (x) => clampRef(x, -0.4, 0.6), (s, k) => R.map(rndAway(s, k, 0.02, 1), (v) => (Math.abs(Math.abs(v) - 0.5) < 0.02 ? v * 0.9 : v))],
    ['add scalar', (x) => K.add(x, 2), (x) => R.add(x, 2), (s, k) => rnd(s, k)],
    ['sub scalar', (x) => K.sub(x, 2), (x) => R.sub(x, 2), (s, k) => rnd(s, k)],
    ['mul scalar', (x) => K.mul(x, -1.5), (x) => R.mul(x, -1.5), (s, k) => rnd(s, k)],
    ['div scalar', (x) => K.div(x, 3), (x) => R.div(x, 3), (s, k) => rnd(s, k)],
  ];
  for (const [name, kf, rf, gen] of grads) {
    it(name, async () => {
      for (const [si, shape] of shapesG.entries()) await checkGradVsRef(kf, rf, [gen(shape, 40 + si)], { label: `${name} ${JSON.stringify(shape)}` });
    });
  }

  const bgrads: [string, KBinary, (a: Ref, b: Ref) => Ref, boolean][] = [
    ['add', K.add, R.add, false],
    ['sub', K.sub, R.sub, false],
    ['mul', K.mul, R.mul, false],
    ['div', K.div, R.div, true],
    ['maximum', K.maximum, R.maximum, false],
    ['minimum', K.minimum, R.minimum, false],
  ];
  const gshapes: [number[], number[]][] = [[[3, 5], [3, 5]], [[2, 3, 1], [4]], [[1], [3, 2]], [[], [2, 3]]];
  for (const [name, kf, rf, away] of bgrads) {
    it(`${name} with broadcasting`, async () => {
      for (const [si, [sa, sb]] of gshapes.entries()) {
        const a = rnd(sa, 60 + si, -2, 2);
        const b = away ? rndAway(sb, 70 + si) : rnd(sb, 70 + si, -2, 2);
        await checkGradVsRef(kf, rf, [a, b], { label: `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}` });
      }
    });
  }

  it('maximum / minimum split the gradient evenly at ties (as PyTorch)', async () => {
    for (const [fn, wantA, wantB] of [[K.maximum, [0.5, 0, 1], [0.5, 1, 0]], [K.minimum, [0.5, 1, 0], [0.5, 0, 1]]] as const) {
      const a = K.tensor([1, 2, 5], { requiresGrad: true });
      const b = K.tensor([1, 3, 4], { requiresGrad: true });
      K.tidy(() => K.sum(fn(a, b)).backward());
      expect(Array.from(await a.grad!.toArray())).toEqual(wantA);
      expect(Array.from(await b.grad!.toArray())).toEqual(wantB);
      a.dispose();
      b.dispose();
    }
  });

  it('pow with a tensor exponent (both inputs, broadcast)', async () => {
    await checkGradVsRef(K.pow, R.pow, [rnd([3, 4], 1, 0.3, 2), rnd([4], 2, -1.5, 1.5)]);
  });

  it('where routes gradients to a and b, summed over broadcast dims', async () => {
    const c = R.map(rnd([3, 1, 5], 5), (v) => (v > 0 ? 1 : 0));
    const kf = (a: K.Tensor, b: K.Tensor) => {
      const ct = K.tensor(Uint8Array.from(c.data), { shape: c.shape, dtype: 'bool' });
      const y = K.where(ct, a, b);
      ct.dispose();
      return y;
    };
    await checkGradVsRef(kf, (a, b) => R.where(c, a, b), [rnd([4, 5], 6), rnd([3, 4, 1], 7)]);
  });

  it('a tensor used twice accumulates both paths (x * x + x)', async () => {
    await checkGradVsRef((x) => K.add(K.mul(x, x), x), (x) => R.add(R.mul(x, x), x), [rnd([2, 7], 9)]);
  });
});

describe('poisoning helper', () => {
  it('really hands NaN buffers back to the next allocation', async () => {
    poison([[37]]);
    const t = K.tensor(new Float32Array(37).fill(1), { shape: [37] });
    const e = K.add(t, 0); // any op output comes from the pool
    // The output is fully written, so no NaN survives; but an empty() right now is NaN-filled.
    expect(Array.from(await e.toArray()).every((v) => v === 1)).toBe(true);
    poison([[37]]);
    const { empty } = await import('../../src/ops/creation');
    const raw = empty([37]);
    expect(Array.from(await raw.toArray()).every(Number.isNaN)).toBe(true);
    raw.dispose();
    t.dispose();
    e.dispose();
    void toRef;
  });
});
