// fit(): epochs of shuffled mini-batches, validation, early stopping with best-state restore, progress.
import { CheckpointError, ValueError, KilnError, checkOptions } from '../errors.js';
import { tidy, keep } from '../tensor/base.js';
import type { Tensor } from '../ops/tensor.js';
import { clone } from '../ops/elementwise.js';
import { noGrad } from '../autograd/mode.js';
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizer.js';
import { clipGradNorm } from '../optim/clip.js';
import { GradScaler } from '../optim/scaler.js';
import { autocast } from '../ops/autocast.js';
import { ReduceLROnPlateau } from '../optim/schedule.js';
import { type StatefulScheduler, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { type Batch, type Dataset, batches } from './data.js';

export interface EpochLogs {
  epoch: number;
  trainLoss: number;
  valLoss?: number;
  /** Seconds the epoch took and its training steps per second. */
  seconds: number;
  stepsPerSecond: number;
  [metric: string]: number | undefined;
}

export interface FitOptions {
  model: Module;
  optimizer: Optimizer;
  /** loss(model output, batch targets) -> scalar; used unless trainStep is given. */
  lossFn?: (output: Tensor, targets: Tensor) => Tensor;
  /** A full custom step: returns the scalar loss (fit runs backward and the optimizer). */
  trainStep?: (batch: Batch, model: Module) => Tensor;
  trainData: Dataset;
  valData?: Dataset;
  epochs: number;
  batchSize?: number;
  shuffle?: boolean;
  dropLast?: boolean;
  seed?: number;
  /** Stop after this many epochs without improvement of `monitor` (default: never). */
  patience?: number;
  /** 'valLoss' (default when valData is given), 'trainLoss', or a key returned by evaluate. */
  monitor?: string;
  mode?: 'min' | 'max';
  minDelta?: number;
  /** Load the best epoch's weights back at the end (default true when monitoring). */
  restoreBest?: boolean;
  /** Extra per-epoch metrics, computed after validation (model in eval mode, no grad recording). */
  evaluate?: (model: Module) => Promise<Record<string, number>> | Record<string, number>;
  /** Called after each epoch; return false to stop. */
  onEpoch?: (logs: EpochLogs) => void | boolean | Promise<void | boolean>;
  /** Clip the global gradient norm before each step (of the unscaled gradients when a gradScaler is given). */
  clipGradNorm?: number;
  /** Run the forward pass and the loss under autocast(..., { dtype: 'f16' }) (mixed precision). */
  autocast?: 'f16';
  /** Scale the loss for f16 gradients: backward of scaler.scale(loss), scaler.step(optimizer), await scaler.update(). */
  gradScaler?: GradScaler;
  /**
   * Stepped after every optimizer step (a LambdaLR, StepLR, CosineAnnealingLR...); a ReduceLROnPlateau is stepped once
   * per epoch with the monitored value instead.
   */
  scheduler?: { step(): void } | ReduceLROnPlateau;
  /**
   * Writes a training checkpoint (saveCheckpoint: model, optimizer, scheduler, random state, data position, history)
   * after every epoch, and every `everySteps` optimizer steps when given: to `path` (Node; written to path + '.tmp'
   * then renamed, so a crash never leaves half a file) and/or to `onSave(bytes)`.
   */
  checkpoint?: FitCheckpointOptions;
  /** A checkpoint (path or bytes) written by fit's `checkpoint`: training continues where it stopped, bit for bit. */
  resume?: string | Uint8Array | ArrayBuffer;
  /** Draw a progress bar: defaults to true only when stdout is a TTY. */
  progress?: boolean;
  /** Where the progress bar goes (default process.stdout). */
  progressStream?: { write(s: string): unknown; isTTY?: boolean };
}

export interface FitCheckpointOptions {
  path?: string;
  everySteps?: number;
  onSave?: (bytes: Uint8Array, at: { epoch: number; step: number }) => unknown;
}

/** Where a checkpointed run stood: the epoch in progress (0-based), the batches of it done, and the running sums. */
interface FitProgress {
  epoch: number;
  step: number;
  lossSum: number;
  seen: number;
  seconds: number;
  history: EpochLogs[];
  best: number;
  bestEpoch: number;
  sinceBest: number;
  stoppedEarly: boolean;
  /** What the data order depends on: a resumed run must draw the same batches. */
  order: { seed: number; shuffle: boolean; dropLast: boolean; batchSize: number; length: number };
}

export interface FitResult {
  history: EpochLogs[];
  bestEpoch: number;
  bestValue: number;
  stoppedEarly: boolean;
}

function defaultStream(): { write(s: string): unknown; isTTY?: boolean } | null {
  const proc = (globalThis as { process?: { stdout?: { write(s: string): unknown; isTTY?: boolean } } }).process;
  return proc?.stdout ?? null;
}

function bar(done: number, total: number, width = 24): string {
  const filled = total ? Math.round((done / total) * width) : width;
  return '[' + '='.repeat(Math.max(0, filled - 1)) + (filled ? '>' : '') + ' '.repeat(width - filled) + ']';
}

const now = () => (globalThis.performance ?? Date).now();

async function meanLoss(model: Module, data: Dataset, batchSize: number, lossOf: (b: Batch) => Tensor): Promise<number> {
  let total = 0;
  let count = 0;
  for (const idx of batches(data.length, batchSize, { shuffle: false })) {
    const batch = data.getBatch(idx);
    try {
      const loss = noGrad(() => tidy(() => lossOf(batch)));
      total += (await loss.item()) * idx.length;
      count += idx.length;
      loss.dispose();
    } finally {
      batch.inputs.dispose();
      batch.targets.dispose();
    }
  }
  void model;
  return count ? total / count : NaN;
}

/** Trains `model` and returns the per-epoch history; see FitOptions. */
const FIT_KEYS = [
  'model', 'optimizer', 'lossFn', 'trainStep', 'trainData', 'valData', 'epochs', 'batchSize', 'shuffle', 'dropLast', 'seed',
  'patience', 'monitor', 'mode', 'minDelta', 'restoreBest', 'evaluate', 'onEpoch', 'clipGradNorm', 'scheduler', 'progress',
  'progressStream', 'checkpoint', 'resume', 'autocast', 'gradScaler',
] as const;

export async function fit(options: FitOptions): Promise<FitResult> {
  if (options === undefined || options === null) throw new ValueError('fit: expects an options object { model, optimizer, trainData, epochs, ... }');
  checkOptions('fit', options, FIT_KEYS);
  const { model, optimizer, trainData, valData } = options;
  if (!model || typeof model.forward !== 'function') throw new ValueError('fit: model must be an nn.Module');
  if (!optimizer || typeof optimizer.step !== 'function') throw new ValueError('fit: optimizer is required');
  if (!trainData || typeof trainData.getBatch !== 'function') throw new ValueError('fit: trainData must be a Dataset (length, getBatch)');
  if (!options.lossFn && !options.trainStep) throw new ValueError('fit: give lossFn(output, targets) or trainStep(batch, model)');
  const epochs = options.epochs;
  if (!Number.isInteger(epochs) || epochs < 0) throw new ValueError(`fit: epochs must be a non-negative integer, got ${epochs}`);
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new ValueError(`fit: batchSize must be a positive integer, got ${batchSize}`);
  const monitor = options.monitor ?? (valData ? 'valLoss' : 'trainLoss');
  const mode = options.mode ?? (/loss/i.test(monitor) ? 'min' : 'max');
  if (mode !== 'min' && mode !== 'max') throw new ValueError(`fit: mode must be 'min' or 'max', got ${mode}`);
  const patience = options.patience ?? Infinity;
  if (!(patience >= 0)) throw new ValueError(`fit: patience must be >= 0, got ${patience}`);
  const minDelta = options.minDelta ?? 0;
  const restoreBest = options.restoreBest ?? options.patience !== undefined;
  const stream = options.progressStream ?? defaultStream();
  const showProgress = options.progress ?? !!stream?.isTTY;

  if (options.autocast !== undefined && options.autocast !== 'f16') throw new ValueError(`fit: autocast must be 'f16', got ${JSON.stringify(options.autocast)}`);
  const scaler = options.gradScaler;
  if (scaler !== undefined && !(scaler instanceof GradScaler)) throw new ValueError('fit: gradScaler must be an optim.GradScaler');
  const plainLoss = (b: Batch): Tensor => (options.trainStep ? options.trainStep(b, model) : options.lossFn!(model.forward(b.inputs) as Tensor, b.targets));
  const lossOf = (b: Batch): Tensor => (options.autocast ? autocast(() => plainLoss(b), { dtype: options.autocast }) : plainLoss(b));
  const scheduler = options.scheduler ?? null;
  const plateau = scheduler instanceof ReduceLROnPlateau ? scheduler : null;
  const ckpt = checkOptions('fit: checkpoint', options.checkpoint, ['path', 'everySteps', 'onSave']);
  const checkpointing = options.checkpoint !== undefined && options.checkpoint !== null;
  if (checkpointing) {
    if (ckpt.path === undefined && ckpt.onSave === undefined) throw new ValueError('fit: checkpoint needs a path or onSave');
    if (ckpt.path !== undefined && typeof ckpt.path !== 'string') throw new ValueError(`fit: checkpoint.path must be a string, got ${typeof ckpt.path}`);
    if (ckpt.onSave !== undefined && typeof ckpt.onSave !== 'function') throw new ValueError('fit: checkpoint.onSave must be a function');
    if (ckpt.everySteps !== undefined && (!Number.isInteger(ckpt.everySteps) || ckpt.everySteps <= 0)) throw new ValueError(`fit: checkpoint.everySteps must be a positive integer, got ${ckpt.everySteps}`);
  }
  if ((checkpointing || options.resume !== undefined) && scheduler && typeof (scheduler as Partial<StatefulScheduler>).stateDict !== 'function') {
    throw new ValueError('fit: checkpoint and resume need a scheduler with stateDict() and loadStateDict() (every kiln scheduler has them)');
  }
  const order = { seed: options.seed ?? 0, shuffle: options.shuffle ?? true, dropLast: !!options.dropLast, batchSize, length: trainData.length };
  const parts = { model, optimizer, scheduler: scheduler as StatefulScheduler | null };
  let history: EpochLogs[] = [];
  let best = mode === 'min' ? Infinity : -Infinity;
  let bestEpoch = -1;
  let bestState: Record<string, Tensor> | null = null;
  let sinceBest = 0;
  let stoppedEarly = false;
  let startEpoch = 0;
  let startStep = 0;
  let resumedSums: { lossSum: number; seen: number; seconds: number } | null = null;
  const stepsPerEpoch = Math.max(0, options.dropLast ? Math.floor(trainData.length / batchSize) : Math.ceil(trainData.length / batchSize));
  const pending: [Tensor, number][] = [];

  try {
    if (options.resume !== undefined) {
      const loaded = await loadCheckpoint(options.resume, parts);
      const p = (loaded.extra as { fit?: FitProgress } | null)?.fit;
      const keys = Object.keys(loaded.extraTensors);
      if (keys.length) bestState = loaded.extraTensors;
      if (!p) throw new ValueError('fit: resume: the checkpoint was not written by fit (no fit progress in it)');
      const mismatch = (Object.keys(order) as (keyof typeof order)[]).filter((k) => p.order[k] !== order[k]);
      if (mismatch.length) throw new ValueError(`fit: resume: the data order differs from the checkpoint's (${mismatch.map((k) => `${k} ${p.order[k]} then, ${order[k]} now`).join(', ')})`);
      ({ history, best, bestEpoch, sinceBest, stoppedEarly } = p);
      startEpoch = p.epoch;
      startStep = p.step;
      resumedSums = { lossSum: p.lossSum, seen: p.seen, seconds: p.seconds };
    }
    const writeCheckpoint = async (progress: FitProgress) => {
      const extraTensors = bestState ?? undefined;
      const bytes = await saveCheckpoint({ ...parts, extra: { fit: progress }, extraTensors });
      if (ckpt.path) await writeAtomically(ckpt.path, bytes);
      await ckpt.onSave?.(bytes, { epoch: progress.epoch, step: progress.step });
    };
    for (let epoch = startEpoch; epoch < epochs && !stoppedEarly; epoch++) {
      model.train();
      const resumed = epoch === startEpoch ? resumedSums : null;
      const t0 = now() - (resumed?.seconds ?? 0) * 1000;
      let lossSum = resumed?.lossSum ?? 0;
      let seen = resumed?.seen ?? 0;
      let step = 0;
      let lastLoss = NaN;
      const drain = async () => {
        for (const [l, n] of pending) {
          lastLoss = await l.item();
          lossSum += lastLoss * n;
          seen += n;
          l.dispose();
        }
        pending.length = 0;
      };
      const progressAt = (e: number, st: number): FitProgress => ({
        epoch: e, step: st, lossSum, seen, seconds: (now() - t0) / 1000, history, best, bestEpoch, sinceBest, stoppedEarly, order,
      });
      for (const idx of batches(trainData.length, batchSize, { seed: order.seed, shuffle: order.shuffle, dropLast: order.dropLast, epoch })) {
        if (epoch === startEpoch && step < startStep) {
          step++;
          continue;
        }
        const batch = trainData.getBatch(idx);
        try {
          const loss = tidy(() => {
            optimizer.zeroGrad();
            const l = lossOf(batch);
            if (l.size !== 1) throw new KilnError(`fit: the loss must be a scalar, got shape [${l.shape.join(',')}]`);
            if (scaler) {
              scaler.scale(l).backward();
              if (options.clipGradNorm !== undefined) {
                scaler.unscale(optimizer);
                clipGradNorm(optimizer.params, options.clipGradNorm).dispose();
              }
              scaler.step(optimizer);
            } else {
              l.backward();
              if (options.clipGradNorm !== undefined) clipGradNorm(optimizer.params, options.clipGradNorm).dispose();
              optimizer.step();
            }
            return noGrad(() => clone(l));
          });
          // The one readback a scaled step needs: whether it was skipped.
          if (scaler) await scaler.update();
          keep(loss);
          pending.push([loss, idx.length]);
        } finally {
          batch.inputs.dispose();
          batch.targets.dispose();
        }
        if (scheduler && !plateau) (scheduler as { step(): void }).step();
        step++;
        // Reading a loss is a sync; without a progress bar, read them in groups so the GPU queue stays full.
        if (showProgress || pending.length >= 16) await drain();
        if (showProgress && stream) {
          const dt = (now() - t0) / 1000;
          stream.write(`\repoch ${epoch + 1}/${epochs} ${bar(step, stepsPerEpoch)} ${step}/${stepsPerEpoch} loss ${lastLoss.toFixed(4)} ${(step / Math.max(dt, 1e-9)).toFixed(1)} steps/s`);
        }
        if (checkpointing && ckpt.everySteps && step % ckpt.everySteps === 0 && step < stepsPerEpoch) {
          await drain();
          optimizer.zeroGrad();
          await writeCheckpoint(progressAt(epoch, step));
        }
      }
      await drain();
      optimizer.zeroGrad();
      const seconds = (now() - t0) / 1000;
      const logs: EpochLogs = { epoch: epoch + 1, trainLoss: seen ? lossSum / seen : NaN, seconds, stepsPerSecond: step / Math.max(seconds, 1e-9) };
      if (valData || options.evaluate) {
        model.eval();
        if (valData) logs.valLoss = await meanLoss(model, valData, batchSize, lossOf);
        if (options.evaluate) Object.assign(logs, await options.evaluate(model));
        model.train();
      }
      history.push(logs);
      if (showProgress && stream) {
        stream.write(`\repoch ${epoch + 1}/${epochs} ${bar(step, stepsPerEpoch)} ${step}/${stepsPerEpoch} loss ${logs.trainLoss.toFixed(4)}${logs.valLoss !== undefined ? ` val ${logs.valLoss.toFixed(4)}` : ''} ${logs.stepsPerSecond.toFixed(1)} steps/s\n`);
      }
      const value = logs[monitor];
      if (typeof value !== 'number') throw new ValueError(`fit: monitor '${monitor}' is not in the epoch logs (${Object.keys(logs).join(', ')})`);
      plateau?.step(value);
      const improved = mode === 'min' ? value < best - minDelta : value > best + minDelta;
      if (improved) {
        best = value;
        bestEpoch = epoch + 1;
        sinceBest = 0;
        if (restoreBest) {
          const snap = noGrad(() => {
            const sd = model.stateDict();
            const out: Record<string, Tensor> = {};
            for (const [k, t] of Object.entries(sd)) Object.defineProperty(out, k, { value: keep(clone(t)), enumerable: true, writable: true, configurable: true });
            return out;
          });
          if (bestState) for (const t of Object.values(bestState)) t.dispose();
          bestState = snap;
        }
      } else sinceBest++;
      const cont = await options.onEpoch?.(logs);
      if (sinceBest >= patience) stoppedEarly = true;
      if (checkpointing) {
        lossSum = 0;
        seen = 0;
        const p = progressAt(epoch + 1, 0);
        p.seconds = 0;
        await writeCheckpoint(p);
      }
      if (cont === false) break;
    }
    if (restoreBest && bestState) model.loadStateDict(bestState);
  } finally {
    for (const [l] of pending) l.dispose();
    if (bestState) for (const t of Object.values(bestState)) t.dispose();
  }
  return { history, bestEpoch, bestValue: best, stoppedEarly };
}

/** Writes bytes to path + '.tmp' and renames it over path, so a crash mid-write keeps the previous checkpoint. */
async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const spec = ['node', 'fs/promises'].join(':');
  let fs: { writeFile(p: string, d: Uint8Array): Promise<void>; rename(a: string, b: string): Promise<void> };
  try {
    fs = (await import(/* @vite-ignore */ spec)) as never;
  } catch {
    throw new ValueError('fit: checkpoint.path needs Node (node:fs); in a browser use checkpoint.onSave');
  }
  try {
    await fs.writeFile(`${path}.tmp`, bytes);
    await fs.rename(`${path}.tmp`, path);
  } catch (e) {
    throw new CheckpointError(`fit: cannot write the checkpoint '${path}': ${(e as Error).message}`);
  }
}
