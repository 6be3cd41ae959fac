// clipGradNorm with NaN or infinite gradients gives PyTorch's answer (torch.nn.utils.clip_grad_norm_): the total norm
// is NaN (or inf) and the gradients are scaled by clamp(maxNorm / (norm + 1e-6), max=1), which keeps NaN a NaN.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';

async function clip(grads: number[][], maxNorm: number): Promise<{ norm: number; grads: number[][] }> {
  const params = grads.map((g) => K.zeros([g.length], { requiresGrad: true }));
  params.forEach((p, i) => (p.grad = K.tensor(grads[i])));
  const norm = K.optim.clipGradNorm(params, maxNorm);
  const out = { norm: await norm.item(), grads: await Promise.all(params.map(async (p) => Array.from(await p.grad!.toArray()))) };
  norm.dispose();
  for (const p of params) p.dispose();
  return out;
}

/** PyTorch's rule in float64 (the result is then compared after f32 rounding). */
function torchClip(grads: number[][], maxNorm: number): { norm: number; grads: number[][] } {
  let sq = 0;
  for (const g of grads) for (const v of g) sq += v * v;
  const norm = Math.sqrt(sq);
  const coef = Math.min(maxNorm / (norm + 1e-6), 1); // Math.min keeps NaN, as torch.clamp does
  return { norm, grads: grads.map((g) => g.map((v) => v * coef)) };
}

function same(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)) || Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));
}

describe('clipGradNorm with NaN and infinities', () => {
  const cases: [string, number[][]][] = [
    ['[NaN, 2, 2]', [[NaN, 2, 2]]],
    ['NaN in a second parameter', [[1, 2], [3, NaN]]],
    ['+inf', [[Infinity, 1, 2]]],
    ['-inf and NaN', [[-Infinity, 1], [NaN]]],
    ['finite, clipped', [[3, 4]]],
    ['finite, under the limit', [[0.1, 0.2]]],
  ];
  for (const [name, grads] of cases) {
    it(name, async () => {
      const got = await clip(grads, 1);
      const want = torchClip(grads, 1);
      expect(same(got.norm, want.norm), `norm ${got.norm} vs ${want.norm}`).toBe(true);
      got.grads.forEach((g, i) => g.forEach((v, j) => expect(same(v, want.grads[i][j]), `grad[${i}][${j}] ${v} vs ${want.grads[i][j]}`).toBe(true)));
    });
  }

  it('[NaN, 2, 2]: the norm and every gradient are NaN (not -Infinity)', async () => {
    const got = await clip([[NaN, 2, 2]], 1);
    expect(Number.isNaN(got.norm)).toBe(true);
    expect(got.grads[0].every(Number.isNaN)).toBe(true);
  });
});
