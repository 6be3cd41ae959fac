// Soft attention over image patches on the UCI 8x8 handwritten digits (16 patches of 2x2 pixels), or on
// Fashion-MNIST with `--data fashion` (49 patches of 4x4 pixels): held-out test metrics, a checkpoint that is
// reloaded and checked, and a heatmap of where each glimpse looked.
//
//   npm run example -- digits [--smoke] [--full] [--data digits|fashion] [--epochs N] [--seed S] [--budget SECONDS]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor, noGrad, tidy, optim, fit, permutation, accuracy, classificationReport, confusionMatrix, save, load, viz, F, TensorDataset } from 'kiln';
import { type ExampleArgs, flag, outDir, report, reportLoss, setup } from '../common';
import { FASHION_MNIST_CLASSES, loadDigits, loadFashionMnist } from '../data';
import { PatchAttentionClassifier, toPatches, type PatchConfig } from './model';

const NAME = 'digits';

async function predict(model: PatchAttentionClassifier, x: Float32Array, n: number, batchSize = 256): Promise<{ pred: number[]; logits: Float32Array }> {
  model.eval();
  const P = model.numPatches;
  const d = model.config.patch ** 2;
  const C = model.config.classes;
  const pred: number[] = [];
  const logits = new Float32Array(n * C);
  for (let s = 0; s < n; s += batchSize) {
    const m = Math.min(batchSize, n - s);
    const xb = tensor(x.subarray(s * P * d, (s + m) * P * d), { shape: [m, P, d] });
    const out = noGrad(() => tidy(() => model.forward(xb)));
    const a = await out.toArray();
    xb.dispose();
    out.dispose();
    logits.set(a, s * C);
    for (let i = 0; i < m; i++) {
      let best = 0;
      for (let c = 1; c < C; c++) if (a[i * C + c]! > a[i * C + best]!) best = c;
      pred.push(best);
    }
  }
  return { pred, logits };
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = Date.now();
  await setup(NAME);
  const which = flag(args, 'data', 'digits');
  const seed = Number(flag(args, 'seed', '0'));
  let pixels: ArrayLike<number>;
  let labels: ArrayLike<number>;
  let n: number;
  let config: PatchConfig;
  let names: string[];
  let scale: number;
  if (which === 'fashion') {
    const f = await loadFashionMnist();
    ({ pixels, labels, n } = f);
    config = { side: 28, patch: 4, dim: 64, glimpses: 4, classes: 10, dropout: 0.1 };
    names = [...FASHION_MNIST_CLASSES];
    scale = 1 / 255;
  } else if (which === 'digits') {
    const d = loadDigits();
    ({ pixels, labels, n } = d);
    config = { side: 8, patch: 2, dim: 32, glimpses: 4, classes: 10, dropout: 0.1 };
    names = Array.from({ length: 10 }, (_, i) => String(i));
    scale = 1 / 16;
  } else throw new Error(`digits: --data must be 'digits' or 'fashion', got '${which}'`);

  const P = (config.side / config.patch) ** 2;
  const d = config.patch ** 2;
  const patches = toPatches(pixels, n, config.side, config.patch, scale);
  // Seeded 70/15/15 split.
  const order = permutation(n, 4321 + seed);
  const nTrain = Math.round(n * 0.7);
  const nVal = Math.round(n * 0.15);
  const gather = (idx: number[]) => {
    const x = new Float32Array(idx.length * P * d);
    idx.forEach((i, k) => x.set(patches.subarray(i * P * d, (i + 1) * P * d), k * P * d));
    return { x, y: idx.map((i) => labels[i]!), n: idx.length };
  };
  let trainIdx = order.slice(0, nTrain);
  if (args.smoke) trainIdx = trainIdx.slice(0, 384);
  const train = gather(trainIdx);
  const val = gather(order.slice(nTrain, nTrain + nVal));
  const test = gather(order.slice(nTrain + nVal));
  console.log(`${NAME}: ${which === 'fashion' ? 'Fashion-MNIST (test split of 10,000)' : 'UCI digits'}: ${train.n} train / ${val.n} validation / ${test.n} test images, ${P} patches of ${config.patch}x${config.patch} pixels`);

  const toDataset = (s: { x: Float32Array; y: number[]; n: number }) => {
    const rows: Float32Array[] = [];
    for (let i = 0; i < s.n; i++) rows.push(s.x.subarray(i * P * d, (i + 1) * P * d));
    return new TensorDataset(rows, s.y, { xShape: [P, d], yDtype: 'i32' });
  };
  const trainData = toDataset(train);
  const valData = toDataset(val);

  const model = new PatchAttentionClassifier(config, 1 + seed);
  console.log(`${NAME}: patch embedding + position embedding -> ${config.glimpses} soft-attention glimpses -> linear; ${model.parameters().reduce((a, p) => a + p.size, 0).toLocaleString('en-US')} parameters`);
  const epochs = Number(flag(args, 'epochs', args.smoke ? '4' : args.full ? '80' : which === 'fashion' ? '10' : '40'));
  const optimizer = new optim.AdamW(model.parameters(), { lr: args.smoke ? 2e-2 : 1e-2, weightDecay: 0.01 });
  const budget = Number(flag(args, 'budget', args.full ? 'Infinity' : '210'));
  const result = await fit({
    model,
    optimizer,
    trainData,
    valData: args.smoke ? undefined : valData,
    lossFn: (logits, y) => F.crossEntropy(logits, y),
    epochs,
    batchSize: 64,
    seed,
    ...(args.smoke
      ? {}
      : {
          evaluate: async (m) => ({ valAccuracy: accuracy(val.y, (await predict(m as PatchAttentionClassifier, val.x, val.n)).pred) }),
          monitor: 'valAccuracy',
          mode: 'max' as const,
          patience: args.full ? 10 : 5,
        }),
    progress: true,
    onEpoch: (logs) => {
      if (logs.valAccuracy !== undefined) console.log(`  epoch ${logs.epoch}: train loss ${logs.trainLoss.toFixed(4)}, val loss ${logs.valLoss?.toFixed(4)}, val accuracy ${logs.valAccuracy.toFixed(3)} (${logs.seconds.toFixed(1)} s)`);
      // A wall-time budget keeps the default run inside 5 minutes on a slow or busy software adapter.
      if ((Date.now() - t0) / 1000 > budget) {
        console.log(`${NAME}: training time budget of ${budget} s reached; stopping (the best epoch's weights are kept)`);
        return false;
      }
    },
  });
  const h = result.history;
  if (args.smoke) reportLoss(NAME, h[0]!.trainLoss, h[h.length - 1]!.trainLoss);
  else console.log(`${NAME}: best epoch ${result.bestEpoch} (val accuracy ${result.bestValue.toFixed(3)})${result.stoppedEarly ? ', stopped early' : ''}`);

  const { pred, logits } = await predict(model, test.x, test.n);
  const testAcc = accuracy(test.y, pred);
  const labelIds = Array.from({ length: 10 }, (_, i) => i);
  console.log(`\n${NAME}: test split (${test.n} images)\n${classificationReport(test.y, pred, labelIds, { names, digits: 3 })}`);
  console.log(`confusion matrix (rows = true, columns = predicted):\n${confusionMatrix(test.y, pred, labelIds).map((r) => r.map((v) => String(v).padStart(4)).join('')).join('\n')}\n`);

  // Checkpoint round trip.
  // --smoke writes to out/smoke/, so it never replaces a trained checkpoint.
  const dir = args.smoke ? join(outDir(NAME), 'smoke') : outDir(NAME);
  mkdirSync(dir, { recursive: true });
  const ckpt = join(dir, `${which}.safetensors`);
  await save(model.stateDict(), ckpt, { metadata: { config: JSON.stringify(config), data: which } });
  const fresh = new PatchAttentionClassifier(config, 777);
  const state = await load(ckpt);
  fresh.loadStateDict(state);
  for (const t of Object.values(state)) t.dispose();
  const again = await predict(fresh, test.x, test.n);
  const same = again.pred.every((p, i) => p === pred[i]);
  const maxDiff = again.logits.reduce((m, v, i) => Math.max(m, Math.abs(v - logits[i]!)), 0);
  console.log(`${NAME}: checkpoint ${ckpt} reloaded into a fresh model: ${same ? 'identical' : 'DIFFERENT'} test predictions (max logit difference ${maxDiff.toExponential(1)})`);
  if (!same) throw new Error('digits: the reloaded checkpoint predicts differently');

  // Where each glimpse looked, for the first 8 test images: one row per image, the image then G weight maps.
  const show = Math.min(8, test.n);
  const g = config.side / config.patch;
  const xb = tensor(test.x.subarray(0, show * P * d), { shape: [show, P, d] });
  const { features, weights } = noGrad(() => fresh.attend(xb));
  const w = await weights.toArray();
  xb.dispose();
  features.dispose();
  weights.dispose();
  const G = config.glimpses;
  const cols = config.side * (G + 1) + G; // image, then G maps upsampled to pixels, 1-pixel gaps
  const grid = new Float32Array(show * (config.side + 1) * cols).fill(NaN);
  for (let i = 0; i < show; i++) {
    const top = i * (config.side + 1);
    let maxPix = 0;
    for (let p = 0; p < config.side ** 2; p++) maxPix = Math.max(maxPix, Number(pixels[order[nTrain + nVal + i]! * config.side ** 2 + p]));
    for (let y = 0; y < config.side; y++)
      for (let x = 0; x < config.side; x++) {
        grid[(top + y) * cols + x] = Number(pixels[order[nTrain + nVal + i]! * config.side ** 2 + y * config.side + x]) / (maxPix || 1);
        for (let k = 0; k < G; k++) {
          const patchIdx = Math.floor(y / config.patch) * g + Math.floor(x / config.patch);
          let wMax = 0;
          for (let q = 0; q < P; q++) wMax = Math.max(wMax, w[(i * P + q) * G + k]!);
          grid[(top + y) * cols + (k + 1) * (config.side + 1) + x] = w[(i * P + patchIdx) * G + k]! / (wMax || 1);
        }
      }
  }
  const m = { rows: show * (config.side + 1), cols, data: grid };
  writeFileSync(join(dir, `${which}-attention.png`), viz.heatmapPNG(m, { cell: which === 'fashion' ? 4 : 8, min: 0, max: 1 }));
  writeFileSync(
    join(dir, `${which}-attention.svg`),
    viz.heatmapSVG(m, { cell: which === 'fashion' ? 4 : 8, min: 0, max: 1, showValues: false, title: `test images (left) and where each of the ${G} glimpses looked (predicted: ${pred.slice(0, show).map((p) => names[p]).join(', ')})` }),
  );
  console.log(`${NAME}: glimpse heatmaps (each map scaled to its own maximum) in ${dir}/${which}-attention.png and .svg`);
  console.log(`${NAME}: wall time ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  report(NAME, 'test accuracy', testAcc);
}
