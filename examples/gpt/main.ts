// A small GPT on Moby-Dick, trained with fit() and checkpoint-and-resume: the run is stopped halfway (as a crash or a
// time limit would), a freshly built model, optimizer and scheduler resume from the checkpoint file and finish, then
// the model samples text with temperature and top-k on the GPU through the KV cache. Reports held-out bits/char.
import { join } from 'node:path';
import { existsSync, rmSync } from 'node:fs';
import { type Batch, type Dataset, type EpochLogs, fit, manualSeed, optim } from 'kiln';
import { type ExampleArgs, flag, outDir, report, reportLoss, setup } from '../common';
import { loadMobyDick } from '../data';
import { rng, windows } from '../charlm/main';
import { GPT, type GPTConfig, generate, lossOf } from './model';

const NAME = 'gpt';

/** Fixed training windows of T+1 characters, drawn once from a seed: an epoch is one pass over them. */
class WindowDataset implements Dataset {
  constructor(
    private readonly ids: Int32Array,
    private readonly starts: number[],
    private readonly T: number,
  ) {}
  get length(): number {
    return this.starts.length;
  }
  getBatch(indices: number[]): Batch {
    const { x, y } = windows(this.ids, indices.map((i) => this.starts[i]), this.T);
    return { inputs: x, targets: y };
  }
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = performance.now();
  await setup(NAME);
  const text = loadMobyDick();
  const chars = [...new Set(text)].sort();
  const index = new Map(chars.map((c, i) => [c, i]));
  const ids = Int32Array.from(text, (c) => index.get(c)!);
  const split = Math.floor(ids.length * 0.9);

  const cfg: GPTConfig = {
    vocab: chars.length,
    dModel: Number(flag(args, 'd', '64')),
    heads: 4,
    layers: Number(flag(args, 'layers', '2')),
    context: Number(flag(args, 'context', '64')),
    ff: Number(flag(args, 'ff', '256')),
    dropout: Number(flag(args, 'dropout', '0.05')),
    seed: 1,
  };
  const T = cfg.context;
  const batchSize = Number(flag(args, 'batch', args.smoke ? '4' : '16'));
  const nWindows = Number(flag(args, 'windows', args.smoke ? '8' : '512'));
  const epochs = Number(flag(args, 'epochs', args.smoke ? '2' : '4'));
  const lr = Number(flag(args, 'lr', '3e-3'));
  const draw = rng(99);
  const trainStarts = Array.from({ length: nWindows }, () => Math.floor(draw() * (split - T - 1)));
  const valStarts: number[] = [];
  for (let s = split; s + T + 1 <= ids.length && valStarts.length < (args.smoke ? 8 : 64); s += T) valStarts.push(s);
  const trainData = new WindowDataset(ids, trainStarts, T);
  const valData = new WindowDataset(ids, valStarts, T);
  const stepsPerEpoch = Math.ceil(nWindows / batchSize);
  const totalSteps = epochs * stepsPerEpoch;
  const stopAfter = Math.max(1, Math.floor(epochs / 2));

  const build = (seed: number) => {
    const model = new GPT({ ...cfg, seed });
    const optimizer = new optim.AdamW(model, { lr, weightDecay: 0.01, betas: [0.9, 0.95] });
    const scheduler = new optim.WarmupCosineLR(optimizer, { warmupSteps: Math.min(20, Math.floor(totalSteps / 10)), totalSteps, minFactor: 0.1 });
    return { model, optimizer, scheduler };
  };
  const trainOptions = (parts: ReturnType<typeof build>, losses: number[]) => ({
    ...parts,
    trainData,
    valData,
    epochs,
    batchSize,
    seed: 5,
    clipGradNorm: 1,
    progress: false,
    trainStep: (b: Batch, m: unknown) => {
      const l = lossOf(m as GPT, b.inputs, b.targets);
      return l;
    },
    onEpoch: (logs: EpochLogs) => {
      losses.push(logs.trainLoss);
      console.log(`${NAME}: epoch ${logs.epoch}/${epochs}: train ${logs.trainLoss.toFixed(4)} nats/char, held-out ${logs.valLoss!.toFixed(4)} (${logs.stepsPerSecond.toFixed(2)} steps/s)`);
    },
  });

