// Convolutional features (three stages of Conv2d 3x3, 2x2 max pooling, BatchNorm, ReLU: 16/32/64 channels for
// Fashion-MNIST, 32/64/128 for the digits), multi-head self-attention over the
// positions of the last feature map with a residual, global pooling and a linear classifier, trained with Adam on
// Fashion-MNIST (the 10,000-image test split: 8,000 train / 2,000 test, stratified, seeded) or on the UCI digits
// (`--data digits`, 80 / 20 stratified). Prints a classification report, reloads a checkpoint and checks it predicts
// the same, and draws which image regions the attention looked at.
//
//   npm run example -- vision [--smoke] [--full] [--data fashion|digits] [--epochs N] [--batch B] [--lr LR] [--seed S]
//                              [--budget SECONDS, default 480] [--channels A,B,C] [--heads H] [--profile STEPS]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor, noGrad, tidy, optim, permutation, accuracy, classificationReport, confusionMatrix, save, load, viz, F } from 'kiln';
import { hasTimestampQuery, startGpuTimer } from 'kiln/experimental';
import { type ExampleArgs, argmaxRows, flag, outDir, report, reportLoss, setup } from '../common';
import { FASHION_MNIST_CLASSES, loadDigits, loadFashionMnist } from '../data';
import { Progress } from '../progress';
import { ConvAttentionClassifier, gridSide, type VisionConfig } from './model';

const NAME = 'vision';

interface Split { x: Float32Array; y: number[]; idx: number[]; n: number }

/** A seeded stratified split: the first `fraction` of each class's shuffled indices train, the rest test. */
function stratifiedSplit(labels: ArrayLike<number>, n: number, fraction: number, seed: number): { train: number[]; test: number[] } {
  const byClass = new Map<number, number[]>();
  for (const i of permutation(n, seed)) {
    const c = Number(labels[i]);
    if (!byClass.has(c)) byClass.set(c, []);
    byClass.get(c)!.push(i);
  }
  const train: number[] = [], test: number[] = [];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = byClass.get(c)!;
    const k = Math.round(idx.length * fraction);
    train.push(...idx.slice(0, k));
    test.push(...idx.slice(k));
  }
  // Interleave the classes (a seeded shuffle) so batches of the test split are mixed too.
  const shuffle = (a: number[], s: number) => permutation(a.length, s).map((j) => a[j]!);
  return { train: shuffle(train, seed + 1), test: shuffle(test, seed + 2) };
}

async function predict(model: ConvAttentionClassifier, x: Float32Array, n: number, batchSize = 250): Promise<{ pred: number[]; logits: Float32Array }> {
  model.eval();
  const side = model.config.side, C = model.config.classes;
  const logits = new Float32Array(n * C);
  for (let s = 0; s < n; s += batchSize) {
    const m = Math.min(batchSize, n - s);
    const xb = tensor(x.subarray(s * side * side, (s + m) * side * side), { shape: [m, 1, side, side] });
    const out = noGrad(() => model.forward(xb));
    logits.set(await out.toArray(), s * C);
    xb.dispose();
    out.dispose();
  }
  return { pred: Array.from(argmaxRows(logits, C)), logits };
}

/**
 * --profile N: one warm-up step, then N training steps with every dispatch timed (GPU timestamps), kernel time per
 * label printed from the most to the least; no evaluation, no checkpoint.
 */
