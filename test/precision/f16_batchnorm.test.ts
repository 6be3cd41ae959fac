// f16 batch norm, as PyTorch's half batch norm: an f16 input with f32 weight, bias and running statistics; the
// statistics and every product in f32, y rounded once to f16; the gradient of x in f16, those of weight and bias in
// f32. So every f16 output is within one f16 rounding of the float64 answer on the rounded inputs (plus the f32
// arithmetic's own error: atol 2e-5, rtol 1e-4 for y, as the f32 tests; 1e-4 / 1e-3 for dx, whose two channel means
// are f32 sums over M values), the f32 results (running statistics, dweight, dbias) equal the f32 path's on the widened
// input bit for bit, and f16 y and dx equal the f32 path's rounded once. Both ways kernels take f16 (flag
// f16.kernels: 'native' reads and writes f16 storage in batchnorm.wgsl's f16 variant, 'packed' widens around the f32
// kernel) are run and must agree bit for bit. Under autocast batch norm is on neither of PyTorch's lists: it keeps its
// input's dtype (f32 stays f32; f16 stays f16, computed in f32), as torch.autocast does.
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as K from '../../src/index.node';
import { F, nn, type Tensor, DTypeError, memory, tensor, tidy } from '../../src/index.node';
import * as kernels from '../../src/gpu/kernels';
import type { KernelModule } from '../../src/gpu/kernels';
import { setFlag } from '../../src/experimental';
import * as RC from '../reference/conv';
import type { Ref } from '../reference/core';
import { nearestHalf } from '../reference/half';
import { expectNoLeak, expectTensorClose, expectThrows, fromRef } from '../helpers';
import { expectHalfClose, halfOf, rndHalf } from './helpers';

const ran: string[] = [];
const realDispatch = kernels.dispatch;
vi.spyOn(kernels, 'dispatch').mockImplementation(((kernel: KernelModule, entry: string, spec: kernels.DispatchSpec) => {
  ran.push(`${kernel.file}:${entry}`);
  return realDispatch(kernel, entry, spec);
}) as typeof kernels.dispatch);

afterAll(() => setFlag('f16.kernels', undefined));

type Mode = 'native' | 'packed';
const MODES: Mode[] = ['native', 'packed'];

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
/** The f32 values rounded to f16 (what one rounding of the f32 path's result gives), as f32 bits. */
const roundedBits = (a: Float32Array) => bits(Float32Array.from(a, (v) => nearestHalf(v)));
const isNaNBits = (v: number) => (v & 0x7fffffff) > 0x7f800000;
/** got's bits equal want (any NaN equals any NaN). */
const sameBits = (got: Float32Array, want: number[], what: string) => {
  const g = bits(got);
  expect(g.length, what).toBe(want.length);
  const bad = g.findIndex((v, i) => v !== want[i] && !(isNaNBits(v) && isNaNBits(want[i])));
  expect(bad, `${what}[${bad}]: ${got[bad]}`).toBe(-1);
};

interface Run { y: Float32Array; dx: Float32Array; dw: Float32Array; db: Float32Array; rm: Float32Array; rv: Float32Array; files: string[] }

/**
 * batchNorm of x (f16 or f32 values of `xr`) with f32 weight, bias and running statistics, backward with g: every
 * result, and the kernels it ran.
 */
