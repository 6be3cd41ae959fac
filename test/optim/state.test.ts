// Optimizer and scheduler state dicts (PyTorch's layout), scheduler objects against PyTorch's closed forms and
// recursions, and clipGradValue (torch.nn.utils.clip_grad_value_) in one dispatch over an optimizer's gradient arena.
import { describe, expect, it } from 'vitest';
import { optim, tensor, tidy, memory, ValueError, ShapeError, DTypeError, type Tensor } from '../../src/index';
import { gpuStats, resetGpuStats } from '../../src/experimental';
import { expectThrows } from '../helpers';

function setGrad(p: Tensor, values: number[] | number[][]) {
  tidy(() => p.mul(tensor(values as any)).sum().backward());
}

const GRADS = [[0.1, -0.2, 0.3], [0.5, 0.4, -0.3], [-0.6, 0.1, 0.9], [0.3, -0.7, 0.2], [1, 0.5, -0.5]];

type Make = (params: Tensor[]) => optim.Optimizer;
const makers: [string, Make][] = [
  ['SGD momentum nesterov', (p) => new optim.SGD(p, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 })],
  ['SGD plain', (p) => new optim.SGD(p, { lr: 0.1 })],
  ['Adam', (p) => new optim.Adam(p, { lr: 0.05, weightDecay: 0.01 })],
  ['AdamW', (p) => new optim.AdamW(p, { lr: 0.05, betas: [0.8, 0.99] })],
  ['Adam reference', (p) => new optim.Adam(p, { lr: 0.05, impl: 'reference' })],
];

async function values(ts: Tensor[]): Promise<number[][]> {
  return Promise.all(ts.map(async (t) => Array.from(await t.toArray())));
}

