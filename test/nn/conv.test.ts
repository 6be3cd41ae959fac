// Convolution, pooling, flatten and batch-norm modules: PyTorch's parameter and buffer names, initialisation bounds,
// train/eval behaviour, state dicts both ways.
import { describe, expect, it } from 'vitest';
import { F, ShapeError, ValueError, memory, nn, noGrad, tensor, tidy } from '../../src/index.node';
import * as RC from '../reference/conv';
import { expectTensorClose, fromRef, rnd } from '../helpers';

describe('nn.Conv2d and nn.Conv1d', () => {
  it("PyTorch's names, shapes and init bounds (kaiming_uniform a=sqrt(5): 1/sqrt(fan_in))", async () => {
    const c = new nn.Conv2d(6, 8, [3, 2], { groups: 2, padding: 1, seed: 1 });
    expect(c.namedParameters().map(([n, t]) => [n, t.shape])).toEqual([['weight', [8, 3, 3, 2]], ['bias', [8]]]);
    const bound = 1 / Math.sqrt(3 * 3 * 2);
    const w = await c.weight.toArray();
    expect(Math.max(...Array.from(w, Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...Array.from(w, Math.abs))).toBeGreaterThan(bound * 0.8);
    expect(Math.max(...Array.from(await c.bias!.toArray(), Math.abs))).toBeLessThanOrEqual(bound);
    const c1 = new nn.Conv1d(4, 5, 3, { bias: false, seed: 2 });
    expect(Object.keys(c1.stateDict())).toEqual(['weight']);
    expect(c1.weight.shape).toEqual([5, 4, 3]);
    c.dispose();
    c1.dispose();
  });

  it('forward equals F.conv2d with its options; a state dict moves between modules', async () => {
    const a = new nn.Conv2d(3, 4, 3, { stride: 2, padding: 'valid', seed: 3 });
    const b = new nn.Conv2d(3, 4, 3, { stride: 2, seed: 4 });
    b.loadStateDict(a.stateDict());
    const x = rnd([2, 3, 9, 8], 5);
    const want = RC.conv2d(x, { data: Float64Array.from(await a.weight.toArray()), shape: [4, 3, 3, 3] }, { data: Float64Array.from(await a.bias!.toArray()), shape: [4] }, { stride: [2, 2] });
    await expectTensorClose(b.forward(fromRef(x)), want, 1e-4, 1e-4);
    const c1 = new nn.Conv1d(2, 3, 3, { padding: 'same', seed: 5 });
    expect(c1.forward(fromRef(rnd([2, 2, 7], 6))).shape).toEqual([2, 3, 7]);
  });

  it('bad construction: ValueError naming the value', () => {
    expect(() => new nn.Conv2d(3, 4, 3, { groups: 2 })).toThrow(ValueError);
    expect(() => new nn.Conv2d(4, 6, 3, { groups: 4 })).toThrow(/outChannels 6 must be divisible by groups 4/);
    expect(() => new nn.Conv2d(3, 4, 0)).toThrow(/kernelSize/);
    expect(() => new nn.Conv2d(3, 4, 3, { stride: 2, padding: 'same' })).toThrow(/'same' needs stride 1/);
    expect(() => new nn.Conv2d(3, 4, 3, { padding_mode: 'zeros' } as nn.Conv2dOptions)).toThrow(/unknown option/);
  });
});

describe('pooling modules and Flatten', () => {
  it('match the functional forms', async () => {
    const x = fromRef(rnd([2, 3, 7, 6], 7));
    const pairs: [nn.Module, (t: typeof x) => typeof x][] = [
      [new nn.MaxPool2d(2), (t) => F.maxPool2d(t, 2)],
      [new nn.MaxPool2d(3, { stride: 2, padding: 1 }), (t) => F.maxPool2d(t, 3, { stride: 2, padding: 1 })],
      [new nn.AvgPool2d([2, 3], { countIncludePad: false, padding: [1, 1] }), (t) => F.avgPool2d(t, [2, 3], { countIncludePad: false, padding: [1, 1] })],
      [new nn.AdaptiveAvgPool2d(1), (t) => F.adaptiveAvgPool2d(t, 1)],
    ];
    for (const [m, f] of pairs) expect(Array.from(await (m.forward(x) as typeof x).toArray())).toEqual(Array.from(await f(x).toArray()));
    expect(new nn.Flatten().forward(x).shape).toEqual([2, 126]);
    expect(new nn.Flatten(0, 1).forward(x).shape).toEqual([6, 7, 6]);
    expect(new nn.MaxPool2d(2).stateDict()).toEqual({});
  });
});

describe('nn.BatchNorm2d', () => {
  it("state dict names as PyTorch's; train updates running statistics and num_batches_tracked; eval uses them", async () => {
    const bn = new nn.BatchNorm2d(3, { momentum: 0.5 });
    expect(Object.keys(bn.stateDict())).toEqual(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    expect(bn.namedParameters().map(([n]) => n)).toEqual(['weight', 'bias']);
    const x = rnd([4, 3, 5, 5], 8, -1, 3);
    const y = bn.forward(fromRef(x));
    await expectTensorClose(y, RC.batchNormTrain(x, null, null), 2e-5, 1e-4);
    bn.forward(fromRef(x)).dispose();
    const { mean, variance } = RC.channelStats(x);
    const M = 4 * 25;
    const rm = mean.map((m) => 0.5 * (0.5 * 0 + 0.5 * m) + 0.5 * m);
    const rv = variance.map((v) => { const u = (v * M) / (M - 1); return 0.5 * (0.5 * 1 + 0.5 * u) + 0.5 * u; });
    await expectTensorClose(bn.runningMean!, { data: Float64Array.from(rm), shape: [3] }, 1e-5, 1e-5);
    await expectTensorClose(bn.runningVar!, { data: Float64Array.from(rv), shape: [3] }, 1e-5, 1e-5);
    expect(Array.from(await bn.numBatchesTracked!.toArray())).toEqual([2]);
    bn.eval();
    const ye = bn.forward(fromRef(x));
    await expectTensorClose(ye, RC.batchNorm(x, rm, rv, null, null), 1e-5, 1e-4);
    expect(Array.from(await bn.numBatchesTracked!.toArray())).toEqual([2]);
    // Into a fresh module and back.
    const other = new nn.BatchNorm2d(3);
    other.loadStateDict(bn.stateDict());
    other.eval();
    expect(Array.from(await other.forward(fromRef(x)).toArray())).toEqual(Array.from(await ye.toArray()));
    expect(Array.from(await other.numBatchesTracked!.toArray())).toEqual([2]);
  });

  it('gradients flow to weight and bias in training; memory returns to baseline', async () => {
    const bn = new nn.BatchNorm2d(2);
    const before = memory().buffers;
    const x = fromRef(rnd([3, 2, 4, 4], 9), { requiresGrad: true });
    const loss = tidy(() => bn.forward(x).mul(tensor(2)).sum());
    loss.backward();
    loss.dispose();
    expect(Array.from(await bn.bias!.grad!.toArray())).toEqual([96, 96]);
    expect(x.grad!.shape).toEqual([3, 2, 4, 4]);
    bn.zeroGrad();
    x.dispose();
    expect(memory().buffers).toBe(before);
  });

  it('bad input', () => {
    const bn = new nn.BatchNorm2d(3);
    const x = fromRef(rnd([2, 4, 3, 3], 10)), x3 = fromRef(rnd([2, 3, 3], 11));
    expect(() => noGrad(() => bn.forward(x))).toThrow(ShapeError);
    expect(() => bn.forward(x3)).toThrow(/expects 4-D input/);
    expect(() => new nn.BatchNorm2d(3, { momentum: -1 })).toThrow(ValueError);
    const b1 = new nn.BatchNorm1d(3);
    expect(b1.forward(x3).shape).toEqual([2, 3, 3]);
  });
});
