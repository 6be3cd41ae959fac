// Long reductions into few outputs take a two-pass path (chunks, then partials): check it against float64.
import { describe, expect, it } from 'vitest';
import { randn } from '../../src/index.node';
import { gpuStats, resetGpuStats } from '../../src/experimental';

describe('long reductions (two-pass)', () => {
  it('sum, mean, max and min of 2^17 + keepdim rows match float64', async () => {
    const x = randn([2, 256, 512], { seed: 3 });
    const data = await x.toArray();
    const n = 256 * 512;
    for (const [name, fn, want] of [
      ['sum', () => x.sum([1, 2]), (r: Float32Array) => r.reduce((a, b) => a + b, 0)],
      ['mean', () => x.mean([1, 2], true), (r: Float32Array) => r.reduce((a, b) => a + b, 0) / n],
      ['max', () => x.amax([1, 2]), (r: Float32Array) => r.reduce((a, b) => Math.max(a, b), -Infinity)],
      ['min', () => x.amin([1, 2]), (r: Float32Array) => r.reduce((a, b) => Math.min(a, b), Infinity)],
    ] as const) {
      resetGpuStats();
      const y = fn();
      expect(gpuStats.dispatches, `${name} uses two passes`).toBe(2);
      const got = await y.toArray();
      expect(got.length).toBe(2);
      for (let b = 0; b < 2; b++) {
        let ref = 0;
        const row = Float64Array.from(data.subarray(b * n, (b + 1) * n)) as unknown as Float32Array;
        ref = want(row);
        expect(Math.abs(got[b] - ref), `${name}[${b}]`).toBeLessThan(1e-3 * Math.max(1, Math.abs(ref)));
      }
      y.dispose();
    }
    const all = await x.sum().item();
    expect(Math.abs(all - Array.from(data).reduce((a, b) => a + b, 0))).toBeLessThan(0.05);
  });
});