describe('optimizer state dicts', () => {
  for (const [name, make] of makers) {
    it(`${name}: 2 steps, save, load into a fresh optimizer, 3 more steps == 5 uninterrupted steps (bit for bit)`, async () => {
      const base = memory().buffers;
      const run = async (split: boolean) => {
        const a = tensor([0.5, -1.25, 2], { requiresGrad: true });
        const b = tensor([[1, -2], [0.25, 3]], { requiresGrad: true });
        let opt = make([a, b]);
        const stepOnce = (k: number) => {
          opt.zeroGrad();
          setGrad(a, GRADS[k]);
          // b skips step 1: its step count differs from a's, as PyTorch's per-parameter counts.
          if (k !== 1) setGrad(b, [[GRADS[k][0], GRADS[k][1]], [GRADS[k][2], 1]]);
          opt.step();
        };
        for (let k = 0; k < 2; k++) stepOnce(k);
        if (split) {
          const sd = opt.stateDict();
          expect(sd.param_groups.length).toBe(1);
          expect(sd.param_groups[0].params).toEqual([0, 1]);
          expect(sd.state[0].step).toBe(2);
          expect(sd.state[1].step).toBe(1);
          const keys = Object.keys(sd.state[0]).sort();
          if (name.startsWith('Adam')) expect(keys).toEqual(['exp_avg', 'exp_avg_sq', 'step']);
          else if (name.includes('momentum')) expect(keys).toEqual(['momentum_buffer', 'step']);
          else expect(keys).toEqual(['step']);
          opt.dispose();
          // A fresh optimizer with other hyperparameters: the state dict brings them back.
          opt = make([a, b]);
          opt.lr = 123;
          opt.loadStateDict(sd);
          expect(opt.lr).toBe(sd.param_groups[0].lr);
          for (const e of Object.values(sd.state)) for (const t of Object.values(e)) if (typeof t !== 'number') t.dispose();
        }
        for (let k = 2; k < 5; k++) stepOnce(k);
        const out = await values([a, b]);
        const st = opt.state(0);
        const m = st.m ? Array.from(await st.m.toArray()) : null;
        st.m?.dispose();
        st.v?.dispose();
        opt.dispose();
        a.dispose();
        b.dispose();
        return { out, m, step: st.step };
      };
      const whole = await run(false);
      const resumed = await run(true);
      expect(resumed).toEqual(whole);
      expect(memory().buffers).toBe(base);
    });
  }

  it("param groups carry PyTorch's hyperparameter names; no state before the first step", () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const opt = new optim.AdamW([a], { lr: 0.01, betas: [0.9, 0.95], eps: 1e-6, weightDecay: 0.1 });
    const sd = opt.stateDict();
    expect(sd.state).toEqual({});
    expect(sd.param_groups[0]).toEqual({ lr: 0.01, betas: [0.9, 0.95], eps: 1e-6, weight_decay: 0.1, amsgrad: false, maximize: false, params: [0] });
    const sgd = new optim.SGD([a], { lr: 0.1, momentum: 0.5 });
    expect(sgd.stateDict().param_groups[0]).toEqual({ lr: 0.1, momentum: 0.5, dampening: 0, weight_decay: 0, nesterov: false, maximize: false, params: [0] });
    sgd.dispose();
    opt.dispose();
    a.dispose();
  });

  it('bad state dicts are typed errors naming the fault, before any change or GPU work', () => {
    const a = tensor([1, 2, 3], { requiresGrad: true });
    const opt = new optim.Adam([a], { lr: 0.1 });
    setGrad(a, [1, 1, 1]);
    opt.step();
    const good = opt.stateDict();
    const wrongShape = tensor([1, 2]);
    const intState = tensor([1, 2, 3], { dtype: 'i32' });
    const g = good.param_groups[0];
    expectThrows(() => opt.loadStateDict({ state: {}, param_groups: [g, g] }), ValueError, 'one param group');
    expectThrows(() => opt.loadStateDict({ state: {}, param_groups: [{ ...g, params: [0, 1] }] }), ValueError, '2 parameters', 'this optimizer 1');
    expectThrows(() => opt.loadStateDict({ state: {}, param_groups: [{ ...g, lr: -1 }] }), ValueError, 'lr');
    expectThrows(() => opt.loadStateDict({ state: {}, param_groups: [{ ...g, lR: 1 }] }), ValueError, "'lR'");
    expectThrows(() => opt.loadStateDict({ state: { 3: { step: 1 } }, param_groups: [g] }), ValueError, "state key '3'");
    expectThrows(() => opt.loadStateDict({ state: { 0: { step: 1, exp_avg: wrongShape, exp_avg_sq: wrongShape } }, param_groups: [g] }), ShapeError, 'exp_avg', '[2]', '[3]');
    expectThrows(() => opt.loadStateDict({ state: { 0: { step: 1, exp_avg: intState, exp_avg_sq: intState } }, param_groups: [g] }), DTypeError, 'i32');
    expectThrows(() => opt.loadStateDict({ state: { 0: { step: 2 } }, param_groups: [g] }), ValueError, "no 'exp_avg'");
    expectThrows(() => opt.loadStateDict({ state: { 0: { step: 1.5 } }, param_groups: [g] }), ValueError, 'step');
    expectThrows(() => opt.loadStateDict({ state: { 0: { step: 1, momentum_buffer: wrongShape } }, param_groups: [g] }), ValueError, "'momentum_buffer'");
    expect(opt.lr).toBe(0.1);
    for (const e of Object.values(good.state)) for (const t of Object.values(e)) if (typeof t !== 'number') t.dispose();
    for (const t of [wrongShape, intState, a]) t.dispose();
    opt.dispose();
  });
});

/** Runs a scheduler for n steps, returning the lr after construction and after each step. */
function lrs(make: (o: optim.Optimizer) => { step(): void }, n: number, lr = 0.1): number[] {
  const a = tensor([1], { requiresGrad: true });
  const opt = new optim.SGD([a], { lr });
  const s = make(opt);
  const out = [opt.lr];
  for (let i = 0; i < n; i++) {
    s.step();
    out.push(opt.lr);
  }
  opt.dispose();
  a.dispose();
  return out;
}

const close = (got: number[], want: number[]) => got.forEach((v, i) => expect(v, `step ${i}`).toBeCloseTo(want[i], 12));

