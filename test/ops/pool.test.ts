// F.maxPool2d, F.avgPool2d, F.adaptiveAvgPool2d and F.batchNorm: forward against float64 loops, gradients by finite
// differences, PyTorch's tie and NaN rules for max pooling, bad input as typed errors before any GPU work.
import { describe, expect, it } from 'vitest';
import { F, ShapeError, ValueError, memory, ones, tensor, zeros } from '../../src/index.node';
import * as RC from '../reference/conv';
import { checkGradVsRef, expectThrows, expectTensorClose, fromRef, poison, rnd } from '../helpers';

const MAX_CASES: { x: number[]; k: F.Pair; opts: F.MaxPoolOptions; ref: RC.PoolRefOptions }[] = [
  { x: [2, 3, 8, 8], k: 2, opts: {}, ref: { kernel: [2, 2] } },
  { x: [1, 2, 7, 9], k: 3, opts: { stride: 2, padding: 1 }, ref: { kernel: [3, 3], stride: [2, 2], padding: [1, 1] } },
  { x: [2, 1, 9, 6], k: [3, 2], opts: { stride: [1, 2], padding: [1, 1], dilation: [2, 1] }, ref: { kernel: [3, 2], stride: [1, 2], padding: [1, 1], dilation: [2, 1] } },
  { x: [1, 3, 5, 5], k: 5, opts: {}, ref: { kernel: [5, 5] } },
];

describe('F.maxPool2d', () => {
  for (const c of MAX_CASES) {
    it(`forward and gradient x ${JSON.stringify(c.x)} k ${JSON.stringify(c.k)} ${JSON.stringify(c.opts)}`, async () => {
      const before = memory().buffers;
      // Distinct values (a permutation), so finite differences do not cross a tie.
      const n = c.x.reduce((a, b) => a * b, 1);
      const x = rnd(c.x, 21);
      const order = Array.from(x.data.keys()).sort((a, b) => x.data[a] - x.data[b]);
      order.forEach((i, r) => (x.data[i] = (r - n / 2) / 8));
      const want = RC.maxPool2d(x, c.ref).values;
      poison([want.shape]);
      const xt = fromRef(x);
      const y = F.maxPool2d(xt, c.k, c.opts);
      await expectTensorClose(y, want, 0, 0);
      y.dispose();
      xt.dispose();
      expect(memory().buffers).toBe(before);
      await checkGradVsRef((a) => F.maxPool2d(a, c.k, c.opts), (a) => RC.maxPool2d(a, c.ref).values, [x], { eps: 1e-4 });
    });
  }

  it('ties route the gradient to the first maximum; NaN propagates (the last NaN takes it); -inf padding never wins', async () => {
    const x = tensor([[[[1, 1, NaN, 2], [1, 1, 3, NaN], [-Infinity, -Infinity, 0, 0], [-Infinity, -Infinity, 0, 0]]]], { requiresGrad: true });
    const y = F.maxPool2d(x, 2);
    expect(Array.from(await y.toArray())).toEqual([1, NaN, -Infinity, 0]);
    y.sum().backward();
    expect(Array.from(await x.grad!.toArray())).toEqual([1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0]);
    const p = tensor([[[[-Infinity, -Infinity], [-Infinity, -Infinity]]]]);
    expect(Array.from(await F.maxPool2d(p, 3, { stride: 1, padding: 1 }).toArray())).toEqual([-Infinity, -Infinity, -Infinity, -Infinity]);
  });

  it('matches the reference indices on ties with padding', async () => {
    const x = { data: Float64Array.from([5, 5, 5, 5, 5, 5, 5, 5, 5]), shape: [1, 1, 3, 3] };
    const xt = fromRef(x);
    xt.requiresGrad = true;
    F.maxPool2d(xt, 3, { stride: 2, padding: 1 }).sum().backward();
    const idx = RC.maxPool2d(x, { kernel: [3, 3], stride: [2, 2], padding: [1, 1] }).indices;
    const want = new Array(9).fill(0);
    for (const i of idx) want[i] += 1;
    expect(Array.from(await xt.grad!.toArray())).toEqual(want);
  });
});

