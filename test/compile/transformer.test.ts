// compile(): a causal transformer stack with dropout (residual and attention) and a padding mask, AdamW and gradient
// clipping: the replayed step equals the eager one call for call (the same seeds drawn, the same masks).
import { describe, expect, it } from 'vitest';
import { F, compile, getRngState, memory, nn, optim, setRngState, tensor, tidy, type Tensor } from '../../src/index.node';
import { resetStats, stats } from '../../src/gpu/queue';
import { encoderStep } from './models';

const B = 4, T = 16, E = 32, H = 4, V = 67;

const model = () => encoderStep({ B, T, E, H, V, ff: 64, dropout: 0.1, clip: true });

function batch(k: number) {
  // Ids repeat within a batch (13 distinct over 64 positions): the embedding's backward sums repeated ids in a fixed
  // order (sorted; flag embedding.backward), so eager and compiled agree bit for bit there too.
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 5 * k) % 13 + 2 * k);
  const targets = Int32Array.from(ids, (_t, i) => ids[(i + 1) % ids.length]);
  // Batch row b has its last (b + k) % 3 positions padded.
  const keep = Uint8Array.from({ length: B * T }, (_, i) => (i % T < T - ((Math.floor(i / T) + k) % 3) ? 1 : 0));
  return { ids, targets, keep };
}

describe('compile: transformer training step', () => {
  it.each([false, true])('2 causal encoder layers with dropout and a key mask, AdamW + clipping: compiled (fuse %s) equals eager for 12 steps', async (fuse) => {
    const steps = 12;
    const rng = getRngState();
    const eager = model();
    const compiled = model();
    const step = compile(compiled.fn, { fuse });
    const lossE: number[] = [];
    const lossC: number[] = [];
    const dispatches = { eager: 0, compiled: 0 };
    for (let k = 0; k < steps; k++) {
      const b = batch(k);
      const tokens = tensor(b.ids, { shape: [B, T] });
      const targets = tensor(b.targets, { shape: [B * T] });
      const keyMask = tensor(b.keep, { shape: [B, T], dtype: 'bool' });
      setRngState(rng);
      resetStats();
      const le = eager.fn(tokens, targets, keyMask);
      const de = stats.dispatches;
      setRngState(rng);
      resetStats();
      const lc = step(tokens, targets, keyMask);
      if (k === steps - 1) dispatches.eager = de, dispatches.compiled = stats.dispatches;
      lossE.push(await le.item());
      lossC.push(await lc.item());
      for (const t of [le, lc, tokens, targets, keyMask]) t.dispose();
    }
    expect(step.fallbackReason, step.explain()).toBe(null);
    expect(step.stats.replays).toBeGreaterThanOrEqual(steps - 3);
    for (let k = 0; k < steps; k++) expect(Math.abs(lossC[k] - lossE[k]), `step ${k}: ${lossC[k]} vs ${lossE[k]}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(lossE[k])));
    const [pe, pc] = await Promise.all([eager.params, compiled.params].map((ps) => Promise.all(ps.map(async (p) => Array.from(await p.toArray())))));
    pe.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(pc[i][j] - v), `param ${i}[${j}]`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(v)))));
    // The dropout masks really changed from step to step (the losses are not a replay of one mask).
    expect(new Set(lossC.map((l) => l.toFixed(6))).size).toBe(steps);
    console.log(`transformer step: eager ${dispatches.eager} dispatches, compiled (fuse ${fuse}) ${dispatches.compiled}\n${step.explain()}`);
    if (fuse) expect(dispatches.compiled).toBeLessThan(dispatches.eager);
    step.dispose();
  });

  it('a pre-norm gelu stack as the charlm example builds it (positions, scaled embeddings, final norm, clipping): compiled equals eager for 8 steps, with gelu, its gradient and the residuals in matmul epilogues', async () => {
    const build = () => {
      const tok = new nn.Embedding(V, E, { seed: 1 });
      const pos = new nn.Embedding(T, E, { seed: 2 });
      const layers = [0, 1].map((i) => new nn.TransformerEncoderLayer(E, H, { dimFeedforward: 64, dropout: 0, normFirst: true, activation: 'gelu', isCausal: true, seed: 30 + 20 * i }));
      const norm = new nn.LayerNorm(E);
      const head = new nn.Linear(E, V, { seed: 7 });
      const params = [...tok.parameters(), ...pos.parameters(), ...layers.flatMap((l) => l.parameters()), ...norm.parameters(), ...head.parameters()];
      const opt = new optim.AdamW(params, { lr: 1e-2, weightDecay: 0.01 });
      const fn = (tokens: Tensor, targets: Tensor): Tensor =>
        tidy(() => {
          opt.zeroGrad();
          const at = tensor(Int32Array.from({ length: T }, (_, i) => i), { shape: [1, T], dtype: 'i32' });
          let h = tok.forward(tokens).add(pos.forward(at)).mul(0.1);
          for (const l of layers) h = l.forward(h);
          const loss = F.crossEntropy(head.forward(norm.forward(h)).reshape([B * T, V]), targets);
          loss.backward();
          optim.clipGradNorm(params, 1).dispose();
          opt.step();
          return loss.detach();
        });
      return { params, fn };
    };
    const eager = build();
    const compiled = build();
    const step = compile(compiled.fn);
    for (let k = 0; k < 8; k++) {
      const b = batch(k);
      const tokens = tensor(b.ids, { shape: [B, T] });
      const targets = tensor(b.targets, { shape: [B * T] });
      const le = eager.fn(tokens, targets);
      const lc = step(tokens, targets);
      const [ve, vc] = [await le.item(), await lc.item()];
      expect(Math.abs(vc - ve), `step ${k}: ${vc} vs ${ve}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(ve)));
      for (const t of [le, lc, tokens, targets]) t.dispose();
    }
    expect(step.fallbackReason).toBe(null);
    const plan = step.explain();
    for (const folded of ['residual', 'gelu x2', 'gelu_grad x2']) expect(plan).toContain(folded);
    const [pe, pc] = await Promise.all([eager.params, compiled.params].map((ps) => Promise.all(ps.map(async (p) => Array.from(await p.toArray())))));
    pe.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(pc[i][j] - v), `param ${i}[${j}]`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(v)))));
    step.dispose();
  });
});
