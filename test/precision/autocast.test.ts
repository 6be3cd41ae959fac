// autocast: which dtype each op runs in (PyTorch's lists, with matmul kept in f32 until kiln's matmul takes f16),
// the weight cast cache (once per leaf weight per outermost region, freed at its end), nesting and disabled regions,
// backward outside the region with gradients reaching f32 parameters as f32, async functions refused, no leaks.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { autocastCacheSize, autocastDType } from '../../src/ops/autocast';
import { expectThrows } from '../helpers';

const attn = (q: K.Tensor, k: K.Tensor, v: K.Tensor) => K.F.scaledDotProductAttention(q, k, v);

describe('autocast', () => {
  it('attention runs in f16; softmax, layerNorm, losses, sum, exp run in f32; mixed elementwise promotes to f32', async () => {
    const q = K.randn([1, 2, 8, 16], { seed: 1 }), k = K.randn([1, 2, 8, 16], { seed: 2 }), v = K.randn([1, 2, 8, 16], { seed: 3 });
    const h = K.randn([4, 8], { seed: 4, dtype: 'f16' });
    const f = K.randn([4, 8], { seed: 5 });
    const dtypes = K.autocast(() => K.tidy(() => {
      const a = attn(q, k, v);
      const out = {
        attention: a.dtype,
        softmax: K.softmax(h, 1).dtype,
        layerNorm: K.F.layerNorm(h, [8]).dtype,
        crossEntropy: K.F.crossEntropy(h, K.tensor([0, 1, 2, 3], { dtype: 'i32' })).dtype,
        sum: K.sum(h).dtype,
        exp: K.exp(h).dtype,
        mixedAdd: K.add(h, f).dtype,
        f16Add: K.add(h, h).dtype,
        relu: K.relu(h).dtype,
        matmul: K.matmul(h, K.transpose(f, 0, 1)).dtype,
        linear: K.F.linear(f, f).dtype,
      };
      return out;
    }));
    expect(dtypes).toEqual({
      attention: 'f16', softmax: 'f32', layerNorm: 'f32', crossEntropy: 'f32', sum: 'f32', exp: 'f32', mixedAdd: 'f32', f16Add: 'f16', relu: 'f16',
      matmul: autocastDType('matmul'), linear: autocastDType('linear'),
    });
    // Outside: f16 stays f16.
    expect(K.softmax(h, 1).dtype).toBe('f16');
    for (const t of [q, k, v, h, f]) t.dispose();
  });

  it('matches the f32 attention within f16 accuracy', async () => {
    const q = K.randn([2, 2, 9, 16], { seed: 6 }), k = K.randn([2, 2, 9, 16], { seed: 7 }), v = K.randn([2, 2, 9, 16], { seed: 8 });
    const y16 = K.autocast(() => attn(q, k, v));
    const y32 = attn(q, k, v);
    const a = await y16.toArray(), b = await y32.toArray();
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-2 * (Math.abs(b[i]) + 1));
  });

  it('casts a leaf weight once per region, frees the casts at its end, and its gradient reaches the f32 weight as f32', async () => {
    const base = K.memory().buffers;
    const q = K.randn([1, 1, 5, 8], { seed: 9 });
    const w = K.randn([1, 1, 5, 8], { seed: 10, requiresGrad: true });
    const loss = K.autocast(() => K.tidy(() => {
      resetAndCount();
      const a = attn(q, w, w);
      const b = attn(q, w, w);
      expect(autocastCacheSize()).toBe(1);
      const nested = K.autocast(() => attn(q, w, w));
      expect(autocastCacheSize()).toBe(1);
      return K.sum(K.add(K.add(a, b), nested));
    }));
    expect(autocastCacheSize()).toBe(0);
    expect(loss.dtype).toBe('f32');
    loss.backward();
    expect(w.grad!.dtype).toBe('f32');
    // The same gradient in f32: the f16 one agrees within f16 accuracy.
    const w32 = K.randn([1, 1, 5, 8], { seed: 10, requiresGrad: true });
    const l32 = K.tidy(() => K.mul(K.sum(attn(q, w32, w32)), 3));
    l32.backward();
    const g16 = await w.grad!.toArray(), g32 = await w32.grad!.toArray();
    for (let i = 0; i < g16.length; i++) expect(Math.abs(g16[i] - g32[i])).toBeLessThan(2e-2 * (Math.abs(g32[i]) + 1));
    for (const t of [loss, l32, q, w, w32]) t.dispose();
    w.grad?.dispose();
    w32.grad?.dispose();
    expect(K.memory().buffers).toBe(base);
  });

  it('nested and disabled regions behave as PyTorch: enabled: false turns it off inside, the outer state comes back', () => {
    const h = K.tensor([1, 2], { dtype: 'f16' });
    const seen = K.autocast(() => {
      const inner = K.autocast(() => K.softmax(h, 0).dtype, { enabled: false });
      const after = K.softmax(h, 0).dtype;
      const reenabled = K.autocast(() => K.autocast(() => K.softmax(h, 0).dtype), { enabled: false });
      return [inner, after, reenabled];
    });
    expect(seen).toEqual(['f16', 'f32', 'f32']);
    expect(K.autocast(() => K.softmax(h, 0).dtype, { enabled: false })).toBe('f16');
    h.dispose();
  });

  it('refuses async functions, unknown options and dtypes; restores the state after a throw', () => {
    expectThrows(() => K.autocast((async () => 1) as never), K.ValueError, 'synchronous');
    expectThrows(() => K.autocast(() => 1, { dtype: 'bf16' as never }), K.ValueError, 'dtype');
    expectThrows(() => K.autocast(() => 1, { enable: false } as never), K.ValueError, 'enable');
    expect(() => K.autocast(() => { throw new Error('boom'); })).toThrow('boom');
    const h = K.tensor([1, 2], { dtype: 'f16' });
    expect(K.softmax(h, 0).dtype).toBe('f16');
    expect(autocastCacheSize()).toBe(0);
    h.dispose();
  });
});

function resetAndCount(): void {
  expect(autocastCacheSize()).toBe(0);
}
