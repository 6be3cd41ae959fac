// Causal self-attention forecaster on the Mauna Loa weekly CO2 series (1958..2001).
// The model reads a window of L weekly changes (normalised) with the phase of the year, and a causal
// TransformerEncoderLayer predicts the next week's change at every position (teacher forcing, one
// loss per position). Next week's value = this week's value + the predicted change. Evaluated on the
// last 20% of the series (1993..2001) against the last-value forecast (change = 0).
import { join } from 'node:path';
import { F, Tensor, TensorDataset, fit, load, nn, noGrad, optim, reshape, save, select, tensor, tidy } from 'kiln';
import { type ExampleArgs, flag, outDir, reportLoss, setup } from '../common';
import { loadCO2 } from '../data';

const NAME = 'forecast';
const L = 32; // weeks of history the model reads
const FEATURES = 3; // normalised change, sin and cos of the target week's phase in the year
const DIM = 32;

class CausalForecaster extends nn.Module {
  inputProj: nn.Linear;
  position: Tensor;
  encoder: nn.TransformerEncoderLayer;
  head: nn.Linear;
  constructor(seed: number) {
    super();
    this.inputProj = new nn.Linear(FEATURES, DIM, { seed });
    this.position = this.registerParameter('position', nn.normalParam([L, DIM], 0.1, seed + 1, 0));
    this.encoder = new nn.TransformerEncoderLayer(DIM, 4, { dimFeedforward: 64, dropout: 0, isCausal: true, normFirst: true, seed: seed + 2 });
    this.head = new nn.Linear(DIM, 1, { seed: seed + 3 });
  }
  /** x [B, L, FEATURES] -> predicted next change at every position [B, L]. */
  override forward(x: Tensor): Tensor {
    const [B] = x.shape;
    const h = this.encoder.forward(this.inputProj.forward(x).add(this.position));
    return reshape(this.head.forward(h), [B!, L]);
  }
}

