// Ops beyond the first set, group 1: silu, erf, triu/tril, maskedFill, var/std, logsumexp, all/any, split/chunk,
// flip, repeat, bmm and the new Tensor methods, against float64 references, finite differences, odd shapes and NaN/inf.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import * as M from '../reference/more_ops';
import { ref } from '../reference/core';
import { checkGradVsRef, expectThrows, expectTensorClose as closeNoNan, fromRef, poison, rnd } from '../helpers';
import { type Ref, allClose } from '../reference/core';

/** expectTensorClose with NaN in both places counting as a match (these ops produce NaN on purpose). */
async function expectTensorClose(t: K.Tensor, want: Ref, atol = 1e-5, rtol = 1e-5, label = ''): Promise<void> {
  expect(t.shape, `${label} shape`).toEqual(want.shape);
  const r = allClose(Array.from(await t.toArray()), want.data, { atol, rtol, equalNan: true });
  expect(r.ok, `${label} ${r.message}`).toBe(true);
}
void closeNoNan;

const shapes = [[1], [7], [3, 5], [2, 13, 3], [1, 1, 1], [4, 67]];

describe('silu and erf', () => {
  it('forward against float64, with NaN and +-inf', async () => {
    for (const [si, shape] of shapes.entries()) {
      const x = rnd(shape, 1 + si, -6, 6);
      const xt = fromRef(x);
      poison([shape]);
      await expectTensorClose(K.silu(xt), M.silu(x), 1e-6, 1e-5, `silu ${shape}`);
      await expectTensorClose(K.erf(xt), M.erf(x), 3e-7, 1e-6, `erf ${shape}`);
      await expectTensorClose(xt.erf(), M.erf(x), 3e-7, 1e-6, `x.erf() ${shape}`);
      await expectTensorClose(K.F.silu(xt), M.silu(x), 1e-6, 1e-5, `F.silu ${shape}`);
      xt.dispose();
    }
    const special = K.tensor([NaN, Infinity, -Infinity, 0, -0, 1e30, -1e30]);
    // The sign of a zero is not compared: lavapipe's compiler does not preserve it.
    const unsign = (a: ArrayLike<number>) => Array.from(a, (v) => v + 0);
    expect(unsign(await K.silu(special).toArray())).toEqual([NaN, Infinity, 0, 0, 0, Math.fround(1e30), 0]);
    expect(unsign(await K.erf(special).toArray())).toEqual([NaN, 1, -1, 0, 0, 1, -1]);
  });

  it('gradients against finite differences', async () => {
    for (const [si, shape] of [[1], [5, 7], [3, 1, 13]].entries()) {
      await checkGradVsRef((x) => K.silu(x), M.silu, [rnd(shape, 10 + si, -4, 4)], { label: `silu ${shape}` });
      await checkGradVsRef((x) => K.erf(x), M.erf, [rnd(shape, 20 + si, -2, 2)], { label: `erf ${shape}` });
    }
  });

  it('gradients at NaN and infinities are finite limits or NaN, as PyTorch', async () => {
    const x = K.tensor([NaN, Infinity, -Infinity, 0], { requiresGrad: true });
    K.sum(K.silu(x)).backward();
    const g = Array.from(await x.grad!.toArray());
    expect(g[0]).toBeNaN();
    expect(g.slice(1)).toEqual([1, 0, 0.5]);
    const y = K.tensor([NaN, Infinity, -Infinity, 0], { requiresGrad: true });
    K.sum(K.erf(y)).backward();
    const gy = Array.from(await y.grad!.toArray());
    expect(gy[0]).toBeNaN();
    expect(gy.slice(1, 3)).toEqual([0, 0]);
    expect(gy[3]).toBeCloseTo(2 / Math.sqrt(Math.PI), 6);
  });

  it('refuses non-float input before any work', () => {
    const xi = K.tensor([1, 2], { dtype: 'i32' });
    expectThrows(() => K.silu(xi), K.DTypeError, 'silu');
    expectThrows(() => K.erf(xi), K.DTypeError, 'erf');
    xi.dispose();
  });
});

