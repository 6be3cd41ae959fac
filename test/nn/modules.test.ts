// nn.SiLU, nn.GELU (exact and tanh), nn.Identity, nn.RMSNorm, nn.ModuleDict and nn.TransformerDecoderLayer: PyTorch's
// names and state-dict keys, float64 references (test/reference/nn.ts), finite-difference gradients, the KV cache.
import { describe, expect, it } from 'vitest';
import { nn, tensor, memory, tidy, KVCache, ShapeError, ValueError, DTypeError, type Tensor } from '../../src/index.node';
import { type Ref, allClose, ref } from '../reference/core';
import { gelu as geluRef, geluTanh as geluTanhRef } from '../reference/ops';
import { silu as siluRef } from '../reference/more_ops';
import { decoderLayerRef, rmsNorm as rmsNormRef } from '../reference/nn';
import { checkGradVsRef, expectThrows, fromRef, rnd } from '../helpers';

async function close(t: Tensor, want: Ref, atol = 3e-5, rtol = 1e-4, label = ''): Promise<void> {
  expect(t.shape, label).toEqual(want.shape);
  const r = allClose(Array.from(await t.toArray()), want.data, { atol, rtol });
  expect(r.ok, `${label} ${r.message}`).toBe(true);
}

describe('activation modules', () => {
  it('SiLU, GELU (none and tanh) and Identity match float64 and differentiate as finite differences', async () => {
    const x = rnd([3, 7], 1, -4, 4);
    await checkGradVsRef((t) => new nn.SiLU().forward(t), siluRef, [x], { label: 'SiLU' });
    await checkGradVsRef((t) => new nn.GELU().forward(t), geluRef, [x], { label: 'GELU' });
    await checkGradVsRef((t) => new nn.GELU({ approximate: 'tanh' }).forward(t), geluTanhRef, [x], { label: 'GELU tanh' });
    const xt = fromRef(x);
    const y = new nn.GELU({ approximate: 'tanh' }).forward(xt);
    await close(y, geluTanhRef(x), 1e-6, 1e-5, 'GELU tanh forward');
    expect(new nn.Identity().forward(xt)).toBe(xt);
    expect(new nn.GELU({ approximate: 'tanh' }).toString()).toBe("GELU(approximate='tanh')");
    expectThrows(() => new nn.GELU({ approximate: 'fast' as never }), ValueError, 'approximate');
    y.dispose();
    xt.dispose();
  });
});

describe('nn.RMSNorm', () => {
  for (const [shape, ns] of [[[2, 5, 7], [7]], [[3, 4, 6], [4, 6]], [[1, 13], [13]]] as const) {
    it(`input [${shape}] over [${ns}]: float64 forward, gradients for input and weight`, async () => {
      const x = rnd(shape, 2, -2, 2);
      const w = rnd(ns, 3, 0.5, 1.5);
      const m = new nn.RMSNorm([...ns], { eps: 1e-6 });
      expect(m.namedParameters().map(([n, t]) => [n, t.shape])).toEqual([['weight', [...ns]]]);
      await checkGradVsRef(
        (xt, wt) => tidy(() => {
          const mm = new nn.RMSNorm([...ns], { eps: 1e-6, elementwiseAffine: false });
          return mm.forward(xt).mul(wt);
        }),
        (xr, wr) => rmsNormRef(xr, ns, wr, 1e-6),
        [x, w],
        { label: 'RMSNorm' },
      );
      m.loadStateDict({ weight: fromRef(w) });
      const xt = fromRef(x);
      const y = m.forward(xt);
      await close(y, rmsNormRef(x, ns, w, 1e-6), 1e-5, 1e-5);
      // The weight's gradient through the module itself.
      const loss = tidy(() => m.forward(xt).sum());
      loss.backward();
      expect(m.weight!.grad!.shape).toEqual([...ns]);
      for (const t of [y, xt, loss]) t.dispose();
      m.dispose();
    });
  }

  it("defaults to PyTorch's eps (f32 machine epsilon); bad shapes and dtypes are typed errors before GPU work", () => {
    const m = new nn.RMSNorm(4);
    expect(m.eps).toBe(2 ** -23);
    const x = tensor([[1, 2, 3]]);
    const xi = tensor([[1, 2, 3, 4]], { dtype: 'i32' });
    expectThrows(() => m.forward(x), ShapeError, 'RMSNorm([4])', '[1,3]');
    expectThrows(() => m.forward(xi), DTypeError, 'f32');
    expectThrows(() => new nn.RMSNorm([]), ValueError, 'normalizedShape');
    expectThrows(() => new nn.RMSNorm(4, { epsilon: 1 } as never), ValueError, "'epsilon'");
    for (const t of [x, xi]) t.dispose();
    m.dispose();
  });
});

