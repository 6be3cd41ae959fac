// F.conv2d and F.conv1d: forward against float64 loops over strides, paddings ('same' included), dilations, groups,
// non-square kernels and odd sizes; gradients of input, weight and bias by finite differences; strided views read in
// place; bad input as typed errors before any GPU work; memory back to its baseline.
import { describe, expect, it } from 'vitest';
import { F, ShapeError, ValueError, DTypeError, type Tensor, memory, transpose, zeros } from '../../src/index.node';
import * as RC from '../reference/conv';
import { type Ref, allClose, permute as refPermute } from '../reference/core';
import { numericGrad } from '../reference/gradcheck';
import { checkGradVsRef, expectThrows, expectTensorClose, fromRef, poison, rnd } from '../helpers';

interface Case {
  x: number[];
  w: number[];
  bias: boolean;
  opts: F.ConvOptions;
  ref: RC.ConvRefOptions;
}

const pairOf = (v: number | [number, number] | undefined, d: number): [number, number] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);

function caseOf(x: number[], w: number[], opts: F.ConvOptions = {}, bias = true): Case {
  const stride = pairOf(opts.stride, 1), dilation = pairOf(opts.dilation, 1);
  let padding: [number, number], padEnd: [number, number] | undefined;
  if (opts.padding === 'same') {
    const total = [dilation[0] * (w[2] - 1), dilation[1] * (w[3] - 1)];
    padding = [Math.floor(total[0] / 2), Math.floor(total[1] / 2)];
    padEnd = [total[0] - padding[0], total[1] - padding[1]];
  } else padding = opts.padding === 'valid' ? [0, 0] : pairOf(opts.padding as number | [number, number] | undefined, 0);
  return { x, w, bias, opts, ref: { stride, padding, padEnd, dilation, groups: opts.groups } };
}

const CASES: Case[] = [
  caseOf([1, 1, 5, 5], [1, 1, 3, 3]),
  caseOf([2, 3, 7, 9], [4, 3, 3, 3], { padding: 1 }),
  caseOf([2, 3, 8, 7], [5, 3, 2, 3], { stride: [2, 1], padding: [1, 0] }),
  caseOf([1, 2, 9, 11], [3, 2, 3, 2], { dilation: [2, 3], padding: [2, 1] }),
  caseOf([2, 4, 6, 5], [6, 2, 3, 3], { groups: 2, padding: 1, stride: 2 }, false),
  caseOf([1, 6, 5, 7], [6, 1, 3, 3], { groups: 6, padding: 'same' }),
  caseOf([2, 3, 6, 7], [4, 3, 2, 4], { padding: 'same', dilation: [1, 2] }),
  caseOf([3, 5, 13, 3], [7, 5, 1, 1], { stride: 3 }),
  caseOf([1, 3, 6, 6], [2, 3, 6, 6], { padding: 'valid' }),
  caseOf([2, 70, 9, 9], [67, 70, 3, 3], { padding: 1 }),
];

const label = (c: Case) => `x ${JSON.stringify(c.x)} w ${JSON.stringify(c.w)} ${JSON.stringify(c.opts)}${c.bias ? '' : ' no bias'}`;