describe('triu, tril and maskedFill', () => {
  it('triangles of batched, odd and non-square matrices for several diagonals', async () => {
    for (const [si, shape] of [[1, 1], [3, 5], [7, 2], [2, 5, 5], [2, 3, 17, 11]].entries()) {
      const x = rnd(shape, 30 + si);
      const xt = fromRef(x);
      for (const diag of [0, 1, -1, 3, -20, 20]) {
        poison([shape]);
        await expectTensorClose(K.triu(xt, diag), M.triangle(x, diag, true), 0, 0, `triu ${shape} ${diag}`);
        await expectTensorClose(xt.tril(diag), M.triangle(x, diag, false), 0, 0, `tril ${shape} ${diag}`);
      }
      xt.dispose();
    }
    const xi = K.tensor([[1, 2], [3, 4]], { dtype: 'i32' });
    expect(Array.from(await K.triu(xi).toArray())).toEqual([1, 2, 0, 4]);
    const nan = K.tensor([[NaN, NaN], [NaN, NaN]]);
    expect(Array.from(await K.tril(nan).toArray())).toEqual([NaN, 0, NaN, NaN]);
  });

  it('triu/tril gradients', async () => {
    await checkGradVsRef((x) => K.triu(x, 1), (x) => M.triangle(x, 1, true), [rnd([2, 4, 5], 40)]);
    await checkGradVsRef((x) => K.tril(x, -1), (x) => M.triangle(x, -1, false), [rnd([5, 3], 41)]);
  });

  it('maskedFill with a broadcast mask, number and tensor values, gradients to both', async () => {
    const x = rnd([3, 4, 5], 50);
    const maskRef = ref(Array.from({ length: 20 }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0), [4, 5]);
    const xt = fromRef(x);
    const mask = fromRef(maskRef, { dtype: 'bool' });
    await expectTensorClose(K.maskedFill(xt, mask, -Infinity), M.maskedFill(x, maskRef, -Infinity), 0, 0, 'fill -inf');
    await expectTensorClose(xt.maskedFill(mask, 2.5), M.maskedFill(x, maskRef, 2.5), 0, 0, 'method');
    await checkGradVsRef((a) => K.maskedFill(a, mask, 3), (a) => M.maskedFill(a, maskRef, 3), [x]);
    // A 0-d tensor value receives the gradient of the filled places.
    await checkGradVsRef((a, v) => K.maskedFill(a, mask, v), (a, v) => M.maskedFill(a, maskRef, v.data[0]), [x, ref([0.75], [])]);
    const xi = K.tensor([1, 2, 3], { dtype: 'i32' });
    const m1 = K.tensor([true, false, true]);
    expect(Array.from(await K.maskedFill(xi, m1, -7).toArray())).toEqual([-7, 2, -7]);
    xt.dispose();
    mask.dispose();
  });

  it('bad input: typed errors before any work', () => {
    const x = K.tensor([[1, 2], [3, 4]]);
    const v = K.tensor([1, 2]);
    const mf = K.tensor([1, 0]);
    const big = K.tensor([[[true, false]], [[true, true]]]);
    const m = K.tensor([true, false]);
    expectThrows(() => K.triu(v), K.ShapeError, 'triu', '[2]');
    expectThrows(() => K.tril(x, 0.5), K.ValueError, 'diagonal', '0.5');
    expectThrows(() => K.maskedFill(x, mf, 0), K.DTypeError, 'mask must be bool', 'f32');
    expectThrows(() => K.maskedFill(x, big, 0), K.ShapeError, '[2,1,2]', '[2,2]');
    const xi = K.tensor([1], { dtype: 'i32' }), mi = K.tensor([true]);
    expectThrows(() => K.maskedFill(xi, mi, 0.5), K.DTypeError, '0.5');
    expectThrows(() => K.maskedFill(x, m, v), K.ShapeError, '0-d');
    for (const t of [x, v, mf, big, m, xi, mi]) t.dispose();
  });
});

