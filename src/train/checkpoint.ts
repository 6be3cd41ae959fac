// Training checkpoints: a model, its optimizer and scheduler, the random state and the caller's own progress in one
// safetensors file, so that a run resumed from it continues bit for bit (fit's checkpoint-and-resume is built on it).
//   Tensors: 'model.<state-dict key>', 'optimizer.state.<i>.<name>' (PyTorch's names: exp_avg, exp_avg_sq,
//   momentum_buffer) and 'extra.<key>' for the caller's tensors. Metadata 'kiln.checkpoint': JSON with the optimizer's
//   step counts and param group, the scheduler's state dict, the global generator's state, the modules' per-call random
//   counters and the caller's JSON `extra` (numbers may be infinite).
import { CheckpointError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { getRngState, setRngState, type RngState } from '../tensor/random.js';
import { Tensor } from '../ops/tensor.js';
import { Module, StateDictError, loadModuleRandomState, moduleRandomState } from '../nn/module.js';
import type { Optimizer, OptimizerParamState, OptimizerStateDict } from '../optim/optimizer.js';
import type { SchedulerStateDict } from '../optim/schedule.js';
import { load, readHeader, save } from '../io/safetensors.js';

/** Anything with PyTorch's scheduler state-dict protocol (every kiln scheduler). */
export interface StatefulScheduler {
  stateDict(): SchedulerStateDict;
  loadStateDict(sd: SchedulerStateDict): void;
}

export interface CheckpointParts {
  model: Module;
  optimizer?: Optimizer | null;
  scheduler?: StatefulScheduler | null;
}

export interface SaveCheckpointOptions extends CheckpointParts {
  /** The caller's progress (epoch, step, history...): JSON values; infinities and NaN are kept. */
  extra?: unknown;
  /** The caller's own tensors (stored as 'extra.<key>'). */
  extraTensors?: Record<string, Tensor>;
}

export interface LoadedCheckpoint {
  extra: unknown;
  /** The caller's tensors, owned by the caller (dispose them). */
  extraTensors: Record<string, Tensor>;
}

const META_KEY = 'kiln.checkpoint';
const VERSION = 1;

interface CheckpointMeta {
  version: number;
  optimizer: { kind: string; steps: Record<string, number>; param_groups: OptimizerStateDict['param_groups'] } | null;
  scheduler: SchedulerStateDict | null;
  rng: RngState;
  moduleRandom: Record<string, [number, number]>;
  extra: unknown;
}

// JSON cannot hold Infinity or NaN (a best loss starts at Infinity): they travel as {"$float": "Infinity"}.
function encode(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? { $float: String(v) } : v));
}
function decode(text: string): unknown {
  return JSON.parse(text, (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof v.$float === 'string' ? Number(v.$float) : v));
}

function setOwn<V>(obj: Record<string, V>, key: string, value: V): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function checkParts(fn: string, parts: CheckpointParts): void {
  if (!(parts.model instanceof Module)) throw new ValueError(`${fn}: model must be an nn.Module, got ${String(parts.model)}`);
  const opt = parts.optimizer;
  if (opt !== undefined && opt !== null && typeof opt.stateDict !== 'function') throw new ValueError(`${fn}: optimizer must be a kiln optimizer`);
  const sch = parts.scheduler;
  if (sch !== undefined && sch !== null && (typeof sch.stateDict !== 'function' || typeof sch.loadStateDict !== 'function')) {
    throw new ValueError(`${fn}: scheduler must have stateDict() and loadStateDict() (every kiln scheduler does)`);
  }
}

/**
 * Writes a training checkpoint (see the file header) to `path` (Node) and returns its bytes. The model's tensors are
 * stored under PyTorch's state-dict names, so `load(file)` keys 'model.*' are a PyTorch state dict.
 */
