// Bahdanau additive attention (nn.AdditiveAttention: score = v^T tanh(W q + U k)) against scaled
// dot-product attention (score = q·k / sqrt(d)), on the UCI handwritten digits read as a sequence of
// 16 tokens: the 8 rows and the 8 columns of each 8x8 image (8 pixels a token, plus a learned position
// embedding). Four learned queries attend over the tokens; a linear head classifies the pooled vectors.
// Both models share everything else, the seeds, the optimiser and the budget.
import { join } from 'node:path';
import { F, Tensor, TensorDataset, accuracy, fit, load, nn, noGrad, optim, reshape, save, tanh, tensor, tidy } from 'kiln';
import { type ExampleArgs, argmaxRows, flag, outDir, reportLoss, setup } from '../common';
import { loadDigits } from '../data';

const NAME = 'additive';
const TOKENS = 16;
const TOKEN = 8;
const CLASSES = 10;
const DIM = 32;
const QUERIES = 4; // learned queries, each pooling the tokens its own way

type Scoring = 'additive' | 'dot';

class DigitAttention extends nn.Module {
  embed: nn.Linear;
  position: Tensor;
  query: Tensor;
  additive: nn.AdditiveAttention | null;
  head: nn.Linear;
  constructor(readonly scoring: Scoring, seed: number) {
    super();
    this.embed = new nn.Linear(TOKEN, DIM, { seed });
    this.position = this.registerParameter('position', nn.normalParam([TOKENS, DIM], 0.5, seed + 1, 0));
    this.query = this.registerParameter('query', nn.normalParam([QUERIES, DIM], 1 / Math.sqrt(DIM), seed + 2, 0));
    this.additive = scoring === 'additive' ? new nn.AdditiveAttention(DIM, DIM, DIM, { seed: seed + 3 }) : null;
    this.head = new nn.Linear(QUERIES * DIM, CLASSES, { seed: seed + 4 });
  }
  tokens(x: Tensor): Tensor {
    return tanh(this.embed.forward(x).add(this.position)); // [B, 16, DIM]
  }
  /** Attention weights of each query over the 16 tokens [B, QUERIES, 16]. */
  weights(x: Tensor): Tensor {
    const h = this.tokens(x);
    const q = reshape(this.query, [1, QUERIES, DIM]);
    return this.additive ? this.additive.weights(q, h) : F.attentionWeights(q, h);
  }
  /** x [B, 16, 8] -> logits [B, 10]. */
  override forward(x: Tensor): Tensor {
    const B = x.shape[0]!;
    const h = this.tokens(x);
    const q = reshape(this.query, [1, QUERIES, DIM]);
    const pooled = this.additive ? this.additive.forward(q, h) : F.scaledDotProductAttention(q, h, h); // [B, QUERIES, DIM]
    return this.head.forward(reshape(pooled, [B, QUERIES * DIM]));
  }
}

/** Rows then columns of each image, pixels scaled to [0, 1]. */
function toTokens(pixels: Float32Array, idx: number[]): Float32Array {
  const out = new Float32Array(idx.length * TOKENS * TOKEN);
  idx.forEach((img, b) => {
    const o = b * TOKENS * TOKEN;
    for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) {
      const v = pixels[img * 64 + r * 8 + c]! / 16;
      out[o + r * TOKEN + c] = v; // token r: row r
      out[o + (8 + c) * TOKEN + r] = v; // token 8 + c: column c
    }
  });
  return out;
}