  const first = build(cfg.seed);
  const nParams = first.model.parameters().reduce((a, p) => a + p.size, 0);
  console.log(`${NAME}: ${text.length} characters, ${chars.length} distinct; ${cfg.layers} layers, d=${cfg.dModel}, ${cfg.heads} heads, context ${T}, ${nParams} parameters (head tied to the embedding)`);
  console.log(`${NAME}: ${epochs} epochs of ${stepsPerEpoch} steps (${nWindows} windows, batch ${batchSize}); stopping after epoch ${stopAfter}, then resuming from the checkpoint`);

  const dir = outDir(NAME);
  const ckpt = join(dir, 'gpt.ckpt.safetensors');
  if (existsSync(ckpt)) rmSync(ckpt);
  const losses: number[] = [];
  manualSeed(1);
  const tTrain = performance.now();
  // Part 1: train, checkpointing every epoch and every 50 steps; stop after `stopAfter` epochs.
  await fit({
    ...trainOptions(first, losses),
    checkpoint: { path: ckpt, everySteps: 50 },
    onEpoch: (logs: EpochLogs) => {
      trainOptions(first, losses).onEpoch(logs);
      return logs.epoch < stopAfter;
    },
  });
  first.optimizer.dispose();
  first.model.dispose();
  console.log(`${NAME}: stopped after epoch ${stopAfter}; resuming a freshly built model (other seed), optimizer and scheduler from ${ckpt}`);

  // Part 2: everything rebuilt from scratch, then fit resumes from the file.
  manualSeed(12345); // the checkpoint restores the generator
  const second = build(777);
  const result = await fit({ ...trainOptions(second, losses), checkpoint: { path: ckpt, everySteps: 50 }, resume: ckpt });
  const trainSeconds = (performance.now() - tTrain) / 1000;
  const { model } = second;
  console.log(`${NAME}: trained ${totalSteps} steps in ${trainSeconds.toFixed(1)} s (${(totalSteps / trainSeconds).toFixed(2)} steps/s) across the stop; history has ${result.history.length} epochs`);

  if (args.smoke) {
    // The resumed run must equal one that never stopped. fit's resume is bit-exact (test/train/resume.test.ts); here the
    // embedding's gradient is summed with atomic adds, whose order varies run to run, so two uninterrupted runs differ
    // in the last bits too: the check allows that much.
    const plain: number[] = [];
    manualSeed(1);
    const whole = build(cfg.seed);
    const r = await fit(trainOptions(whole, plain));
    let worst = 0;
    r.history.forEach((h, i) => {
      for (const k of ['trainLoss', 'valLoss'] as const) worst = Math.max(worst, Math.abs(h[k]! - result.history[i][k]!) / Math.abs(h[k]!));
    });
    const same = worst < 1e-5;
    console.log(`${NAME}: the resumed run ${same ? 'matches' : 'DIFFERS FROM'} the uninterrupted run (largest relative difference of an epoch loss ${worst.toExponential(1)})`);
    if (!same) throw new Error(`${NAME}: resumed ${JSON.stringify(result.history.map((h) => h.trainLoss))} vs uninterrupted ${JSON.stringify(r.history.map((h) => h.trainLoss))}`);
    whole.optimizer.dispose();
    whole.model.dispose();
  }

  const valNats = result.history[result.history.length - 1].valLoss!;
  const bpc = valNats / Math.LN2;
  // Sampling with temperature and top-k on the GPU through the KV cache; only token ids are read back.
  const temperature = Number(flag(args, 'temperature', '0.8'));
  const topK = Number(flag(args, 'top-k', '10'));
  const count = Number(flag(args, 'generate', args.smoke ? '12' : '300'));
  const promptText = flag(args, 'prompt', 'Call me Ishmael. ')!;
  const prompt = [...promptText].map((c) => index.get(c) ?? index.get(' ')!);
  model.eval();
  const sample = await generate(model, prompt, count, { temperature, topK, seed: 42 });
  const decoded = sample.tokens.map((t) => chars[t]).join('');
  console.log(`${NAME}: sample (temperature ${temperature}, top-k ${topK}, KV cache, ${sample.tokensPerSecond.toFixed(1)} tokens/s):\n${promptText}${decoded}\n`);
  if (sample.tokens.length !== count || sample.tokens.some((t) => !(t >= 0 && t < chars.length))) throw new Error(`${NAME}: bad sample ${JSON.stringify(sample.tokens)}`);

  second.optimizer.dispose();
  model.dispose();
  console.log(`${NAME}: total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (args.smoke) reportLoss(NAME, losses[0], losses[losses.length - 1]);
  report(NAME, 'validation bits/char', bpc, 3);
}