describe('schedulers (PyTorch semantics)', () => {
  it('StepLR, MultiStepLR, ExponentialLR, LinearLR follow torch.optim.lr_scheduler', () => {
    close(lrs((o) => new optim.StepLR(o, { stepSize: 2, gamma: 0.5 }), 6), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]);
    close(lrs((o) => new optim.MultiStepLR(o, { milestones: [3, 1], gamma: 0.1 }), 4), [0.1, 0.01, 0.01, 0.001, 0.001]);
    close(lrs((o) => new optim.ExponentialLR(o, { gamma: 0.9 }), 3), [0.1, 0.09, 0.081, 0.0729]);
    // LinearLR defaults: startFactor 1/3, endFactor 1, totalIters 5.
    close(lrs((o) => new optim.LinearLR(o), 6), [0.1 / 3, 0.1 * (1 / 3 + 2 / 15), 0.1 * (1 / 3 + 4 / 15), 0.1 * (1 / 3 + 6 / 15), 0.1 * (1 / 3 + 8 / 15), 0.1, 0.1]);
  });

  it("CosineAnnealingLR matches PyTorch's recursive form, past tMax too (it comes back up)", () => {
    const tMax = 4, etaMin = 0.01, base = 0.1;
    // PyTorch's chainable recursion (lr_scheduler.py, CosineAnnealingLR.get_lr).
    const want = [base];
    for (let t = 1; t <= 10; t++) {
      const prev = want[t - 1];
      let next: number;
      if ((t - 1 - tMax) % (2 * tMax) === 0) next = prev + ((base - etaMin) * (1 - Math.cos(Math.PI / tMax))) / 2;
      else next = ((1 + Math.cos((Math.PI * t) / tMax)) / (1 + Math.cos((Math.PI * (t - 1)) / tMax))) * (prev - etaMin) + etaMin;
      want.push(next);
    }
    close(lrs((o) => new optim.CosineAnnealingLR(o, { tMax, etaMin }), 10, base), want);
  });

  it('ReduceLROnPlateau: patience, threshold (rel/abs), cooldown, minLr, NaN never improves', () => {
    const a = tensor([1], { requiresGrad: true });
    const opt = new optim.SGD([a], { lr: 1 });
    const s = new optim.ReduceLROnPlateau(opt, { patience: 1, factor: 0.5, cooldown: 1, minLr: 0.2 });
    const seen: number[] = [];
    for (const m of [10, 9, 9, 9, 9, NaN, NaN, 5, 5, 5, 5, 5, 5]) {
      s.step(m);
      seen.push(opt.lr);
    }
    // Hand-traced from torch's ReduceLROnPlateau.step.
    expect(seen).toEqual([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2]);
    expect(s.getLastLr()).toBe(0.2);
    const sd = s.stateDict();
    expect(sd).toMatchObject({ mode: 'min', factor: 0.5, patience: 1, best: 5, last_epoch: 13, min_lrs: [0.2] });
    const s2 = new optim.ReduceLROnPlateau(opt, { patience: 1, factor: 0.5, cooldown: 1, minLr: 0.2 });
    s2.loadStateDict(sd);
    expect(s2.stateDict()).toEqual(sd);
    const other = new optim.ReduceLROnPlateau(opt, { patience: 3 });
    expectThrows(() => other.loadStateDict(sd), ValueError, 'factor');
    opt.dispose();
    a.dispose();
  });

  it('state dicts: a scheduler stopped and restored continues the same lrs', () => {
    const makers: [string, (o: optim.Optimizer) => optim.LRScheduler][] = [
      ['StepLR', (o) => new optim.StepLR(o, { stepSize: 3, gamma: 0.5 })],
      ['CosineAnnealingLR', (o) => new optim.CosineAnnealingLR(o, { tMax: 5, etaMin: 0.001 })],
      ['LambdaLR', (o) => new optim.LambdaLR(o, (t) => 1 / (t + 1))],
      ['WarmupCosineLR', (o) => new optim.WarmupCosineLR(o, { warmupSteps: 2, totalSteps: 8 })],
    ];
    for (const [name, make] of makers) {
      const whole = lrs(make, 8);
      const a = tensor([1], { requiresGrad: true });
      const opt = new optim.SGD([a], { lr: 0.1 });
      const s = make(opt);
      const got = [opt.lr];
      for (let i = 0; i < 3; i++) {
        s.step();
        got.push(opt.lr);
      }
      const sd = JSON.parse(JSON.stringify(s.stateDict()));
      const osd = opt.stateDict();
      expect(sd.last_epoch, name).toBe(3);
      const opt2 = new optim.SGD([a], { lr: 0.7 });
      const s2 = make(opt2);
      opt2.loadStateDict(osd);
      s2.loadStateDict(sd);
      expect(s2.getLastLr(), name).toBe(got[3]);
      for (let i = 3; i < 8; i++) {
        s2.step();
        got.push(opt2.lr);
      }
      expect(got, name).toEqual(whole);
      opt.dispose();
      opt2.dispose();
      a.dispose();
    }
  });

  it('bad scheduler options and state dicts are ValueErrors naming them', () => {
    const a = tensor([1], { requiresGrad: true });
    const opt = new optim.SGD([a], { lr: 0.1 });
    expectThrows(() => new optim.StepLR(opt, { stepSize: 0 }), ValueError, 'stepSize');
    expectThrows(() => new optim.StepLR(opt, { stepSize: 2, gama: 0.1 } as any), ValueError, "'gama'", 'gamma');
    expectThrows(() => new optim.ExponentialLR(opt, {} as any), ValueError, 'gamma');
    expectThrows(() => new optim.ReduceLROnPlateau(opt, { mode: 'up' as any }), ValueError, 'mode');
    expectThrows(() => new optim.ReduceLROnPlateau(opt, { factor: 1 }), ValueError, 'factor');
    const s = new optim.StepLR(opt, { stepSize: 2 });
    expectThrows(() => s.loadStateDict({ ...s.stateDict(), step_size: 5 }), ValueError, 'step_size');
    expectThrows(() => s.loadStateDict({ ...s.stateDict(), last_epoch: -1 }), ValueError, 'last_epoch');
    expectThrows(() => s.loadStateDict({ ...s.stateDict(), lastEpoch: 1 } as any), ValueError, "'lastEpoch'");
    opt.dispose();
    a.dispose();
  });
});

