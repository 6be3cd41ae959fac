// Sentiment of review sentences (UCI Sentiment Labelled Sentences: Amazon, IMDb, Yelp; 3,000 sentences):
// a word tokenizer, embedding + a light self-attention block + attention pooling, AdamW with early stopping,
// a classification report on a held-out test split, a checkpoint that is reloaded and checked, and heatmaps
// of the words the pooling attended to.
//
//   npm run example -- sentiment [--smoke] [--full] [--epochs N] [--seed S] [--self-attention] [--dropout P] [--budget SECONDS]
//     [--precision f32|f16]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Tensor, tensor, noGrad, tidy, optim, fit, permutation, accuracy, classificationReport, save, load, viz, F, type Dataset, type Batch } from 'kiln';
import { type ExampleArgs, flag, outDir, report, reportLoss, setup } from '../common';
import { loadSentiment, type SentimentExample } from '../data';
import { WordTokenizer } from '../tokenizer';
import { DEFAULT_CONFIG, SentimentModel, type SentimentConfig } from './model';

const NAME = 'sentiment';
const LABELS = ['negative', 'positive'];

/** Sentences tokenized once; each batch is padded to its own longest sentence. */
class SentenceDataset implements Dataset {
  readonly length: number;
  constructor(
    private readonly ids: number[][],
    private readonly labels: number[],
  ) {
    this.length = ids.length;
  }
  getBatch(indices: number[]): Batch {
    return { inputs: padIds(indices.map((i) => this.ids[i])), targets: tensor(Int32Array.from(indices, (i) => this.labels[i]), { shape: [indices.length], dtype: 'i32' }) };
  }
}

/** [B, N] i32 ids, N the longest row (at least 1), padded with 0 (<pad>). */
export function padIds(rows: number[][]): Tensor {
  const N = Math.max(1, ...rows.map((r) => r.length));
  const data = new Int32Array(rows.length * N);
  rows.forEach((r, i) => data.set(r, i * N));
  return tensor(data, { shape: [rows.length, N], dtype: 'i32' });
}

/** Predicted classes and positive-class probabilities, in batches. */
async function predict(model: SentimentModel, ids: number[][], batchSize = 128): Promise<{ pred: number[]; prob: number[] }> {
  model.eval();
  const pred: number[] = [];
  const prob: number[] = [];
  for (let s = 0; s < ids.length; s += batchSize) {
    const x = padIds(ids.slice(s, s + batchSize));
    const p = noGrad(() => tidy(() => F.softmax(model.forward(x), -1)));
    const a = await p.toArray();
    x.dispose();
    p.dispose();
    for (let i = 0; i < a.length / 2; i++) {
      prob.push(a[2 * i + 1]);
      pred.push(a[2 * i + 1] > a[2 * i] ? 1 : 0);
    }
  }
  return { pred, prob };
}