describe('F.conv2d', () => {
  for (const c of CASES) {
    it(`forward ${label(c)}`, async () => {
      const before = memory().buffers;
      const x = rnd(c.x, 1), w = rnd(c.w, 2), b = c.bias ? rnd([c.w[0]], 3) : null;
      const want = RC.conv2d(x, w, b, c.ref);
      poison([want.shape]);
      const xt = fromRef(x), wt = fromRef(w), bt = b ? fromRef(b) : null;
      const y = F.conv2d(xt, wt, bt, c.opts);
      await expectTensorClose(y, want, 1e-4, 1e-4, label(c));
      for (const t of [y, xt, wt, bt]) t?.dispose();
      expect(memory().buffers).toBe(before);
    });
  }

  for (const c of CASES.filter((k) => k.x[1] < 10)) {
    it(`gradients ${label(c)}`, async () => {
      const inputs = [rnd(c.x, 4), rnd(c.w, 5), ...(c.bias ? [rnd([c.w[0]], 6)] : [])];
      await checkGradVsRef(
        (x, w, b) => F.conv2d(x, w, b ?? null, c.opts),
        (x, w, b) => RC.conv2d(x, w, b ?? null, c.ref),
        inputs,
        { label: label(c) },
      );
    });
  }

  it('reads strided views in place (a permuted input and a transposed weight)', async () => {
    const x = rnd([2, 6, 5, 3], 7); // stored [N, H, W, C]-like, viewed as NCHW
    const w = rnd([4, 3, 3, 3], 8);
    const xt = fromRef(x).permute([0, 3, 1, 2]); // [2, 3, 6, 5]
    const wt = transpose(fromRef(w), 2, 3); // [4, 3, 3, 3] transposed taps
    const want = RC.conv2d(refPermute(x, [0, 3, 1, 2]), refPermute(w, [0, 1, 3, 2]), null, { padding: [1, 1] });
    await expectTensorClose(F.conv2d(xt, wt, null, { padding: 1 }), want, 1e-4, 1e-4);
  });

  it('reads weight and bias at an offset into a larger storage (as an optimizer arena holds them)', async () => {
    const w = rnd([4, 3, 3, 3], 14), b = rnd([4], 15), x = rnd([2, 3, 5, 6], 16);
    const store = fromRef({ data: Float64Array.from([9, 9, 9, ...w.data, 7, ...b.data, 5]), shape: [3 + 108 + 1 + 4 + 1] });
    const wt = store.slice(0, 3, 111).reshape([4, 3, 3, 3]);
    const bt = store.slice(0, 112, 116);
    await expectTensorClose(F.conv2d(fromRef(x), wt, bt, { padding: 1 }), RC.conv2d(x, w, b, { padding: [1, 1] }), 1e-4, 1e-4);
    const bStrided = fromRef({ data: Float64Array.from([b.data[0], 0, b.data[1], 0, b.data[2], 0, b.data[3], 0]), shape: [8] }).slice(0, 0, 8, 2);
    await expectTensorClose(F.conv2d(fromRef(x), fromRef(w), bStrided), RC.conv2d(x, w, b, {}), 1e-4, 1e-4);
  });

  it('takes unbatched [C, H, W] input', async () => {
    const x = rnd([3, 5, 6], 9), w = rnd([2, 3, 3, 3], 10);
    const want = RC.conv2d({ data: x.data, shape: [1, 3, 5, 6] }, w, null, {});
    const y = F.conv2d(fromRef(x), fromRef(w));
    await expectTensorClose(y, { data: want.data, shape: [2, 3, 4] }, 1e-4, 1e-4);
  });

  it('bad input: typed errors naming the shapes, before any GPU work', () => {
    const x = zeros([2, 3, 8, 8]), w = zeros([4, 3, 3, 3]), w2 = zeros([4, 2, 3, 3]), wg = zeros([5, 1, 3, 3]);
    const b5 = zeros([5]), xi = zeros([2, 3, 8, 8], { dtype: 'i32' }), x2 = zeros([8, 8]), big = zeros([4, 3, 9, 9]);
    expectThrows(() => F.conv2d(x, w2), ShapeError, 'input [2,3,8,8] has 3 channels', 'weight [4,2,3,3]');
    expectThrows(() => F.conv2d(x, wg, null, { groups: 3 }), ShapeError, 'groups=3 does not divide the 5 output channels');
    expectThrows(() => F.conv2d(x, w2, null, { groups: 2 }), ShapeError, '[2,3,8,8]');
    expectThrows(() => F.conv2d(x, big), ShapeError, 'larger than the padded input', '[4,3,9,9]');
    expectThrows(() => F.conv2d(x, w, b5), ShapeError, 'bias [5]');
    expectThrows(() => F.conv2d(xi, w), DTypeError);
    expectThrows(() => F.conv2d(x2, w), ShapeError, '[8,8]');
    expectThrows(() => F.conv2d(x, w, null, { stride: 0 }), ValueError, 'stride');
    expectThrows(() => F.conv2d(x, w, null, { padding: -1 }), ValueError, 'padding');
    expectThrows(() => F.conv2d(x, w, null, { padding: 'full' as 'same' }), ValueError, 'padding');
    expectThrows(() => F.conv2d(x, w, null, { padding: 'same', stride: 2 }), ValueError, "'same' needs stride 1");
    expectThrows(() => F.conv2d(x, w, null, { groups: 1.5 }), ValueError, 'groups');
    expectThrows(() => F.conv2d(x, w, null, { strides: 2 } as F.ConvOptions), ValueError, "unknown option 'strides'");
    for (const t of [x, w, w2, wg, b5, xi, x2, big]) t.dispose();
  });
});

