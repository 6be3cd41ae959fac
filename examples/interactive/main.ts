// Interactive attention: softmax(q·k / sqrt(d) + eta(context)) where a small network eta turns a context
// vector into an additive bias on the attention scores. The bias [B, N] is a tensor that requires grad, read by a
// scoreMod of F.flexAttention (captured: bias.at(b, kvIdx)), so eta trains through the fused kernel's
// captured-tensor gradient; no [B, 1, Nq, N] mask is built.
//
// Task (UCI handwritten digits): a sequence of N = 5 digit images of distinct classes and a query class
// (the context, one-hot). Target: the slot (0..4) that holds the queried class. The same model without
// the context bias sees the context only after pooling, so its attention cannot depend on the query.
import { join } from 'node:path';
import {
  F, Tensor, accuracy, concat, contiguous, fit, load, matmul, nn, noGrad, optim, relu, reshape, save, slice, tensor, tidy,
  type Batch, type Dataset, type Expr,
} from 'kiln';
import { type ExampleArgs, argmaxRows, flag, outDir, reportLoss, rng, setup } from '../common';
import { loadDigits } from '../data';

const NAME = 'interactive';
const N = 5; // images per sequence
const PIX = 64;
const CLASSES = 10;
const ROW = N * PIX + CLASSES; // pixels of the N images, then the one-hot query class

/** Sequences of N images of distinct classes drawn from `pool` (image indices), each with a query class present once. */
function makeSequences(pixels: Float32Array, labels: Int32Array, pool: number[], count: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rand = rng(seed);
  const byClass: number[][] = Array.from({ length: CLASSES }, () => []);
  for (const i of pool) byClass[labels[i]!]!.push(i);
  const x = new Float32Array(count * ROW);
  const y = new Int32Array(count);
  for (let s = 0; s < count; s++) {
    const classes = Array.from({ length: CLASSES }, (_, c) => c);
    for (let i = CLASSES - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [classes[i], classes[j]] = [classes[j]!, classes[i]!];
    }
    const slot = Math.floor(rand() * N);
    for (let p = 0; p < N; p++) {
      const members = byClass[classes[p]!]!;
      const img = members[Math.floor(rand() * members.length)]!;
      for (let k = 0; k < PIX; k++) x[s * ROW + p * PIX + k] = pixels[img * PIX + k]! / 16;
    }
    x[s * ROW + N * PIX + classes[slot]!] = 1;
    y[s] = slot;
  }
  return { x, y };
}

class ArrayDataset implements Dataset {
  readonly length: number;
  constructor(private readonly x: Float32Array, private readonly y: Int32Array) {
    this.length = y.length;
  }
  getBatch(indices: number[]): Batch {
    const xs = new Float32Array(indices.length * ROW);
    const ys = new Int32Array(indices.length);
    indices.forEach((idx, b) => {
      xs.set(this.x.subarray(idx * ROW, (idx + 1) * ROW), b * ROW);
      ys[b] = this.y[idx]!;
    });
    return { inputs: tensor(xs, { shape: [indices.length, ROW] }), targets: tensor(ys, { shape: [indices.length], dtype: 'i32' }) };
  }
}

/**
 * Attention pooling over the encoded images with a learned query; with `contextBias` the scores get
 * eta(context)_j = h_j · (W_c c), a per-key bias computed from the context and the key, added through
 * attnMask. The head reads the pooled vector and the context embedding in both variants.
 */