describe('nn.ModuleDict', () => {
  it('names children by key (state-dict prefixes), keeps insertion order, deletes', () => {
    const d = new nn.ModuleDict({ enc: new nn.Linear(2, 3, { seed: 1 }), act: new nn.ReLU() });
    d.set('dec', new nn.Linear(3, 2, { bias: false, seed: 2 }));
    expect([...d.keys()]).toEqual(['enc', 'act', 'dec']);
    expect(d.size).toBe(3);
    expect(d.has('act')).toBe(true);
    expect(d.get('enc')).toBeInstanceOf(nn.Linear);
    expect(Object.keys(d.stateDict())).toEqual(['enc.weight', 'enc.bias', 'dec.weight']);
    const dec = d.get('dec')!;
    expect(d.delete('dec')).toBe(true);
    expect(d.delete('dec')).toBe(false);
    expect(Object.keys(d.stateDict())).toEqual(['enc.weight', 'enc.bias']);
    expect([...d].map(([k]) => k)).toEqual(['enc', 'act']);
    expect(() => d.set('a.b', new nn.ReLU())).toThrow(ValueError);
    dec.dispose();
    d.dispose();
  });
});

/** A PyTorch-named state dict for TransformerDecoderLayer(E, ., dimFeedforward FF) with random values. */
function decoderStateDict(E: number, FF: number, seed: number): Record<string, Ref> {
  const sd: Record<string, Ref> = {};
  let s = seed;
  for (const attn of ['self_attn', 'multihead_attn']) {
    sd[`${attn}.in_proj_weight`] = rnd([3 * E, E], s++, -0.4, 0.4);
    sd[`${attn}.in_proj_bias`] = rnd([3 * E], s++, -0.2, 0.2);
    sd[`${attn}.out_proj.weight`] = rnd([E, E], s++, -0.4, 0.4);
    sd[`${attn}.out_proj.bias`] = rnd([E], s++, -0.2, 0.2);
  }
  sd['linear1.weight'] = rnd([FF, E], s++, -0.4, 0.4);
  sd['linear1.bias'] = rnd([FF], s++, -0.2, 0.2);
  sd['linear2.weight'] = rnd([E, FF], s++, -0.4, 0.4);
  sd['linear2.bias'] = rnd([E], s++, -0.2, 0.2);
  for (const i of [1, 2, 3]) {
    sd[`norm${i}.weight`] = rnd([E], s++, 0.5, 1.5);
    sd[`norm${i}.bias`] = rnd([E], s++, -0.2, 0.2);
  }
  return sd;
}

// PyTorch's TransformerDecoderLayer(8, 2, 16).state_dict().keys(), in its order.
const TORCH_DECODER_KEYS = [
  'self_attn.in_proj_weight', 'self_attn.in_proj_bias', 'self_attn.out_proj.weight', 'self_attn.out_proj.bias',
  'multihead_attn.in_proj_weight', 'multihead_attn.in_proj_bias', 'multihead_attn.out_proj.weight', 'multihead_attn.out_proj.bias',
  'linear1.weight', 'linear1.bias', 'linear2.weight', 'linear2.bias',
  'norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias', 'norm3.weight', 'norm3.bias',
];

