// Attention modules: MultiheadAttention loaded with PyTorch-named weights against a float64
// composition, gradients through fused and reference paths, masks, grouped-query heads, the KV cache,
// TransformerEncoderLayer, AttentionPooling and AdditiveAttention.
import { describe, expect, it } from 'vitest';
import { nn, tensor, memory, tidy, type Tensor, ShapeError, KVCache } from '../../src/index.node';
import { type Ref, allClose, reshape as reshapeRef, ref } from '../reference/core';
import { softmax as softmaxRef } from '../reference/ops';
import { mhaRef } from '../reference/nn';
import { sdpa, additiveAttention } from '../reference/attention';
import { rnd, fromRef } from '../helpers';

async function close(t: Tensor, want: Ref, atol = 3e-5, rtol = 1e-4, label = ''): Promise<void> {
  expect(t.shape).toEqual(want.shape);
  const r = allClose(Array.from(await t.toArray()), want.data, { atol, rtol });
  expect(r.ok, `${label} ${r.message}`).toBe(true);
}

describe('nn.MultiheadAttention', () => {
  it('uses PyTorch parameter names', () => {
    const m = new nn.MultiheadAttention(16, 4, { seed: 1 });
    expect(m.namedParameters().map(([n, t]) => [n, t.shape])).toEqual([
      ['in_proj_weight', [48, 16]], ['in_proj_bias', [48]], ['out_proj.weight', [16, 16]], ['out_proj.bias', [16]],
    ]);
    m.dispose();
  });

  for (const [name, H, Hk, causal, withMask] of [
    ['self-attention', 4, 4, false, false], ['causal', 4, 4, true, false], ['grouped-query kvHeads=2', 4, 2, false, false], ['key padding mask', 2, 2, false, true],
  ] as const) {
    it(`loaded with PyTorch-named weights reproduces the float64 composition: ${name}`, async () => {
      const E = 16, B = 2, N = 7;
      const kvDim = (E / H) * Hk;
      const W = rnd([E + 2 * kvDim, E], 1, -0.5, 0.5), bW = rnd([E + 2 * kvDim], 2), Wo = rnd([E, E], 3, -0.5, 0.5), bo = rnd([E], 4);
      const x = rnd([B, N, E], 5);
      const keyMask = ref([1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1], [B, N]);
      const want = mhaRef(x, x, W, bW, Wo, bo, H, Hk, { isCausal: causal, boolMask: withMask ? reshapeRef(keyMask, [B, 1, 1, N]) : undefined });
      const m = new nn.MultiheadAttention(E, H, { kvHeads: Hk, seed: 3 });
      const sd = { in_proj_weight: fromRef(W), in_proj_bias: fromRef(bW), 'out_proj.weight': fromRef(Wo), 'out_proj.bias': fromRef(bo) };
      m.loadStateDict(sd);
      const km = withMask ? tensor(Uint8Array.from(keyMask.data), { shape: [B, N], dtype: 'bool' }) : null;
      const xt = fromRef(x);
      for (const impl of ['fused', 'reference'] as const) {
        const y = m.forward(xt, xt, xt, { isCausal: causal, keyMask: km, impl });
        await close(y, want, 3e-5, 1e-4, `${name} ${impl}`);
        y.dispose();
      }
      for (const t of Object.values(sd)) t.dispose();
      km?.dispose();
      xt.dispose();
      m.dispose();
    });
  }

  it('cross-attention (query and key/value from different inputs) matches the composition', async () => {
    const E = 8, H = 2;
    const W = rnd([3 * E, E], 11, -0.5, 0.5), bW = rnd([3 * E], 12), Wo = rnd([E, E], 13, -0.5, 0.5), bo = rnd([E], 14);
    const x = rnd([2, 5, E], 15), mem = rnd([2, 9, E], 16);
    const want = mhaRef(x, mem, W, bW, Wo, bo, H, H);
    const m = new nn.MultiheadAttention(E, H);
    m.loadStateDict({ in_proj_weight: fromRef(W), in_proj_bias: fromRef(bW), 'out_proj.weight': fromRef(Wo), 'out_proj.bias': fromRef(bo) });
    const mt = fromRef(mem);
    await close(m.forward(fromRef(x), mt, mt), want);
  });

  it('fused and reference paths give the same gradients for every parameter', async () => {
    const m = new nn.MultiheadAttention(16, 4, { kvHeads: 2, seed: 5 });
    const x = fromRef(rnd([2, 6, 16], 21), { requiresGrad: true });
    const w = fromRef(rnd([2, 6, 16], 22));
    const grads: Record<string, Float32Array>[] = [];
    for (const impl of ['fused', 'reference'] as const) {
      for (const [, p] of m.namedParameters()) { p.grad?.dispose(); p.grad = null; }
      x.grad?.dispose();
      x.grad = null;
      const loss = tidy(() => m.forward(x, x, x, { isCausal: true, impl }).mul(w).sum());
      loss.backward();
      const g: Record<string, Float32Array> = { x: (await x.grad!.toArray()) as Float32Array };
      for (const [n, p] of m.namedParameters()) g[n] = (await p.grad!.toArray()) as Float32Array;
      grads.push(g);
      loss.dispose();
    }
    for (const key of Object.keys(grads[0])) {
      const r = allClose(Array.from(grads[0][key]), Array.from(grads[1][key]), { atol: 1e-5, rtol: 1e-4 });
      expect(r.ok, `${key}: ${r.message}`).toBe(true);
    }
  });

  it('rejects inputs with the wrong feature size, naming the shapes', () => {
    const m = new nn.MultiheadAttention(16, 4);
    expect(() => m.forward(fromRef(rnd([2, 5, 12], 1)))).toThrow(/MultiheadAttention\(16, 4\): input \[2,5,12\] has 12 features/);
    expect(() => new nn.MultiheadAttention(16, 3)).toThrow(/divisible/);
    expect(() => m.forward(fromRef(rnd([2, 5, 16], 1)), undefined, undefined, { keyMask: tensor(new Uint8Array(4), { shape: [2, 2], dtype: 'bool' }) })).toThrow(ShapeError);
  });

  it('KV cache: decoding one token at a time equals full causal attention', async () => {
    const E = 16, H = 4, N = 6;
    const m = new nn.MultiheadAttention(E, H, { kvHeads: 2, seed: 9 });
    m.eval();
    const x = fromRef(rnd([1, N, E], 31));
    const full = await m.forward(x, x, x, { isCausal: true }).toArray();
    const cache = new KVCache(16);
    const steps: number[] = [];
    for (let t = 0; t < N; t++) {
      const xt = x.slice(1, t, t + 1);
      const y = m.forward(xt, xt, xt, { cache });
      steps.push(...(await y.toArray()));
      y.dispose();
      xt.dispose();
    }
    expect(cache.length).toBe(N);
    const r = allClose(steps, Array.from(full), { atol: 2e-5, rtol: 1e-4 });
    expect(r.ok, r.message).toBe(true);
    cache.dispose();
  });
});