export async function saveCheckpoint(options: SaveCheckpointOptions, path?: string | null): Promise<Uint8Array> {
  const fn = 'saveCheckpoint';
  if (!options || typeof options !== 'object') throw new ValueError(`${fn}: expects { model, optimizer?, scheduler?, extra?, extraTensors? }`);
  checkOptions(fn, options, ['model', 'optimizer', 'scheduler', 'extra', 'extraTensors']);
  checkParts(fn, options);
  const tensors: Record<string, Tensor> = {};
  const owned: Tensor[] = [];
  try {
    for (const [k, t] of Object.entries(options.model.stateDict())) setOwn(tensors, `model.${k}`, t);
    let optMeta: CheckpointMeta['optimizer'] = null;
    if (options.optimizer) {
      const sd = options.optimizer.stateDict();
      const steps: Record<string, number> = {};
      for (const [i, entry] of Object.entries(sd.state) as [string, OptimizerParamState][]) {
        steps[i] = entry.step;
        for (const [name, t] of Object.entries(entry)) {
          if (t instanceof Tensor) {
            owned.push(t);
            setOwn(tensors, `optimizer.state.${i}.${name}`, t);
          }
        }
      }
      optMeta = { kind: options.optimizer.constructor.name, steps, param_groups: sd.param_groups };
    }
    for (const [k, t] of Object.entries(options.extraTensors ?? {})) {
      if (!(t instanceof Tensor)) throw new ValueError(`${fn}: extraTensors.${k} is not a Tensor`);
      setOwn(tensors, `extra.${k}`, t);
    }
    const meta: CheckpointMeta = {
      version: VERSION,
      optimizer: optMeta,
      scheduler: options.scheduler ? options.scheduler.stateDict() : null,
      rng: getRngState(),
      moduleRandom: moduleRandomState(options.model),
      extra: options.extra ?? null,
    };
    return await save(tensors, path, { metadata: { [META_KEY]: encode(meta) } });
  } finally {
    for (const t of owned) t.dispose();
  }
}

async function readBytes(fn: string, source: string | Uint8Array | ArrayBuffer): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (typeof source !== 'string') throw new ValueError(`${fn}: expects a path or the bytes (Uint8Array / ArrayBuffer), got ${source === null ? 'null' : typeof source}`);
  const spec = ['node', 'fs/promises'].join(':');
  let fs: { readFile(p: string): Promise<Uint8Array> };
  try {
    fs = (await import(/* @vite-ignore */ spec)) as never;
  } catch {
    throw new ValueError(`${fn}: file paths need Node (node:fs); in a browser pass the bytes instead`);
  }
  try {
    const b = await fs.readFile(source);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    throw new CheckpointError(`${fn}: cannot read '${source}': ${(e as Error).message}`);
  }
}

/**
 * Restores a checkpoint written by saveCheckpoint into `model` (and `optimizer`, `scheduler`: give the same parts that
 * were saved), sets the global generator and the modules' random counters where they were, and returns the caller's
 * `extra` and tensors. Everything is checked (keys, shapes, which parts were saved, the optimizer's kind) before any
 * tensor or counter changes.
 */
