// The README's quick start, as written there (smaller sizes), so it stays true.
import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init, randn, F, nn, optim, tidy, memory, save, load } from '../src/index.node';

describe('README quick start', () => {
  it('runs', async () => {
    const info = await init();
    expect(typeof info.isSoftware).toBe('boolean');
    const q = randn([2, 8, 64, 16], { seed: 1, requiresGrad: true });
    const k = randn([2, 2, 64, 16], { seed: 2, requiresGrad: true });
    const v = randn([2, 2, 64, 16], { seed: 3, requiresGrad: true });
    const out = F.scaledDotProductAttention(q, k, v, { isCausal: true, dropoutP: 0.1, seed: 7 });
    out.sum().backward();
    expect(q.grad!.shape).toEqual([2, 8, 64, 16]);
    expect(k.grad!.shape).toEqual([2, 2, 64, 16]);
    const weights = F.attentionWeights(q, k, { isCausal: true });
    expect(weights.shape).toEqual([2, 8, 64, 64]);
    const mha = new nn.MultiheadAttention(32, 8, { kvHeads: 2 });
    const x = randn([4, 10, 32]);
    const y = mha.forward(x, x, x, { isCausal: true });
    expect(y.shape).toEqual([4, 10, 32]);
    const opt = new optim.AdamW(mha.parameters(), { lr: 1e-3 });
    y.sum().backward();
    opt.step();
    const file = join(mkdtempSync(join(tmpdir(), 'kiln-readme-')), 'mha.safetensors');
    await save(mha.stateDict(), file);
    const loaded = await load(file);
    expect(Object.keys(loaded).sort()).toEqual(['in_proj_bias', 'in_proj_weight', 'out_proj.bias', 'out_proj.weight']);
    const z = tidy(() => F.softmax(x.matmul(x.transpose(1, 2)), -1));
    expect(z.shape).toEqual([4, 10, 10]);
    expect(memory().buffers).toBeGreaterThan(0);
  });
});
