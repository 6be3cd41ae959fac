// A T5-style learned relative-position bias trained through the fused attention kernel: the bias table [H, 2R + 1]
// is a parameter read by attentionMods.relativeBias (a scoreMod of F.flexAttention, passed through
// nn.MultiheadAttention), so its gradient comes from the fused backward (deterministic per-tile partial sums, no
// [B, H, T, T] bias or gradient is ever built).
//
// Task: sequences of T random tokens; at each position t >= LAG, predict the token LAG positions back. The model
// has no positional embeddings: the relative bias is its only way to tell positions apart, so the same model
// without it stays near chance, and with it the table learns to peak at kvIdx - qIdx = -LAG.
import { join } from 'node:path';
import {
  F, type Tensor, accuracy, attentionMods, contiguous, load, nn, noGrad, optim, reshape, save, slice, tensor, tidy,
} from 'kiln';
import { type ExampleArgs, argmaxRows, flag, outDir, reportLoss, rng, setup } from '../common';

const NAME = 'relbias';
const VOCAB = 12;
const T = 32; // tokens per sequence
const LAG = 3; // the target is the token LAG positions back
const R = 8; // relative distances clamp to [-R, R] (T5's buckets, here one per distance)
const E = 32;
const H = 2;

function sequences(count: number, seed: number): Int32Array {
  const rand = rng(seed);
  return Int32Array.from({ length: count * T }, () => Math.floor(rand() * VOCAB));
}

/** Targets: token t - LAG for positions t >= LAG, row-major [count, T - LAG]. */
function targets(tokens: Int32Array, count: number): Int32Array {
  const y = new Int32Array(count * (T - LAG));
  for (let s = 0; s < count; s++) for (let t = LAG; t < T; t++) y[s * (T - LAG) + t - LAG] = tokens[s * T + t - LAG]!;
  return y;
}

class LagModel extends nn.Module {
  embed: nn.Embedding;
  attn: nn.MultiheadAttention;
  head: nn.Linear;
  relBias: Tensor | null;
  constructor(readonly withBias: boolean, seed: number) {
    super();
    this.embed = new nn.Embedding(VOCAB, E, { seed });
    this.attn = new nn.MultiheadAttention(E, H, { seed: seed + 1 });
    this.head = new nn.Linear(E, VOCAB, { seed: seed + 2 });
    this.relBias = withBias ? this.registerParameter('rel_bias', nn.normalParam([H, 2 * R + 1], 0.1, seed + 3, 0)) : null;
  }
  /** Logits [B * (T - LAG), VOCAB] of the positions that have a target. */
  override forward(tokens: Tensor): Tensor {
    const B = tokens.shape[0]!;
    const x = this.embed.forward(tokens);
    const scoreMod = this.relBias ? attentionMods.relativeBias(this.relBias, R) : null;
    const a = this.attn.forward(x, x, x, { isCausal: true, scoreMod });
    const logits = this.head.forward(a);
    return reshape(contiguous(slice(logits, 1, LAG, T)), [B * (T - LAG), VOCAB]);
  }
}

async function evaluate(model: LagModel, tokens: Int32Array, count: number): Promise<{ acc: number; loss: number; logits: Float32Array }> {
  model.eval();
  const y = targets(tokens, count);
  const { logits, loss } = noGrad(() => tidy(() => {
    const l = model.forward(tensor(tokens, { shape: [count, T], dtype: 'i32' }));
    return { logits: l, loss: F.crossEntropy(l, tensor(y, { shape: [y.length], dtype: 'i32' })) };
  }));
  const values = (await logits.toArray()) as Float32Array;
  const acc = accuracy(y, argmaxRows(values, VOCAB));
  const value = await loss.item();
  logits.dispose();
  loss.dispose();
  model.train();
  return { acc, loss: value, logits: values };
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = performance.now();
  await setup(NAME);
  const seed = Number(flag(args, 'seed', '1'));
  const steps = Number(flag(args, 'steps', args.smoke ? '12' : args.full ? '600' : '250'));
  const batch = 32;
  const nTest = 256;
  const test = sequences(nTest, seed + 1000);
  console.log(`${NAME}: predict the token ${LAG} back in sequences of ${T} random tokens (vocabulary ${VOCAB}); ${steps} steps of ${batch}; no positional embeddings`);
  const results: Record<string, { acc: number; first: number; last: number; model: LagModel }> = {};
  for (const withBias of args.smoke ? [true] : [true, false]) {
    const label = withBias ? 'with relative bias' : 'without relative bias';
    const model = new LagModel(withBias, 100 * seed);
    const opt = new optim.Adam(model.parameters(), { lr: Number(flag(args, 'lr', '0.01')) });
    const probe = sequences(128, seed + 2000);
    const first = (await evaluate(model, probe, 128)).loss;
    for (let step = 0; step < steps; step++) {
      const tokens = sequences(batch, seed + 10 * step + (withBias ? 0 : 5));
      const y = targets(tokens, batch);
      opt.zeroGrad();
      const l = tidy(() => F.crossEntropy(model.forward(tensor(tokens, { shape: [batch, T], dtype: 'i32' })), tensor(y, { shape: [y.length], dtype: 'i32' })));
      l.backward();
      opt.step();
      if (step % 50 === 49) process.stderr.write(`${NAME}: ${label}: step ${step + 1} loss ${(await l.item()).toFixed(4)}\n`);
      l.dispose();
    }
    const last = (await evaluate(model, probe, 128)).loss;
    const { acc } = await evaluate(model, test, nTest);
    console.log(`${NAME}: ${label}: loss ${first.toFixed(4)} -> ${last.toFixed(4)}, test accuracy ${acc.toFixed(3)} (chance ${(1 / VOCAB).toFixed(3)})`);
    results[label] = { acc, first, last, model };
  }
  const withBias = results['with relative bias']!;
  // What the table learned: per head, the relative distance kvIdx - qIdx with the largest bias (causal: <= 0).
  const table = await withBias.model.relBias!.toArray();
  const peaks = Array.from({ length: H }, (_, h) => {
    let best = 0;
    for (let d = 0; d <= R; d++) if (table[h * (2 * R + 1) + R - d]! > table[h * (2 * R + 1) + R - best]!) best = d;
    return -best;
  });
  console.log(`${NAME}: the learned bias peaks at kvIdx - qIdx = ${peaks.join(', ')} (heads 0..${H - 1}; the target is at -${LAG})`);
  // Checkpoint round trip: the table is a parameter like any other (rel_bias in the state dict).
  const path = join(outDir(NAME), 'relbias.safetensors');
  await save(withBias.model.stateDict(), path);
  const fresh = new LagModel(true, 7777);
  const sd = await load(path);
  fresh.loadStateDict(sd);
  for (const t of Object.values(sd)) t.dispose();
  const a = (await evaluate(withBias.model, test, nTest)).logits, b = (await evaluate(fresh, test, nTest)).logits;
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
  if (maxDiff !== 0) throw new Error(`${NAME}: reloaded model predicts differently (max |diff| ${maxDiff})`);
  fresh.dispose();
  console.log(`${NAME}: saved ${path}; reloaded into a fresh model: identical predictions (max |diff| 0)`);
  console.log(`${NAME}: wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (const r of Object.values(results)) r.model.dispose();
  if (args.smoke) {
    reportLoss(NAME, withBias.first, withBias.last);
    return;
  }
  console.log(`${NAME}: test accuracy ${withBias.acc.toFixed(3)} (without relative bias ${results['without relative bias']!.acc.toFixed(3)})`);
}