describe('var, std and logsumexp', () => {
  const dimSets = [undefined, 0, -1, [0, 2], [1, 2]] as const;
  it('var and std over dims with corrections and keepdim', async () => {
    for (const [si, shape] of [[3, 7, 13], [1, 5, 2], [2, 130, 3]].entries()) {
      const x = rnd(shape, 60 + si, -3, 3);
      const xt = fromRef(x);
      for (const dims of dimSets) {
        for (const correction of [0, 1, 2]) {
          for (const keepdim of [false, true]) {
            const d = dims === undefined ? undefined : (Array.isArray(dims) ? [...dims] : dims) as number | number[];
            const label = `${shape} dims ${JSON.stringify(dims)} c ${correction} keep ${keepdim}`;
            await expectTensorClose(K.var(xt, d, { correction, keepdim }), M.variance(x, d, correction, keepdim), 1e-5, 1e-4, `var ${label}`);
            await expectTensorClose(xt.std(d, { correction, keepdim }), M.std(x, d, correction, keepdim), 1e-5, 1e-4, `std ${label}`);
          }
        }
      }
      xt.dispose();
    }
    // The keyword form: var(x, { correction }) reduces everything.
    const x = rnd([4, 5], 70);
    await expectTensorClose(K.var(fromRef(x), { correction: 0 }), M.variance(x, undefined, 0), 1e-6, 1e-5, 'var(x, opts)');
    // One element with Bessel's correction: 0 / 0 = NaN (as PyTorch).
    expect(await K.var(K.tensor([3])).item()).toBeNaN();
    expect(await K.std(K.tensor([[NaN, 1]]), 1).item()).toBeNaN();
  });

  it('var and std gradients, and std of a constant has zero gradient', async () => {
    await checkGradVsRef((x) => K.var(x, 1), (x) => M.variance(x, 1), [rnd([3, 7], 71)]);
    await checkGradVsRef((x) => K.var(x, [0, 2], { correction: 0, keepdim: true }), (x) => M.variance(x, [0, 2], 0, true), [rnd([2, 3, 5], 72)]);
    await checkGradVsRef((x) => K.std(x), (x) => M.std(x), [rnd([5, 3], 73)]);
    await checkGradVsRef((x) => K.std(x, -1, { keepdim: true }), (x) => M.std(x, -1, 1, true), [rnd([4, 11], 74)]);
    const c = K.tensor([[2, 2, 2], [1, 2, 3]], { requiresGrad: true });
    K.sum(K.std(c, 1)).backward();
    const g = Array.from(await c.grad!.toArray());
    expect(g.slice(0, 3)).toEqual([0, 0, 0]);
    expect(g[3]).toBeCloseTo(-0.5, 6);
  });

  it('logsumexp over dims, with -inf rows, +inf and NaN', async () => {
    for (const [si, shape] of [[1], [7], [3, 5], [2, 13, 3], [4, 300]].entries()) {
      const x = rnd(shape, 80 + si, -20, 20);
      const xt = fromRef(x);
      for (const dims of [0, -1, shape.map((_, i) => i)]) {
        for (const keepdim of [false, true]) {
          poison([shape]);
          await expectTensorClose(K.logsumexp(xt, dims, keepdim), M.logsumexp(x, dims, keepdim), 1e-5, 1e-6, `lse ${shape} ${dims} ${keepdim}`);
        }
      }
      xt.dispose();
    }
    const special = ref([-Infinity, -Infinity, 1, Infinity, 2, NaN, Infinity, -Infinity, 0, 1, -Infinity, 2], [4, 3]);
    const st = fromRef(special);
    await expectTensorClose(st.logsumexp(1), M.logsumexp(special, 1), 1e-6, 1e-6, 'special');
    expect(Array.from(await st.logsumexp(1).toArray()).slice(0, 3)).toEqual([1, NaN, Infinity]);
    st.dispose();
  });

  it('logsumexp gradients', async () => {
    await checkGradVsRef((x) => K.logsumexp(x, 1), (x) => M.logsumexp(x, 1), [rnd([3, 7], 90, -3, 3)]);
    await checkGradVsRef((x) => K.logsumexp(x, [0, 2], true), (x) => M.logsumexp(x, [0, 2], true), [rnd([2, 3, 5], 91, -3, 3)]);
  });

  it('bad input', () => {
    const x = K.tensor([[1, 2], [3, 4]]);
    const xi = K.tensor([1, 2], { dtype: 'i32' });
    expectThrows(() => K.var(x, 2), K.ShapeError, 'var');
    expectThrows(() => K.var(x, 0, { correction: -1 }), K.ValueError, 'correction', '-1');
    expectThrows(() => K.std(x, 0, { unbiased: false } as never), K.ValueError, 'unbiased');
    expectThrows(() => K.var(xi), K.DTypeError, 'var', 'i32');
    expectThrows(() => K.logsumexp(x, undefined as never), K.ValueError, 'dim is required');
    expectThrows(() => K.logsumexp(x, [0, 0]), K.ShapeError, 'repeat');
    x.dispose();
    xi.dispose();
  });
});

