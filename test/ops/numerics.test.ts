// Numerical safety: very large and very negative logits, long rows, and empty reductions give finite,
// correct values (no NaN or Inf where the mathematics has none).
import { describe, expect, it } from 'vitest';
import { tensor, softmax, logSoftmax, zeros, F, randn } from '../../src/index.node';

describe('numerical safety', () => {
  it('softmax and logSoftmax of huge and very negative logits stay finite and exact', async () => {
    const x = tensor([[1e30, 1e30 - 1e24, -1e30], [-3e38, -3e38, -3e38], [88, 89, 90]]);
    const p = await softmax(x, -1).toArray();
    expect(Array.from(p).every(Number.isFinite)).toBe(true);
    expect(p[0] + p[1] + p[2]).toBeCloseTo(1, 6);
    expect(p[3]).toBeCloseTo(1 / 3, 6);
    const lp = await logSoftmax(x, -1).toArray();
    expect(Array.from(lp).slice(3).every(Number.isFinite)).toBe(true);
    expect(lp[8]).toBeCloseTo(-Math.log(1 + Math.exp(-1) + Math.exp(-2)), 5);
  });

  it('long rows: softmax over 100,003 entries sums to 1', async () => {
    const x = randn([100003], { seed: 3 });
    const s = await softmax(x, 0).sum().item();
    expect(s).toBeCloseTo(1, 4);
  });

  it('empty reductions: sum is 0, mean is NaN as in PyTorch, max is an error', async () => {
    const e = zeros([3, 0]);
    expect(Array.from(await e.sum(1).toArray())).toEqual([0, 0, 0]);
    expect(Array.from(await e.mean(1).toArray()).every(Number.isNaN)).toBe(true);
    expect(() => e.max(1)).toThrow(/empty/);
  });

  it('cross-entropy with logits of 1e4 is finite', async () => {
    const logits = tensor([[1e4, -1e4, 0], [0, 0, 1e4]]);
    const t = tensor(new Int32Array([0, 1]), { shape: [2] });
    const l = await F.crossEntropy(logits, t).item();
    expect(Number.isFinite(l)).toBe(true);
    expect(l).toBeCloseTo(5000, 0);
  });
});