export async function loadCheckpoint(source: string | Uint8Array | ArrayBuffer, parts: CheckpointParts): Promise<LoadedCheckpoint> {
  const fn = 'loadCheckpoint';
  if (!parts || typeof parts !== 'object') throw new ValueError(`${fn}: expects { model, optimizer?, scheduler? } as the second argument`);
  checkOptions(fn, parts, ['model', 'optimizer', 'scheduler']);
  checkParts(fn, parts);
  const bytes = await readBytes(fn, source);
  const header = readHeader(bytes);
  const text = header.metadata?.[META_KEY];
  if (typeof text !== 'string') throw new CheckpointError(`${fn}: the file has no '${META_KEY}' metadata; it is a plain state dict (use load() and loadStateDict())`);
  let meta: CheckpointMeta;
  try {
    meta = decode(text) as CheckpointMeta;
  } catch (e) {
    throw new CheckpointError(`${fn}: '${META_KEY}' metadata is not valid JSON (${(e as Error).message})`);
  }
  if (!meta || meta.version !== VERSION) throw new CheckpointError(`${fn}: checkpoint version ${String(meta?.version)} is not ${VERSION}`);
  const { model, optimizer, scheduler } = parts;
  if (!!meta.optimizer !== !!optimizer) throw new ValueError(`${fn}: the checkpoint ${meta.optimizer ? 'has' : 'has no'} optimizer state but ${optimizer ? 'an optimizer was' : 'no optimizer was'} given`);
  if (!!meta.scheduler !== !!scheduler) throw new ValueError(`${fn}: the checkpoint ${meta.scheduler ? 'has' : 'has no'} scheduler state but ${scheduler ? 'a scheduler was' : 'no scheduler was'} given`);
  if (optimizer && meta.optimizer && meta.optimizer.kind !== optimizer.constructor.name) throw new ValueError(`${fn}: the checkpoint holds ${meta.optimizer.kind} state, the optimizer is ${optimizer.constructor.name}`);
  // The model's keys and shapes, checked from the header before any tensor is made.
  const own = model.stateDict();
  const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
  const saved = Object.keys(header.tensors).filter((k) => k.startsWith('model.')).map((k) => k.slice(6));
  const missing = Object.keys(own).filter((k) => !has(header.tensors, `model.${k}`));
  const unexpected = saved.filter((k) => !has(own, k));
  const mismatched = saved.filter((k) => has(own, k) && header.tensors[`model.${k}`].shape.join(',') !== own[k].shape.join(',')).map((k) => `${k}: ${fmtShape(header.tensors[`model.${k}`].shape)} vs ${fmtShape(own[k].shape)} in the model`);
  if (missing.length || unexpected.length || mismatched.length) {
    const what = [missing.length ? `missing keys: ${missing.join(', ')}` : '', unexpected.length ? `unexpected keys: ${unexpected.join(', ')}` : '', mismatched.length ? `mis-shaped keys: ${mismatched.join('; ')}` : ''].filter(Boolean).join('; ');
    throw new StateDictError(`${fn}: the checkpoint does not fit the model (${what})`, missing, unexpected, mismatched);
  }
  const tensors = await load(bytes);
  const extraTensors: Record<string, Tensor> = {};
  let done = false;
  try {
    const modelSd: Record<string, Tensor> = {};
    const optState: Record<string, OptimizerParamState> = {};
    for (const [k, t] of Object.entries(tensors)) {
      if (k.startsWith('model.')) setOwn(modelSd, k.slice(6), t);
      else if (k.startsWith('extra.')) setOwn(extraTensors, k.slice(6), t);
      else if (k.startsWith('optimizer.state.')) {
        const [i, ...rest] = k.slice(16).split('.');
        if (!optState[i]) optState[i] = { step: meta.optimizer?.steps[i] ?? NaN };
        optState[i][rest.join('.')] = t;
      } else throw new CheckpointError(`${fn}: unexpected tensor '${k}' in the checkpoint`);
    }
    if (meta.optimizer) for (const [i, step] of Object.entries(meta.optimizer.steps)) optState[i] ??= { step };
    // Checks that change nothing, then the loads (each validates before it copies).
    if (scheduler) {
      const probe = scheduler.stateDict();
      checkOptions(`${fn}: scheduler state`, meta.scheduler!, Object.keys(probe));
    }
    loadModuleRandomState(fn, model, meta.moduleRandom ?? {});
    model.loadStateDict(modelSd);
    if (optimizer && meta.optimizer) optimizer.loadStateDict({ state: optState, param_groups: meta.optimizer.param_groups });
    if (scheduler && meta.scheduler) scheduler.loadStateDict(meta.scheduler);
    setRngState(meta.rng);
    done = true;
    return { extra: meta.extra, extraTensors };
  } finally {
    for (const [k, t] of Object.entries(tensors)) if (!k.startsWith('extra.') || !done) t.dispose();
  }
}