/** kiln's dx and dw of sum(conv2d(x, w) * g) against the float64 gradient loops (NaN and infinities matched exactly). */
async function checkGrads(x: Ref, w: Ref, g: Ref, c: Case, tol = 1e-4): Promise<void> {
  const before = memory().buffers;
  const want = RC.conv2dGrads(x, w, g, c.ref);
  const xt = fromRef(x, { requiresGrad: true }), wt = fromRef(w, { requiresGrad: true }), gt = fromRef(g);
  poison([x.shape, w.shape]);
  const y = F.conv2d(xt, wt, null, c.opts);
  expect(y.shape).toEqual(g.shape);
  y.backward(gt);
  for (const [name, t, r] of [['dx', xt, want.dx], ['dw', wt, want.dw]] as [string, Tensor, Ref][]) {
    const got = await t.grad!.toArray();
    const res = allClose(Array.from(got), r.data, { atol: tol, rtol: tol, equalNan: true });
    expect(res.ok, `${label(c)} ${name}: ${res.message}`).toBe(true);
  }
  for (const t of [y, xt, wt, gt]) t.dispose();
  expect(memory().buffers).toBe(before);
}

// Wider layers than finite differences can afford: the weight gradient's one-tap threads (8 or more channels per
// group), threads whose columns straddle two taps, a first layer's single channel (all taps in one thread; its long
// reduction split over the batch, 4 splits of one image), 3 splits of 3, 3 and 1 images, GEMMs small enough for lanes
// (copies of a few threads summing every lanes-th output row), strides, dilations, groups, a 5x5 kernel; checked
// against float64 loops that are themselves checked by finite differences.
const WIDE: Case[] = [
  caseOf([2, 16, 9, 7], [24, 16, 3, 3], { padding: 1 }, false),
  caseOf([3, 12, 8, 9], [20, 12, 3, 3], { padding: 1, stride: 2 }, false),
  caseOf([2, 32, 7, 6], [10, 16, 2, 3], { groups: 2, dilation: [2, 1], padding: [1, 2] }, false),
  caseOf([4, 1, 28, 28], [32, 1, 3, 3], { padding: 1 }, false),
  caseOf([2, 9, 11, 10], [7, 9, 5, 5], { padding: 'same' }, false),
  caseOf([1, 70, 5, 5], [67, 70, 3, 3], { padding: 2, stride: [1, 3] }, false),
  caseOf([7, 3, 10, 12], [4, 3, 3, 3], { padding: 1 }, false),
  // A small first layer: its whole 8 x 9 GEMM fits in 2 x 2 threads, so each workgroup runs 8 lanes (8 x 5 slices).
  caseOf([5, 1, 28, 28], [8, 1, 3, 3], { padding: 1 }, false),
  caseOf([3, 2, 9, 8], [6, 2, 2, 2], { stride: 2, padding: 1 }, false),
];