async function profile(step: (idx: number[]) => Promise<number>, steps: number, batchSize: number, n: number): Promise<void> {
  const batch = (s: number) => Array.from({ length: batchSize }, (_, i) => (s * batchSize + i) % n);
  await step(batch(0));
  if (!hasTimestampQuery()) console.log(`${NAME}: this adapter has no timestamp queries: wall time only`);
  const timer = hasTimestampQuery() ? startGpuTimer() : null;
  const t0 = performance.now();
  for (let s = 1; s <= steps; s++) await step(batch(s));
  const wall = performance.now() - t0;
  const timing = await timer?.stop();
  console.log(`${NAME}: ${steps} training steps of ${batchSize} images: ${(wall / steps).toFixed(1)} ms a step (wall)`);
  if (!timing) return;
  console.log(`  kernel time ${(timing.kernelNs / 1e6 / steps).toFixed(1)} ms a step over ${timing.dispatches / steps} dispatches; by kernel label:`);
  const rows = Object.entries(timing.byLabel).sort((a, b) => b[1].ns - a[1].ns);
  for (const [label, r] of rows) {
    console.log(`  ${(r.ns / 1e6 / steps).toFixed(2).padStart(9)} ms  ${((100 * r.ns) / timing.kernelNs).toFixed(1).padStart(5)} %  ${String(r.count / steps).padStart(4)} x  ${label}`);
  }
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = Date.now();
  const info = await setup(NAME);
  const which = flag(args, 'data', 'fashion');
  const seed = Number(flag(args, 'seed', '0'));
  let pixels: ArrayLike<number>, labels: ArrayLike<number>, n: number, names: string[], config: VisionConfig, trainFraction: number;
  if (which === 'fashion') {
    ({ pixels, labels, n } = await loadFashionMnist());
    names = [...FASHION_MNIST_CLASSES];
    config = { side: 28, channels: [16, 32, 64], pool: [true, true, true], heads: 2, classes: 10, dropout: 0.1 };
    trainFraction = 0.8;
  } else if (which === 'digits') {
    ({ pixels, labels, n } = loadDigits());
    names = Array.from({ length: 10 }, (_, i) => String(i));
    // 8x8 images: pooling after the first two stages only, so the attention sees 2x2 positions.
    config = { side: 8, channels: [32, 64, 128], pool: [true, true, false], heads: 4, classes: 10, dropout: 0.2 };
    trainFraction = 0.8;
  } else throw new Error(`${NAME}: --data must be 'fashion' or 'digits', got '${which}'`);
  config.heads = Number(flag(args, 'heads', String(config.heads)));
  const widths = flag(args, 'channels');
  if (widths) {
    const c = widths.split(',').map(Number);
    if (c.length !== 3 || !c.every((v) => Number.isInteger(v) && v > 0 && v % config.heads === 0)) throw new Error(`${NAME}: --channels takes three widths, each a multiple of ${config.heads}, got '${widths}'`);
    config.channels = c as [number, number, number];
  }
  const side = config.side, S = side * side;
  const split = stratifiedSplit(labels, n, trainFraction, 2024 + seed);
  // Standardise with the training images' mean and standard deviation.
  let sum = 0, sq = 0;
  for (const i of split.train) for (let p = 0; p < S; p++) { const v = Number(pixels[i * S + p]); sum += v; sq += v * v; }
  const count = split.train.length * S;
  const mean = sum / count, std = Math.sqrt(sq / count - mean * mean) || 1;
  const gather = (idx: number[]): Split => {
    const x = new Float32Array(idx.length * S);
    idx.forEach((i, k) => { for (let p = 0; p < S; p++) x[k * S + p] = (Number(pixels[i * S + p]) - mean) / std; });
    return { x, y: idx.map((i) => Number(labels[i])), idx, n: idx.length };
  };
  const train = gather(args.smoke ? split.train.slice(0, 256) : split.train);
  const test = gather(args.smoke ? split.test.slice(0, 200) : split.test);
  console.log(`${NAME}: ${which === 'fashion' ? 'Fashion-MNIST (its 10,000-image test split)' : 'UCI digits'}: ${train.n} train / ${test.n} test images (stratified, seed ${seed}), ${side}x${side} pixels`);

  const model = new ConvAttentionClassifier(config, 1 + seed);
  const g = gridSide(config);
  console.log(`${NAME}: Conv2d ${config.channels.join('/')} 3x3 (+ 2x2 max pooling) + BatchNorm + ReLU -> ${config.heads}-head self-attention over ${g}x${g} positions (+ residual) -> average pool -> linear; ${model.parameters().reduce((a, p) => a + p.size, 0).toLocaleString('en-US')} parameters`);
  const epochs = Number(flag(args, 'epochs', args.smoke ? '3' : args.full ? '30' : which === 'fashion' ? '10' : '15'));
  const batchSize = Number(flag(args, 'batch', '32'));
  const lr = Number(flag(args, 'lr', '3e-3'));
  const optimizer = new optim.Adam(model.parameters(), { lr });
  const stepsPerEpoch = Math.ceil(train.n / batchSize);
  const budget = Number(flag(args, 'budget', args.full ? 'Infinity' : '480'));
  // Cosine decay from lr to 2 % of it over the run, where the run's progress is the larger of the steps done (of
  // epochs x stepsPerEpoch) and the training time spent (of the budget): on a slow or loaded adapter the budget ends
  // training before the last epoch, and the rate still reaches its floor there instead of stopping halfway down.
  const totalSteps = epochs * stepsPerEpoch;
  const etaMin = lr * 0.02;
  let stepsDone = 0;
  const progress = () => Math.min(1, Math.max(stepsDone / totalSteps, (Date.now() - t0) / 1000 / budget));
  const setLr = () => { optimizer.lr = etaMin + ((lr - etaMin) * (1 + Math.cos(Math.PI * progress()))) / 2; };
  /** One optimizer step on the training images idx; returns the batch's loss. */
  const trainStep = async (idx: number[]): Promise<number> => {
    const xs = new Float32Array(idx.length * S);
    idx.forEach((i, k) => xs.set(train.x.subarray(i * S, (i + 1) * S), k * S));
    const xb = tensor(xs, { shape: [idx.length, 1, side, side] });
    const yb = tensor(Int32Array.from(idx, (i) => train.y[i]!), { dtype: 'i32' });
    const loss = tidy(() => F.crossEntropy(model.forward(xb), yb));
    loss.backward();
    setLr();
    optimizer.step();
    optimizer.zeroGrad();
    stepsDone++;
    const value = await loss.item();
    for (const t of [loss, xb, yb]) t.dispose();
    return value;
  };
  const profileSteps = Number(flag(args, 'profile', '0'));
  if (profileSteps > 0) return profile(trainStep, profileSteps, batchSize, train.n);
  // The training loop, with the wall-time budget checked after every step (an epoch of Fashion-MNIST can outlast it).
  const history: number[] = [];
  let stopped = false;
  for (let epoch = 0; epoch < epochs && !stopped; epoch++) {
    model.train();
    const order = permutation(train.n, seed, epoch);
    const bar = new Progress(`epoch ${epoch + 1}/${epochs}`, stepsPerEpoch);
    const te = Date.now();
    let lossSum = 0, seen = 0;
    for (let s = 0; s < stepsPerEpoch; s++) {
      const idx = order.slice(s * batchSize, (s + 1) * batchSize);
      const value = await trainStep(idx);
      lossSum += value * idx.length;
      seen += idx.length;
      bar.update(s + 1, `loss ${(lossSum / seen).toFixed(4)}`);
      if ((Date.now() - t0) / 1000 > budget) {
        console.log(`\n${NAME}: training time budget of ${budget} s reached in epoch ${epoch + 1} after step ${s + 1} of ${stepsPerEpoch}; stopping`);
        stopped = true;
        break;
      }
    }
    history.push(lossSum / seen);
    console.log(`  epoch ${epoch + 1}: train loss ${(lossSum / seen).toFixed(4)} over ${seen} images (${((Date.now() - te) / 1000).toFixed(1)} s)`);
  }
  if (args.smoke) reportLoss(NAME, history[0]!, history[history.length - 1]!);
  const trainSeconds = (Date.now() - t0) / 1000;

  const { pred, logits } = await predict(model, test.x, test.n);
  const testAcc = accuracy(test.y, pred);
  const labelIds = Array.from({ length: 10 }, (_, i) => i);
  console.log(`\n${NAME}: test split (${test.n} images)\n${classificationReport(test.y, pred, labelIds, { names, digits: 3 })}`);
  console.log(`confusion matrix (rows = true, columns = predicted):\n${confusionMatrix(test.y, pred, labelIds).map((r) => r.map((v) => String(v).padStart(5)).join('')).join('\n')}\n`);

  // Checkpoint round trip (weights, batch-norm running statistics and num_batches_tracked).
  const dir = args.smoke ? join(outDir(NAME), 'smoke') : outDir(NAME);
  mkdirSync(dir, { recursive: true });
  const ckpt = join(dir, `${which}.safetensors`);
  await save(model.stateDict(), ckpt, { metadata: { config: JSON.stringify(config), data: which } });
  const fresh = new ConvAttentionClassifier(config, 777);
  const state = await load(ckpt);
  fresh.loadStateDict(state);
  for (const t of Object.values(state)) t.dispose();
  const again = await predict(fresh, test.x, test.n);
  const same = again.pred.every((p, i) => p === pred[i]);
  const maxDiff = again.logits.reduce((m, v, i) => Math.max(m, Math.abs(v - logits[i]!)), 0);
  console.log(`${NAME}: checkpoint ${ckpt} reloaded into a fresh model: ${same ? 'identical' : 'DIFFERENT'} test predictions (max logit difference ${maxDiff.toExponential(1)})`);
  if (!same) throw new Error(`${NAME}: the reloaded checkpoint predicts differently`);

  // Where the attention looked: for the first test images, the image, then the attention each region received
  // (averaged over heads and query positions, scaled from its least to its most attended region), then the image
  // weighted by it.
  const show = Math.min(12, test.n);
  const xb = tensor(test.x.subarray(0, show * S), { shape: [show, 1, side, side] });
  fresh.eval();
  const wT = fresh.attentionWeights(xb); // [show, H, P, P]
  const w = await wT.toArray();
  xb.dispose();
  wT.dispose();
  const H = config.heads, P = g * g;
  const cols = 3 * side + 2;
  const grid = new Float32Array(show * (side + 1) * cols).fill(NaN);
  const regionOf = (y: number, x: number) => Math.min(g - 1, Math.floor((y * g) / side)) * g + Math.min(g - 1, Math.floor((x * g) / side));
  const received: number[][] = [];
  for (let i = 0; i < show; i++) {
    const r = new Array<number>(P).fill(0);
    for (let hh = 0; hh < H; hh++) for (let q = 0; q < P; q++) for (let k = 0; k < P; k++) r[k]! += w[((i * H + hh) * P + q) * P + k]! / (H * P);
    received.push(r);
    const rMax = Math.max(...r), rMin = Math.min(...r);
    const raw = test.idx[i]!;
    let pMax = 0;
    for (let p = 0; p < S; p++) pMax = Math.max(pMax, Number(pixels[raw * S + p]));
    const top = i * (side + 1);
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++) {
        const pix = Number(pixels[raw * S + y * side + x]) / (pMax || 1);
        // Scaled from the least to the most attended region of this image, so small differences show.
        const a = rMax > rMin ? (r[regionOf(y, x)]! - rMin) / (rMax - rMin) : 1;
        grid[(top + y) * cols + x] = pix;
        grid[(top + y) * cols + side + 1 + x] = a;
        grid[(top + y) * cols + 2 * (side + 1) + x] = pix * (0.2 + 0.8 * a);
      }
  }
  const m = { rows: show * (side + 1), cols, data: grid };
  const cell = which === 'fashion' ? 4 : 12;
  writeFileSync(join(dir, `${which}-attention.png`), viz.heatmapPNG(m, { cell, min: 0, max: 1 }));
  writeFileSync(
    join(dir, `${which}-attention.svg`),
    viz.heatmapSVG(m, {
      cell, min: 0, max: 1, showValues: false,
      title: `per row: test image, attention received by each of its ${g}x${g} regions, image x attention (true/predicted: ${test.y.slice(0, show).map((t, i) => `${names[t]}/${names[pred[i]!]}`).join(', ')})`,
    }),
  );
  const top1 = received.map((r) => r.indexOf(Math.max(...r)));
  const spread = received.map((r) => Math.max(...r) / Math.max(Math.min(...r), 1e-12));
  console.log(`${NAME}: attention over image regions in ${dir}/${which}-attention.png and .svg; most attended region (row-major of ${g}x${g}) for the first ${show} test images: ${top1.join(' ')}; most / least attended: ${spread.map((v) => v.toFixed(2)).join(' ')}`);
  console.log(`${NAME}: adapter ${info.description || info.vendor}; training ${trainSeconds.toFixed(1)} s for ${history.length} epochs; wall time ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  report(NAME, 'accuracy', testAcc);
}