describe('nn.TransformerEncoderLayer', () => {
  for (const normFirst of [false, true]) {
    it(`${normFirst ? 'pre' : 'post'}-norm: shapes, PyTorch names, gradients reach every parameter, no leaks`, async () => {
      const layer = new nn.TransformerEncoderLayer(16, 4, { dimFeedforward: 32, dropout: 0, normFirst, isCausal: true, seed: 2 });
      const names = layer.namedParameters().map(([n]) => n);
      expect(names).toEqual(expect.arrayContaining(['self_attn.in_proj_weight', 'self_attn.out_proj.weight', 'linear1.weight', 'linear2.bias', 'norm1.weight', 'norm2.bias']));
      const x = fromRef(rnd([2, 5, 16], 3));
      const before = memory().buffers;
      const loss = tidy(() => layer.forward(x).pow(2).mean());
      loss.backward();
      for (const [n, p] of layer.namedParameters()) {
        expect(p.grad, n).toBeTruthy();
        const g = await p.grad!.toArray();
        expect(Array.from(g).every(Number.isFinite), n).toBe(true);
      }
      loss.dispose();
      for (const [, p] of layer.namedParameters()) { p.grad?.dispose(); p.grad = null; }
      expect(memory().buffers).toBe(before);
    });
  }
});

