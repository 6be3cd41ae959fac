import { describe, expect, it } from 'vitest';
import { nn, F, tensor, memory, tidy, ShapeError, KilnError, randn } from '../../src/index';
import * as K from '../../src/index.node';
import { linear as refLinear, layerNorm as refLayerNorm, embedding as refEmbedding } from '../reference/ops';
import { ref, maxAbsDiff } from '../reference/core';

class Net extends nn.Module {
  fc1 = new nn.Linear(4, 8, { seed: 1 });
  act = new nn.ReLU();
  outProj = new nn.Linear(8, 3, { seed: 2 });
  norm = new nn.LayerNorm(3);
  override forward(x: any) {
    return tidy(() => this.norm.forward(this.outProj.forward(this.act.forward(this.fc1.forward(x)))));
  }
}

describe('nn.Module', () => {
  it('names parameters with dotted PyTorch names in declaration order', () => {
    const net = new Net();
    expect(net.namedParameters().map(([n, p]) => `${n}:${p.shape.join('x')}`)).toEqual([
      'fc1.weight:8x4', 'fc1.bias:8', 'out_proj.weight:3x8', 'out_proj.bias:3', 'norm.weight:3', 'norm.bias:3',
    ]);
    expect(net.parameters().every((p) => p.requiresGrad)).toBe(true);
    expect(Object.keys(net.stateDict())).toEqual(net.namedParameters().map(([n]) => n));
    const seq = new nn.Sequential(new nn.Linear(2, 3, { seed: 1 }), new nn.Tanh(), new nn.Linear(3, 1, { bias: false, seed: 2 }));
    expect(seq.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias', '2.weight']);
    net.dispose();
    seq.dispose();
  });

  it('registerParameter fixes a name and registerModule works for computed children', () => {
    class M extends nn.Module {
      inProjWeight = this.registerParameter('in_proj_weight', randn([2, 2], { seed: 1 }));
      blocks: nn.Module[] = [];
      constructor() {
        super();
        for (let i = 0; i < 2; i++) this.blocks.push(this.registerModule(`block${i}`, new nn.Linear(2, 2, { seed: i })));
      }
    }
    const m = new M();
    expect(m.namedParameters().map(([n]) => n)).toEqual(['in_proj_weight', 'block0.weight', 'block0.bias', 'block1.weight', 'block1.bias']);
    m.dispose();
  });

  it('ModuleList registers items as 0, 1, ...', () => {
    class Stack extends nn.Module {
      layers = new nn.ModuleList([new nn.Linear(2, 2, { seed: 1 }), new nn.Linear(2, 2, { bias: false, seed: 2 })]);
      head = new nn.Linear(2, 1, { seed: 3 });
    }
    const s = new Stack();
    expect(s.namedParameters().map(([n]) => n)).toEqual(['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'head.weight', 'head.bias']);
    expect([...s.layers].length).toBe(2);
    s.dispose();
  });

  it('train()/eval() propagate to children', () => {
    const net = new nn.Sequential(new nn.Linear(2, 2), new nn.Dropout(0.5));
    expect(net.at(1).training).toBe(true);
    net.eval();
    expect(net.modules().every((m) => !m.training)).toBe(true);
    net.train();
    expect(net.at(1).training).toBe(true);
    net.dispose();
  });

  it('loadStateDict copies in place and reports missing / unexpected / mis-shaped keys', async () => {
    const a = new nn.Linear(3, 2, { seed: 1 });
    const b = new nn.Linear(3, 2, { seed: 2 });
    const wBefore = b.weight;
    b.loadStateDict(a.stateDict());
    expect(b.weight).toBe(wBefore);
    expect(Array.from(await b.weight.toArray())).toEqual(Array.from(await a.weight.toArray()));
    const bad = tensor([[1, 2]]);
    const extra = tensor([1]);
    let err: any;
    try {
      b.loadStateDict({ weight: bad, extra });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(nn.StateDictError);
    expect(err).toBeInstanceOf(KilnError);
    expect(err.message).toMatch(/missing keys: bias/);
    expect(err.message).toMatch(/unexpected keys: extra/);
    expect(err.message).toMatch(/weight: \[1,2\] vs \[2,3\]/);
    expect(() => b.loadStateDict({ weight: a.weight }, { strict: false })).not.toThrow();
    bad.dispose();
    extra.dispose();
    a.dispose();
    b.dispose();
  });

  it('Linear matches the float64 reference and the PyTorch init bounds', async () => {
    const lin = new nn.Linear(5, 3, { seed: 7 });
    const w = await lin.weight.toArray();
    const b = await lin.bias!.toArray();
    const bound = 1 / Math.sqrt(5);
    expect(Math.max(...Array.from(w, Math.abs))).toBeLessThanOrEqual(bound * (1 + 1e-6));
    expect(Math.max(...Array.from(b, Math.abs))).toBeLessThanOrEqual(bound * (1 + 1e-6));
    const again = new nn.Linear(5, 3, { seed: 7 });
    expect(Array.from(await again.weight.toArray())).toEqual(Array.from(w));
    const xs = Float32Array.from({ length: 10 }, (_, i) => Math.sin(i));
    const x = tensor(xs, { shape: [2, 5] });
    const y = lin.forward(x);
    const expected = refLinear(ref(xs, [2, 5]), ref(w, [3, 5]), ref(b, [3]));
    expect(maxAbsDiff(await y.toArray(), expected)).toBeLessThan(1e-5);
    expect(() => lin.forward(tensor([[1, 2, 3]]))).toThrow(ShapeError);
    expect(() => lin.forward(tensor([[1, 2, 3]]))).toThrow(/Linear\(5, 3\): input \[1,3\] has 3 features.*expected 5/);
    for (const t of [x, y]) t.dispose();
    lin.dispose();
    again.dispose();
  });

  it('Embedding and LayerNorm match the references', async () => {
    const emb = new nn.Embedding(6, 4, { seed: 3 });
    const ln = new nn.LayerNorm(4);
    const idx = tensor([[1, 5], [0, 1]], { dtype: 'i32' });
    const e = emb.forward(idx);
    const wRef = ref(await emb.weight.toArray(), [6, 4]);
    expect(maxAbsDiff(await e.toArray(), refEmbedding(wRef, ref([1, 5, 0, 1], [2, 2])))).toBe(0);
    const y = ln.forward(e);
    expect(maxAbsDiff(await y.toArray(), refLayerNorm(ref(await e.toArray(), [2, 2, 4]), 4))).toBeLessThan(1e-5);
    expect(() => ln.forward(tensor([[1, 2, 3]]))).toThrow(ShapeError);
    const ws = Array.from(await emb.weight.toArray());
    const m = ws.reduce((a, v) => a + v, 0) / ws.length;
    expect(Math.abs(m)).toBeLessThan(1);
    for (const t of [idx, e, y]) t.dispose();
    emb.dispose();
    ln.dispose();
  });

  it('Dropout: seeded mask, scaling by 1/(1-p), identity in eval, gradient through the mask', async () => {
    const x = tensor(new Float32Array(1000).fill(1), { requiresGrad: true });
    const y = F.dropout(x, 0.25, { seed: 9 });
    const ys = await y.toArray();
    const kept = Array.from(ys).filter((v) => v !== 0);
    expect(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6)).toBe(true);
    expect(Math.abs(kept.length / 1000 - 0.75)).toBeLessThan(0.06);
    const y2 = F.dropout(x, 0.25, { seed: 9 });
    expect(Array.from(await y2.toArray())).toEqual(Array.from(ys));
    y.sum().backward();
    expect(Array.from(await x.grad!.toArray())).toEqual(Array.from(ys));
    const d = new nn.Dropout(0.5, { seed: 1 });
    const a1 = d.forward(x), a2 = d.forward(x);
    expect(Array.from(await a1.toArray())).not.toEqual(Array.from(await a2.toArray()));
    d.eval();
    const ev = d.forward(x);
    expect(Array.from(await ev.toArray())).toEqual(Array.from(new Float32Array(1000).fill(1)));
    expect(() => F.dropout(x, 1.5)).toThrow(/p must be in \[0, 1\], got 1.5/);
    for (const t of [x, y, y2, a1, a2, ev]) t.dispose();
  });

  it('Sequential forward and dispose return memory to baseline', async () => {
    const base = memory().buffers;
    const net = new nn.Sequential(new nn.Linear(4, 8, { seed: 1 }), new nn.GELU(), new nn.Linear(8, 2, { seed: 2 }), new nn.Sigmoid());
    const x = randn([3, 4], { seed: 5 });
    const y = net.forward(x);
    expect(y.shape).toEqual([3, 2]);
    const v = await y.toArray();
    expect(v.every((t) => t > 0 && t < 1)).toBe(true);
    x.dispose();
    y.dispose();
    net.dispose();
    expect(memory().buffers).toBe(base);
    expect(String(net)).toMatch(/Sequential\(\n  \(0\): Linear\(inFeatures=4/);
  });
});

describe('loadStateDict checks own keys', () => {
  it("a state dict missing 'toString' is not satisfied by Object.prototype.toString", () => {
    const m = new K.nn.Module();
    const t = K.ones([2], { requiresGrad: true });
    m.registerParameter('toString', t);
    const sd = m.stateDict();
    expect(Object.keys(sd)).toEqual(['toString']);
    expect(() => m.loadStateDict({})).toThrow(/missing keys: toString/);
    expect(() => m.loadStateDict({ toString: t }, { strct: false } as never)).toThrow(K.ValueError);
    m.dispose();
  });
});