async function logitsOf(model: nn.Module, x: Float32Array, count: number): Promise<Float32Array> {
  model.eval();
  const out = noGrad(() => tidy(() => model.forward(tensor(x, { shape: [count, TOKENS, TOKEN] })) as Tensor));
  const v = (await out.toArray()) as Float32Array;
  out.dispose();
  model.train();
  return v;
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = performance.now();
  await setup(NAME);
  const seed = Number(flag(args, 'seed', '1'));
  const digits = loadDigits();
  // A fixed shuffled 80/20 split (the same permutation for both models).
  const order = Array.from({ length: digits.n }, (_, i) => i);
  let s = seed >>> 0;
  for (let i = order.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const cut = Math.floor(digits.n * 0.8);
  const trainIdx = order.slice(0, args.smoke ? 256 : cut);
  const testIdx = order.slice(cut);
  const xTrain = toTokens(digits.pixels, trainIdx);
  const yTrain = Int32Array.from(trainIdx, (i) => digits.labels[i]!);
  const xTest = toTokens(digits.pixels, testIdx);
  const yTest = Int32Array.from(testIdx, (i) => digits.labels[i]!);
  const epochs = Number(flag(args, 'epochs', args.smoke ? '1' : args.full ? '30' : '8'));
  console.log(`${NAME}: UCI digits as ${TOKENS} tokens (8 rows, 8 columns); ${trainIdx.length} training images, ${testIdx.length} test images; ${epochs} epochs each`);

  const results = new Map<Scoring, { acc: number; first: number; last: number; model: DigitAttention }>();
  // --smoke trains only the additive model.
  for (const scoring of (args.smoke ? ['additive'] : ['additive', 'dot']) as Scoring[]) {
    const model = new DigitAttention(scoring, 10 * seed);
    const opt = new optim.Adam(model.parameters(), { lr: Number(flag(args, 'lr', '0.01')) });
    const probeN = Math.min(256, yTrain.length);
    const probeLoss = async () => {
      const logits = await logitsOf(model, xTrain.subarray(0, probeN * TOKENS * TOKEN), probeN);
      const l = noGrad(() => F.crossEntropy(tensor(logits, { shape: [probeN, CLASSES] }), tensor(yTrain.subarray(0, probeN), { shape: [probeN], dtype: 'i32' })));
      const v = await l.item();
      l.dispose();
      return v;
    };
    const first = await probeLoss();
    await fit({
      model, optimizer: opt, epochs, batchSize: 64, seed,
      trainData: new TensorDataset(xTrain, yTrain, { xShape: [TOKENS, TOKEN], yDtype: 'i32' }),
      lossFn: (logits, targets) => F.crossEntropy(logits, targets),
      progress: true, progressStream: process.stderr,
    });
    const last = await probeLoss();
    const acc = accuracy(yTest, argmaxRows(await logitsOf(model, xTest, yTest.length), CLASSES));
    const label = scoring === 'additive' ? 'additive (Bahdanau)' : 'scaled dot-product';
    console.log(`${NAME}: ${label}: training loss ${first.toFixed(4)} -> ${last.toFixed(4)}, test accuracy ${acc.toFixed(3)}`);
    results.set(scoring, { acc, first, last, model });
  }
  const add = results.get('additive')!;
  const dot = results.get('dot');

  // Where each model looks, on average over the test images.
  for (const [scoring, r] of results) {
    const w = noGrad(() => tidy(() => r.model.weights(tensor(xTest, { shape: [yTest.length, TOKENS, TOKEN] })).mean(0).mean(0)));
    const avg = Array.from((await w.toArray()) as Float32Array);
    w.dispose();
    console.log(`${NAME}: ${scoring.padEnd(8)} mean weight (all queries), rows 0..7 | columns 0..7: ${avg.slice(0, 8).map((v) => v.toFixed(2)).join(' ')} | ${avg.slice(8).map((v) => v.toFixed(2)).join(' ')}`);
  }

  const path = join(outDir(NAME), 'additive.safetensors');
  await save(add.model.stateDict(), path);
  const fresh = new DigitAttention('additive', 999);
  const sd = await load(path);
  fresh.loadStateDict(sd);
  for (const t of Object.values(sd)) t.dispose();
  const before = await logitsOf(add.model, xTest, yTest.length);
  const after = await logitsOf(fresh, xTest, yTest.length);
  let maxDiff = 0;
  for (let i = 0; i < before.length; i++) maxDiff = Math.max(maxDiff, Math.abs(before[i]! - after[i]!));
  if (maxDiff !== 0) throw new Error(`${NAME}: reloaded model predicts differently (max |diff| ${maxDiff})`);
  console.log(`${NAME}: saved ${path}; reloaded into a fresh model: identical predictions (max |diff| 0)`);
  console.log(`${NAME}: wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (args.smoke) {
    reportLoss(NAME, add.first, add.last);
    return;
  }
  console.log(`${NAME}: test accuracy ${add.acc.toFixed(3)} (scaled dot-product ${dot!.acc.toFixed(3)})`);
}