describe('F.conv2d gradients against float64 loops', () => {
  it('the float64 gradient loops match central differences of the float64 convolution', () => {
    const c = caseOf([2, 4, 5, 6], [6, 2, 3, 2], { groups: 2, padding: [1, 2], stride: [2, 1], dilation: [1, 2] });
    const x = rnd(c.x, 21), w = rnd(c.w, 22), g = rnd(RC.conv2d(x, w, null, c.ref).shape, 23);
    const f = ([xd, wd]: Float64Array[]) => {
      const y = RC.conv2d({ data: xd, shape: c.x }, { data: wd, shape: c.w }, null, c.ref);
      return y.data.reduce((a, v, i) => a + v * g.data[i], 0);
    };
    const [nx, nw] = numericGrad(f, [x.data, w.data], 1e-6);
    const want = RC.conv2dGrads(x, w, g, c.ref);
    expect(allClose(want.dx.data, nx, { atol: 1e-7, rtol: 1e-7 }).ok).toBe(true);
    expect(allClose(want.dw.data, nw, { atol: 1e-7, rtol: 1e-7 }).ok).toBe(true);
  });

  for (const c of WIDE) {
    it(`dx and dw ${label(c)}`, async () => {
      const x = rnd(c.x, 31), w = rnd(c.w, 32);
      const g = rnd(RC.conv2d(x, w, null, c.ref).shape, 33);
      await checkGrads(x, w, g, c);
    });
  }

  it('an empty batch and a layer without input channels keep their shapes; their empty sums give zeros (and the bias)', async () => {
    const before = memory().buffers;
    const x0 = fromRef(rnd([0, 3, 6, 5], 51), { requiresGrad: true }), w = fromRef(rnd([4, 3, 3, 3], 52), { requiresGrad: true });
    const y0 = F.conv2d(x0, w, null, { padding: 1 });
    expect(y0.shape).toEqual([0, 4, 6, 5]);
    const s0 = y0.sum();
    s0.backward();
    expect(x0.grad!.shape).toEqual([0, 3, 6, 5]);
    expect(Array.from(await w.grad!.toArray())).toEqual(new Array(108).fill(0));
    const xc = fromRef({ data: new Float64Array(0), shape: [2, 0, 5, 5] }, { requiresGrad: true });
    const wc = fromRef({ data: new Float64Array(0), shape: [3, 0, 3, 3] }, { requiresGrad: true }), b = fromRef({ data: Float64Array.from([1, -2, 0.5]), shape: [3] });
    const yc = F.conv2d(xc, wc, b, { padding: 1 });
    expect(yc.shape).toEqual([2, 3, 5, 5]);
    expect(Array.from(await yc.toArray())).toEqual(Array.from({ length: 150 }, (_, i) => [1, -2, 0.5][Math.floor(i / 25) % 3]));
    const sc = yc.sum();
    sc.backward();
    expect(wc.grad!.shape).toEqual([3, 0, 3, 3]);
    expect(xc.grad!.shape).toEqual([2, 0, 5, 5]);
    for (const t of [x0, w, y0, s0, xc, wc, b, yc, sc]) t.dispose();
    expect(memory().buffers).toBe(before);
  });

  it('NaN and infinities reach exactly the outputs and gradients whose sums read them; padding meets no infinite weight', async () => {
    const c = caseOf([2, 3, 6, 7], [4, 3, 3, 3], { padding: 1, stride: [1, 2] }, false);
    const x = rnd(c.x, 41), w = rnd(c.w, 42);
    x.data[(0 * 3 + 1) * 42 + 2 * 7 + 3] = NaN;
    x.data[(1 * 3 + 2) * 42 + 5 * 7 + 0] = Infinity;
    x.data[(1 * 3 + 0) * 42 + 0 * 7 + 6] = -Infinity;
    // A corner tap: at the top-left border outputs it falls on padding, where it must not make 0 * inf = NaN.
    w.data[(2 * 3 + 1) * 9 + 0] = Infinity;
    const want = RC.conv2d(x, w, null, c.ref);
    const xt = fromRef(x), wt = fromRef(w);
    const y = F.conv2d(xt, wt, null, c.opts);
    const got = await y.toArray();
    const res = allClose(Array.from(got), want.data, { atol: 1e-4, rtol: 1e-4, equalNan: true });
    expect(res.ok, res.message).toBe(true);
    expect(want.data.some((v) => Number.isNaN(v)) && want.data.some((v) => Number.isFinite(v))).toBe(true);
    for (const t of [y, xt, wt]) t.dispose();
    const g = rnd(want.shape, 43);
    g.data[5] = Infinity;
    await checkGrads(x, w, g, c);
  });
});

describe('F.conv1d', () => {
  const cases: { x: number[]; w: number[]; opts: F.Conv1dOptions; ref: Parameters<typeof RC.conv1d>[3] }[] = [
    { x: [2, 3, 11], w: [4, 3, 3], opts: { padding: 1 }, ref: { padding: 1 } },
    { x: [1, 4, 17], w: [6, 2, 4], opts: { stride: 3, dilation: 2, groups: 2 }, ref: { stride: 3, dilation: 2, groups: 2 } },
    { x: [2, 2, 9], w: [3, 2, 4], opts: { padding: 'same' }, ref: { padding: 1, padEnd: 2 } },
  ];
  for (const c of cases) {
    it(`forward and gradients x ${JSON.stringify(c.x)} w ${JSON.stringify(c.w)} ${JSON.stringify(c.opts)}`, async () => {
      const x = rnd(c.x, 11), w = rnd(c.w, 12), b = rnd([c.w[0]], 13);
      const y = F.conv1d(fromRef(x), fromRef(w), fromRef(b), c.opts);
      await expectTensorClose(y, RC.conv1d(x, w, b, c.ref), 1e-4, 1e-4);
      await checkGradVsRef((xx, ww, bb) => F.conv1d(xx, ww, bb, c.opts), (xx, ww, bb) => RC.conv1d(xx, ww, bb, c.ref), [x, w, b]);
    });
  }

  it('bad input names the 1-D shapes', () => {
    const x = zeros([2, 3, 5]), w = zeros([4, 2, 3]), wl = zeros([4, 3, 7]), w4 = zeros([4, 3, 3, 3]);
    expectThrows(() => F.conv1d(x, w), ShapeError, 'input [2,3,5] has 3 channels', 'weight [4,2,3]');
    expectThrows(() => F.conv1d(x, wl), ShapeError, 'larger than the padded input', '[4,3,7]');
    expectThrows(() => F.conv1d(x, w4), ShapeError, 'weight must be');
    for (const t of [x, w, wl, w4]) t.dispose();
  });
});
