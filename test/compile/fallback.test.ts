// compile(): what a trace cannot hold falls back to eager with a reason, and the results stay eager's.
import { describe, expect, it } from 'vitest';
import { ValueError, compile, memory, nn, optim, tensor, type Tensor } from '../../src/index.node';

describe('compile: fallbacks', () => {
  it('a readback inside fn: eager, with the reason, and the right values', async () => {
    const x = tensor([1, 2, 3]);
    let seen = 0;
    const step = compile((t: Tensor) => {
      const s = t.sum();
      void s.item().then((v) => (seen = v));
      return t.mul(s);
    });
    for (let k = 0; k < 3; k++) {
      const r = step(x);
      expect(Array.from(await r.toArray())).toEqual([6, 12, 18]);
      r.dispose();
    }
    expect(seen).toBe(6);
    expect(step.fallbackReason).toMatch(/readback inside the compiled function/);
    expect(step.explain()).toMatch(/runs eagerly: a readback/);
    expect(step.stats).toEqual({ traces: 1, replays: 0, eager: 2 });
    x.dispose();
    step.dispose();
  });

  it('an async fn: eager, with the reason', async () => {
    const x = tensor([1, 2]);
    const step = compile(async (t: Tensor) => {
      const v = await t.sum().item();
      return v;
    });
    expect(await step(x)).toBe(3);
    expect(await step(x)).toBe(3);
    expect(step.fallbackReason).toMatch(/async/);
    x.dispose();
    step.dispose();
  });

  it('host data that changes each call (a tensor() of a counter): eager after the traces disagree, values right', async () => {
    const x = tensor([1, 2]);
    let k = 0;
    const step = compile((t: Tensor) => {
      const c = tensor([++k, k]);
      const r = t.add(c);
      c.dispose();
      return r;
    });
    for (let i = 1; i <= 6; i++) {
      const r = step(x);
      expect(Array.from(await r.toArray())).toEqual([1 + i, 2 + i]);
      r.dispose();
    }
    expect(step.fallbackReason).toMatch(/uploads different data each call/);
    expect(step.stats.replays).toBe(0);
    x.dispose();
    step.dispose();
  });

  it('host data that is the same each call (a constant tensor) is replayed', async () => {
    const x = tensor([1, 2]);
    const step = compile((t: Tensor) => {
      const c = tensor([10, 20]);
      const r = t.add(c);
      c.dispose();
      return r;
    });
    for (let i = 0; i < 4; i++) {
      const r = step(x);
      expect(Array.from(await r.toArray())).toEqual([11, 22]);
      r.dispose();
    }
    expect(step.fallbackReason).toBe(null);
    expect(step.stats.replays).toBe(2);
    x.dispose();
    step.dispose();
  });

  it('an lr scheduler stepped inside fn: eager with the reason; stepped outside: replayed with the new lr', async () => {
    const make = () => {
      const lin = new nn.Linear(3, 2, { seed: 5 });
      const opt = new optim.SGD(lin.parameters(), { lr: 0.1, momentum: 0.9 });
      const sched = new optim.StepLR(opt, { stepSize: 1, gamma: 0.5 });
      return { lin, opt, sched };
    };
    const x = tensor([[1, 2, 3]]);
    const inside = make();
    const stepInside = compile((t: Tensor) => {
      inside.opt.zeroGrad();
      const loss = inside.lin.forward(t).sum();
      loss.backward();
      inside.opt.step();
      inside.sched.step();
      return loss;
    });
    const outside = make();
    const stepOutside = compile((t: Tensor) => {
      outside.opt.zeroGrad();
      const loss = outside.lin.forward(t).sum();
      loss.backward();
      outside.opt.step();
      return loss;
    });
    const eager = make();
    for (let k = 0; k < 6; k++) {
      stepInside(x).dispose();
      stepOutside(x).dispose();
      outside.sched.step();
      eager.opt.zeroGrad();
      const loss = eager.lin.forward(x).sum();
      loss.backward();
      eager.opt.step();
      eager.sched.step();
      loss.dispose();
    }
    expect(stepInside.fallbackReason).toMatch(/lr set inside the compiled function/);
    expect(stepOutside.fallbackReason).toBe(null);
    expect(stepOutside.stats.replays).toBeGreaterThan(0);
    const want = await eager.lin.weight.toArray();
    for (const m of [inside, outside]) {
      const got = await m.lin.weight.toArray();
      got.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(1e-6));
    }
    x.dispose();
    stepInside.dispose();
    stepOutside.dispose();
  });

  it('an argument that is not a tensor or a scalar, or that requires grad: eager with the reason', async () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = tensor([3, 4]);
    const step = compile((t: Tensor, o?: unknown) => t.mul(2).add(o ? 1 : 0));
    const r1 = step(x);
    expect(step.fallbackReason).toMatch(/argument 0 requires grad/);
    const r2 = step(y, { a: 1 });
    expect(step.fallbackReason).toMatch(/argument 1 is Object/);
    expect(Array.from(await r2.toArray())).toEqual([7, 9]);
    for (const t of [x, y, r1, r2]) t.dispose();
    step.dispose();
  });

  it('a parameter replaced between calls (a tensor the plan binds was freed): traced again, never a stale buffer', async () => {
    const lin = new nn.Linear(2, 2, { seed: 9 });
    const x = tensor([[1, -1]]);
    const step = compile((t: Tensor) => lin.forward(t));
    for (let k = 0; k < 4; k++) step(x).dispose();
    expect(step.stats.replays).toBe(2);
    const old = lin.weight;
    lin.weight = tensor([[1, 0], [0, 1]], { requiresGrad: true });
    old.dispose();
    const r = step(x);
    const want = lin.forward(x);
    expect(Array.from(await r.toArray())).toEqual(Array.from(await want.toArray()));
    want.dispose();
    expect(step.stats.traces).toBe(3);
    r.dispose();
    x.dispose();
    step.dispose();
  });

  it('options are checked; a disposed step refuses calls; train()/eval() traces again', async () => {
    expect(() => compile((x: Tensor) => x, { fuze: false } as never)).toThrow(ValueError);
    expect(() => compile((x: Tensor) => x, { cacheSize: 0 })).toThrow(ValueError);
    // Pass switches: an object of booleans; an unknown pass or a non-boolean is named.
    expect(() => compile((x: Tensor) => x, { fuse: { elementwise: false, epilogues: true } })).not.toThrow();
    expect(() => compile((x: Tensor) => x, { fuse: { elementwse: false } as never })).toThrow(/unknown option 'elementwse' \(did you mean 'elementwise'\?\)/);
    expect(() => compile((x: Tensor) => x, { fuse: { regions: 1 } as never })).toThrow(/fuse\.regions must be true or false, got 1/);
    expect(() => compile((x: Tensor) => x, { fuse: 'yes' as never })).toThrow(/fuse must be true, false or an object/);
    const drop = new nn.Dropout(0.5, { seed: 3 });
    const x = tensor(new Float32Array(64).fill(1));
    const step = compile((t: Tensor) => drop.forward(t));
    for (let k = 0; k < 4; k++) step(x).dispose();
    drop.eval();
    const r = step(x);
    expect(Array.from(await r.toArray())).toEqual(Array(64).fill(1));
    r.dispose();
    step.dispose();
    expect(() => step(x)).toThrow(/disposed/);
    x.dispose();
    const before = memory().buffers;
    expect(memory().buffers).toBe(before);
  });
});
