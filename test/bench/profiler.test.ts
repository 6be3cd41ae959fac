// kiln's timestamp profiler (src/gpu/profiler.ts), which the bench uses for gpuMs.
import { describe, expect, it } from 'vitest';
import { matmul, randn, sync, tidy } from '../../src/index.node';
import { gpuDevice, hasTimestampQuery, startGpuTimer } from '../../src/experimental';

describe('startGpuTimer', () => {
  it('exposes the device', () => {
    expect(typeof gpuDevice().createBuffer).toBe('function');
  });

  it('times each dispatch and leaves results intact', async () => {
    if (!hasTimestampQuery()) return;
    const a = randn([64, 32], { seed: 1 });
    const b = randn([32, 48], { seed: 2 });
    const plain = await matmul(a, b).toArray();
    const timer = startGpuTimer();
    const outs = [tidy(() => matmul(a, b)), tidy(() => matmul(a, b))];
    const t = await timer.stop();
    expect(t.dispatches).toBeGreaterThanOrEqual(2);
    expect(t.untimed).toBe(0);
    expect(t.kernelNs).toBeGreaterThan(0);
    expect(t.spanNs).toBeGreaterThanOrEqual(t.kernelNs * 0.5);
    expect(Object.values(t.byLabel).reduce((s, l) => s + l.count, 0)).toBe(t.dispatches);
    expect(await outs[1].toArray()).toEqual(plain);
    // After stop() dispatches are batched again and not timed.
    const after = startGpuTimer();
    const t2 = await after.stop();
    expect(t2.dispatches).toBe(0);
    outs.forEach((o) => o.dispose());
    a.dispose();
    b.dispose();
    await sync();
  });
});
