// Weight tying by assignment (head.weight = emb.weight), as PyTorch users write it: parameters() yields the shared
// tensor once, the state dict names it under both keys (as PyTorch's), an optimizer trains it as one tensor, loading a
// PyTorch-style state dict works, and the replaced tensor is freed with the module.
import { describe, expect, it } from 'vitest';
import { nn, optim, F, tensor, memory, tidy, ValueError, type Tensor } from '../../src/index.node';

class TiedLM extends nn.Module {
  emb = new nn.Embedding(11, 6, { seed: 1 });
  norm = new nn.LayerNorm(6);
  head = new nn.Linear(6, 11, { bias: false, seed: 2 });
  constructor() {
    super();
    this.head.weight = this.emb.weight;
  }
  override forward(ids: Tensor): Tensor {
    return this.head.forward(this.norm.forward(this.emb.forward(ids)));
  }
}

describe('weight tying by assignment', () => {
  it('parameters() once, state dict under both names, one tensor trained by an optimizer, nothing leaked', async () => {
    const base = memory().buffers;
    const m = new TiedLM();
    expect(m.head.weight).toBe(m.emb.weight);
    expect(m.namedParameters().map(([n]) => n)).toEqual(['emb.weight', 'norm.weight', 'norm.bias']);
    expect(m.parameters().length).toBe(3);
    const sd = m.stateDict();
    expect(Object.keys(sd)).toEqual(['emb.weight', 'norm.weight', 'norm.bias', 'head.weight']);
    expect(sd['head.weight']).toBe(sd['emb.weight']);

    const opt = new optim.AdamW(m, { lr: 0.05 });
    const ids = tensor([[1, 2, 3, 4], [5, 6, 7, 8]], { dtype: 'i32' });
    const targets = tensor([2, 3, 4, 5, 6, 7, 8, 9], { dtype: 'i32' });
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const loss = tidy(() => {
        opt.zeroGrad();
        const l = F.crossEntropy(m.forward(ids).reshape([8, 11]), targets);
        l.backward();
        opt.step();
        return l;
      });
      losses.push(await loss.item());
      loss.dispose();
    }
    expect(losses[29]).toBeLessThan(losses[0] * 0.5);
    // Still one tensor: the head reads what the embedding learned.
    expect(m.head.weight).toBe(m.emb.weight);
    expect(Array.from(await m.head.weight.toArray())).toEqual(Array.from(await m.emb.weight.toArray()));
    opt.dispose();
    for (const t of [ids, targets]) t.dispose();
    m.dispose();
    expect(memory().buffers).toBe(base);
  });

  it("the gradient is the sum of both uses' gradients (embedding rows + head)", async () => {
    const m = new TiedLM();
    const ids = tensor([[3, 3, 7]], { dtype: 'i32' });
    const loss = tidy(() => m.forward(ids).pow(2).sum());
    loss.backward();
    const tied = Array.from(await m.emb.weight.grad!.toArray());
    // The same model untied: both copies' gradients, added, equal the tied gradient.
    const u = new TiedLM();
    const w2 = tidy(() => u.emb.weight.detach().clone());
    w2.requiresGrad = true;
    u.head.weight = w2;
    u.loadStateDict({ ...m.stateDict() });
    const loss2 = tidy(() => u.forward(ids).pow(2).sum());
    loss2.backward();
    const a = await u.emb.weight.grad!.toArray(), b = await u.head.weight.grad!.toArray();
    tied.forEach((v, i) => expect(v).toBeCloseTo(a[i] + b[i], 4));
    for (const t of [ids, loss, loss2]) t.dispose();
    m.zeroGrad();
    u.zeroGrad();
    m.dispose();
    u.dispose();
  });

  it("loads a PyTorch-style tied state dict (both keys) and refuses a non-parameter assignment", () => {
    const m = new TiedLM();
    const sd: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(m.stateDict())) sd[k] = tidy(() => t.detach().add(1));
    sd['head.weight'] = sd['emb.weight'];
    const r = m.loadStateDict(sd);
    expect(r).toEqual({ missingKeys: [], unexpectedKeys: [] });
    const plain = tensor([[1]]);
    const lin = new nn.Linear(1, 1);
    const own = lin.weight;
    (lin as { weight: Tensor }).weight = plain;
    expect(() => lin.parameters()).toThrow(ValueError);
    expect(() => lin.parameters()).toThrow(/not a leaf requiring grad as parameter 'weight'/);
    lin.weight = own;
    lin.dispose();
    for (const t of new Set(Object.values(sd))) t.dispose();
    plain.dispose();
    m.dispose();
  });
});
