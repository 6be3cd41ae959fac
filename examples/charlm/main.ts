// Character-level causal transformer on Moby-Dick: train on the first 90% of the book, report
// bits per character on the held-out last 10%, checkpoint and reload, then generate greedily with
// and without the KV cache (same text required) and draw the last layer's attention over a line.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { F, type Tensor, autocast, compile, load, noGrad, optim, save, tensor, tidy, viz } from 'kiln';
import { setFlag } from 'kiln/experimental';
import { type ExampleArgs, flag, outDir, report, reportLoss, setup } from '../common';
import { loadMobyDick } from '../data';
import { CharLM, type CharLMConfig, generate } from './model';
import { Progress, budgetedWarmupCosine } from '../progress';

const NAME = 'charlm';

/** A seeded xorshift32, for sampling training windows reproducibly. */
export function rng(seed: number): () => number {
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

/** Inputs [B, T] and next-character targets [B*T] for windows starting at `starts`. */
export function windows(ids: Int32Array, starts: number[], T: number): { x: Tensor; y: Tensor } {
  const B = starts.length;
  const xs = new Int32Array(B * T);
  const ys = new Int32Array(B * T);
  starts.forEach((s, b) => {
    xs.set(ids.subarray(s, s + T), b * T);
    ys.set(ids.subarray(s + 1, s + T + 1), b * T);
  });
  return { x: tensor(xs, { shape: [B, T], dtype: 'i32' }), y: tensor(ys, { shape: [B * T], dtype: 'i32' }) };
}

function lossOf(model: CharLM, x: Tensor, y: Tensor): Tensor {
  const logits = model.forward(x);
  const [B, T, V] = logits.shape;
  return F.crossEntropy(logits.reshape([B * T, V]), y);
}

/** Mean cross-entropy (nats/char) over fixed, non-overlapping windows of the held-out tail. */
async function evaluate(model: CharLM, ids: Int32Array, from: number, T: number, maxWindows: number, batch: number): Promise<number> {
  model.eval();
  const starts: number[] = [];
  for (let s = from; s + T + 1 <= ids.length && starts.length < maxWindows; s += T) starts.push(s);
  let total = 0;
  for (let i = 0; i < starts.length; i += batch) {
    const chunk = starts.slice(i, i + batch);
    const loss = noGrad(() =>
      tidy(() => {
        const { x, y } = windows(ids, chunk, T);
        return lossOf(model, x, y);
      }),
    );
    total += (await loss.item()) * chunk.length;
    loss.dispose();
  }
  model.train();
  return total / starts.length;
}

export async function main(args: ExampleArgs): Promise<void> {
  const t0 = performance.now();
  await setup(NAME);
  const impl = flag(args, 'attn-impl');
  if (impl) setFlag('attention.impl', impl);
  const text = loadMobyDick();
  const chars = [...new Set(text)].sort();
  const index = new Map(chars.map((c, i) => [c, i]));
  const ids = Int32Array.from(text, (c) => index.get(c)!);
  const split = Math.floor(ids.length * 0.9);
  console.log(`${NAME}: ${text.length} characters, ${chars.length} distinct; train ${split}, held-out tail ${ids.length - split}`);

  const cfg: CharLMConfig = {
    vocab: chars.length,
    dModel: Number(flag(args, 'd', '64')),
    heads: 4,
    layers: Number(flag(args, 'layers', '2')),
    context: Number(flag(args, 'context', '64')),
    ff: Number(flag(args, 'ff', '128')),
    seed: 1,
  };
  const T = cfg.context;
  const steps = Number(flag(args, 'steps', args.smoke ? '12' : args.full ? '4000' : '600'));
  // Training stops at this wall-clock budget if the steps are not done: the software adapter's speed
  // varies several-fold with machine load. Pass --budget-s 0 for a run fixed by --steps alone.
  const budgetFlag = Number(flag(args, 'budget-s', args.smoke ? '0' : args.full ? '3600' : '190'));
  const budget = budgetFlag > 0 ? budgetFlag : Infinity;
  const batch = Number(flag(args, 'batch', args.smoke ? '4' : '8'));
  const lr = Number(flag(args, 'lr', '1e-2'));
  // --precision f16: forward and loss under autocast (attention in f16), gradients through a GradScaler; the weights,
  // the optimizer and evaluation stay f32.
  const precision = flag(args, 'precision', 'f32');
  if (precision !== 'f32' && precision !== 'f16') throw new Error(`${NAME}: --precision must be f32 or f16, got ${precision}`);
  const scaler = precision === 'f16' ? new optim.GradScaler() : null;
  const model = new CharLM(cfg);
  const nParams = model.parameters().reduce((a, p) => a + p.size, 0);
  console.log(`${NAME}: ${cfg.layers} layers, d=${cfg.dModel}, ${cfg.heads} heads, context ${T}, ${nParams} parameters; up to ${steps} steps of ${batch}x${T} chars, training budget ${budget} s`);

  const opt = new optim.AdamW(model.parameters(), { lr, weightDecay: 0.01 });
  const sched = new optim.LambdaLR(opt, budgetedWarmupCosine(steps, Math.min(10, Math.floor(steps / 10)), budget, 0.1));
  // --compile: the f32 step (forward, backward, clipping, AdamW) traced once and replayed (compile(), fused kernels);
  // the batch is made outside the step and passed in, so the replay only copies its values in.
  const useCompile = args.argv.includes('--compile');
  if (useCompile && scaler) throw new Error(`${NAME}: --compile takes the f32 step (GradScaler's update reads the GPU each step)`);
  const compiledStep = useCompile
    ? compile((x: Tensor, y: Tensor) =>
        tidy(() => {
          opt.zeroGrad();
          const l = lossOf(model, x, y);
          l.backward();
          optim.clipGradNorm(model.parameters(), 1).dispose();
          opt.step();
          return l.detach();
        }),
      )
    : null;
  const draw = rng(1234);
  const progress = new Progress(`${NAME}: train`, steps);
  const losses: number[] = [];
  let ema = NaN;
  const tTrain = performance.now();
  let done = 0;
  for (let step = 0; step < steps; step++) {
    if ((performance.now() - tTrain) / 1000 > budget) {
      console.log(`${process.stdout.isTTY ? "\n" : ""}${NAME}: training time budget (${budget} s) reached after ${step} of ${steps} steps`);
      break;
    }
    const starts = Array.from({ length: batch }, () => Math.floor(draw() * (split - T - 1)));
    const batchXY = compiledStep ? windows(ids, starts, T) : null;
    const loss = compiledStep ? compiledStep(batchXY!.x, batchXY!.y) : tidy(() => {
      opt.zeroGrad();
      const { x, y } = windows(ids, starts, T);
      if (!scaler) {
        const l = lossOf(model, x, y);
        l.backward();
        optim.clipGradNorm(model.parameters(), 1).dispose();
        opt.step();
        return l.detach();
      }
      const l = autocast(() => lossOf(model, x, y), { dtype: 'f16' });
      scaler.scale(l).backward();
      scaler.unscale(opt);
      optim.clipGradNorm(model.parameters(), 1).dispose();
      scaler.step(opt);
      return l.detach();
    });
    if (batchXY) {
      batchXY.x.dispose();
      batchXY.y.dispose();
    }
    if (scaler) await scaler.update();
    const v = await loss.item();
    loss.dispose();
    sched.step();
    losses.push(v);
    ema = Number.isNaN(ema) ? v : 0.9 * ema + 0.1 * v;
    done = step + 1;
    progress.update(done, `loss ${ema.toFixed(3)}`);
  }
  const trainSeconds = (performance.now() - tTrain) / 1000;
  if (compiledStep) {
    const s = compiledStep.summary;
    console.log(`${NAME}: compiled step: ${compiledStep.stats.traces} traces, ${compiledStep.stats.replays} replays${s ? `, ${s.dispatches} dispatches per step` : ''}${compiledStep.fallbackReason ? `; eager: ${compiledStep.fallbackReason}` : ''}`);
    compiledStep.dispose();
  }
  if (scaler) console.log(`${NAME}: precision f16 (autocast + GradScaler), final loss scale ${scaler.getScale()}`);
  console.log(`${NAME}: trained ${done} steps (${done * batch * T} characters seen) in ${trainSeconds.toFixed(1)} s (${(done / trainSeconds).toFixed(2)} steps/s, ${((done * batch * T) / trainSeconds).toFixed(0)} chars/s); final train loss (EMA) ${ema.toFixed(3)} nats = ${(ema / Math.LN2).toFixed(2)} bits/char`);

  if (args.smoke) {
    // Cached and uncached greedy decoding must agree, even on an untrained model.
    const prompt = Array.from(ids.subarray(split, split + 16));
    const a = await generate(model, prompt, 8, true);
    const b = await generate(model, prompt, 8, false);
    const same = a.tokens.every((t, i) => t === b.tokens[i]);
    console.log(`${NAME}: cached and uncached generation ${same ? 'agree' : 'DIFFER'} on ${a.tokens.length} tokens`);
    if (!same) throw new Error(`${NAME}: cached ${JSON.stringify(a.tokens)} vs uncached ${JSON.stringify(b.tokens)}`);
    // First and last losses averaged over a few steps each: single batches are noisy.
    const k = Math.min(3, Math.floor(losses.length / 2));
    const avg = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
    reportLoss(NAME, avg(losses.slice(0, k)), avg(losses.slice(-k)));
    return;
  }

  const valWindows = Number(flag(args, 'val-windows', args.full ? '1024' : '128'));
  const valNats = await evaluate(model, ids, split, T, valWindows, 32);
  const bpc = valNats / Math.LN2;
  console.log(`${NAME}: held-out ${valWindows} windows x ${T} chars: loss ${valNats.toFixed(4)} nats/char = ${bpc.toFixed(3)} bits/char (uniform over ${chars.length} would be ${Math.log2(chars.length).toFixed(2)})`);

  // Checkpoint, reload into a fresh model, check it predicts the same.
  const dir = outDir(NAME);
  const ckpt = join(dir, 'charlm.safetensors');
  await save(model.stateDict(), ckpt, { metadata: { vocab: JSON.stringify(chars), config: JSON.stringify(cfg) } });
  const fresh = new CharLM({ ...cfg, seed: 99 });
  const loaded = await load(ckpt);
  fresh.loadStateDict(loaded);
  for (const t of Object.values(loaded)) t.dispose();
  fresh.eval();
  model.eval();
  const probe = windows(ids, [split, split + 1000, split + 5000], T);
  const [la, lb] = noGrad(() => [model.forward(probe.x), fresh.forward(probe.x)]);
  const [pa, pb] = await Promise.all([la.toArray(), lb.toArray()]);
  let maxDiff = 0;
  for (let i = 0; i < pa.length; i++) maxDiff = Math.max(maxDiff, Math.abs(pa[i] - pb[i]));
  for (const t of [la, lb, probe.x, probe.y]) t.dispose();
  console.log(`${NAME}: saved ${ckpt}; reloaded model's logits differ by at most ${maxDiff} from the trained model's`);
  if (maxDiff !== 0) throw new Error(`${NAME}: reloaded checkpoint predicts differently (max |diff| ${maxDiff})`);

  // Greedy generation, with and without the KV cache, from the reloaded model.
  const genCount = Number(flag(args, 'generate', '200'));
  const promptText = flag(args, 'prompt', 'Call me Ishmael. ')!;
  const prompt = [...promptText].map((c) => index.get(c) ?? index.get(' ')!);
  const decode = (ts: number[]) => ts.map((t) => chars[t]).join('');
  await generate(fresh, prompt, 4, true); // warm the pipelines so neither timing pays compilation
  await generate(fresh, prompt, 4, false);
  const cached = await generate(fresh, prompt, genCount, true);
  const uncached = await generate(fresh, prompt, genCount, false);
  const agree = cached.tokens.filter((t, i) => t === uncached.tokens[i]).length;
  console.log(`${NAME}: greedy sample from ${JSON.stringify(promptText)}:\n${promptText}${decode(cached.tokens)}\n`);
  console.log(`${NAME}: with KV cache ${cached.tokensPerSecond.toFixed(1)} tokens/s (${cached.seconds.toFixed(1)} s); without (full recompute) ${uncached.tokensPerSecond.toFixed(1)} tokens/s (${uncached.seconds.toFixed(1)} s); speed-up ${(cached.tokensPerSecond / uncached.tokensPerSecond).toFixed(2)}x`);
  console.log(`${NAME}: cached and uncached greedy outputs agree on ${agree}/${genCount} tokens${agree === genCount ? ' (identical)' : ''}`);
  if (agree !== genCount) {
    const first = cached.tokens.findIndex((t, i) => t !== uncached.tokens[i]);
    console.log(`${NAME}: first difference at token ${first}; uncached text: ${JSON.stringify(decode(uncached.tokens))}`);
  }

  // Attention heatmap of the last layer over the last generated line (at most 48 characters).
  const full = promptText + decode(cached.tokens);
  const lines = full.split('\n').filter((l) => l.trim().length >= 8);
  const line = (lines[lines.length - 1] ?? full).slice(-48);
  const lineIds = [...line].map((c) => index.get(c) ?? index.get(' ')!);
  const lineTensor = tensor(Int32Array.from(lineIds), { shape: [1, lineIds.length], dtype: 'i32' });
  const weights = fresh.attentionMap(lineTensor);
  const labels = [...line].map((c) => (c === ' ' ? '␣' : c));
  const title = `charlm: layer ${cfg.layers} attention (mean over ${cfg.heads} heads), causal`;
  writeFileSync(join(dir, 'attention.svg'), await viz.attentionHeatmapSVG(weights, { rowLabels: labels, colLabels: labels, title, cell: 14, showValues: false, min: 0 }));
  writeFileSync(join(dir, 'attention.png'), await viz.attentionHeatmapPNG(weights, { cell: 8, min: 0 }));
  weights.dispose();
  lineTensor.dispose();
  console.log(`${NAME}: attention heatmap of ${JSON.stringify(line)} -> ${join(dir, 'attention.svg')}, attention.png`);
  console.log(`${NAME}: total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  report(NAME, 'validation bits/char', bpc, 3);
}