/** Predicted next change (normalised) at the last position of each window. */
async function predictLast(model: nn.Module, x: Float32Array, count: number): Promise<Float32Array> {
  model.eval();
  const out = new Float32Array(count);
  const bs = 256;
  for (let s = 0; s < count; s += bs) {
    const e = Math.min(count, s + bs);
    const p = noGrad(() => tidy(() => select(model.forward(tensor(x.subarray(s * L * FEATURES, e * L * FEATURES), { shape: [e - s, L, FEATURES] })) as Tensor, 1, L - 1).contiguous()));
    out.set((await p.toArray()) as Float32Array, s);
    p.dispose();
  }
  model.train();
  return out;
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = performance.now();
  await setup(NAME);
  const seed = Number(flag(args, 'seed', '1'));
  const { date, value } = loadCO2();
  const n = value.length;
  const testStart = Math.floor(n * 0.8); // forecasts of value[t] for t >= testStart are held out
  // change[i] = value[i+1] - value[i]; normalised with the training part only.
  const change = value.slice(1).map((v, i) => v - value[i]!);
  const trainChanges = change.slice(0, testStart - 1);
  const cMean = trainChanges.reduce((a, b) => a + b, 0) / trainChanges.length;
  const cStd = Math.sqrt(trainChanges.reduce((a, b) => a + (b - cMean) ** 2, 0) / trainChanges.length);
  const phase = date.map((d) => {
    const t = Date.parse(`${d}T00:00:00Z`);
    const startOfYear = Date.UTC(Number(d.slice(0, 4)), 0, 1);
    return (2 * Math.PI * (t - startOfYear)) / (365.25 * 86400000);
  });
  // Window ending at change index i (= value[i+1] - value[i]) predicts change i+1 = value[i+2] - value[i+1].
  // Features at change index j: the change, and the phase of the week value[j+2] it helps predict.
  const windowsEndingAt = (ends: number[]) => {
    const x = new Float32Array(ends.length * L * FEATURES);
    const y = new Float32Array(ends.length * L);
    ends.forEach((end, w) => {
      for (let p = 0; p < L; p++) {
        const j = end - L + 1 + p;
        const o = (w * L + p) * FEATURES;
        x[o] = (change[j]! - cMean) / cStd;
        x[o + 1] = Math.sin(phase[j + 2]!);
        x[o + 2] = Math.cos(phase[j + 2]!);
        y[w * L + p] = (change[j + 1]! - cMean) / cStd;
      }
    });
    return { x, y };
  };
  // Training windows: every target value index (end + 2) before testStart.
  const trainEnds: number[] = [];
  // Every other week: neighbouring windows overlap in all but one step, and each window carries L targets.
  for (let end = L - 1; end + 2 < testStart; end += 2) trainEnds.push(end);
  // Test: forecast value[t] from value[..t-1]; the window ends at change index t-2.
  const testTargets: number[] = [];
  for (let t = args.smoke ? n - 64 : testStart; t < n; t++) testTargets.push(t);
  const train = windowsEndingAt(trainEnds);
  const test = windowsEndingAt(testTargets.map((t) => t - 2));
  console.log(`${NAME}: CO2 weekly, ${n} weeks; ${trainEnds.length} training windows of ${L} weeks (to ${date[testStart - 1]}), ${testTargets.length} one-week-ahead test forecasts (${date[testStart]}..${date[n - 1]})`);

  const epochs = Number(flag(args, 'epochs', args.smoke ? '1' : args.full ? '20' : '4'));
  const nTrain = args.smoke ? 256 : trainEnds.length;
  const model = new CausalForecaster(10 * seed);
  const opt = new optim.Adam(model.parameters(), { lr: Number(flag(args, 'lr', '0.003')) });
  const P = args.smoke ? 64 : 256;
  const probe = { x: train.x.subarray(0, P * L * FEATURES), y: train.y.subarray(0, P * L) };
  const lossOnProbe = async () => {
    model.eval();
    const l = noGrad(() => tidy(() => F.mseLoss(model.forward(tensor(probe.x, { shape: [P, L, FEATURES] })) as Tensor, tensor(probe.y, { shape: [P, L] }))));
    const v = await l.item();
    l.dispose();
    model.train();
    return v;
  };
  const first = await lossOnProbe();
  await fit({
    model, optimizer: opt, epochs, batchSize: 64, seed,
    trainData: new TensorDataset(train.x.subarray(0, nTrain * L * FEATURES), train.y.subarray(0, nTrain * L), { xShape: [L, FEATURES], yShape: [L] }),
    lossFn: (pred, target) => F.mseLoss(pred, target),
    clipGradNorm: 1,
    progress: true, progressStream: process.stderr,
  });
  const last = await lossOnProbe();
  console.log(`${NAME}: MSE (normalised changes) on ${P} training windows ${first.toFixed(4)} -> ${last.toFixed(4)}`);

  const predictValues = async (m: nn.Module) => {
    const dz = await predictLast(m, test.x, testTargets.length);
    return testTargets.map((t, i) => value[t - 1]! + dz[i]! * cStd + cMean);
  };
  const pred = await predictValues(model);
  const truth = testTargets.map((t) => value[t]!);
  const score = (p: number[]) => {
    let ae = 0, se = 0;
    p.forEach((v, i) => {
      ae += Math.abs(v - truth[i]!);
      se += (v - truth[i]!) ** 2;
    });
    return { mae: ae / p.length, rmse: Math.sqrt(se / p.length) };
  };
  const ours = score(pred);
  const lastValue = score(testTargets.map((t) => value[t - 1]!));
  const drift = score(testTargets.map((t) => value[t - 1]! + cMean));
  console.log(`${NAME}: test (${testTargets.length} weeks, ppm)      MAE    RMSE`);
  console.log(`${NAME}:   causal attention          ${ours.mae.toFixed(3)}   ${ours.rmse.toFixed(3)}`);
  console.log(`${NAME}:   last value                ${lastValue.mae.toFixed(3)}   ${lastValue.rmse.toFixed(3)}`);
  console.log(`${NAME}:   last value + mean drift   ${drift.mae.toFixed(3)}   ${drift.rmse.toFixed(3)}`);

  const path = join(outDir(NAME), 'forecast.safetensors');
  await save(model.stateDict(), path);
  const fresh = new CausalForecaster(999);
  const sd = await load(path);
  fresh.loadStateDict(sd);
  for (const t of Object.values(sd)) t.dispose();
  const again = await predictValues(fresh);
  const maxDiff = Math.max(...again.map((v, i) => Math.abs(v - pred[i]!)));
  if (maxDiff !== 0) throw new Error(`${NAME}: reloaded model predicts differently (max |diff| ${maxDiff})`);
  console.log(`${NAME}: saved ${path}; reloaded into a fresh model: identical predictions (max |diff| 0)`);
  console.log(`${NAME}: wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (args.smoke) {
    reportLoss(NAME, first, last);
    return;
  }
  if (!(ours.mae < lastValue.mae)) console.log(`${NAME}: warning: did not beat the last-value forecast`);
  console.log(`${NAME}: test MAE ${ours.mae.toFixed(3)} ppm (RMSE ${ours.rmse.toFixed(3)}; last value MAE ${lastValue.mae.toFixed(3)}, RMSE ${lastValue.rmse.toFixed(3)})`);
}