describe('nn.AttentionPooling and nn.AdditiveAttention', () => {
  it('AttentionPooling is the softmax(x q / sqrt(d))-weighted sum of the sequence', async () => {
    const pool = new nn.AttentionPooling(8, { seed: 4 });
    const xr = rnd([3, 5, 8], 41);
    const q = await pool.query.toArray();
    const [B, N, D] = xr.shape;
    const want = new Float64Array(B * D);
    for (let b = 0; b < B; b++) {
      const s = Array.from({ length: N }, (_, n) => { let acc = 0; for (let d = 0; d < D; d++) acc += xr.data[(b * N + n) * D + d] * q[d]; return acc / Math.sqrt(D); });
      const p = softmaxRef(ref(s, [N]), 0).data;
      for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) want[b * D + d] += p[n] * xr.data[(b * N + n) * D + d];
    }
    await close(pool.forward(fromRef(xr)), ref(want, [B, D]), 1e-5, 1e-4);
    const w = await pool.weights(fromRef(xr)).toArray();
    expect(Math.abs(Array.from(w.slice(0, N)).reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5);
  });

  it('AdditiveAttention matches the float64 Bahdanau reference', async () => {
    const att = new nn.AdditiveAttention(6, 5, 7, { seed: 8 });
    const qr = rnd([2, 3, 6], 51), kr = rnd([2, 4, 5], 52), vr = rnd([2, 4, 9], 53);
    const sd = att.stateDict();
    const toRefT = async (t: Tensor) => ref(Array.from(await t.toArray()), t.shape);
    const want = additiveAttention(qr, kr, vr, { wq: await toRefT(sd['w_query.weight']), wk: await toRefT(sd['w_key.weight']), bias: await toRefT(sd['w_key.bias']), v: await toRefT(sd['v']) });
    await close(att.forward(fromRef(qr), fromRef(kr), fromRef(vr)), want.out, 1e-5, 1e-4);
    await close(att.weights(fromRef(qr), fromRef(kr)), want.weights, 1e-6, 1e-4);
  });
});

describe('attention layers check their options', () => {
  it('unknown constructor and call keys are ValueErrors naming them; an f16 cache holds f16 exactly and refuses f32 before any work', async () => {
    const K = await import('../../src/index.node');
    const { expectThrowsRaw } = await import('../helpers');
    expect(() => new K.nn.MultiheadAttention(8, 2, { kvHead: 1 } as never)).toThrow(/'kvHead'.*kvHeads/);
    expect(() => new K.nn.TransformerEncoderLayer(8, 2, { casual: true } as never)).toThrow(K.ValueError);
    expect(() => new K.nn.AttentionPooling(8, { sed: 1 } as never)).toThrow(/'sed'/);
    expect(() => new K.nn.AdditiveAttention(4, 4, 4, { seeds: 1 } as never)).toThrow(K.ValueError);
    const layer = new K.nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16, dropout: 0, seed: 1 });
    const x = K.randn([1, 3, 8], { seed: 2 });
    expectThrowsRaw(() => layer.forward(x, { causl: true } as never), K.ValueError, "'causl'");
    const cache = new K.KVCache(4);
    const kh = K.randn([1, 2, 1, 4], { seed: 3, dtype: 'f16' });
    const kh2 = K.randn([1, 2, 2, 4], { seed: 4, dtype: 'f16' });
    const first = cache.append(kh, kh);
    first.k.dispose();
    first.v.dispose();
    const all = cache.append(kh2, kh2);
    expect(all.k.dtype).toBe('f16');
    const want = K.concat([kh, kh2], 2);
    expect(Array.from(await all.k.toArray())).toEqual(Array.from(await want.toArray()));
    expect(Array.from(await all.v.toArray())).toEqual(Array.from(await want.toArray()));
    const kf = K.zeros([1, 2, 1, 4]);
    expectThrowsRaw(() => cache.append(kf, kf), K.DTypeError, 'KVCache.append', 'f32', 'f16');
    expect(cache.length).toBe(3);
    for (const t of [x, kh, kh2, kf, want, all.k, all.v]) t.dispose();
    layer.dispose();
    cache.dispose();
  });
});
