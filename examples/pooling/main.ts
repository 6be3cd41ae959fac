// Attention pooling for regression: predict next year's sunspot number from the previous W years.
// Each year in the window becomes a token (its value, its change from the year before, and a learned
// position embedding); nn.AttentionPooling's learned query scores the tokens, softmax, weighted sum;
// a linear head reads the pooled vector. Trained with SGD (momentum) on MSE; evaluated on the last
// 20% of the years against the mean predictor and the last-value predictor.
import { join } from 'node:path';
import { F, Tensor, TensorDataset, fit, load, nn, noGrad, optim, reshape, save, tanh, tensor, tidy } from 'kiln';
import { type ExampleArgs, flag, outDir, reportLoss, setup } from '../common';
import { loadSunspots } from '../data';

const NAME = 'pooling';
const W = 12; // years in a window
const FEATURES = 2; // value, change from the year before (both normalised)

class PoolingRegressor extends nn.Module {
  embed: nn.Linear;
  position: Tensor;
  pool: nn.AttentionPooling;
  head: nn.Linear;
  constructor(readonly dim: number, seed: number) {
    super();
    this.embed = new nn.Linear(FEATURES, dim, { seed });
    this.position = this.registerParameter('position', nn.normalParam([W, dim], 0.3, seed + 1, 0));
    this.pool = new nn.AttentionPooling(dim, { seed: seed + 2 });
    this.head = new nn.Linear(dim, 1, { seed: seed + 3 });
  }
  /** x [B, W, FEATURES] -> prediction [B] (normalised units). */
  override forward(x: Tensor): Tensor {
    const B = x.shape[0]!;
    const tokens = tanh(this.embed.forward(x).add(this.position)); // [B, W, dim]
    return reshape(this.head.forward(this.pool.forward(tokens)), [B]);
  }
}

async function predict(model: nn.Module, x: Float32Array, count: number): Promise<Float32Array> {
  model.eval();
  const out = noGrad(() => tidy(() => model.forward(tensor(x, { shape: [count, W, FEATURES] })) as Tensor));
  const values = (await out.toArray()) as Float32Array;
  out.dispose();
  model.train();
  return values;
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = performance.now();
  await setup(NAME);
  const seed = Number(flag(args, 'seed', '1'));
  const { year, value } = loadSunspots();
  const n = value.length;
  const testStart = Math.floor(n * 0.8); // targets from this index on are held out
  // Normalise with the training years only.
  const trainVals = value.slice(0, testStart);
  const mean = trainVals.reduce((a, b) => a + b, 0) / trainVals.length;
  const std = Math.sqrt(trainVals.reduce((a, b) => a + (b - mean) ** 2, 0) / trainVals.length);
  const z = value.map((v) => (v - mean) / std);
  const windows = (from: number, to: number) => {
    const xs: number[] = [];
    const ys: number[] = [];
    const targets: number[] = [];
    for (let t = Math.max(from, W + 1); t < to; t++) {
      for (let j = t - W; j < t; j++) xs.push(z[j]!, z[j]! - z[j - 1]!);
      ys.push(z[t]!);
      targets.push(t);
    }
    return { x: Float32Array.from(xs), y: Float32Array.from(ys), t: targets };
  };
  const train = windows(0, testStart);
  const test = windows(testStart, n);
  const nTr = train.y.length, nTe = test.y.length;
  console.log(`${NAME}: ${nTr} training windows (targets ${year[train.t[0]!]}..${year[train.t[nTr - 1]!]}), ${nTe} test windows (targets ${year[test.t[0]!]}..${year[test.t[nTe - 1]!]}), window ${W} years`);

  const epochs = Number(flag(args, 'epochs', args.smoke ? '4' : args.full ? '300' : '120'));
  const model = new PoolingRegressor(16, 10 * seed);
  const opt = new optim.SGD(model.parameters(), { lr: Number(flag(args, 'lr', '0.02')), momentum: 0.9 });
  const trainLossNow = async () => {
    const p = await predict(model, train.x, nTr);
    let s = 0;
    for (let i = 0; i < nTr; i++) s += (p[i]! - train.y[i]!) ** 2;
    return s / nTr;
  };
  const first = await trainLossNow();
  await fit({
    model, optimizer: opt, epochs, batchSize: 32, seed,
    trainData: new TensorDataset(train.x, train.y, { xShape: [W, FEATURES] }),
    lossFn: (pred, target) => F.mseLoss(pred, target),
    progress: true, progressStream: process.stderr,
  });
  const last = await trainLossNow();
  console.log(`${NAME}: training MSE (normalised) ${first.toFixed(4)} -> ${last.toFixed(4)}`);

  const pred = Array.from(await predict(model, test.x, nTe), (p) => p * std + mean);
  const truth = test.t.map((t) => value[t]!);
  const score = (p: number[]) => {
    let ae = 0, se = 0;
    p.forEach((v, i) => {
      ae += Math.abs(v - truth[i]!);
      se += (v - truth[i]!) ** 2;
    });
    return { mae: ae / p.length, rmse: Math.sqrt(se / p.length) };
  };
  const model_ = score(pred);
  const meanPred = score(truth.map(() => mean));
  const lastPred = score(test.t.map((t) => value[t - 1]!));
  console.log(`${NAME}: test (${nTe} years)            RMSE     MAE`);
  console.log(`${NAME}:   attention pooling      ${model_.rmse.toFixed(2).padStart(7)} ${model_.mae.toFixed(2).padStart(7)}`);
  console.log(`${NAME}:   mean predictor         ${meanPred.rmse.toFixed(2).padStart(7)} ${meanPred.mae.toFixed(2).padStart(7)}`);
  console.log(`${NAME}:   last-value predictor   ${lastPred.rmse.toFixed(2).padStart(7)} ${lastPred.mae.toFixed(2).padStart(7)}`);

  // Where the pooling looks, averaged over the test windows (oldest year first).
  {
    const w = noGrad(() => tidy(() => {
      const x = tensor(test.x, { shape: [nTe, W, FEATURES] });
      const tokens = tanh(model.embed.forward(x).add(model.position));
      return model.pool.weights(tokens).mean(0);
    }));
    const avg = Array.from((await w.toArray()) as Float32Array);
    w.dispose();
    console.log(`${NAME}: mean pooling weight per year in the window (oldest..newest): ${avg.map((v) => v.toFixed(2)).join(' ')}`);
  }

  const path = join(outDir(NAME), 'pooling.safetensors');
  await save(model.stateDict(), path);
  const fresh = new PoolingRegressor(16, 999);
  const sd = await load(path);
  fresh.loadStateDict(sd);
  for (const t of Object.values(sd)) t.dispose();
  const again = Array.from(await predict(fresh, test.x, nTe), (p) => p * std + mean);
  const maxDiff = Math.max(...again.map((v, i) => Math.abs(v - pred[i]!)));
  if (maxDiff !== 0) throw new Error(`${NAME}: reloaded model predicts differently (max |diff| ${maxDiff})`);
  console.log(`${NAME}: saved ${path}; reloaded into a fresh model: identical predictions (max |diff| 0)`);
  console.log(`${NAME}: wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (args.smoke) {
    reportLoss(NAME, first, last);
    return;
  }
  if (!(model_.rmse < meanPred.rmse)) console.log(`${NAME}: warning: did not beat the mean predictor`);
  console.log(`${NAME}: test RMSE ${model_.rmse.toFixed(2)} (MAE ${model_.mae.toFixed(2)}; mean predictor RMSE ${meanPred.rmse.toFixed(2)}, last value ${lastPred.rmse.toFixed(2)})`);
}
