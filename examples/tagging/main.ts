// Proper-noun tagging on the Brown Corpus news section (there is no CoNLL-style NER corpus among
// the data we can ship; Brown's proper-noun tags give a real token-tagging task instead). Train a
// small transformer encoder on 36 news documents, report per-class precision/recall/F1 on the 8
// held-out documents, checkpoint, reload and check the reloaded model tags identically.
import { join } from 'node:path';
import { F, type Tensor, classificationReport, load, noGrad, optim, precisionRecallF1, save, tensor, tidy } from 'kiln';
import { type ExampleArgs, flag, outDir, report, reportLoss, setup } from '../common';
import { type TaggedSentence, loadBrownNews } from '../data';
import { CLASSES, NP_TL, O, SHAPES, UNK_ID, Vocab, classOf, shapeOf, suffixKey, wordKey } from './features';
import { type TagBatch, Tagger, type TaggerConfig } from './model';
import { Progress, budgetedWarmupCosine } from '../progress';

const NAME = 'tagging';
const IGNORE = -100;
const MAX_LEN = 128; // the longest news sentence has 102 tokens

interface Example {
  words: string[];
  labels: number[];
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

function toExample(s: TaggedSentence): Example {
  return { words: s.words.slice(0, MAX_LEN), labels: s.tags.slice(0, MAX_LEN).map(classOf) };
}

/** Groups of example indices of similar length (little padding), in a shuffled order when `draw` is given. */
function makeBatches(examples: Example[], size: number, draw?: () => number): number[][] {
  const order = examples.map((_, i) => i).sort((a, b) => examples[a].words.length - examples[b].words.length || a - b);
  const out: number[][] = [];
  for (let i = 0; i < order.length; i += size) out.push(order.slice(i, i + size));
  if (draw) {
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(draw() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
  }
  return out;
}

class Encoder {
  constructor(readonly words: Vocab, readonly suffixes: Vocab) {}
  /** Pads the chosen examples into one batch; `wordDropout` replaces known words by <unk> (training only). */
  batch(examples: Example[], idx: number[], wordDropout = 0, draw?: () => number): TagBatch & { targets: Int32Array } {
    const L = Math.max(...idx.map((i) => examples[i].words.length));
    const B = idx.length;
    const words = new Int32Array(B * L);
    const shapes = new Int32Array(B * L);
    const suffixes = new Int32Array(B * L);
    const targets = new Int32Array(B * L).fill(IGNORE);
    idx.forEach((e, b) => {
      const ex = examples[e];
      ex.words.forEach((w, t) => {
        const k = b * L + t;
        words[k] = wordDropout > 0 && draw!() < wordDropout ? UNK_ID : this.words.id(wordKey(w));
        shapes[k] = shapeOf(w);
        suffixes[k] = this.suffixes.id(suffixKey(w));
        targets[k] = ex.labels[t];
      });
    });
    return { words, shapes, suffixes, targets, lengths: idx.map((i) => examples[i].words.length), L };
  }
}

function lossOf(model: Tagger, b: TagBatch & { targets: Int32Array }): Tensor {
  const logits = model.forward(b);
  const [B, L, C] = logits.shape;
  const y = tensor(b.targets, { shape: [B * L], dtype: 'i32' });
  // Padding positions carry IGNORE: they add nothing to the loss and are left out of the mean.
  return F.crossEntropy(logits.reshape([B * L, C]), y, { ignoreIndex: IGNORE });
}

/** Predicted class per real token, concatenated over the examples in order. */
async function predict(model: Tagger, enc: Encoder, examples: Example[], batchSize = 64): Promise<Int32Array> {
  model.eval();
  const perExample: number[][] = new Array(examples.length);
  for (const idx of makeBatches(examples, batchSize)) {
    const b = enc.batch(examples, idx);
    const pred = noGrad(() => tidy(() => model.forward(b).argmax(-1)));
    const flat = await pred.toArray();
    pred.dispose();
    idx.forEach((e, r) => (perExample[e] = Array.from(flat.subarray(r * b.L, r * b.L + b.lengths[r]))));
  }
  model.train();
  return Int32Array.from(perExample.flat());
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = performance.now();
  await setup(NAME);
  const sentences = loadBrownNews();
  const docs = [...new Set(sentences.map((s) => s.doc))].sort();
  // Every fifth article is held out (ca05, ca10, ... ca40): split by document, so no article leaks.
  const testDocs = new Set(docs.filter((_, i) => i % 5 === 4));
  const train = sentences.filter((s) => !testDocs.has(s.doc)).map(toExample);
  const test = sentences.filter((s) => testDocs.has(s.doc)).map(toExample);
  const count = (xs: Example[], c: number) => xs.reduce((a, e) => a + e.labels.filter((l) => l === c).length, 0);
  console.log(`${NAME}: Brown news, ${docs.length} documents: train ${docs.length - testDocs.size} docs / ${train.length} sentences, test ${testDocs.size} docs (${[...testDocs].join(' ')}) / ${test.length} sentences`);
  console.log(`${NAME}: train tokens per class: ${CLASSES.map((n, c) => `${n} ${count(train, c)}`).join(', ')}`);

  const wordVocab = Vocab.build(train.flatMap((e) => e.words.map(wordKey)), 2);
  const suffixVocab = Vocab.build(train.flatMap((e) => e.words.map(suffixKey)), 2);
  const enc = new Encoder(wordVocab, suffixVocab);
  const cfg: TaggerConfig = {
    words: wordVocab.size,
    shapes: SHAPES.length,
    suffixes: suffixVocab.size,
    classes: CLASSES.length,
    maxLen: MAX_LEN,
    dModel: Number(flag(args, 'd', '64')),
    heads: 4,
    layers: Number(flag(args, 'layers', '1')),
    seed: 3,
  };
  const model = new Tagger(cfg);
  const nParams = model.parameters().reduce((a, p) => a + p.size, 0);
  const batchSize = Number(flag(args, 'batch', args.smoke ? '16' : '32'));
  const epochs = Number(flag(args, 'epochs', args.full ? '8' : '2'));
  // Training stops at the time budget even mid-epoch (the software adapter's speed varies with load).
  const budgetFlag = Number(flag(args, 'budget-s', args.full ? '1800' : '200'));
  const budget = budgetFlag > 0 ? budgetFlag : Infinity; // --budget-s 0: run all the steps
  // NP-TL (0.8% of tokens) would barely be learned in a short run: sentences that contain one are
  // seen three times per epoch (oversampling instead of loss weights).
  const rare = train.filter((e) => e.labels.some((l) => l === NP_TL));
  const pool = [...train, ...rare, ...rare];
  const perEpoch = makeBatches(pool, batchSize).length;
  const steps = args.smoke ? Number(flag(args, 'steps', '12')) : epochs * perEpoch;
  console.log(`${NAME}: vocab ${wordVocab.size} words, ${suffixVocab.size} suffixes; ${cfg.layers} encoder layer(s), d=${cfg.dModel}, ${cfg.heads} heads, ${nParams} parameters; ${steps} steps of ${batchSize} sentences (${rare.length} sentences with NP-TL seen 3x), budget ${budget} s`);

  const opt = new optim.AdamW(model.parameters(), { lr: Number(flag(args, 'lr', '1e-2')), weightDecay: 0.01 });
  const sched = new optim.LambdaLR(opt, budgetedWarmupCosine(steps, Math.min(10, Math.floor(steps / 10)), args.smoke ? Infinity : budget, 0.05));
  const draw = rng(7);
  const progress = new Progress(`${NAME}: train`, steps);
  const losses: number[] = [];
  let ema = NaN;
  let step = 0;
  const tTrain = performance.now();
  outer: for (let epoch = 0; step < steps; epoch++) {
    // Smoke runs take the shortest sentences first: the cheapest steps.
    const order = args.smoke ? makeBatches(train, batchSize) : makeBatches(pool, batchSize, draw);
    for (const idx of order) {
      if (step >= steps) break outer;
      if (!args.smoke && (performance.now() - tTrain) / 1000 > budget) {
        console.log(`${process.stdout.isTTY ? "\n" : ""}${NAME}: time budget (${budget} s) reached after ${step} of ${steps} steps`);
        break outer;
      }
      const b = enc.batch(args.smoke ? train : pool, idx, 0.05, draw);
      const loss = tidy(() => {
        opt.zeroGrad();
        const l = lossOf(model, b);
        l.backward();
        optim.clipGradNorm(model.parameters(), 1).dispose();
        opt.step();
        return l.detach();
      });
      const v = await loss.item();
      loss.dispose();
      sched.step();
      losses.push(v);
      ema = Number.isNaN(ema) ? v : 0.9 * ema + 0.1 * v;
      step++;
      progress.update(step, `epoch ${epoch + 1} loss ${ema.toFixed(3)}`);
    }
  }
  const trainSeconds = (performance.now() - tTrain) / 1000;
  console.log(`${NAME}: trained ${step} steps in ${trainSeconds.toFixed(1)} s (${(step / trainSeconds).toFixed(2)} steps/s)`);

  if (args.smoke) {
    const k = Math.min(3, Math.floor(losses.length / 2));
    const avg = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
    reportLoss(NAME, avg(losses.slice(0, k)), avg(losses.slice(-k)));
    return;
  }

  const yTrue = Int32Array.from(test.flatMap((e) => e.labels));
  const yPred = await predict(model, enc, test);
  const names = [...CLASSES];
  console.log(`${NAME}: held-out documents, per-token scores:\n${classificationReport(yTrue, yPred, [0, 1, 2], { names, digits: 3 })}`);
  const properClasses = [1, 2];
  const macro = precisionRecallF1(yTrue, yPred, properClasses).macro;
  // Proper noun vs not, whatever the kind.
  const binary = precisionRecallF1(Array.from(yTrue, (c) => (c === O ? 0 : 1)), Array.from(yPred, (c) => (c === O ? 0 : 1)), [1]).perClass[0];
  // A rule baseline for context: capitalised and not the first word of the sentence -> NP.
  const rule = Int32Array.from(test.flatMap((e) => e.words.map((w, i) => (i > 0 && (shapeOf(w) === 2 || shapeOf(w) === 5) ? 1 : O))));
  const ruleBinary = precisionRecallF1(Array.from(yTrue, (c) => (c === O ? 0 : 1)), rule, [1]).perClass[0];
  console.log(`${NAME}: proper noun vs other: P ${binary.precision.toFixed(3)} R ${binary.recall.toFixed(3)} F1 ${binary.f1.toFixed(3)} (rule "capitalised, not sentence-initial": F1 ${ruleBinary.f1.toFixed(3)})`);

  // Checkpoint with the vocabularies as metadata; reload into a fresh model and compare predictions.
  const dir = outDir(NAME);
  const ckpt = join(dir, 'tagger.safetensors');
  await save(model.stateDict(), ckpt, {
    metadata: { config: JSON.stringify(cfg), classes: JSON.stringify(CLASSES), words: JSON.stringify(wordVocab.items), suffixes: JSON.stringify(suffixVocab.items) },
  });
  const fresh = new Tagger({ ...cfg, seed: 1234 });
  const loaded = await load(ckpt);
  fresh.loadStateDict(loaded);
  for (const t of Object.values(loaded)) t.dispose();
  const again = await predict(fresh, enc, test);
  const same = again.every((c, i) => c === yPred[i]);
  console.log(`${NAME}: saved ${ckpt}; reloaded model's predictions ${same ? 'are identical' : 'DIFFER'} (${again.length} tokens)`);
  if (!same) throw new Error(`${NAME}: the reloaded checkpoint tags differently`);

  // One held-out sentence, tagged.
  const sample = test.find((e) => e.labels.some((l) => l === NP_TL) && e.words.length <= 25) ?? test[0];
  const samplePred = await predict(fresh, enc, [sample]);
  console.log(`${NAME}: example: ${sample.words.map((w, i) => (samplePred[i] === O ? w : `${w}/${CLASSES[samplePred[i]]}`)).join(' ')}`);
  console.log(`${NAME}: total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`${NAME}: macro F1 over the proper-noun classes NP and NP-TL (O left out of the average): ${macro.f1.toFixed(3)}`);
  report(NAME, 'test macro F1', macro.f1, 3);
}