describe('F.avgPool2d and F.adaptiveAvgPool2d', () => {
  const cases: { x: number[]; k: F.Pair; opts: F.AvgPoolOptions; ref: RC.PoolRefOptions }[] = [
    { x: [2, 3, 8, 8], k: 2, opts: {}, ref: { kernel: [2, 2] } },
    { x: [1, 2, 7, 9], k: 3, opts: { stride: 2, padding: 1 }, ref: { kernel: [3, 3], stride: [2, 2], padding: [1, 1] } },
    { x: [1, 2, 7, 9], k: [3, 2], opts: { stride: [2, 1], padding: [1, 1], countIncludePad: false }, ref: { kernel: [3, 2], stride: [2, 1], padding: [1, 1], countIncludePad: false } },
    { x: [2, 1, 5, 6], k: [4, 3], opts: { stride: 1 }, ref: { kernel: [4, 3], stride: [1, 1] } },
  ];
  for (const c of cases) {
    it(`avgPool2d x ${JSON.stringify(c.x)} k ${JSON.stringify(c.k)} ${JSON.stringify(c.opts)}`, async () => {
      const x = rnd(c.x, 31);
      await expectTensorClose(F.avgPool2d(fromRef(x), c.k, c.opts), RC.avgPool2d(x, c.ref), 1e-6, 1e-5);
      await checkGradVsRef((a) => F.avgPool2d(a, c.k, c.opts), (a) => RC.avgPool2d(a, c.ref), [x]);
    });
  }
  for (const [shape, size] of [[[2, 3, 7, 9], [3, 4]], [[1, 2, 5, 5], [1, 1]], [[1, 1, 4, 6], [5, 7]], [[2, 2, 10, 3], [4, 3]]] as [number[], [number, number]][]) {
    it(`adaptiveAvgPool2d ${JSON.stringify(shape)} -> ${JSON.stringify(size)}`, async () => {
      const x = rnd(shape, 41);
      await expectTensorClose(F.adaptiveAvgPool2d(fromRef(x), size), RC.adaptiveAvgPool2d(x, size), 1e-6, 1e-5);
      await checkGradVsRef((a) => F.adaptiveAvgPool2d(a, size), (a) => RC.adaptiveAvgPool2d(a, size), [x]);
    });
  }
  it('adaptiveAvgPool2d: null keeps a size; unbatched input', async () => {
    const x = rnd([3, 6, 4], 43);
    const want = RC.adaptiveAvgPool2d({ data: x.data, shape: [1, 3, 6, 4] }, [2, 4]);
    await expectTensorClose(F.adaptiveAvgPool2d(fromRef(x), [2, null]), { data: want.data, shape: [3, 2, 4] }, 1e-6, 1e-5);
  });

  it('bad input: typed errors before any GPU work', () => {
    const x = zeros([1, 2, 4, 4]), x2 = zeros([4, 4]);
    expectThrows(() => F.maxPool2d(x, 5), ShapeError, 'larger than the padded input', '[1,2,4,4]');
    expectThrows(() => F.maxPool2d(x, 2, { padding: 2 }), ValueError, 'at most half');
    expectThrows(() => F.maxPool2d(x2, 2), ShapeError, '[4,4]');
    expectThrows(() => F.maxPool2d(x, 0), ValueError, 'kernelSize');
    expectThrows(() => F.avgPool2d(x, 2, { ceilMode: true } as F.AvgPoolOptions), ValueError, "unknown option 'ceilMode'");
    expectThrows(() => F.avgPool2d(x, 2, { countIncludePad: 1 as unknown as boolean }), ValueError, 'countIncludePad');
    expectThrows(() => F.adaptiveAvgPool2d(x, 0), ValueError, 'outputSize');
    expectThrows(() => F.adaptiveAvgPool2d(x, [2, 2, 2] as unknown as [number, number]), ValueError, 'outputSize');
    x.dispose();
    x2.dispose();
  });
});