describe('clipGradValue', () => {
  it('clamps to [-v, v] as torch.nn.utils.clip_grad_value_ (NaN kept, infinities clamped)', async () => {
    const p = tensor([0, 0, 0, 0, 0, 0], { requiresGrad: true });
    const q = tensor([0, 0], { requiresGrad: true });
    p.grad = tensor([0.5, -2, NaN, Infinity, -Infinity, 1]);
    q.grad = tensor([3, -0.25]);
    optim.clipGradValue([p, q], 1);
    const gp = Array.from(await p.grad!.toArray());
    expect(gp.slice(0, 2)).toEqual([0.5, -1]);
    expect(Number.isNaN(gp[2])).toBe(true);
    expect(gp.slice(3)).toEqual([1, -1, 1]);
    expect(Array.from(await q.grad!.toArray())).toEqual([1, -0.25]);
    for (const t of [p, q]) t.dispose();
  });

  it("one dispatch for an optimizer's gradient arena, no new buffer, and a typed error for a bad value", async () => {
    const ps = [tensor([1, 2, 3], { requiresGrad: true }), tensor([[1, 2], [3, 4]], { requiresGrad: true }), tensor([5], { requiresGrad: true })];
    const opt = new optim.SGD(ps, { lr: 0.1 });
    tidy(() => ps.map((p) => p.mul(p).mul(10).sum()).reduce((x, y) => x.add(y)).backward());
    // The first call makes the arena's segment table (kept for the next steps, as clipGradNorm's).
    optim.clipGradValue(ps, 100);
    const before = memory().buffers;
    resetGpuStats();
    optim.clipGradValue(ps, 7);
    expect(gpuStats.dispatches).toBe(1);
    expect(memory().buffers).toBe(before);
    // grad = 20 p, clamped to 7.
    expect(Array.from(await ps[0].grad!.toArray())).toEqual([7, 7, 7]);
    expectThrows(() => optim.clipGradValue(ps, -1), ValueError, 'clipValue', '-1');
    expectThrows(() => optim.clipGradValue(ps, NaN), ValueError, 'clipValue');
    opt.dispose();
    for (const p of ps) p.dispose();
  });
});