describe('all and any', () => {
  it('over dims, for f32 (NaN is true), i32 and bool', async () => {
    for (const [si, shape] of [[1], [7], [3, 5], [2, 13, 3]].entries()) {
      const x = R.map(rnd(shape, 100 + si), (v) => (v > 0.6 ? 0 : v < -0.9 ? NaN : 1 + Math.round(v)));
      for (const dtype of ['f32', 'i32', 'bool'] as const) {
        const xr = dtype === 'f32' ? x : R.map(x, (v) => (Number.isNaN(v) ? 1 : v));
        const xt = fromRef(xr, { dtype });
        for (const dims of [undefined, 0, -1, shape.map((_, i) => i)]) {
          for (const keepdim of [false, true]) {
            const a = K.all(xt, dims, keepdim);
            expect(a.dtype).toBe('bool');
            await expectTensorClose(a, M.allAny(xr, 'all', dims, keepdim), 0, 0, `all ${dtype} ${shape} ${dims}`);
            await expectTensorClose(xt.any(dims, keepdim), M.allAny(xr, 'any', dims, keepdim), 0, 0, `any ${dtype} ${shape} ${dims}`);
          }
        }
        xt.dispose();
      }
    }
    expect(await K.all(K.zeros([0])).item()).toBe(1);
    expect(await K.any(K.zeros([0])).item()).toBe(0);
  });
});

describe('split, chunk, flip, repeat, bmm', () => {
  it('split by a size and by sizes, chunk, each piece a view with gradients', async () => {
    const x = rnd([7, 5, 3], 110);
    const xt = fromRef(x);
    const parts = K.split(xt, 3);
    expect(parts.map((p) => p.shape)).toEqual([[3, 5, 3], [3, 5, 3], [1, 5, 3]]);
    for (const [i, p] of parts.entries()) await expectTensorClose(p, M.narrow(x, 0, 3 * i, p.shape[0]), 0, 0, `split ${i}`);
    const bySizes = xt.split([1, 4], 1);
    await expectTensorClose(bySizes[1], M.narrow(x, 1, 1, 4), 0, 0, 'split sizes');
    const ch = K.chunk(xt, 3, -1);
    expect(ch.map((p) => p.shape[2])).toEqual([1, 1, 1]);
    // torch.chunk gives fewer chunks when the length runs out: 7 in 4 is sizes 2, 2, 2, 1; 5 in 4 is 2, 2, 1.
    expect(xt.chunk(4).map((p) => p.shape[0])).toEqual([2, 2, 2, 1]);
    expect(xt.chunk(4, 1).map((p) => p.shape[1])).toEqual([2, 2, 1]);
    await checkGradVsRef((a) => K.split(a, [2, 3], 1)[1], (a) => M.narrow(a, 1, 2, 3), [rnd([3, 5], 111)]);
    await checkGradVsRef((a) => {
      const [p, q] = K.chunk(a, 2, 0);
      return K.mul(p, q);
    }, (a) => R.binary(M.narrow(a, 0, 0, 2), M.narrow(a, 0, 2, 2), (u, v) => u * v), [rnd([4, 3], 112)]);
    xt.dispose();
  });

  it('flip over dims of strided views, gradients', async () => {
    for (const [si, shape] of [[1], [7], [3, 5], [2, 13, 3]].entries()) {
      const x = rnd(shape, 120 + si);
      const xt = fromRef(x);
      const dimsList = [[0], [-1], shape.map((_, i) => i)];
      for (const dims of dimsList) await expectTensorClose(K.flip(xt, dims), M.flip(x, dims), 0, 0, `flip ${shape} ${dims}`);
      xt.dispose();
    }
    const x = rnd([4, 6], 125);
    const xt = fromRef(x);
    const tr = xt.transpose(0, 1);
    await expectTensorClose(tr.flip(0), M.flip(R.binary(ref(Array.from({ length: 24 }, (_, i) => x.data[(i % 4) * 6 + Math.floor(i / 4)]), [6, 4]), 0, (a) => a), [0]), 0, 0, 'flip of transpose');
    await checkGradVsRef((a) => K.flip(a, [0, 2]), (a) => M.flip(a, [0, 2]), [rnd([3, 2, 5], 126)]);
    const xi = K.tensor([1, 2, 3], { dtype: 'i32' });
    expect(Array.from(await xi.flip(0).toArray())).toEqual([3, 2, 1]);
    xt.dispose();
  });

  it('repeat with more dims than the input, gradients', async () => {
    const x = rnd([2, 3], 130);
    const xt = fromRef(x);
    await expectTensorClose(xt.repeat(2, 3), M.repeat(x, [2, 3]), 0, 0, 'repeat 2,3');
    await expectTensorClose(K.repeat(xt, [3, 1, 2]), M.repeat(x, [3, 1, 2]), 0, 0, 'repeat 3,1,2');
    await expectTensorClose(xt.repeat(1, 1), x, 0, 0, 'repeat 1,1');
    expect(xt.repeat(0, 2).shape).toEqual([0, 6]);
    await checkGradVsRef((a) => K.repeat(a, 2, 1, 3), (a) => M.repeat(a, [2, 1, 3]), [rnd([1, 5], 131)]);
    xt.dispose();
  });

  it('bmm against float64, gradients, shape errors', async () => {
    const a = rnd([3, 5, 7], 140), b = rnd([3, 7, 2], 141);
    await expectTensorClose(K.bmm(fromRef(a), fromRef(b)), M.bmm(a, b), 1e-5, 1e-5, 'bmm');
    await checkGradVsRef((p, q) => p.bmm(q), M.bmm, [rnd([2, 3, 4], 142), rnd([2, 4, 5], 143)]);
    const p = fromRef(a), q = fromRef(rnd([2, 7, 2], 144)), r2 = fromRef(rnd([5, 7], 145));
    expectThrows(() => K.bmm(p, q), K.ShapeError, 'batch', '3 vs 2');
    expectThrows(() => K.bmm(p, r2), K.ShapeError, '3-D', '[5,7]');
    for (const t of [p, q, r2]) t.dispose();
  });

  it('bad input', () => {
    const x = K.tensor([[1, 2, 3], [4, 5, 6]]);
    expectThrows(() => K.split(x, [1, 1], 1), K.ShapeError, 'add up to 2', 'has 3');
    expectThrows(() => K.split(x, 0), K.ValueError, 'positive');
    expectThrows(() => K.chunk(x, 0), K.ValueError, 'chunks');
    expectThrows(() => K.flip(x, [0, -2]), K.ShapeError, 'repeat');
    expectThrows(() => K.flip(x, 2), K.ShapeError, 'flip');
    expectThrows(() => K.repeat(x, 2), K.ShapeError, 'at least 2');
    expectThrows(() => K.repeat(x, 1, -1), K.ValueError, '-1');
    x.dispose();
  });
});

