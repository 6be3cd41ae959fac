// GradScaler against a hand-computed sequence (PyTorch's rules: skip and back off on inf/NaN, grow after
// growthInterval clean steps), its GPU-side skip (no readback in unscale or step; the skipped step leaves weights,
// state and step counts as they were), unscale before clipping, the order errors, state dicts, f16 gradients on f32
// master weights, and memory back to its baseline.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { gpuStats, resetGpuStats } from '../../src/experimental';
import { expectThrows } from '../helpers';

const { GradScaler, SGD, Adam } = K.optim;

/** loss = sum(w * x): the gradient of w is x (times the scale). */
function lossOf(w: K.Tensor, x: number[]): K.Tensor {
  return K.tidy(() => K.sum(K.mul(w, K.tensor(x))));
}

describe('GradScaler', () => {
  it('follows the hand-computed sequence: growth after growthInterval clean steps, skip and back-off on inf or NaN', async () => {
    const base = K.memory().buffers;
    const w = K.tensor([1, 1, 1], { requiresGrad: true });
    const opt = new SGD([w], { lr: 1 });
    const scaler = new GradScaler({ initScale: 8, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2 });
    expect(scaler.getScale()).toBe(8);
    // [x, skipped, scale after update, w after the step]
    const seq: [number[], boolean, number, number[]][] = [
      [[1, 2, 3], false, 8, [0, -1, -2]],
      [[0.5, 0.5, 0.5], false, 16, [-0.5, -1.5, -2.5]],
      [[1, Infinity, 1], true, 8, [-0.5, -1.5, -2.5]],
      [[NaN, 0, 0], true, 4, [-0.5, -1.5, -2.5]],
      [[0.25, 0, 0], false, 4, [-0.75, -1.5, -2.5]],
      [[0.25, 0, 0], false, 8, [-1, -1.5, -2.5]],
    ];
    for (const [k, [x, skip, scale, wAfter]] of seq.entries()) {
      opt.zeroGrad();
      const loss = lossOf(w, x);
      const scaled = scaler.scale(loss);
      expect(await scaled.item(), `step ${k} scaled loss`).toBe((await loss.item()) * scaler.getScale());
      scaled.backward();
      resetGpuStats();
      scaler.step(opt);
      expect(gpuStats.readbacks, 'unscale and step read nothing back').toBe(0);
      expect(await scaler.update(), `step ${k} skipped`).toBe(skip);
      expect(scaler.getScale(), `step ${k} scale`).toBe(scale);
      expect(Array.from(await w.toArray()), `step ${k} weights`).toEqual(wAfter);
      for (const t of [loss, scaled]) t.dispose();
    }
    // Two skipped steps took back their counts: four real steps.
    expect(opt.steps[0]).toBe(4);
    expect(scaler.stateDict()).toEqual({ scale: 8, growth_factor: 2, backoff_factor: 0.5, growth_interval: 2, _growth_tracker: 0 });
    opt.zeroGrad();
    opt.dispose();
    w.dispose();
    scaler.dispose();
    expect(K.memory().buffers).toBe(base);
  });

  it('a skipped step leaves Adam state and step counts as they were: the run equals one without the bad step', async () => {
    const xs = [[1, -2], [Infinity, 1], [0.5, 0.25], [-1, 3]];
    const run = async (useScaler: boolean) => {
      const w = K.tensor([0.5, -0.5], { requiresGrad: true });
      const opt = new Adam([w], { lr: 0.1 });
      const scaler = new GradScaler({ initScale: 1024 });
      for (const x of xs) {
        if (!useScaler && !x.every(Number.isFinite)) continue;
        opt.zeroGrad();
        const loss = lossOf(w, x);
        if (useScaler) {
          const s = scaler.scale(loss);
          s.backward();
          s.dispose();
          scaler.step(opt);
          await scaler.update();
        } else {
          loss.backward();
          opt.step();
        }
        loss.dispose();
      }
      const out = Array.from(await w.toArray());
      const st = opt.state(0);
      const m = Array.from(await st.m!.toArray());
      expect(st.step).toBe(3);
      st.m?.dispose();
      st.v?.dispose();
      opt.zeroGrad();
      opt.dispose();
      w.dispose();
      scaler.dispose();
      return [...out, ...m];
    };
    const scaled = await run(true);
    const plain = await run(false);
    scaled.forEach((v, i) => expect(v).toBeCloseTo(plain[i], 6));
  });

  it('unscale before clipping sees the true gradients; unscale twice, step twice or update before any step is refused', async () => {
    const w = K.tensor([3, 4], { requiresGrad: true });
    const opt = new SGD([w], { lr: 0.5 });
    const scaler = new GradScaler();
    expect(scaler.getScale()).toBe(65536);
    const loss = lossOf(w, [3, 4]);
    const s = scaler.scale(loss);
    s.backward();
    await expect(scaler.update()).rejects.toThrow(/no inf checks/);
    scaler.unscale(opt);
    expect(Array.from(await w.grad!.toArray())).toEqual([3, 4]);
    expectThrows(() => scaler.unscale(opt), K.ValueError, 'already been called');
    const norm = K.optim.clipGradNorm([w], 1);
    expect(await norm.item()).toBeCloseTo(5, 5);
    scaler.step(opt);
    expectThrows(() => scaler.step(opt), K.ValueError, 'already been called');
    expect(await scaler.update()).toBe(false);
    const got = Array.from(await w.toArray());
    expect(got[0]).toBeCloseTo(3 - 0.5 * 0.6, 5);
    expect(got[1]).toBeCloseTo(4 - 0.5 * 0.8, 5);
    for (const t of [loss, s, norm]) t.dispose();
    opt.zeroGrad();
    opt.dispose();
    w.dispose();
    scaler.dispose();
  });

  it('options and state dicts are checked; disabled is a pass-through; a reference optimizer is refused before any work', async () => {
    expectThrows(() => new GradScaler({ initScale: 0 }), K.ValueError, 'initScale');
    expectThrows(() => new GradScaler({ growthFactor: 1 }), K.ValueError, 'growthFactor');
    expectThrows(() => new GradScaler({ backoffFactor: 1.5 }), K.ValueError, 'backoffFactor');
    expectThrows(() => new GradScaler({ growthInterval: 0.5 }), K.ValueError, 'growthInterval');
    expectThrows(() => new GradScaler({ initscale: 2 } as never), K.ValueError, 'initscale');
    const a = new GradScaler({ initScale: 32, growthInterval: 7 });
    const b = new GradScaler({ growthInterval: 7 });
    b.loadStateDict(a.stateDict());
    expect(b.getScale()).toBe(32);
    expectThrows(() => b.loadStateDict({ ...a.stateDict(), growth_interval: 3 }), K.ValueError, 'growth_interval');
    const off = new GradScaler({ enabled: false });
    const w = K.tensor([1, 2], { requiresGrad: true });
    const loss = lossOf(w, [1, 1]);
    expect(off.scale(loss)).toBe(loss);
    expect(off.getScale()).toBe(1);
    loss.backward();
    const ref = new SGD([w], { lr: 1, impl: 'reference' });
    expectThrows(() => a.step(ref), K.ValueError, "impl 'fused'");
    off.step(ref);
    expect(Array.from(await w.toArray())).toEqual([0, 1]);
    loss.dispose();
    ref.zeroGrad();
    ref.dispose();
    w.dispose();
  });
});

describe('f32 master weights with f16 gradients', () => {
  it('SGD and Adam step the same from an f16 gradient as from the same values in f32; state stays f32', async () => {
    for (const make of [(p: K.Tensor) => new SGD([p], { lr: 0.1, momentum: 0.9 }), (p: K.Tensor) => new Adam([p], { lr: 0.01 })]) {
      const g = [0.5, -0.25, 1.5, 3];
      const results: number[][] = [];
      for (const dtype of ['f16', 'f32'] as const) {
        const w = K.tensor([1, 2, 3, 4], { requiresGrad: true });
        const opt = make(w);
        for (let k = 0; k < 3; k++) {
          opt.zeroGrad();
          w.grad = K.keep(K.tensor(g, { dtype }));
          opt.step();
        }
        expect(w.dtype).toBe('f32');
        const st = opt.state(0);
        expect(st.m!.dtype).toBe('f32');
        st.m?.dispose();
        st.v?.dispose();
        results.push(Array.from(await w.toArray()));
        opt.zeroGrad();
        opt.dispose();
        w.dispose();
      }
      expect(results[0]).toEqual(results[1]);
    }
  });
});