/** Stacks SVG documents vertically into one. */
function stackSVG(svgs: string[]): string {
  let y = 0;
  let width = 0;
  const parts: string[] = [];
  for (const s of svgs) {
    const w = Number(/width="(\d+(?:\.\d+)?)"/.exec(s)?.[1] ?? 0);
    const h = Number(/height="(\d+(?:\.\d+)?)"/.exec(s)?.[1] ?? 0);
    parts.push(s.replace('<svg ', `<svg x="0" y="${y}" `));
    y += h;
    width = Math.max(width, w);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = Date.now();
  await setup(NAME);
  const seed = Number(flag(args, 'seed', '0'));
  const all = loadSentiment();
  // Fixed, seeded 70/15/15 split over the shuffled sentences (all three sources mixed).
  const order = permutation(all.length, 1234 + seed);
  const nTrain = Math.round(all.length * 0.7);
  const nVal = Math.round(all.length * 0.15);
  const pick = (a: number, b: number): SentimentExample[] => order.slice(a, b).map((i) => all[i]);
  let train = pick(0, nTrain);
  const val = pick(nTrain, nTrain + nVal);
  const test = pick(nTrain + nVal, all.length);

  const tokenizer = WordTokenizer.fit(train.map((e) => e.text), { minCount: 2 });
  const config: SentimentConfig = { ...DEFAULT_CONFIG, vocabSize: tokenizer.size, dropout: Number(flag(args, 'dropout', String(DEFAULT_CONFIG.dropout))), selfAttention: args.argv.includes('--self-attention') };
  console.log(`${NAME}: ${train.length} train / ${val.length} validation / ${test.length} test sentences; vocabulary ${tokenizer.size} words (min count 2, train only); ${(100 * tokenizer.unknownRate(test.map((e) => e.text))).toFixed(1)}% of test words are <unk>`);

  if (args.smoke) train = train.slice(0, 256);
  const enc = (ex: SentimentExample[]) => ex.map((e) => tokenizer.encode(e.text, config.maxLength));
  const trainData = new SentenceDataset(enc(train), train.map((e) => e.label));
  const valIds = enc(val);
  const valData = new SentenceDataset(valIds, val.map((e) => e.label));
  const testIds = enc(test);
  const testLabels = test.map((e) => e.label);

  const model = new SentimentModel(config, 1 + seed);
  const nParams = model.parameters().reduce((a, p) => a + p.size, 0);
  console.log(`${NAME}: model ${config.selfAttention ? 'embedding + self-attention + attention pooling' : 'embedding + attention pooling'}, dim ${config.dim}, ${nParams.toLocaleString('en-US')} parameters`);
  const optimizer = new optim.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
  // --precision f16: forward and loss under autocast (attention in f16) with a GradScaler; weights stay f32.
  const precision = flag(args, 'precision', 'f32');
  if (precision !== 'f32' && precision !== 'f16') throw new Error(`${NAME}: --precision must be f32 or f16, got ${precision}`);
  const amp = precision === 'f16' ? { autocast: 'f16' as const, gradScaler: new optim.GradScaler() } : {};
  if (precision === 'f16') console.log(`${NAME}: precision f16 (autocast + GradScaler)`);
  const epochs = Number(flag(args, 'epochs', args.smoke ? '3' : args.full ? '30' : '12'));
  const budget = Number(flag(args, 'budget', args.full ? 'Infinity' : '210'));
  const result = await fit({
    model,
    optimizer,
    trainData,
    valData: args.smoke ? undefined : valData,
    lossFn: (logits, y) => F.crossEntropy(logits, y),
    epochs,
    batchSize: 32,
    seed,
    clipGradNorm: 1,
    ...amp,
    ...(args.smoke
      ? {}
      : {
          evaluate: async (m) => ({ valAccuracy: accuracy(val.map((e) => e.label), (await predict(m as SentimentModel, valIds)).pred) }),
          monitor: 'valAccuracy',
          mode: 'max' as const,
          patience: args.full ? 6 : 3,
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
  if (args.smoke) {
    reportLoss(NAME, h[0]!.trainLoss, h[h.length - 1]!.trainLoss);
  } else {
    console.log(`${NAME}: best epoch ${result.bestEpoch} (val accuracy ${result.bestValue.toFixed(3)})${result.stoppedEarly ? ', stopped early' : ''}`);
  }

  // Held-out test split.
  const { pred, prob } = await predict(model, testIds);
  const testAcc = accuracy(testLabels, pred);
  console.log(`\n${NAME}: test split (${test.length} sentences)\n${classificationReport(testLabels, pred, [0, 1], { names: LABELS, digits: 3 })}`);

  // Checkpoint: weights (safetensors) + vocabulary and config (JSON), reloaded into a fresh model.
  // --smoke writes to out/smoke/, so it never replaces a trained checkpoint.
  const dir = args.smoke ? join(outDir(NAME), 'smoke') : outDir(NAME);
  mkdirSync(dir, { recursive: true });
  const ckpt = join(dir, 'sentiment.safetensors');
  await save(model.stateDict(), ckpt, { metadata: { config: JSON.stringify(config), example: NAME } });
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify({ ...tokenizer.toJSON(), config, labels: LABELS }));
  const fresh = new SentimentModel(config, 999);
  const state = await load(ckpt);
  fresh.loadStateDict(state);
  for (const t of Object.values(state)) t.dispose();
  const again = await predict(fresh, testIds);
  const same = again.pred.every((p, i) => p === pred[i]);
  const maxDiff = again.prob.reduce((m, p, i) => Math.max(m, Math.abs(p - prob[i]!)), 0);
  console.log(`${NAME}: checkpoint ${ckpt} reloaded into a fresh model: ${same ? 'identical' : 'DIFFERENT'} test predictions (max probability difference ${maxDiff.toExponential(1)})`);
  if (!same) throw new Error('sentiment: the reloaded checkpoint predicts differently');

  // Which words the pooling read, for a few short test sentences.
  const chosen = test.map((e, i) => ({ e, i })).filter(({ e }) => tokenizer.tokenize(e.text).tokens.length <= 14).slice(0, 6);
  const svgs: string[] = [];
  const rowsData: number[][] = [];
  for (const [k, { e, i }] of chosen.entries()) {
    const { tokens, ids } = tokenizer.tokenize(e.text, config.maxLength);
    const x = tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'i32' });
    const { logits, weights } = fresh.explain(x);
    const w = Array.from(await weights.toArray());
    x.dispose();
    logits.dispose();
    weights.dispose();
    rowsData.push(w);
    const shown = tokens.map((t, j) => (ids[j] === 1 ? `${t}?` : t));
    const label = `${LABELS[pred[i]!]} ${(pred[i] ? prob[i]! : 1 - prob[i]!).toFixed(2)} (true: ${LABELS[e.label]})`;
    const m = { rows: 1, cols: w.length, data: w };
    svgs.push(viz.heatmapSVG(m, { colLabels: shown, rowLabels: [label], title: `test sentence ${k + 1}`, showValues: true, min: 0 }));
    writeFileSync(join(dir, `attention-${k + 1}.png`), viz.heatmapPNG(m, { cell: 24, min: 0 }));
  }
  writeFileSync(join(dir, 'attention.svg'), stackSVG(svgs));
  const cols = Math.max(...rowsData.map((r) => r.length));
  const grid = { rows: rowsData.length, cols, data: rowsData.flatMap((r) => [...r, ...new Array<number>(cols - r.length).fill(0)]) };
  writeFileSync(join(dir, 'attention.png'), viz.heatmapPNG(grid, { cell: 24, min: 0 }));
  console.log(`${NAME}: attention heatmaps (rows = sentences, columns = words; '?' marks <unk>) in ${dir}/attention.svg and attention.png`);
  console.log(`${NAME}: wall time ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  report(NAME, 'test accuracy', testAcc);
}
