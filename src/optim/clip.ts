// Gradient clipping by global norm.
import { ValueError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { add, clamp, div, mul, sqrt, addScalar } from '../ops/elementwise.js';
import { sum } from '../ops/reduce.js';
import { full } from '../ops/creation.js';
import { noGrad } from '../autograd/index.js';

/**
 * Scales the gradients of `params` in place so that their joint 2-norm is at most maxNorm
 * (torch.nn.utils.clip_grad_norm_). Returns the total norm before clipping as a 0-d tensor, so no
 * readback is forced; `await norm.item()` to read it.
 */
export function clipGradNorm(params: Iterable<Tensor> | { parameters(): Tensor[] }, maxNorm: number): Tensor {
  if (typeof maxNorm !== 'number' || !(maxNorm >= 0) || Number.isNaN(maxNorm)) throw new ValueError(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  const list = 'parameters' in (params as object) && typeof (params as { parameters: unknown }).parameters === 'function' ? (params as { parameters(): Tensor[] }).parameters() : [...(params as Iterable<Tensor>)];
  const grads = list.filter((p) => p.grad && !p.grad.isDisposed).map((p) => p);
  return noGrad(() => {
    let sq: Tensor = full([], 0);
    for (const p of grads) {
      const g = p.grad!;
      const g2 = mul(g, g);
      const s = sum(g2);
      g2.dispose();
      const next = add(sq, s);
      s.dispose();
      sq.dispose();
      sq = next;
    }
    const norm = sqrt(sq);
    sq.dispose();
    // coef = min(1, maxNorm / (norm + 1e-6))
    const denom = addScalar(norm, 1e-6);
    const mx = full([], maxNorm);
    const ratio = div(mx, denom);
    mx.dispose();
    denom.dispose();
    const coef = clamp(ratio, -Infinity, 1);
    ratio.dispose();
    for (const p of grads) {
      const scaled = mul(p.grad!, coef);
      scaled.isGradOfOutside = true;
      p.grad!.dispose();
      p.grad = scaled;
    }
    coef.dispose();
    return norm;
  });
}