class InteractiveAttention extends nn.Module {
  encoder: nn.Linear;
  position: Tensor;
  query: Tensor;
  context: nn.Linear;
  eta: nn.Linear | null;
  head: nn.Linear;
  constructor(readonly dim: number, readonly contextBias: boolean, seed: number) {
    super();
    this.encoder = new nn.Linear(PIX, dim, { seed });
    this.position = this.registerParameter('position', nn.normalParam([N, dim], 0.5, seed + 1, 0));
    this.query = this.registerParameter('query', nn.normalParam([dim], 1 / Math.sqrt(dim), seed + 2, 0));
    this.context = new nn.Linear(CLASSES, dim, { seed: seed + 3 });
    this.eta = contextBias ? new nn.Linear(dim, dim, { seed: seed + 4 }) : null;
    this.head = new nn.Linear(2 * dim, N, { seed: seed + 5 });
  }
  /** Logits [B, N]. */
  override forward(x: Tensor): Tensor {
    const { pooled, ctx } = this.attend(x, false);
    return this.head.forward(concat([pooled!, ctx], 1));
  }
  /** The attention weights [B, N] over the images. */
  weights(x: Tensor): Tensor {
    return reshape(this.attend(x, true).weights!, [x.shape[0]!, N]);
  }
  private attend(x: Tensor, weightsOnly: boolean): { pooled?: Tensor; weights?: Tensor; ctx: Tensor } {
    const B = x.shape[0]!;
    const d = this.dim;
    const images = reshape(contiguous(slice(x, 1, 0, N * PIX)), [B, N, PIX]);
    const onehot = contiguous(slice(x, 1, N * PIX, ROW));
    const h = relu(this.encoder.forward(images)); // [B, N, d]
    const kv = reshape(h.add(this.position), [B, 1, N, d]);
    const ctx = relu(this.context.forward(onehot)); // [B, d]
    let bias: Tensor | null = null;
    if (this.eta) {
      // eta(context)_j = h_j · (W ctx): [B, N, d] x [B, d, 1] -> [B, N, 1] -> [B, N], captured by the scoreMod;
      // it requires grad, so eta learns through the fused backward's captured-tensor gradient.
      const w = reshape(this.eta.forward(ctx), [B, d, 1]);
      bias = reshape(matmul(h, w), [B, N]);
    }
    const q = reshape(this.query, [1, 1, 1, d]);
    // The attention map for the report: the same scores, with the bias as the float mask attentionWeights takes.
    if (weightsOnly) return { weights: F.attentionWeights(q, kv, { attnMask: bias && reshape(bias, [B, 1, 1, N]) }), ctx };
    const captured = bias;
    const scoreMod = captured ? (s: Expr, b: Expr, _h: Expr, _i: Expr, j: Expr) => s.add(captured.at(b, j)) : null;
    return { pooled: reshape(F.flexAttention(q, kv, kv, { scoreMod }), [B, d]), ctx };
  }
}

async function predict(model: InteractiveAttention, x: Float32Array, count: number): Promise<Float32Array> {
  model.eval();
  const out = new Float32Array(count * N);
  const bs = 256;
  for (let s = 0; s < count; s += bs) {
    const e = Math.min(count, s + bs);
    const logits = noGrad(() => tidy(() => {
      const xb = tensor(x.subarray(s * ROW, e * ROW), { shape: [e - s, ROW] });
      return model.forward(xb);
    }));
    out.set(await logits.toArray() as Float32Array, s * N);
    logits.dispose();
  }
  return out;
}

