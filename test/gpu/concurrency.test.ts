// Independent async chains that interleave give the same results as when run alone.
import { describe, expect, it } from 'vitest';
import { nn, optim, randn, tidy, F, type Tensor } from '../../src/index.node';

async function trainSteps(seed: number, steps: number, yieldEvery: () => Promise<void>): Promise<Float32Array> {
  const model = new nn.Sequential(new nn.Linear(8, 16, { seed }), new nn.ReLU(), new nn.Linear(16, 1, { seed: seed + 1 }));
  const opt = new optim.Adam(model.parameters(), { lr: 0.01 });
  const x = randn([32, 8], { seed: seed + 2 });
  const y = randn([32, 1], { seed: seed + 3 });
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    const loss = tidy(() => F.mseLoss(model.forward(x) as Tensor, y));
    loss.backward();
    opt.step();
    // Read the loss while the next step's work is being queued by the other chain.
    const pending = loss.toArray();
    await yieldEvery();
    await pending;
    loss.dispose();
  }
  const w = (await model.parameters()[0].toArray()) as Float32Array;
  model.dispose();
  x.dispose();
  y.dispose();
  return w;
}

describe('concurrency', () => {
  it('two models stepping at once match the same models trained alone', async () => {
    const aloneA = await trainSteps(10, 12, async () => {});
    const aloneB = await trainSteps(20, 12, async () => {});
    const tick = () => new Promise<void>((r) => setTimeout(r, 0));
    const [a, b] = await Promise.all([trainSteps(10, 12, tick), trainSteps(20, 12, tick)]);
    expect(Array.from(a)).toEqual(Array.from(aloneA));
    expect(Array.from(b)).toEqual(Array.from(aloneB));
  });

  it('reads in flight while new work is queued see the values at the time of the read', async () => {
    const x = randn([1000], { seed: 5 });
    const first = x.mul(2);
    const p1 = first.toArray();
    const second = first.add(1); // queued while p1 is in flight
    const p2 = second.toArray();
    const [r1, r2] = await Promise.all([p1, p2]);
    const base = await x.toArray();
    for (let i = 0; i < base.length; i++) {
      expect(r1[i]).toBe(Math.fround(base[i] * 2));
      expect(r2[i]).toBe(Math.fround(Math.fround(base[i] * 2) + 1));
    }
  });
});