async function runBN(xr: Ref, gr: Ref, dtype: 'f16' | 'f32', training: boolean, opts: { transposed?: boolean; eps?: number } = {}): Promise<Run> {
  const C = xr.shape[1];
  const w = fromRef({ data: Float64Array.from({ length: C }, (_, c) => 0.5 + 0.25 * c), shape: [C] }, { requiresGrad: true });
  const b = fromRef({ data: Float64Array.from({ length: C }, (_, c) => 0.1 * c - 0.2), shape: [C] }, { requiresGrad: true });
  const rm = tensor(Float32Array.from({ length: C }, (_, c) => 0.05 * c)), rv = tensor(Float32Array.from({ length: C }, (_, c) => 1 + 0.5 * c));
  const make = (r: Ref, grad: boolean) => (dtype === 'f16' ? halfOf(r, grad) : fromRef(r, { requiresGrad: grad }));
  let x: Tensor, leaf: Tensor;
  if (opts.transposed) {
    // x as a strided view: the transpose of a [C, N, ...] tensor.
    const [N, Cx, ...rest] = xr.shape;
    const inner = rest.reduce((a, v) => a * v, 1);
    const t = new Float64Array(xr.data.length);
    for (let n = 0; n < N; n++) for (let c = 0; c < Cx; c++) for (let i = 0; i < inner; i++) t[(c * N + n) * inner + i] = xr.data[(n * Cx + c) * inner + i];
    leaf = make({ data: t, shape: [Cx, N, ...rest] }, true);
    x = leaf.transpose(0, 1);
  } else {
    leaf = make(xr, true);
    x = leaf;
  }
  ran.length = 0;
  const y = F.batchNorm(x, rm, rv, { weight: w, bias: b, training, momentum: 0.3, eps: opts.eps ?? 1e-5 });
  expect(y.dtype).toBe(dtype);
  const g = make(gr, false);
  y.backward(g);
  const files = [...ran];
  let dx = await leaf.grad!.toArray() as Float32Array;
  if (opts.transposed) {
    // back to x's [N, C, ...] order
    const [N, Cx, ...rest] = xr.shape;
    const inner = rest.reduce((a, v) => a * v, 1);
    const t = new Float32Array(dx.length);
    for (let n = 0; n < N; n++) for (let c = 0; c < Cx; c++) for (let i = 0; i < inner; i++) t[(n * Cx + c) * inner + i] = dx[(c * N + n) * inner + i];
    dx = t;
  }
  expect(leaf.grad!.dtype).toBe(dtype);
  expect(w.grad!.dtype).toBe('f32');
  expect(b.grad!.dtype).toBe('f32');
  const out: Run = {
    y: await y.toArray() as Float32Array, dx, dw: await w.grad!.toArray() as Float32Array, db: await b.grad!.toArray() as Float32Array,
    rm: await rm.toArray() as Float32Array, rv: await rv.toArray() as Float32Array, files,
  };
  for (const t of [y, g, x, leaf.grad!, leaf, w.grad!, w, b.grad!, b, rm, rv]) t.dispose();
  return out;
}

/** The float64 answers for runBN's weight, bias and running statistics. */
function reference(xr: Ref, gr: Ref, training: boolean, eps = 1e-5) {
  const C = xr.shape[1];
  const w = { data: Float64Array.from({ length: C }, (_, c) => 0.5 + 0.25 * c), shape: [C] };
  const b = { data: Float64Array.from({ length: C }, (_, c) => 0.1 * c - 0.2), shape: [C] };
  const rm0 = Array.from({ length: C }, (_, c) => 0.05 * c), rv0 = Array.from({ length: C }, (_, c) => 1 + 0.5 * c);
  const stats = training ? RC.channelStats(xr) : { mean: rm0, variance: rv0 };
  const M = xr.data.length / C;
  const rm = training ? rm0.map((m, c) => 0.7 * m + 0.3 * stats.mean[c]) : rm0;
  const rv = training ? rv0.map((v, c) => 0.7 * v + (0.3 * stats.variance[c] * M) / (M - 1)) : rv0;
  return {
    y: RC.batchNorm(xr, stats.mean, stats.variance, w, b, eps),
    ...RC.batchNormGrads(xr, gr, w, stats, training, eps),
    rm: { data: Float64Array.from(rm), shape: [C] }, rv: { data: Float64Array.from(rv), shape: [C] },
  };
}

