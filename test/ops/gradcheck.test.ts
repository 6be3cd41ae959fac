// The public gradcheck (kiln backward vs finite differences of kiln's own f32 forward), and the stronger check of kiln's
// analytic gradients against float64 finite differences of test/reference for composite functions.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import { record } from '../../src/autograd/node';
import { U, unary } from '../../src/launch/elementwise';
import { checkGradVsRef, fromRef, rnd, rndAway } from '../helpers';

/** exp with a deliberately wrong backward (gradient passes through unchanged). */
function brokenExp(x: K.Tensor): K.Tensor {
  const y = unary('brokenExp', x, U.EXP);
  return record('brokenExp', y, [x], (g) => [g.makeView(g.shape, g.strides, g.offset)]);
}

describe('gradcheck (public API)', () => {
  it('passes for correct ops and reports per-input errors', async () => {
    const a = fromRef(rnd([3, 4], 1), { requiresGrad: true });
    const b = fromRef(rnd([4, 2], 2), { requiresGrad: true });
    const before = K.memory().buffers;
    const r = await K.gradcheck((x, y) => K.tanh(K.matmul(x, y)), [a, b]);
    expect(r.ok, r.message).toBe(true);
    expect(r.inputs).toHaveLength(2);
    for (const p of r.inputs) {
      expect(p.checked).toBe(true);
      expect(p.maxAbsError).toBeLessThan(1e-2);
      expect(Number.isFinite(p.maxRelError)).toBe(true);
    }
    // The caller's tensors are untouched, and nothing leaks.
    expect(a.grad).toBeNull();
    expect(K.memory().buffers).toBe(before);
    a.dispose();
    b.dispose();
  });

  it('fails a wrong backward and names the input and element', async () => {
    const x = fromRef(rnd([5], 3), { requiresGrad: true });
    const r = await K.gradcheck((t) => K.mul(brokenExp(t), 2), [x]);
    expect(r.ok).toBe(false);
    expect(r.inputs[0].ok).toBe(false);
    expect(r.inputs[0].maxAbsError).toBeGreaterThan(0.05);
    expect(r.message).toMatch(/input 0 \[5\]/);
    x.dispose();
  });

  it('only checks inputs with requiresGrad when some have it; constants and i32 inputs pass through', async () => {
    const w = fromRef(rnd([6, 3], 4), { requiresGrad: true });
    const idx = K.tensor(Int32Array.from([0, 5, 2, 5]), { shape: [4] });
    const c = fromRef(rnd([3], 5));
    const r = await K.gradcheck((i, ww, cc) => K.mul(K.embedding(i, ww), cc), [idx, w, c]);
    expect(r.ok, r.message).toBe(true);
    expect(r.inputs.map((p) => p.checked)).toEqual([false, true, false]);
    for (const t of [w, idx, c]) t.dispose();
  });

  it('works on a sweep of ops with f32-appropriate defaults', async () => {
    const fns: [string, (...xs: K.Tensor[]) => K.Tensor, number[][]][] = [
      ['softmax', (x) => K.softmax(x, 1), [[3, 5]]],
      ['logSoftmax', (x) => K.logSoftmax(x, 0), [[4, 3]]],
      ['layerNorm', (x, w, b) => K.layerNorm(x, [4], w, b), [[3, 4], [4], [4]]],
      ['div broadcast', (x, y) => K.div(x, K.add(K.mul(y, y), 1)), [[2, 3], [3]]],
      ['mean + sigmoid', (x) => K.mean(K.sigmoid(x), 0), [[5, 2]]],
      ['gelu', (x) => K.gelu(x), [[7]]],
    ];
    for (const [name, fn, shapes] of fns) {
      const xs = shapes.map((s, i) => fromRef(rnd(s, 10 + i), { requiresGrad: true }));
      const r = await K.gradcheck(fn, xs);
      expect(r.ok, `${name}: ${r.message}`).toBe(true);
      xs.forEach((x) => x.dispose());
    }
  });

  it('rejects bad arguments', async () => {
    const i = K.tensor(Int32Array.from([1]), { shape: [1] });
    await expect(K.gradcheck((t) => t, [i])).rejects.toBeInstanceOf(K.ValueError);
    await expect(K.gradcheck((t) => t, [])).rejects.toBeInstanceOf(K.ValueError);
    const x = K.ones([2]);
    await expect(K.gradcheck((t) => t, [x], { eps: 0 })).rejects.toThrow(/eps/);
    x.dispose();
    await expect(K.gradcheck((t) => t, [x])).rejects.toBeInstanceOf(K.DisposedError);
    i.dispose();
  });
});

describe('analytic gradients of composite functions against float64 finite differences', () => {
  it('an MLP block: linear -> gelu -> layerNorm -> linear -> logSoftmax', async () => {
    await checkGradVsRef(
      (x, w1, b1, g, be, w2) => K.logSoftmax(K.linear(K.layerNorm(K.gelu(K.linear(x, w1, b1)), [5], g, be), w2), -1),
      (x, w1, b1, g, be, w2) => R.logSoftmax(R.linear(R.layerNorm(R.gelu(R.linear(x, w1, b1)), [5], g, be), w2), -1),
      [rnd([2, 3, 4], 1), rnd([5, 4], 2), rnd([5], 3), rnd([5], 4, 0.5, 1.5), rnd([5], 5), rnd([3, 5], 6)],
    );
  });

  it('attention-like: softmax(q k^T / sqrt(d)) v with a shared input', async () => {
    await checkGradVsRef(
      (q, k) => K.matmul(K.softmax(K.mul(K.matmul(q, K.transpose(k, -1, -2)), 0.5), -1), k),
      (q, k) => R.matmul(R.softmax(R.mul(R.matmul(q, { data: transposeLast(k), shape: [k.shape[0], k.shape[2], k.shape[1]] }), 0.5), -1), k),
      [rnd([2, 3, 4], 7), rnd([2, 5, 4], 8)],
    );
  });

  it('a chain of elementwise ops with broadcasting and reductions', async () => {
    await checkGradVsRef(
      (a, b) => K.sum(K.div(K.sqrt(K.add(K.mul(a, a), 1)), K.abs(b)), 1, true),
      (a, b) => R.sum(R.div(R.sqrt(R.add(R.mul(a, a), 1)), R.abs(b)), 1, true),
      [rnd([3, 4], 9), rndAway([4], 10)],
    );
  });
});

function transposeLast(k: { data: Float64Array; shape: number[] }): Float64Array {
  const [B, N, D] = k.shape;
  const out = new Float64Array(k.data.length);
  for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) out[(b * D + d) * N + n] = k.data[(b * N + n) * D + d];
  return out;
}
