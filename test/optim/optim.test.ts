import { describe, expect, it } from 'vitest';
import { optim, tensor, tidy, memory, ValueError, type Tensor } from '../../src/index';
import { gpuStats, resetGpuStats } from '../../src/experimental';

const P0 = [0.5, -1.25, 2, 0.1, -0.3];
const Q0 = [[1, -2], [0.25, 3]];
// Gradients for three steps: loss_k = sum(p * c_k) gives grad c_k exactly.
const GP = [[0.1, -0.2, 0.3, 1.5, -0.7], [0.05, 0.4, -0.3, -1, 0.2], [-0.6, 0.1, 0.9, 0.3, 0.0]];
const GQ = [[[0.2, -0.1], [1, 0.5]], [[-0.3, 0.3], [0.1, -2]], [[0.7, 0.2], [-0.4, 0.6]]];

function setGrad(p: Tensor, values: number[] | number[][]) {
  tidy(() => p.mul(tensor(values as any)).sum().backward());
}

type Rule = (p: number[], g: number[], state: any, t: number) => number[];

function hostRun(rule: Rule, p0: number[], grads: number[][]): number[][] {
  const out: number[][] = [];
  let p = p0.slice();
  const st: any = {};
  for (let t = 1; t <= grads.length; t++) {
    p = rule(p, grads[t - 1], st, t);
    out.push(p.slice());
  }
  return out;
}

const sgdRule = (lr: number, mom: number, damp: number, nesterov: boolean, wd: number): Rule => (p, g0, st, t) => {
  const g = g0.map((v, i) => v + wd * p[i]);
  let d = g;
  if (mom !== 0) {
    st.buf = t === 1 ? g.slice() : st.buf.map((b: number, i: number) => mom * b + (1 - damp) * g[i]);
    d = nesterov ? g.map((v, i) => v + mom * st.buf[i]) : st.buf;
  }
  return p.map((v, i) => v - lr * d[i]);
};

const adamRule = (lr: number, b1: number, b2: number, eps: number, wd: number, decoupled: boolean): Rule => (p0, g0, st, t) => {
  let p = p0.slice();
  let g = g0.slice();
  if (decoupled) p = p.map((v) => v * (1 - lr * wd));
  else g = g.map((v, i) => v + wd * p0[i]);
  st.m ??= g.map(() => 0);
  st.v ??= g.map(() => 0);
  st.m = st.m.map((m: number, i: number) => b1 * m + (1 - b1) * g[i]);
  st.v = st.v.map((v: number, i: number) => b2 * v + (1 - b2) * g[i] * g[i]);
  const bc1 = 1 - b1 ** t, bc2 = 1 - b2 ** t;
  return p.map((v, i) => v - (lr / bc1) * st.m[i] / (Math.sqrt(st.v[i]) / Math.sqrt(bc2) + eps));
};

async function runCase(make: (ps: Tensor[], impl: 'fused' | 'reference') => optim.Optimizer, rule: Rule) {
  for (const impl of ['fused', 'reference'] as const) await runImpl((ps) => make(ps, impl), rule, impl);
}

async function runImpl(make: (ps: Tensor[]) => optim.Optimizer, rule: Rule, impl: 'fused' | 'reference') {
  const base = memory().buffers;
  const p = tensor(P0, { requiresGrad: true });
  const q = tensor(Q0, { requiresGrad: true });
  const opt = make([p, q]);
  const expP = hostRun(rule, P0, GP);
  const expQ = hostRun(rule, Q0.flat(), GQ.map((g) => g.flat()));
  for (let k = 0; k < 3; k++) {
    opt.zeroGrad();
    setGrad(p, GP[k]);
    setGrad(q, GQ[k]);
    resetGpuStats();
    opt.step();
    if (impl === 'fused') expect(gpuStats.dispatches, 'one fused dispatch per step').toBe(1);
    else expect(gpuStats.dispatches).toBeGreaterThan(2);
    const gotP = Array.from(await p.toArray());
    const gotQ = Array.from(await q.toArray());
    for (let i = 0; i < gotP.length; i++) expect(gotP[i]).toBeCloseTo(expP[k][i], 5);
    for (let i = 0; i < gotQ.length; i++) expect(gotQ[i]).toBeCloseTo(expQ[k][i], 5);
  }
  opt.dispose();
  p.dispose();
  q.dispose();
  expect(memory().buffers).toBe(base);
}