describe('methods', () => {
  it('logicalAnd, logicalOr, sin, cos, log1p as methods', async () => {
    const a = K.tensor([true, false, true]), b = K.tensor([true, true, false]);
    expect(Array.from(await a.logicalAnd(b).toArray())).toEqual([1, 0, 0]);
    expect(Array.from(await a.logicalOr(b).toArray())).toEqual([1, 1, 1]);
    const x = rnd([5], 150);
    const xt = fromRef(x);
    await expectTensorClose(xt.sin(), R.map(x, Math.sin), 1e-6, 1e-6);
    await expectTensorClose(xt.cos(), R.map(x, Math.cos), 1e-6, 1e-6);
    await expectTensorClose(xt.log1p(), R.map(x, Math.log1p), 1e-6, 1e-6);
  });

  it('live memory returns to its baseline', async () => {
    const before = K.memory().buffers;
    K.tidy(() => {
      const x = K.randn([3, 4, 5], { seed: 1, requiresGrad: true });
      const y = K.add(K.std(x, 1).sum(), K.logsumexp(x, [0, 1]).sum());
      const z = K.add(y, K.triu(x).flip(0).repeat(2, 1, 1).sum());
      z.add(K.split(x, 2, 2)[1].sum()).backward();
      x.dispose();
    });
    expect(K.memory().buffers).toBe(before);
  });
});

describe('dtype inference and mismatch errors', () => {
  it('arange infers i32 from integer arguments and f32 from any fractional one; an explicit dtype wins', async () => {
    expect(K.arange(5).dtype).toBe('i32');
    expect(K.arange(1, 7, 2).dtype).toBe('i32');
    expect(K.arange(0, 1, 0.25).dtype).toBe('f32');
    expect(K.arange(0.5, 3).dtype).toBe('f32');
    expect(Array.from(await K.arange(0.5, 3).toArray())).toEqual([0.5, 1.5, 2.5]);
    expect(K.arange(4, undefined, 1, { dtype: 'f32' }).dtype).toBe('f32');
    expect(K.full([2], true).dtype).toBe('bool');
    expect(K.full([2], 3).dtype).toBe('f32');
  });

  it('f32 meeting i32 says to call .float()', () => {
    const a = K.ones([3]);
    const i = K.arange(3);
    expectThrows(() => a.mul(i), K.DTypeError, 'f32 and i32', 'call .float() on the second operand (i32)');
    expectThrows(() => i.add(a), K.DTypeError, 'call .float() on the first operand (i32)');
    a.dispose();
    i.dispose();
  });
});