describe('nn.TransformerDecoderLayer', () => {
  it("has PyTorch's state-dict keys in PyTorch's order and its initialisation (zero attention biases, unit norms)", async () => {
    const layer = new nn.TransformerDecoderLayer(8, 2, { dimFeedforward: 16, seed: 1 });
    expect(Object.keys(layer.stateDict())).toEqual(TORCH_DECODER_KEYS);
    expect(layer.namedChildren().map(([n]) => n)).toEqual(['self_attn', 'multihead_attn', 'linear1', 'linear2', 'norm1', 'norm2', 'norm3', 'dropout', 'dropout1', 'dropout2', 'dropout3']);
    expect(Array.from(await layer.multiheadAttn.inProjBias!.toArray()).every((v) => v === 0)).toBe(true);
    expect(Array.from(await layer.norm3.weight!.toArray()).every((v) => v === 1)).toBe(true);
    layer.dispose();
  });

  const cases = [
    { name: 'post-norm relu', normFirst: false, activation: 'relu', causal: false, masks: false },
    { name: 'post-norm causal', normFirst: false, activation: 'relu', causal: true, masks: false },
    { name: 'pre-norm gelu causal + memory key mask', normFirst: true, activation: 'gelu', causal: true, masks: true },
  ] as const;
  for (const c of cases) {
    it(`loaded from a PyTorch-named state dict reproduces the float64 layer: ${c.name}`, async () => {
      const E = 8, H = 2, FF = 16, B = 2, Nt = 5, Nm = 7;
      const sdRef = decoderStateDict(E, FF, 10);
      const tgt = rnd([B, Nt, E], 1), mem = rnd([B, Nm, E], 2);
      const memKeys = ref([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0], [B, Nm]);
      const want = decoderLayerRef(tgt, mem, sdRef, H, {
        normFirst: c.normFirst, activation: c.activation, tgtIsCausal: c.causal, memoryBoolMask: c.masks ? ref(memKeys.data, [B, 1, 1, Nm]) : undefined,
      });
      const layer = new nn.TransformerDecoderLayer(E, H, { dimFeedforward: FF, dropout: 0, normFirst: c.normFirst, activation: c.activation, seed: 4 });
      const sd = Object.fromEntries(Object.entries(sdRef).map(([k, v]) => [k, fromRef(v)]));
      layer.loadStateDict(sd);
      const km = c.masks ? tensor(Uint8Array.from(memKeys.data), { shape: [B, Nm], dtype: 'bool' }) : null;
      const tt = fromRef(tgt), mt = fromRef(mem);
      const before = memory().buffers;
      for (const impl of ['fused', 'reference'] as const) {
        const y = layer.forward(tt, mt, { tgtIsCausal: c.causal, memoryKeyMask: km, impl });
        await close(y, want, 5e-5, 2e-4, `${c.name} ${impl}`);
        y.dispose();
      }
      expect(memory().buffers).toBe(before);
      for (const t of [...Object.values(sd), tt, mt]) t.dispose();
      km?.dispose();
      layer.dispose();
    });
  }

  it('gradients with respect to the target and the memory match finite differences of the float64 layer', async () => {
    const E = 4, H = 2, FF = 6;
    const sdRef = decoderStateDict(E, FF, 40);
    const layer = new nn.TransformerDecoderLayer(E, H, { dimFeedforward: FF, dropout: 0, normFirst: true, activation: 'gelu', seed: 5 });
    const sd = Object.fromEntries(Object.entries(sdRef).map(([k, v]) => [k, fromRef(v)]));
    layer.loadStateDict(sd);
    // Only the inputs' gradients are checked (and counted by the leak check).
    for (const p of layer.parameters()) p.requiresGrad = false;
    await checkGradVsRef(
      (t, m) => layer.forward(t, m, { tgtIsCausal: true }),
      (t, m) => decoderLayerRef(t, m, sdRef, H, { normFirst: true, activation: 'gelu', tgtIsCausal: true }),
      [rnd([1, 3, E], 7), rnd([1, 4, E], 8)],
      { label: 'decoder layer' },
    );
    for (const t of Object.values(sd)) t.dispose();
    layer.zeroGrad();
    layer.dispose();
  });

  it('KV-cache decoding one position at a time equals the full causal forward', async () => {
    const E = 8, H = 2, N = 6;
    const layer = new nn.TransformerDecoderLayer(E, H, { dimFeedforward: 16, dropout: 0, normFirst: true, isCausal: true, seed: 6 });
    layer.eval();
    const tgt = fromRef(rnd([1, N, E], 11)), mem = fromRef(rnd([1, 5, E], 12));
    const full = layer.forward(tgt, mem);
    const cache = new KVCache(N);
    const steps: number[] = [];
    for (let t = 0; t < N; t++) {
      const y = tidy(() => layer.forward(tgt.slice(1, t, t + 1), mem, { cache }));
      steps.push(...(await y.toArray()));
      y.dispose();
    }
    const r = allClose(steps, Array.from(await full.toArray()), { atol: 2e-5, rtol: 1e-4 });
    expect(r.ok, r.message).toBe(true);
    for (const t of [tgt, mem, full]) t.dispose();
    cache.dispose();
    layer.dispose();
  });

  it('checks its options: unknown keys (PyTorch spellings included) are ValueErrors naming them', () => {
    expectThrows(() => new nn.TransformerDecoderLayer(8, 2, { causal: true } as never), ValueError, "'causal'");
    expectThrows(() => new nn.TransformerDecoderLayer(8, 2, { activation: 'tanh' as never }), ValueError, 'activation');
    const layer = new nn.TransformerDecoderLayer(8, 2, { dimFeedforward: 16, seed: 1 });
    const x = fromRef(rnd([1, 3, 8], 1));
    expectThrows(() => layer.forward(x, x, { tgt_is_causal: true } as never), ValueError, "'tgt_is_causal'");
    const narrow = fromRef(rnd([1, 3, 6], 1));
    expectThrows(() => layer.forward(x, narrow), ShapeError, 'memory', '6 features');
    narrow.dispose();
    expect(() => new nn.TransformerEncoderLayer(8, 2, { causal: true } as never)).toThrow(/did you mean 'isCausal'/);
    x.dispose();
    layer.dispose();
  });
});
