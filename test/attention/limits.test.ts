// Attention at the edges of the adapter: grids past 65,535 workgroups (B * H over it, or Nq / BLOCK_M over it) run,
// forward and backward, with the grid folded; every failing call (a head dim over the fused limit, outputs past the
// binding limit, a layout the kernels cannot index) leaves no live buffer and encodes no GPU work.
import { afterEach, describe, expect, it } from 'vitest';
import { F, DeviceError, ShapeError, ValueError, deviceInfo, memory, nn, randn, tensor } from '../../src/index.node';
import { gpuStats, setFlag } from '../../src/experimental';
import { allClose } from '../reference/core';
import { sdpa } from '../reference/attention';
import { expectThrowsRaw, fromRef, rnd } from '../helpers';
import { expectMatchesReference } from './check';

afterEach(() => setFlag('attention.tiles', undefined));

describe('grids past 65,535 workgroups', () => {
  it('B * H = 70,000 (grouped-query heads), forward and backward', async () => {
    const kv = [700, 50, 3, 4];
    await expectMatchesReference({ q: rnd([700, 100, 2, 4], 1), k: rnd(kv, 2), v: rnd(kv, 3), ref: { isCausal: true }, kiln: { isCausal: true } });
  });

  it('Nq / BLOCK_M over 65,535 (4-row tiles), forward and backward', async () => {
    setFlag('attention.tiles', { BLOCK_M: 4, BLOCK_N: 4, THREADS: 8 });
    // dk and dv sum 262,163 rows in f32: their rounding grows with the square root of that (about 4e-4 here).
    await expectMatchesReference({ q: rnd([1, 1, 65_540 * 4 + 3, 4], 1), k: rnd([1, 1, 5, 4], 2), v: rnd([1, 1, 5, 4], 3), gradAtol: 2e-3 });
  });
});

describe('failing calls leave no buffer and encode nothing', () => {
  const work = () => gpuStats.dispatches + gpuStats.copies + gpuStats.uploads;
  const noWork = (fn: () => unknown, cls: new (...a: never[]) => Error, ...patterns: RegExp[]) => {
    const before = work();
    expectThrowsRaw(fn, cls, ...patterns);
    expect(work(), 'GPU work encoded by the failing call').toBe(before);
  };

  it("head dim 300 on the fused path (impl 'reference' runs it)", () => {
    const q = randn([1, 2, 4, 300], { seed: 2 });
    noWork(() => F.scaledDotProductAttention(q, q, q), ShapeError, /supports head dimensions up to 256 \(D 300, Dv 300\); use impl: 'reference'/);
    const o = F.scaledDotProductAttention(q, q, q, { impl: 'reference' });
    expect(o.shape).toEqual([1, 2, 4, 300]);
    o.dispose();
    q.dispose();
  });

  it('an output past the binding limit is refused before anything is allocated (fused and reference)', (ctx) => {
    if (deviceInfo().limits.maxStorageBufferBindingSize > 2 ** 27) ctx.skip(); // sized for lavapipe's 128 MiB
    const small = randn([1, 1, 16, 8], { seed: 3 });
    const huge = small.expand([4096, 1024, 16, 8]); // 2^31 output bytes, no storage of its own
    noWork(() => F.scaledDotProductAttention(huge, huge, huge), DeviceError, /the output \[4096,1024,16,8\] needs 2147483648 bytes, over this adapter's limit/);
    noWork(() => F.scaledDotProductAttention(huge, huge, huge, { impl: 'reference' }), DeviceError, /the scores \[4096,1024,16,16\] needs \d+ bytes/);
    // The output, dq, dk and dv fit; the float mask's gradient [2100, 1, 8, 2048] (138 MB) does not: refused by the
    // forward, which plans the backward.
    const q = randn([2100, 1, 8, 4], { seed: 4, requiresGrad: true });
    const k = randn([1, 1, 2048, 4], { seed: 5, requiresGrad: true });
    const mask = randn([1, 1, 8, 2048], { seed: 6, requiresGrad: true });
    noWork(() => F.scaledDotProductAttention(q, k, k, { attnMask: mask }), DeviceError, /the float mask gradient \[2100,1,8,2048\] needs \d+ bytes/);
    for (const t of [small, huge, q, k, mask]) t.dispose();
  });

  it('a mask whose batch layout the kernels cannot index runs through a copy, and leaks nothing', async () => {
    const qr = rnd([2, 3, 5, 8], 6), kr = rnd([2, 3, 7, 8], 7), vr = rnd([2, 3, 7, 8], 8);
    const mr = rnd([3, 2, 5, 7], 9, -1, 1);
    // mask [2, 3, 5, 7] as a permuted view of [3, 2, 5, 7]: its batch strides do not merge into one
    const permuted: number[] = [];
    for (let b = 0; b < 2; b++) for (let h = 0; h < 3; h++) for (let e = 0; e < 35; e++) permuted.push(mr.data[(h * 2 + b) * 35 + e]);
    const want = sdpa(qr, kr, vr, { floatMask: { data: Float64Array.from(permuted), shape: [2, 3, 5, 7] } });
    const before = memory().buffers;
    const base = fromRef(mr);
    const mask = base.permute([1, 0, 2, 3]);
    const [q, k, v] = [qr, kr, vr].map((r) => fromRef(r));
    const o = F.scaledDotProductAttention(q, k, v, { attnMask: mask });
    const r = allClose(Array.from(await o.toArray()), want.out.data, { atol: 2e-5, rtol: 1e-4 });
    expect(r.ok, r.message).toBe(true);
    for (const t of [o, q, k, v, mask, base]) t.dispose();
    expect(memory().buffers).toBe(before);
  });

  it('bad tiles, bad options and bad shapes fail before any work', () => {
    const q = randn([1, 1, 4, 8], { seed: 1 });
    // Complete only once merged with the default HEAD_DIM_MAX, so setFlag cannot check its memory; the plan does.
    setFlag('attention.tiles', { forward: { BLOCK_M: 64, BLOCK_N: 64, THREADS: 256 } });
    noWork(() => F.scaledDotProductAttention(q, q, q), DeviceError, /need \d+ bytes of workgroup memory; this adapter's maxComputeWorkgroupStorageSize is/);
    setFlag('attention.tiles', undefined);
    const v = tensor(new Float32Array(8), { shape: [1, 1, 1, 8] });
    noWork(() => F.scaledDotProductAttention(q, q, v), ShapeError, /number of keys/);
    noWork(() => F.scaledDotProductAttention(q, q, q, { causal: true } as never), ValueError, /scaledDotProductAttention: unknown option 'causal' \(did you mean 'isCausal'\?\)/);
    noWork(() => F.attentionWeights(q, q, { dropoutP: 0.1 } as never), ValueError, /attentionWeights: unknown option 'dropoutP'/);
    const mha = new nn.MultiheadAttention(8, 2);
    const x = randn([1, 3, 8], { seed: 2 });
    noWork(() => mha.forward(x, x, x, { causal: true } as never), ValueError, /MultiheadAttention\(8, 2\): unknown option 'causal'/);
    for (const t of [q, v, x]) t.dispose();
  });
});