async function checkAgainstFloat64(run: Run, ref: ReturnType<typeof reference>, shape: number[], label: string): Promise<void> {
  const asHalf = (data: Float32Array) => tensor(data, { shape, dtype: 'f16' });
  const y = asHalf(run.y), dx = asHalf(run.dx);
  await expectHalfClose(y, ref.y, 2e-5, 1e-4, `${label} y`);
  await expectHalfClose(dx, ref.dx, 1e-4, 1e-3, `${label} dx`);
  y.dispose();
  dx.dispose();
  const f32 = (a: Float32Array) => tensor(a);
  for (const [name, got, want, tol] of [['dweight', run.dw, ref.dw, 1e-4], ['dbias', run.db, ref.db, 1e-4], ['running_mean', run.rm, ref.rm, 1e-5], ['running_var', run.rv, ref.rv, 1e-5]] as const) {
    const t = f32(got);
    await expectTensorClose(t, want, tol, tol, `${label} ${name}`);
    t.dispose();
  }
}

const SHAPES: number[][] = [[3, 5, 7, 3], [5, 3], [2, 4, 9], [1, 2, 3, 1], [2, 3, 17, 13]];

describe('f16 batchNorm: statistics in f32, y and dx rounded once (native f16 storage and widened)', () => {
  for (const shape of SHAPES) {
    for (const training of [true, false]) {
      it(`${training ? 'training' : 'eval'} ${JSON.stringify(shape)}: float64 on the rounded inputs, the f32 path's bits, both kernel ways`, async () => {
        const before = memory().buffers;
        const xr = rndHalf(shape, 3 + shape.length, -2, 3), gr = rndHalf(shape, 11);
        const ref = reference(xr, gr, training);
        const wide = await runBN(xr, gr, 'f32', training);
        const runs: Partial<Record<Mode, Run>> = {};
        for (const mode of MODES) {
          setFlag('f16.kernels', mode);
          const r = await runBN(xr, gr, 'f16', training);
          runs[mode] = r;
          await checkAgainstFloat64(r, ref, shape, mode);
          // f32 results equal the f32 path's on the widened input; f16 ones are that path's values rounded once.
          sameBits(r.rm, bits(wide.rm), `${mode} running_mean`);
          sameBits(r.rv, bits(wide.rv), `${mode} running_var`);
          sameBits(r.dw, bits(wide.dw), `${mode} dweight`);
          sameBits(r.db, bits(wide.db), `${mode} dbias`);
          sameBits(r.y, roundedBits(wide.y), `${mode} y`);
          sameBits(r.dx, roundedBits(wide.dx), `${mode} dx`);
        }
        setFlag('f16.kernels', undefined);
        // 'native' ran batchnorm.wgsl's f16 variant forward and backward, with no casts of x, y, dy or dx (the one cast
        // is backward() copying the given gradient); 'packed' the f32 kernel between casts.
        expect(runs.native!.files).toEqual(['batchnorm.wgsl#f16:forward', 'cast.wgsl:main', 'batchnorm.wgsl#f16:backward']);
        expect(runs.packed!.files.filter((f) => f.startsWith('batchnorm'))).toEqual(['batchnorm.wgsl:forward', 'batchnorm.wgsl:backward']);
        expect(memory().buffers).toBe(before);
      });
    }
  }

  it('a strided (transposed) f16 input is read in place', async () => {
    const shape = [4, 3, 5, 2];
    const xr = rndHalf(shape, 21, -1, 2), gr = rndHalf(shape, 22);
    const ref = reference(xr, gr, true);
    for (const mode of MODES) {
      setFlag('f16.kernels', mode);
      await checkAgainstFloat64(await runBN(xr, gr, 'f16', true, { transposed: true }), ref, shape, `${mode} transposed`);
    }
    setFlag('f16.kernels', undefined);
  });

  it('f16 values far from zero: means near 60000 and squares near 2^31 are f32, so nothing overflows; y past 65504 is infinity', async () => {
    // Each channel's values are 60000 + 32 (-4 .. 4) (f16's spacing there is 32): an f16 sum or square would overflow, f32 does not.
    const shape = [2, 2, 9, 1];
    const data = new Float64Array(36);
    for (let i = 0; i < 36; i++) data[i] = nearestHalf(60000 + 32 * (((i * 7) % 9) - 4));
    const xr: Ref = { data, shape };
    for (const mode of MODES) {
      setFlag('f16.kernels', mode);
      await expectNoLeak(async () => {
        const x = halfOf(xr);
        const y = F.batchNorm(x, null, null, { training: true });
        await expectHalfClose(y, RC.batchNormTrain(xr, null, null), 2e-5, 1e-4, `${mode} far from zero`);
        // A weight of 1e5 takes |y| past f16's range: rounded once to +-infinity (a bias of 0 keeps the sign).
        const w = tensor(new Float32Array([1e5, 1e-3])), b = tensor(new Float32Array([0, 0]));
        const big = F.batchNorm(x, null, null, { training: true, weight: w, bias: b });
        await expectHalfClose(big, RC.batchNormTrain(xr, { data: Float64Array.from([1e5, 1e-3]), shape: [2] }, { data: new Float64Array(2), shape: [2] }), 2e-5, 1e-4, `${mode} overflow`);
        const got = await big.toArray();
        expect(got.some((v) => v === Infinity) && got.some((v) => v === -Infinity)).toBe(true);
        for (const t of [x, y, w, b, big]) t.dispose();
      });
    }
    setFlag('f16.kernels', undefined);
  });

  it('NaN or infinity in a channel makes that channel NaN (its running mean NaN or that infinity, its running variance NaN); the other channels are untouched', async () => {
    const shape = [3, 3, 2, 2];
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (const mode of MODES) {
        setFlag('f16.kernels', mode);
        await expectNoLeak(async () => {
          const xr = rndHalf(shape, 31);
          xr.data[1 * 4 + 2] = bad; // channel 1 of image 0
          const x = halfOf(xr, true);
          const rm = tensor(new Float32Array(3)), rv = tensor(new Float32Array(3).fill(1));
          const y = F.batchNorm(x, rm, rv, { training: true });
          const ys = await y.toArray();
          const ref = RC.batchNormTrain(xr, null, null);
          for (let i = 0; i < ys.length; i++) {
            const c = Math.floor(i / 4) % 3;
            if (c === 1) expect(ys[i], `${mode} ${bad} y[${i}]`).toBeNaN();
            else expect(Math.abs(ys[i] - ref.data[i]), `${mode} ${bad} y[${i}]`).toBeLessThan(2e-3);
          }
          const m = await rm.toArray(), v = await rv.toArray();
          // The mean of values holding +-inf is +-inf (NaN for NaN); the variance (inf - inf) is NaN, as PyTorch's.
          if (Number.isNaN(bad)) expect(m[1]).toBeNaN();
          else expect(m[1]).toBe(0.9 * 0 + bad);
          expect(v[1]).toBeNaN();
          expect(Number.isFinite(m[0]) && Number.isFinite(m[2]) && Number.isFinite(v[0]) && Number.isFinite(v[2])).toBe(true);
          const g = halfOf(rndHalf(shape, 32));
          y.backward(g);
          const dx = await x.grad!.toArray();
          for (let i = 0; i < dx.length; i++) {
            const c = Math.floor(i / 4) % 3;
            expect(Number.isNaN(dx[i]), `${mode} ${bad} dx[${i}]`).toBe(c === 1);
          }
          for (const t of [x.grad!, x, rm, rv, y, g]) t.dispose();
        });
      }
    }
    setFlag('f16.kernels', undefined);
  });

  it('f16 weight and bias are widened on the tape: their gradients come back f16; no weight at all works too', async () => {
    const shape = [4, 3, 3, 2];
    const xr = rndHalf(shape, 41), wr = rndHalf([3], 42, 0.5, 1.5), br = rndHalf([3], 43), gr = rndHalf(shape, 44);
    await expectNoLeak(async () => {
      const x = halfOf(xr, true), w = halfOf(wr, true), b = halfOf(br, true);
      const y = F.batchNorm(x, null, null, { training: true, weight: w, bias: b });
      await expectHalfClose(y, RC.batchNormTrain(xr, wr, br), 2e-5, 1e-4, 'y');
      const g = halfOf(gr);
      y.backward(g);
      const want = RC.batchNormGrads(xr, gr, wr, RC.channelStats(xr), true);
      await expectHalfClose(x.grad!, want.dx, 1e-4, 1e-3, 'dx');
      await expectHalfClose(w.grad!, want.dw, 1e-4, 1e-4, 'dweight');
      await expectHalfClose(b.grad!, want.db, 1e-4, 1e-4, 'dbias');
      const plain = F.batchNorm(x, null, null, { training: true });
      await expectHalfClose(plain, RC.batchNormTrain(xr, null, null), 2e-5, 1e-4, 'no weight');
      for (const t of [x.grad!, x, w.grad!, w, b.grad!, b, y, g, plain]) t.dispose();
    });
  });

  it('the float64 gradient reference agrees with finite differences of the forward reference', () => {
    const xr = rndHalf([2, 2, 3, 1], 51), gr = rndHalf([2, 2, 3, 1], 52), w = { data: Float64Array.from([0.7, -1.3]), shape: [2] };
    const loss = (x: Ref) => RC.batchNormTrain(x, w, null).data.reduce((s, v, i) => s + v * gr.data[i], 0);
    const { dx } = RC.batchNormGrads(xr, gr, w, RC.channelStats(xr), true);
    for (let i = 0; i < xr.data.length; i++) {
      const up = { data: Float64Array.from(xr.data), shape: xr.shape }, down = { data: Float64Array.from(xr.data), shape: xr.shape };
      up.data[i] += 1e-6;
      down.data[i] -= 1e-6;
      expect(Math.abs((loss(up) - loss(down)) / 2e-6 - dx.data[i])).toBeLessThan(1e-6);
    }
  });

  it('a compiled step with an f16 batchNorm (training, so the f16 variant reads and writes f16) replays the eager bits', async () => {
    await expectNoLeak(async () => {
      const x = halfOf(rndHalf([4, 3, 5, 2], 71)), w = tensor(new Float32Array([0.5, 1, 2])), b = tensor(new Float32Array([0, 0.25, -1]));
      const f = (t: Tensor) => F.batchNorm(t, null, null, { training: true, weight: w, bias: b }).float().sum(1);
      const eager = tidy(() => f(x));
      const step = K.compile(f);
      // (in tidy, as test/precision/f16_api.test.ts runs compiled steps: what a call leaves besides its result goes)
      const [first, again] = tidy(() => [step(x).clone(), step(x).clone()]);
      expect(step.fallbackReason).toBeNull();
      const want = bits(await eager.toArray() as Float32Array);
      sameBits(await first.toArray() as Float32Array, want, 'compiled first call');
      sameBits(await again.toArray() as Float32Array, want, 'compiled replay');
      step.dispose();
      for (const t of [x, w, b, eager, first, again]) t.dispose();
    });
  });

  it('f16 running statistics are a DTypeError saying why, before any GPU work', () => {
    const x = halfOf(rndHalf([2, 3, 4], 61)), rh = K.zeros([3], { dtype: 'f16' }), r = K.ones([3]);
    const before = memory().buffers;
    ran.length = 0;
    expectThrows(() => F.batchNorm(x, rh, r, { training: true }), DTypeError, 'batchNorm', 'runningMean is f16', 'kept and updated in f32');
    expectThrows(() => F.batchNorm(x, r, rh), DTypeError, 'runningVar is f16');
    expect(ran).toEqual([]);
    expect(memory().buffers).toBe(before);
    for (const t of [x, rh, r]) t.dispose();
  });
});