describe('optimizers follow PyTorch update formulas step by step', () => {
  it('SGD with momentum, Nesterov and weight decay', () => runCase((ps, impl) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01, impl }), sgdRule(0.1, 0.9, 0, true, 0.01)));
  it('SGD with momentum and dampening', () => runCase((ps, impl) => new optim.SGD(ps, { lr: 0.05, momentum: 0.8, dampening: 0.3, impl }), sgdRule(0.05, 0.8, 0.3, false, 0)));
  it('plain SGD', () => runCase((ps, impl) => new optim.SGD(ps, { lr: 0.5, impl }), sgdRule(0.5, 0, 0, false, 0)));
  it('Adam with (L2) weight decay', () => runCase((ps, impl) => new optim.Adam(ps, { lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1, impl }), adamRule(0.01, 0.9, 0.999, 1e-8, 0.1, false)));
  it('AdamW with decoupled decay (default 0.01)', () => runCase((ps, impl) => new optim.AdamW(ps, { lr: 0.02, betas: [0.8, 0.99], impl }), adamRule(0.02, 0.8, 0.99, 1e-8, 0.01, true)));
});

describe('optimizer behaviour', () => {
  it('maximize flips the gradient; AdamW with weightDecay 0 equals Adam', async () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const opt = new optim.SGD([a], { lr: 0.5, maximize: true });
    setGrad(a, [1, -2]);
    opt.step();
    expect(Array.from(await a.toArray())).toEqual([1.5, 1]);
    opt.dispose();
    const x = tensor([0.3, -0.7], { requiresGrad: true });
    const y = tensor([0.3, -0.7], { requiresGrad: true });
    const o1 = new optim.Adam([x], { lr: 0.1 });
    const o2 = new optim.AdamW([y], { lr: 0.1, weightDecay: 0 });
    for (let i = 0; i < 3; i++) {
      o1.zeroGrad();
      o2.zeroGrad();
      setGrad(x, [0.5, 0.25 * i]);
      setGrad(y, [0.5, 0.25 * i]);
      o1.step();
      o2.step();
    }
    expect(Array.from(await x.toArray())).toEqual(Array.from(await y.toArray()));
    const st = o1.state(0);
    expect(st.step).toBe(3);
    expect(st.m!.shape).toEqual([2]);
    st.m!.dispose();
    st.v!.dispose();
    for (const t of [a, x, y]) t.dispose();
    o1.dispose();
    o2.dispose();
  });

  it('skips parameters without a gradient (their step count stays)', async () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const b = tensor([3], { requiresGrad: true });
    const opt = new optim.SGD([a, b], { lr: 1 });
    setGrad(a, [1, 1]);
    opt.step();
    expect(Array.from(await a.toArray())).toEqual([0, 1]);
    expect(Array.from(await b.toArray())).toEqual([3]);
    expect(opt.steps).toEqual([1, 0]);
    opt.dispose();
    a.dispose();
    b.dispose();
  });

  it('validates hyperparameters with ValueError naming the value', () => {
    const a = tensor([1], { requiresGrad: true });
    expect(() => new optim.SGD([a], { lr: NaN })).toThrow(/lr must be finite and >= 0, got NaN/);
    expect(() => new optim.SGD([a], { lr: -1 })).toThrow(ValueError);
    expect(() => new optim.SGD([a], { lr: 0.1, momentum: -0.5 })).toThrow(/momentum must be finite and >= 0, got -0.5/);
    expect(() => new optim.SGD([a], { lr: 0.1, nesterov: true })).toThrow(/nesterov/);
    expect(() => new optim.Adam([a], { betas: [1, 0.9] })).toThrow(/betas\[0\] must be in \[0, 1\), got 1/);
    expect(() => new optim.Adam([a], { betas: [0.9, -0.1] })).toThrow(/betas\[1\]/);
    expect(() => new optim.AdamW([a], { eps: 0 })).toThrow(/eps must be finite and > 0, got 0/);
    expect(() => new optim.Adam([], {})).toThrow(/empty/);
    const opt = new optim.Adam([a]);
    expect(() => (opt.lr = Infinity)).toThrow(/lr must be finite/);
    a.dispose();
  });

  it('clipGradNorm scales gradients to maxNorm and returns the total norm', async () => {
    const a = tensor([1, 1], { requiresGrad: true });
    const b = tensor([1], { requiresGrad: true });
    setGrad(a, [3, 0]);
    setGrad(b, [4]);
    const norm = optim.clipGradNorm([a, b], 1);
    expect(await norm.item()).toBeCloseTo(5, 5);
    expect(Array.from(await a.grad!.toArray()).map((v) => +v.toFixed(5))).toEqual([0.6, 0]);
    expect((await b.grad!.toArray())[0]).toBeCloseTo(0.8, 5);
    const n2 = optim.clipGradNorm([a, b], 10);
    expect(await n2.item()).toBeCloseTo(1, 4);
    expect((await b.grad!.toArray())[0]).toBeCloseTo(0.8, 5);
    for (const t of [a, b, norm, n2]) t.dispose();
  });

  it('clipGradNorm over more elements than one scale workgroup takes (2048 each): every element scaled, against float64', async () => {
    // 3 parameters, 7,001 elements: 4 scale workgroups, each striding over several elements per thread.
    const sizes = [4097, 2003, 901];
    const ps = sizes.map((n) => tensor(new Float32Array(n), { requiresGrad: true }));
    const gs = sizes.map((n, k) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + k) * (k + 1)));
    ps.forEach((p, k) => setGrad(p, Array.from(gs[k])));
    let sq = 0;
    for (const g of gs) for (const v of g) sq += v * v;
    const want = Math.sqrt(sq);
    const norm = optim.clipGradNorm(ps, 2);
    expect(Math.abs((await norm.item()) - want) / want).toBeLessThan(1e-5);
    const coef = 2 / (want + 1e-6);
    for (const [k, p] of ps.entries()) {
      const got = await p.grad!.toArray();
      for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - gs[k][i] * coef), `param ${k}[${i}]`).toBeLessThan(1e-5);
    }
    for (const t of [...ps, norm]) t.dispose();
  });

  it('schedules: linear warm-up and cosine decay', () => {
    expect(optim.linearWarmup(0, 4)).toBe(0);
    expect(optim.linearWarmup(2, 4)).toBe(0.5);
    expect(optim.linearWarmup(9, 4)).toBe(1);
    expect(optim.cosineDecay(0, 10)).toBe(1);
    expect(optim.cosineDecay(5, 10)).toBeCloseTo(0.5, 12);
    expect(optim.cosineDecay(10, 10, 0.1)).toBeCloseTo(0.1, 12);
    const a = tensor([1], { requiresGrad: true });
    const opt = new optim.SGD([a], { lr: 1 });
    const sch = new optim.WarmupCosineLR(opt, { warmupSteps: 2, totalSteps: 6 });
    const lrs = [opt.lr];
    for (let i = 0; i < 6; i++) {
      sch.step();
      lrs.push(opt.lr);
    }
    expect(lrs.map((v) => +v.toFixed(6))).toEqual([0, 0.5, 1, 0.853553, 0.5, 0.146447, 0]);
    const opt2 = new optim.SGD([a], { lr: 0.1 });
    const cos = new optim.CosineAnnealingLR(opt2, { tMax: 4, etaMin: 0.02 });
    for (let i = 0; i < 4; i++) cos.step();
    expect(opt2.lr).toBeCloseTo(0.02, 12);
    a.dispose();
  });

  it('memory: state allocated once, released by dispose', async () => {
    const base = memory().buffers;
    const a = tensor([1, 2, 3], { requiresGrad: true });
    const opt = new optim.Adam([a], { lr: 0.1 });
    for (let i = 0; i < 3; i++) {
      opt.zeroGrad();
      setGrad(a, [1, 1, 1]);
      tidy(() => opt.step());
    }
    const during = memory().buffers;
    opt.zeroGrad();
    setGrad(a, [1, 1, 1]);
    opt.step();
    expect(memory().buffers).toBe(during);
    opt.zeroGrad();
    opt.dispose();
    a.dispose();
    await a.toArray().catch(() => 0);
    expect(memory().buffers).toBe(base);
  });
});