describe('F.batchNorm', () => {
  for (const shape of [[4, 3, 5, 7], [3, 5], [2, 4, 9], [1, 2, 3, 1]]) {
    it(`training: batch statistics, running statistics updated (unbiased), gradients ${JSON.stringify(shape)}`, async () => {
      const C = shape[1];
      const x = rnd(shape, 51, -2, 3), w = rnd([C], 52), b = rnd([C], 53);
      const rm = tensor(new Float32Array(C).fill(0.5)), rv = tensor(new Float32Array(C).fill(2));
      const y = F.batchNorm(fromRef(x), rm, rv, { weight: fromRef(w), bias: fromRef(b), training: true, momentum: 0.2, eps: 1e-3 });
      await expectTensorClose(y, RC.batchNormTrain(x, w, b, 1e-3), 2e-5, 1e-4);
      const { mean, variance } = RC.channelStats(x);
      const M = x.data.length / C;
      await expectTensorClose(rm, { data: Float64Array.from(mean.map((m) => 0.8 * 0.5 + 0.2 * m)), shape: [C] }, 1e-5, 1e-5);
      await expectTensorClose(rv, { data: Float64Array.from(variance.map((v) => 0.8 * 2 + (0.2 * v * M) / (M - 1))), shape: [C] }, 1e-5, 1e-5);
      await checkGradVsRef(
        (a, ww, bb) => F.batchNorm(a, null, null, { weight: ww, bias: bb, training: true, eps: 1e-3 }),
        (a, ww, bb) => RC.batchNormTrain(a, ww, bb, 1e-3),
        [x, w, b],
        { atol: 5e-3, rtol: 5e-3 },
      );
    });
  }
  it('eval: running statistics, gradients treat them as constants', async () => {
    const x = rnd([3, 4, 5, 2], 61), w = rnd([4], 62), b = rnd([4], 63);
    const mean = [0.1, -0.2, 0.3, 0], variance = [0.5, 1.5, 2, 0.25];
    const rm = tensor(mean), rv = tensor(variance);
    const ref = (a: typeof x, ww: typeof w, bb: typeof b) => RC.batchNorm(a, mean, variance, ww, bb);
    await expectTensorClose(F.batchNorm(fromRef(x), rm, rv, { weight: fromRef(w), bias: fromRef(b) }), ref(x, w, b), 1e-5, 1e-5);
    await checkGradVsRef((a, ww, bb) => F.batchNorm(a, rm, rv, { weight: ww, bias: bb }), ref, [x, w, b]);
    expect(Array.from(await rm.toArray())).toEqual(Float32Array.from(mean).map((v) => v).reduce((a: number[], v) => [...a, v], []));
  });
  it('weight, bias and running statistics at offsets into a larger storage, and a strided weight', async () => {
    const x = rnd([3, 2, 4, 3], 64), w = rnd([2], 65), b = rnd([2], 66);
    const store = fromRef({ data: Float64Array.from([1, ...w.data, 2, ...b.data, 3]), shape: [7] });
    const wt = store.slice(0, 1, 3), bt = store.slice(0, 4, 6);
    const stats = tensor([8, 0.5, -0.25, 9]), vars = tensor([7, 2, 1.5]);
    const rm = stats.slice(0, 1, 3), rv = vars.slice(0, 1, 3);
    const xt = fromRef(x), s0 = stats.slice(0, 0, 2), s1 = stats.slice(0, 2, 4);
    expectThrows(() => F.batchNorm(xt, s0, s1), ValueError, 'must not share storage');
    await expectTensorClose(F.batchNorm(fromRef(x), rm, rv, { weight: wt, bias: bt }), RC.batchNorm(x, [0.5, -0.25], [2, 1.5], w, b), 1e-5, 1e-5);
    F.batchNorm(fromRef(x), rm, rv, { weight: wt, bias: bt, training: true, momentum: 0.5 }).dispose();
    const { mean } = RC.channelStats(x);
    const got = await stats.toArray();
    expect([got[0], got[3], (await vars.toArray())[0]]).toEqual([8, 9, 7]);
    expect(Math.abs(got[1] - (0.25 + 0.5 * mean[0]))).toBeLessThan(1e-5);
    const wStrided = fromRef({ data: Float64Array.from([w.data[0], 0, w.data[1]]), shape: [3] }).slice(0, 0, 3, 2);
    await expectTensorClose(F.batchNorm(fromRef(x), null, null, { weight: wStrided, bias: fromRef(b), training: true }), RC.batchNormTrain(x, w, b), 2e-5, 1e-4);
  });

  it('bad input', () => {
    const x = zeros([2, 3, 4]), one = zeros([1, 3]), r3 = ones([3]), r4 = ones([4]);
    expectThrows(() => F.batchNorm(x, r4, r4), ShapeError, 'runningMean [4] must be [3]');
    expectThrows(() => F.batchNorm(one, null, null, { training: true }), ValueError, 'more than 1 value per channel');
    expectThrows(() => F.batchNorm(x, null, null), ValueError, 'training must be true');
    expectThrows(() => F.batchNorm(x, r3, r3, { momentum: 2 }), ValueError, 'momentum');
    expectThrows(() => F.batchNorm(x, r3, null), ValueError, 'both runningMean and runningVar');
    for (const t of [x, one, r3, r4]) t.dispose();
  });
});