describe('f16 nn.BatchNorm2d / BatchNorm1d: f32 parameters and buffers, f16 in and out', () => {
  it('BatchNorm2d trains on f16 input: the same running statistics, num_batches_tracked and weight gradients as on the widened input; eval', async () => {
    const shape = [4, 3, 5, 3];
    const xr = rndHalf(shape, 71, -1, 3);
    await expectNoLeak(async () => {
      const half = new nn.BatchNorm2d(3, { momentum: 0.5 }), wide = new nn.BatchNorm2d(3, { momentum: 0.5 });
      for (const [m, dtype] of [[half, 'f16'], [wide, 'f32']] as const) {
        for (let step = 0; step < 2; step++) {
          tidy(() => {
            const x = dtype === 'f16' ? halfOf(xr) : fromRef(xr);
            const y = m.forward(x);
            expect(y.dtype).toBe(dtype);
            const f = y.float();
            f.mul(f).sum().backward();
          });
        }
      }
      for (const k of ['running_mean', 'running_var', 'weight', 'bias'] as const) {
        const a = half.stateDict()[k], b = wide.stateDict()[k];
        expect(a.dtype, k).toBe('f32');
        sameBits(await a.toArray() as Float32Array, bits(await b.toArray() as Float32Array), k);
      }
      expect(Array.from(await half.numBatchesTracked!.toArray())).toEqual([2]);
      // The weight gradients differ only through y's rounding inside the loss (the loss squares y): within f16 of it.
      const gh = await half.weight!.grad!.toArray(), gw = await wide.weight!.grad!.toArray();
      for (let c = 0; c < 3; c++) expect(Math.abs(gh[c] - gw[c])).toBeLessThan(2e-3 * Math.abs(gw[c]) + 1e-3);
      half.eval();
      wide.eval();
      const xh = halfOf(xr), xw = fromRef(xr);
      const ye = half.forward(xh), we = wide.forward(xw);
      sameBits(await ye.toArray() as Float32Array, roundedBits(await we.toArray() as Float32Array), 'eval y');
      for (const t of [xh, xw, ye, we]) t.dispose();
      half.dispose();
      wide.dispose();
    });
  });

  it('BatchNorm1d takes f16 [N, C] and [N, C, L]', async () => {
    await expectNoLeak(async () => {
      const bn = new nn.BatchNorm1d(4);
      for (const shape of [[6, 4], [3, 4, 5]]) {
        const xr = rndHalf(shape, 81);
        const x = halfOf(xr);
        const y = bn.forward(x);
        await expectHalfClose(y, RC.batchNormTrain(xr, null, null), 2e-5, 1e-4, JSON.stringify(shape));
        x.dispose();
        y.dispose();
      }
      bn.dispose();
    });
  });
});