async function trainLoss(model: InteractiveAttention, x: Float32Array, y: Int32Array): Promise<number> {
  const n = Math.min(256, y.length);
  const logits = await predict(model, x, n);
  const loss = noGrad(() => tidy(() => F.crossEntropy(tensor(logits, { shape: [n, N] }), tensor(y.subarray(0, n), { shape: [n], dtype: 'i32' }))));
  const v = await loss.item();
  loss.dispose();
  model.train();
  return v;
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = performance.now();
  await setup(NAME);
  const seed = Number(flag(args, 'seed', '1'));
  const digits = loadDigits();
  // Split the images first so test sequences only contain images never seen in training.
  const order = Array.from({ length: digits.n }, (_, i) => i);
  const r = rng(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const cut = Math.floor(digits.n * 0.75);
  const nTrain = Number(flag(args, 'train', args.smoke ? '384' : args.full ? '8000' : '3200'));
  const nTest = args.smoke ? 128 : 1000;
  const train = makeSequences(digits.pixels, digits.labels, order.slice(0, cut), nTrain, seed + 10);
  const test = makeSequences(digits.pixels, digits.labels, order.slice(cut), nTest, seed + 20);
  const epochs = Number(flag(args, 'epochs', args.smoke ? '2' : args.full ? '15' : '5'));
  const batchSize = 64;
  const dim = 32;
  console.log(`${NAME}: ${nTrain} training sequences of ${N} digit images (${cut} images), ${nTest} test sequences (${digits.n - cut} unseen images); ${epochs} epochs each`);

  const results: Record<string, { acc: number; first: number; last: number; model: InteractiveAttention }> = {};
  // --smoke trains only the context-bias model.
  for (const contextBias of args.smoke ? [true] : [true, false]) {
    const label = contextBias ? 'with context bias' : 'without context bias';
    const model = new InteractiveAttention(dim, contextBias, 100 * seed);
    const opt = new optim.Adam(model.parameters(), { lr: Number(flag(args, 'lr', '0.01')) });
    const before = await trainLoss(model, train.x, train.y);
    await fit({
      model, optimizer: opt, trainData: new ArrayDataset(train.x, train.y), epochs, batchSize, seed,
      lossFn: (logits, targets) => F.crossEntropy(logits, targets),
      progress: true, progressStream: process.stderr,
    });
    // The loss on the same (up to 256) training sequences before and after training (what --smoke reports).
    const first = before;
    const last = await trainLoss(model, train.x, train.y);
    const acc = accuracy(test.y, argmaxRows(await predict(model, test.x, nTest), N));
    console.log(`${NAME}: ${label}: train loss ${first.toFixed(4)} -> ${last.toFixed(4)}, test accuracy ${acc.toFixed(3)}`);
    results[label] = { acc, first, last, model };
  }
  const withBias = results['with context bias']!;
  const without = results['without context bias'];

  // Checkpoint round trip: save, load into a fresh model with different initial weights, predict again.
  const path = join(outDir(NAME), 'interactive.safetensors');
  await save(withBias.model.stateDict(), path);
  const fresh = new InteractiveAttention(dim, true, 7777);
  const sd = await load(path);
  fresh.loadStateDict(sd);
  for (const t of Object.values(sd)) t.dispose();
  const before = await predict(withBias.model, test.x, nTest);
  const after = await predict(fresh, test.x, nTest);
  let maxDiff = 0;
  for (let i = 0; i < before.length; i++) maxDiff = Math.max(maxDiff, Math.abs(before[i]! - after[i]!));
  if (maxDiff !== 0) throw new Error(`${NAME}: reloaded model predicts differently (max |diff| ${maxDiff})`);
  console.log(`${NAME}: saved ${path}; reloaded into a fresh model: identical predictions (max |diff| 0)`);

  // Where the models look: the mean attention weight on the slot that holds the queried class.
  for (const [label, r] of Object.entries(results)) {
    r.model.eval();
    const w = noGrad(() => tidy(() => r.model.weights(tensor(test.x, { shape: [nTest, ROW] }))));
    const weights = (await w.toArray()) as Float32Array;
    w.dispose();
    let onTarget = 0;
    for (let i = 0; i < nTest; i++) onTarget += weights[i * N + test.y[i]!]!;
    console.log(`${NAME}: ${label}: mean attention weight on the queried image ${(onTarget / nTest).toFixed(3)} (uniform ${(1 / N).toFixed(3)})`);
  }
  console.log(`${NAME}: wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (args.smoke) {
    reportLoss(NAME, withBias.first, withBias.last);
    return;
  }
  console.log(`${NAME}: test accuracy ${withBias.acc.toFixed(3)} (without context bias ${without!.acc.toFixed(3)})`);
}
