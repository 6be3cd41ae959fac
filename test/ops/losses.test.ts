import { describe, expect, it } from 'vitest';
import { F, tensor, memory, DTypeError, IndexError, ShapeError, ValueError, type Tensor } from '../../src/index';
import * as R from '../reference/ops';
import { ref, randArr, maxAbsDiff, allClose } from '../reference/core';
import { numericGrad, checkGrad } from '../reference/gradcheck';

const f32 = (r: { data: ArrayLike<number>; shape: readonly number[] }, requiresGrad = false) =>
  tensor(Float32Array.from(r.data), { shape: [...r.shape], requiresGrad });

async function gradOf(t: Tensor): Promise<Float32Array> {
  return (await t.grad!.toArray()) as Float32Array;
}

describe('F.crossEntropy', () => {
  const cases: { N: number; C: number; opts: R.CrossEntropyOptions; targets: number[] }[] = [
    { N: 4, C: 3, opts: {}, targets: [0, 2, 1, 2] },
    { N: 5, C: 7, opts: { reduction: 'sum' }, targets: [6, 0, 3, 3, 1] },
    { N: 3, C: 5, opts: { reduction: 'none' }, targets: [4, 0, 2] },
    { N: 6, C: 4, opts: { ignoreIndex: -100 }, targets: [1, -100, 3, 0, -100, 2] },
    { N: 4, C: 3, opts: { labelSmoothing: 0.1 }, targets: [0, 2, 1, 2] },
    { N: 5, C: 6, opts: { labelSmoothing: 0.2, ignoreIndex: 1, reduction: 'mean' }, targets: [1, 0, 5, 1, 3] },
    { N: 1, C: 1, opts: {}, targets: [0] },
    { N: 3, C: 131, opts: { labelSmoothing: 0.05 }, targets: [130, 0, 77] },
  ];
  for (const [ci, c] of cases.entries()) {
    it(`matches the float64 reference and finite differences: N=${c.N} C=${c.C} ${JSON.stringify(c.opts)}`, async () => {
      const base = memory().buffers;
      const xr = randArr([c.N, c.C], 100 + ci, -3, 3);
      const x = f32(xr, true);
      const t = tensor(c.targets, { dtype: 'i32' });
      const loss = F.crossEntropy(x, t, c.opts);
      const expected = R.crossEntropy(xr, c.targets, c.opts);
      expect(loss.shape).toEqual(expected.shape);
      const got = await loss.toArray();
      expect(allClose(got, expected, { atol: 1e-5, rtol: 1e-5 }).ok).toBe(true);
      // Backward with a random upstream gradient for 'none', the plain scalar otherwise.
      const gr = c.opts.reduction === 'none' ? randArr([c.N], 7) : null;
      const g = gr ? f32(gr) : null;
      loss.backward(g ?? undefined);
      const numeric = numericGrad(([xs]) => {
        const l = R.crossEntropy(ref(xs, [c.N, c.C]), c.targets, c.opts).data;
        return gr ? l.reduce((a, v, i) => a + v * gr.data[i], 0) : l[0];
      }, [xr.data]);
      const res = checkGrad([await gradOf(x)], numeric, { atol: 1e-5, rtol: 1e-4 });
      expect(res.ok, res.message).toBe(true);
      // The reference path (simpler ops, autograd backward) agrees with the fused kernel.
      const x2 = f32(xr, true);
      const lossRef = F.crossEntropy(x2, t, { ...c.opts, impl: 'reference' });
      expect(allClose(await lossRef.toArray(), got, { atol: 1e-5, rtol: 1e-5 }).ok).toBe(true);
      lossRef.backward(g ?? undefined);
      expect(allClose(await gradOf(x2), await gradOf(x), { atol: 1e-6, rtol: 1e-4 }).ok).toBe(true);
      for (const v of [x, x2, t, loss, lossRef, g]) v?.dispose();
      expect(memory().buffers).toBe(base);
    });
  }

  it('accepts [N, C, d] logits with [N, d] targets (class dim second, as PyTorch)', async () => {
    const N = 2, C = 3, D = 4;
    const xr = randArr([N, C, D], 5, -2, 2);
    const tv = [0, 1, 2, 1, 2, 2, 0, -100];
    const x = f32(xr, true);
    const t = tensor(tv, { dtype: 'i32', shape: [N, D] });
    // Reference: move C last and flatten.
    const moved = new Float64Array(N * D * C);
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let d = 0; d < D; d++) moved[(n * D + d) * C + c] = xr.data[(n * C + c) * D + d];
    const expected = R.crossEntropy(ref(moved, [N * D, C]), tv);
    const loss = F.crossEntropy(x, t);
    expect(maxAbsDiff(await loss.toArray(), expected)).toBeLessThan(1e-5);
    loss.backward();
    const numeric = numericGrad(([xs]) => {
      const m = new Float64Array(N * D * C);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let d = 0; d < D; d++) m[(n * D + d) * C + c] = xs[(n * C + c) * D + d];
      return R.crossEntropy(ref(m, [N * D, C]), tv).data[0];
    }, [xr.data]);
    expect(checkGrad([await gradOf(x)], numeric, { atol: 1e-5, rtol: 1e-4 }).ok).toBe(true);
    const none = F.crossEntropy(x, t, { reduction: 'none' });
    expect(none.shape).toEqual([N, D]);
    for (const v of [x, t, loss, none]) v.dispose();
  });

  it('is stable for large logits and validates its arguments', async () => {
    const x = tensor([[1000, 0, -1000], [50, 50, 50]]);
    const t = tensor([0, 1], { dtype: 'i32' });
    const l = await F.crossEntropy(x, t, { reduction: 'none' }).toArray();
    expect(l[0]).toBeCloseTo(0, 5);
    expect(l[1]).toBeCloseTo(Math.log(3), 5);
    expect(() => F.crossEntropy(x, tensor([0, 1]))).toThrow(DTypeError);
    expect(() => F.crossEntropy(x, tensor([0, 1, 2], { dtype: 'i32' }))).toThrow(ShapeError);
    expect(() => F.crossEntropy(x, t, { labelSmoothing: 2 })).toThrow(ValueError);
    expect(() => F.crossEntropy(x, t, { reduction: 'avg' as any })).toThrow(/reduction/);
    // A target outside [0, C) is an IndexError at the next sync (the kernel's device-side check); the loss is NaN.
    const bad = F.crossEntropy(x, tensor([0, 3], { dtype: 'i32' }));
    await expect(bad.item()).rejects.toBeInstanceOf(IndexError);
    expect(Number.isNaN(await bad.item())).toBe(true);
  });
});

