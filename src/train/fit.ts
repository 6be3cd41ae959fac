// fit(): epochs of shuffled mini-batches, validation, early stopping with best-state restore, progress.
import { ValueError, KilnError, checkOptions } from '../errors.js';
import { tidy, keep } from '../tensor/base.js';
import type { Tensor } from '../ops/tensor.js';
import { clone } from '../ops/elementwise.js';
import { noGrad } from '../autograd/mode.js';
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizer.js';
import { clipGradNorm } from '../optim/clip.js';
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
  /** Clip the global gradient norm before each step. */
  clipGradNorm?: number;
  /** Stepped after every optimizer step (e.g. a LambdaLR). */
  scheduler?: { step(): void };
  /** Draw a progress bar: defaults to true only when stdout is a TTY. */
  progress?: boolean;
  /** Where the progress bar goes (default process.stdout). */
  progressStream?: { write(s: string): unknown; isTTY?: boolean };
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
  'progressStream',
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

  const lossOf = (b: Batch): Tensor => (options.trainStep ? options.trainStep(b, model) : options.lossFn!(model.forward(b.inputs) as Tensor, b.targets));
  const history: EpochLogs[] = [];
  let best = mode === 'min' ? Infinity : -Infinity;
  let bestEpoch = -1;
  let bestState: Record<string, Tensor> | null = null;
  let sinceBest = 0;
  let stoppedEarly = false;
  const stepsPerEpoch = Math.max(0, options.dropLast ? Math.floor(trainData.length / batchSize) : Math.ceil(trainData.length / batchSize));

  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      model.train();
      const t0 = now();
      let lossSum = 0;
      let seen = 0;
      let step = 0;
      let lastLoss = NaN;
      const pending: [Tensor, number][] = [];
      const drain = async () => {
        for (const [l, n] of pending) {
          lastLoss = await l.item();
          lossSum += lastLoss * n;
          seen += n;
          l.dispose();
        }
        pending.length = 0;
      };
      for (const idx of batches(trainData.length, batchSize, { seed: options.seed ?? 0, shuffle: options.shuffle ?? true, dropLast: options.dropLast, epoch })) {
        const batch = trainData.getBatch(idx);
        try {
          const loss = tidy(() => {
            optimizer.zeroGrad();
            const l = lossOf(batch);
            if (l.size !== 1) throw new KilnError(`fit: the loss must be a scalar, got shape [${l.shape.join(',')}]`);
            l.backward();
            if (options.clipGradNorm !== undefined) clipGradNorm(optimizer.params, options.clipGradNorm).dispose();
            optimizer.step();
            return noGrad(() => clone(l));
          });
          keep(loss);
          pending.push([loss, idx.length]);
        } finally {
          batch.inputs.dispose();
          batch.targets.dispose();
        }
        options.scheduler?.step();
        step++;
        // Reading a loss is a sync; without a progress bar, read them in groups so the GPU queue stays full.
        if (showProgress || pending.length >= 16) await drain();
        if (showProgress && stream) {
          const dt = (now() - t0) / 1000;
          stream.write(`\repoch ${epoch + 1}/${epochs} ${bar(step, stepsPerEpoch)} ${step}/${stepsPerEpoch} loss ${lastLoss.toFixed(4)} ${(step / Math.max(dt, 1e-9)).toFixed(1)} steps/s`);
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
      const improved = mode === 'min' ? value < best - minDelta : value > best + minDelta;
      if (improved) {
        best = value;
        bestEpoch = epoch + 1;
        sinceBest = 0;
        if (restoreBest) {
          const snap = noGrad(() => {
            const sd = model.stateDict();
            const out: Record<string, Tensor> = {};
            for (const [k, t] of Object.entries(sd)) out[k] = keep(clone(t));
            return out;
          });
          if (bestState) for (const t of Object.values(bestState)) t.dispose();
          bestState = snap;
        }
      } else sinceBest++;
      const cont = await options.onEpoch?.(logs);
      if (cont === false) break;
      if (sinceBest >= patience) {
        stoppedEarly = true;
        break;
      }
    }
    if (restoreBest && bestState) model.loadStateDict(bestState);
  } finally {
    if (bestState) for (const t of Object.values(bestState)) t.dispose();
  }
  return { history, bestEpoch, bestValue: best, stoppedEarly };
}
