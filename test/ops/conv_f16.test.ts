// f16 convolution and pooling: computed in f32 on the exact widenings of the f16 inputs and rounded once, so every
// output (and every gradient, which comes back to an f16 leaf in f16) is one of the two binary16 values bracketing the
// float64 result on the same (rounded) inputs; max pooling is exact. Mixed f16 / f32 operands are a DTypeError.
import { describe, expect, it } from 'vitest';
import { F, DTypeError, type Tensor, memory, tensor } from '../../src/index.node';
import * as RC from '../reference/conv';
import type { Ref } from '../reference/core';
import { halfNeighbours, nearestHalf } from '../reference/half';
import { expectThrows, fromRef, rnd } from '../helpers';

/** rnd rounded to binary16 (the values an f16 tensor holds). */
function rndHalf(shape: number[], seed: number, scale = 1): Ref {
  const r = rnd(shape, seed);
  return { data: r.data.map((v) => nearestHalf(v * scale)), shape: r.shape };
}

const half = (r: Ref, requiresGrad = false): Tensor => tensor(Float32Array.from(r.data), { shape: r.shape, dtype: 'f16', requiresGrad });

/** Every value of t is f16 and one of the binary16 neighbours of the float64 value. */
async function expectRoundedOnce(t: Tensor, want: Ref, what: string): Promise<void> {
  expect(t.dtype, what).toBe('f16');
  expect(t.shape, what).toEqual(want.shape);
  const got = await t.toArray();
  for (let i = 0; i < want.data.length; i++) {
    const [lo, hi] = halfNeighbours(want.data[i]);
    if (!(got[i] === lo || got[i] === hi)) expect.fail(`${what}[${i}]: ${got[i]} is not a rounding of ${want.data[i]} (${lo} or ${hi})`);
  }
}

describe('f16 convolution', () => {
  it('conv2d: forward, input, weight and bias gradients rounded once from f32 (strides, padding, groups)', async () => {
    const before = memory().buffers;
    const opts: F.ConvOptions = { stride: [2, 1], padding: 1, groups: 2 };
    const ref: RC.ConvRefOptions = { stride: [2, 1], padding: [1, 1], groups: 2 };
    const x = rndHalf([2, 4, 7, 6], 1), w = rndHalf([6, 2, 3, 3], 2), b = rndHalf([6], 3);
    const xt = half(x, true), wt = half(w, true), bt = half(b, true);
    const y = F.conv2d(xt, wt, bt, opts);
    await expectRoundedOnce(y, RC.conv2d(x, w, b, ref), 'y');
    const g = rndHalf(y.shape, 4);
    const gt = half(g);
    y.backward(gt);
    const want = RC.conv2dGrads(x, w, g, ref);
    await expectRoundedOnce(xt.grad!, want.dx, 'dx');
    await expectRoundedOnce(wt.grad!, want.dw, 'dw');
    const db = new Float64Array(6);
    g.data.forEach((v, i) => (db[Math.floor(i / (y.shape[2] * y.shape[3])) % 6] += v));
    await expectRoundedOnce(bt.grad!, { data: db, shape: [6] }, 'dbias');
    for (const t of [y, gt, xt, wt, bt]) t.dispose();
    expect(memory().buffers).toBe(before);
  });

  it('conv1d and unbatched conv2d take f16', async () => {
    const x = rndHalf([2, 3, 11], 5), w = rndHalf([4, 3, 3], 6);
    const y = F.conv1d(half(x), half(w), null, { padding: 1 });
    await expectRoundedOnce(y, RC.conv1d(x, w, null, { padding: 1 }), 'conv1d');
    const x3 = rndHalf([3, 5, 6], 7), w3 = rndHalf([2, 3, 3, 3], 8);
    const y3 = F.conv2d(half(x3), half(w3));
    const want = RC.conv2d({ data: x3.data, shape: [1, 3, 5, 6] }, w3, null, {});
    await expectRoundedOnce(y3, { data: want.data, shape: [2, 3, 4] }, 'unbatched');
  });

  it('mixed f16 and f32 operands are a DTypeError naming both, before any GPU work', () => {
    const x = half(rndHalf([1, 2, 5, 5], 9)), w32 = fromRef(rnd([3, 2, 3, 3], 10)), w16 = half(rndHalf([3, 2, 3, 3], 10));
    const b32 = fromRef(rnd([3], 11));
    expectThrows(() => F.conv2d(x, w32), DTypeError, 'input is f16 but weight is f32');
    expectThrows(() => F.conv2d(x, w16, b32), DTypeError, 'input is f16 but bias is f32');
    for (const t of [x, w32, w16, b32]) t.dispose();
  });
});

describe('f16 pooling', () => {
  it('maxPool2d is exact in f16, forward and backward', async () => {
    const x = rndHalf([2, 3, 7, 8], 12);
    const xt = half(x, true);
    const opts = { kernel: [3, 3] as [number, number], stride: [2, 2] as [number, number], padding: [1, 1] as [number, number] };
    const y = F.maxPool2d(xt, 3, { stride: 2, padding: 1 });
    const want = RC.maxPool2d(x, opts);
    expect(y.dtype).toBe('f16');
    expect(Array.from(await y.toArray())).toEqual(Array.from(want.values.data));
    // Overlapping windows: an input that is the maximum of two windows receives the sum of both gradients.
    const g = rndHalf(y.shape, 13);
    y.backward(half(g));
    const dx = new Float64Array(x.data.length);
    const [N, C, H, W] = x.shape, plane = want.values.shape[2] * want.values.shape[3];
    want.indices.forEach((at, i) => { if (at >= 0) dx[Math.floor(i / plane) * H * W + at] += g.data[i]; });
    void N; void C;
    await expectRoundedOnce(xt.grad!, { data: dx, shape: x.shape }, 'maxPool2d dx');
  });

  it('avgPool2d and adaptiveAvgPool2d average in f32 and round once, forward and backward', async () => {
    const x = rndHalf([2, 3, 7, 9], 14);
    const xt = half(x, true);
    const y = F.avgPool2d(xt, 3, { stride: 2, padding: 1 });
    await expectRoundedOnce(y, RC.avgPool2d(x, { kernel: [3, 3], stride: [2, 2], padding: [1, 1] }), 'avgPool2d');
    const a = F.adaptiveAvgPool2d(xt, [3, 4]);
    await expectRoundedOnce(a, RC.adaptiveAvgPool2d(x, [3, 4]), 'adaptiveAvgPool2d');
    // The gradient of sum(adaptiveAvgPool2d(x)): each input gets 1 / (window size) per window covering it.
    a.backward(half({ data: new Float64Array(a.size).fill(1), shape: a.shape }));
    const want = new Float64Array(x.data.length);
    const [N, C, H, W] = x.shape;
    for (let p = 0; p < N * C; p++) for (let oh = 0; oh < 3; oh++) for (let ow = 0; ow < 4; ow++) {
      const h0 = Math.floor((oh * H) / 3), h1 = Math.ceil(((oh + 1) * H) / 3), w0 = Math.floor((ow * W) / 4), w1 = Math.ceil(((ow + 1) * W) / 4);
      for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) want[(p * H + h) * W + w] += 1 / ((h1 - h0) * (w1 - w0));
    }
    await expectRoundedOnce(xt.grad!, { data: want, shape: x.shape }, 'adaptiveAvgPool2d dx');
  });
});