describe('batchNorm under autocast keeps its input dtype and computes in f32 (on neither of PyTorch autocast\'s lists)', () => {
  it('f32 input: f32 output, the same bits as outside autocast; f16 input (a linear\'s output under autocast): f16 output with f32 statistics', async () => {
    await expectNoLeak(async () => {
      const xr = rndHalf([6, 5], 91, -1, 2);
      const bn = new nn.BatchNorm1d(5);
      const x = fromRef(xr);
      const outside = bn.forward(x);
      const inside = K.autocast(() => bn.forward(x), { dtype: 'f16' });
      expect(inside.dtype).toBe('f32');
      sameBits(await inside.toArray() as Float32Array, bits(await outside.toArray() as Float32Array), 'autocast f32');
      // Linear -> BatchNorm1d under autocast: the linear runs in f16, batch norm takes its f16 output as it is.
      const lin = new nn.Linear(5, 3), bn3 = new nn.BatchNorm1d(3), ref = new nn.BatchNorm1d(3);
      const h = K.autocast(() => lin.forward(x), { dtype: 'f16' });
      expect(h.dtype).toBe('f16');
      const y = K.autocast(() => bn3.forward(h), { dtype: 'f16' });
      expect(y.dtype).toBe('f16');
      const hw = h.float();
      const yw = ref.forward(hw);
      sameBits(await y.toArray() as Float32Array, roundedBits(await yw.toArray() as Float32Array), 'autocast f16 y');
      sameBits(await bn3.runningVar!.toArray() as Float32Array, bits(await ref.runningVar!.toArray() as Float32Array), 'autocast running_var');
      // Gradients reach the f32 parameters as f32.
      tidy(() => K.autocast(() => bn3.forward(h).float().sum(), { dtype: 'f16' }).backward());
      expect(bn3.weight!.grad!.dtype).toBe('f32');
      expect(lin.weight.grad!.dtype).toBe('f32');
      for (const t of [x, outside, inside, h, hw, y, yw]) t.dispose();
      for (const m of [bn, lin, bn3, ref]) m.dispose();
    });
  });
});
