// compile(): a replayed step equals the eager step, call for call (losses and parameters), and holds no leaks.
import { describe, expect, it } from 'vitest';
import { F, compile, memory, nn, optim, setRngState, getRngState, tensor, tidy, type Tensor } from '../../src/index.node';
import { resetStats, stats } from '../../src/gpu/queue';

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function mlp(seed: number) {
  const l1 = new nn.Linear(7, 13, { seed });
  const l2 = new nn.Linear(13, 3, { seed: seed + 1 });
  const params = [...l1.parameters(), ...l2.parameters()];
  const opt = new optim.AdamW(params, { lr: 0.01, weightDecay: 0.05 });
  const fn = (x: Tensor, y: Tensor): Tensor =>
    tidy(() => {
      opt.zeroGrad();
      const loss = F.mseLoss(l2.forward(F.gelu(l1.forward(x))), y);
      loss.backward();
      optim.clipGradNorm(params, 0.5);
      opt.step();
      return loss;
    });
  return { params, opt, fn };
}

async function readAll(ts: readonly Tensor[]): Promise<number[][]> {
  return Promise.all(ts.map(async (t) => Array.from(await t.toArray())));
}

function expectClose(got: number[][], want: number[][], tol: number, what: string): void {
  got.forEach((row, i) =>
    row.forEach((v, j) => expect(Math.abs(v - want[i][j]), `${what} ${i}[${j}]: ${v} vs ${want[i][j]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i][j])))),
  );
}

describe('compile: replay', () => {
  it('an MLP with AdamW and gradient clipping: compiled losses and parameters equal eager, step for step', async () => {
    const steps = 8;
    const batches = Array.from({ length: steps }, (_, k) => ({ x: values(5 * 7, 10 + k), y: values(5 * 3, 50 + k) }));
    const eager = mlp(3);
    const compiled = mlp(3);
    const step = compile(compiled.fn);
    const eagerLoss: number[] = [];
    const compiledLoss: number[] = [];
    for (const [k, b] of batches.entries()) {
      const x = tensor(b.x, { shape: [5, 7] });
      const y = tensor(b.y, { shape: [5, 3] });
      const le = eager.fn(x, y);
      const lc = step(x, y);
      eagerLoss.push(await le.item());
      compiledLoss.push(await lc.item());
      le.dispose();
      lc.dispose();
      x.dispose();
      y.dispose();
      expectClose(await readAll(compiled.params), await readAll(eager.params), 1e-5, `step ${k} param`);
    }
    expect(step.fallbackReason).toBe(null);
    // The first call builds the optimizer's step table, so it differs from the second: the plan comes from the third.
    expect(step.stats.traces).toBeLessThanOrEqual(3);
    expect(step.stats.replays).toBe(steps - step.stats.traces);
    expectClose([compiledLoss], [eagerLoss], 1e-5, 'loss');
    step.dispose();
  });

  it('300 compiled steps hold no more buffers than the first replay, and dispose() returns to the baseline', async () => {
    const base = memory().buffers;
    const m = mlp(7);
    const x = tensor(values(5 * 7, 1), { shape: [5, 7] });
    const y = tensor(values(5 * 3, 2), { shape: [5, 3] });
    // One eager step first: the optimizer's and clipping's lazily made tables count in the baseline.
    m.fn(x, y).dispose();
    const afterModel = memory().buffers;
    const step = compile(m.fn);
    let live = -1;
    let last = 0;
    for (let k = 0; k < 300; k++) {
      const loss = step(x, y);
      if (k === 299) last = await loss.item();
      loss.dispose();
      if (k === 5) live = memory().buffers;
    }
    expect(step.stats.replays).toBeGreaterThanOrEqual(297);
    expect(memory().buffers).toBe(live);
    expect(Number.isFinite(last)).toBe(true);
    step.dispose();
    expect(memory().buffers).toBe(afterModel);
    x.dispose();
    y.dispose();
    m.opt.dispose();
    for (const p of m.params) p.dispose();
    expect(memory().buffers).toBe(base);
  });

  it('returns owned tensors: disposing one changes nothing for the next call, and results nest as fn returns them', async () => {
    const a = tensor([1, 2, 3]);
    const step = compile((x: Tensor) => ({ doubled: x.mul(2), parts: [x.add(1), 7] }));
    for (let k = 0; k < 4; k++) {
      const r = step(a);
      expect(Array.from(await r.doubled.toArray())).toEqual([2, 4, 6]);
      expect(Array.from(await (r.parts[0] as Tensor).toArray())).toEqual([2, 3, 4]);
      expect(r.parts[1]).toBe(7);
      r.doubled.dispose();
      (r.parts[0] as Tensor).dispose();
    }
    expect(step.stats.replays).toBe(2);
    // A new shape traces again; the old one stays cached.
    const b = tensor([1, 2, 3, 4, 5]);
    for (let k = 0; k < 3; k++) {
      const r = step(b);
      expect(Array.from(await r.doubled.toArray())).toEqual([2, 4, 6, 8, 10]);
      r.doubled.dispose();
      (r.parts[0] as Tensor).dispose();
    }
    expect(step.stats.replays).toBe(3);
    // New values in the same shape: the replay reads them.
    const c = tensor([5, -1, 0.5]);
    const r = step(c);
    expect(Array.from(await r.doubled.toArray())).toEqual([10, -2, 1]);
    expect(step.stats.replays).toBe(4);
    for (const t of [a, b, c, r.doubled, r.parts[0] as Tensor]) t.dispose();
    step.dispose();
  });

  it('a non-contiguous argument is copied in as its values', async () => {
    const base = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3] });
    const step = compile((x: Tensor) => x.mul(x));
    const want = [1, 16, 4, 25, 9, 36];
    for (let k = 0; k < 4; k++) {
      const xt = base.transpose(0, 1);
      const r = step(xt);
      expect(r.shape).toEqual([3, 2]);
      expect(Array.from(await r.toArray())).toEqual(want);
      r.dispose();
      xt.dispose();
    }
    expect(step.stats.replays).toBe(2);
    base.dispose();
    step.dispose();
  });
});