describe('F.mseLoss', () => {
  for (const reduction of ['mean', 'sum', 'none'] as const) {
    it(`reduction ${reduction}: forward and gradients of both inputs`, async () => {
      const ar = randArr([3, 5], 1), br = randArr([3, 5], 2);
      const a = f32(ar, true), b = f32(br, true);
      const loss = F.mseLoss(a, b, { reduction });
      expect(maxAbsDiff(await loss.toArray(), R.mseLoss(ar, br, reduction))).toBeLessThan(1e-6);
      const w = reduction === 'none' ? randArr([3, 5], 3) : null;
      const wt = w ? f32(w) : null;
      loss.backward(wt ?? undefined);
      const numeric = numericGrad(([xa, xb]) => {
        const l = R.mseLoss(ref(xa, [3, 5]), ref(xb, [3, 5]), reduction).data;
        return w ? l.reduce((acc, v, i) => acc + v * w.data[i], 0) : l[0];
      }, [ar.data, br.data]);
      const res = checkGrad([await gradOf(a), await gradOf(b)], numeric, { atol: 1e-5, rtol: 1e-4 });
      expect(res.ok, res.message).toBe(true);
      for (const v of [a, b, loss, wt]) v?.dispose();
    });
  }
});

describe('F.binaryCrossEntropyWithLogits', () => {
  const variants: [string, R.BceWithLogitsOptions & { w?: boolean; pw?: number }][] = [
    ['mean', {}],
    ['sum + weight', { reduction: 'sum', w: true }],
    ['posWeight 3', { pw: 3 }],
  ];
  for (const [name, v] of variants) {
    it(`${name}: stable forward and gradients w.r.t. logits and targets`, async () => {
      const xr = randArr([4, 3], 11, -30, 30);
      xr.data[0] = 0; // the kink of |x| must not break the gradient
      const yr = randArr([4, 3], 12, 0, 1);
      const wr = randArr([4, 3], 13, 0.5, 2);
      const x = f32(xr, true), y = f32(yr, true);
      const wt = v.w ? f32(wr) : undefined;
      const opts = { reduction: v.reduction, weight: wt, posWeight: v.pw };
      const rOpts = { reduction: v.reduction, weight: v.w ? wr : undefined, posWeight: v.pw };
      const loss = F.binaryCrossEntropyWithLogits(x, y, opts);
      const exp = R.binaryCrossEntropyWithLogits(xr, yr, rOpts);
      expect(allClose(await loss.toArray(), exp, { atol: 1e-4, rtol: 1e-5 }).ok).toBe(true);
      loss.backward();
      const numeric = numericGrad(([xs, ys]) => R.binaryCrossEntropyWithLogits(ref(xs, [4, 3]), ref(ys, [4, 3]), rOpts).data[0], [xr.data, yr.data]);
      const res = checkGrad([await gradOf(x), await gradOf(y)], numeric, { atol: 1e-5, rtol: 1e-4 });
      expect(res.ok, res.message).toBe(true);
      for (const t of [x, y, loss, wt]) t?.dispose();
    });
  }
  it('never overflows for huge logits', async () => {
    const x = tensor([1e4, -1e4, 0]);
    const y = tensor([0, 1, 1]);
    const l = await F.binaryCrossEntropyWithLogits(x, y, { reduction: 'none' }).toArray();
    expect(Array.from(l).map((v) => Math.round(v * 1e4) / 1e4)).toEqual([1e4, 1e4, Math.round(Math.log(2) * 1e4) / 1e4]);
  });
});

describe('crossEntropy reads its inputs in place', () => {
  it('logits and targets as permuted, offset views, every reduction, forward and gradient', async () => {
    const { checkGradVsRef, rnd } = await import('../helpers');
    const { permute: refPermute } = await import('../reference/core');
    // logits [3, 4, 5] as a view of a [5, 4, 6] block: permute to [6, 4, 5] ([N, C, d] = [N, C, 5]) and drop row 0.
    const base = rnd([5, 4, 6], 41, -3, 3);
    const view = (x: Tensor) => (x.permute([2, 1, 0]).slice(0, 1, 4) as Tensor);
    const refView = (r: ReturnType<typeof rnd>) => {
      const p = refPermute(r, [2, 1, 0]); // [6, 4, 5]
      return { data: p.data.slice(4 * 5, 4 * 4 * 5), shape: [3, 4, 5] };
    };
    // targets [3, 5] taken from a transposed [5, 4] i32 block, offset by one column.
    const tv = [0, 3, 1, 2, -100, 3, 2, 0, 1, 1, 2, 3, 0, 3, 2, 1, 0, 2, 3, 1];
    const tBlock = tensor(tv, { dtype: 'i32', shape: [5, 4] });
    const tView = tBlock.transpose(0, 1).slice(0, 1, 4); // [3, 5]
    const tHost = (await tView.toArray()) as Int32Array;
    // Reference: class dim last, flattened rows.
    const flat = (x: { data: Float64Array; shape: number[] }) => {
      const m = new Float64Array(3 * 5 * 4);
      for (let n = 0; n < 3; n++) for (let c = 0; c < 4; c++) for (let d = 0; d < 5; d++) m[(n * 5 + d) * 4 + c] = x.data[(n * 4 + c) * 5 + d];
      return ref(m, [15, 4]);
    };
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      await checkGradVsRef(
        (x) => F.crossEntropy(view(x), tView, { reduction }),
        (x) => {
          const r = R.crossEntropy(flat(refView(x)), tHost, { reduction });
          return reduction === 'none' ? { data: r.data, shape: [3, 5] } : r;
        },
        [base],
        { label: `crossEntropy ${reduction}` },
      );
    }
    tView.dispose();
    tBlock.dispose();
  });
});
