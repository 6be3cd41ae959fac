// fit's checkpoint-and-resume: a run that crashes (or stops) and is resumed from its last checkpoint gives exactly the
// losses, history and weights of a run that never stopped: model, optimizer (moments, step counts, lr), scheduler,
// global RNG, the modules' dropout counters, the data order and the epoch's running loss all come back.
import { describe, expect, it } from 'vitest';
import { nn, optim, F, tensor, memory, fit, keep, clone, manualSeed, getRngState, setRngState, saveCheckpoint, loadCheckpoint, TensorDataset, ValueError, CheckpointError, nn as NN, type Tensor } from '../../src/index';

const N = 37; // not a multiple of the batch size: the last batch is short
const BATCH = 8; // 5 steps an epoch
function data(seed: number): TensorDataset {
  let s = seed;
  const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const xs: number[][] = [];
  const ys: number[] = [];
  for (let i = 0; i < N; i++) {
    const r = [rnd(), rnd(), rnd(), rnd()];
    xs.push(r);
    ys.push((r[0] + r[1] * r[2] > 0 ? 1 : 0) + (r[3] > 0.5 ? 1 : 0));
  }
  return new TensorDataset(xs, ys, { yDtype: 'i32' });
}

class Net extends nn.Module {
  l1 = new nn.Linear(4, 16, { seed: 1 });
  drop: nn.Dropout; // a seeded per-call stream
  constructor(dropSeed = 9) {
    super();
    this.drop = new nn.Dropout(0.25, { seed: dropSeed });
  }
  free = new nn.Dropout(0.1); // draws its seed from the global generator
  l2 = new nn.Linear(16, 3, { seed: 2 });
  override forward(x: Tensor): Tensor {
    return this.l2.forward(this.free.forward(this.drop.forward(this.l1.forward(x).relu())));
  }
}

type Sched = 'cosine' | 'plateau';
function setup(kind: Sched, dropSeed = 9) {
  const model = new Net(dropSeed);
  const optimizer = new optim.AdamW(model, { lr: 0.05 });
  const scheduler = kind === 'cosine' ? new optim.CosineAnnealingLR(optimizer, { tMax: 7, etaMin: 0.001 }) : new optim.ReduceLROnPlateau(optimizer, { patience: 0, factor: 0.5, threshold: 0.5 });
  return { model, optimizer, scheduler };
}

async function run(kind: Sched, opts: { crashAt?: number; checkpoint?: (b: Uint8Array) => void; resume?: Uint8Array; everySteps?: number; seedBefore?: number; dropSeed?: number }) {
  const { model, optimizer, scheduler } = setup(kind, opts.dropSeed);
  const losses: Tensor[] = [];
  let calls = 0;
  manualSeed(opts.seedBefore ?? 1);
  let result: Awaited<ReturnType<typeof fit>> | null = null;
  let error: unknown = null;
  try {
    result = await fit({
      model, optimizer, scheduler, trainData: data(3), valData: data(5), epochs: 3, batchSize: BATCH, seed: 4, clipGradNorm: 1, progress: false,
      trainStep: (b, m) => {
        if (m.training && opts.crashAt !== undefined && calls === opts.crashAt) throw new Error('crash');
        if (m.training) calls++;
        const l = F.crossEntropy(m.forward(b.inputs) as Tensor, b.targets);
        if (m.training) losses.push(keep(clone(l.detach())));
        return l;
      },
      checkpoint: opts.checkpoint ? { onSave: opts.checkpoint, everySteps: opts.everySteps } : undefined,
      resume: opts.resume,
    });
  } catch (e) {
    error = e;
  }
  const values = await Promise.all(losses.map((l) => l.item()));
  for (const l of losses) l.dispose();
  const weights = await Promise.all(model.parameters().map(async (p) => Array.from(await p.toArray())));
  const lr = optimizer.lr;
  optimizer.dispose();
  model.dispose();
  return { values, weights, lr, result, error, rng: getRngState() };
}

describe('fit: checkpoint and resume', () => {
  for (const kind of ['cosine', 'plateau'] as const) {
    it(`${kind}: crash at step 8, resume from the step-6 checkpoint: the same losses, history and weights, bit for bit`, async () => {
      const base = memory().buffers;
      const whole = await run(kind, {});
      expect(whole.error).toBe(null);
      expect(whole.values.length).toBe(15);
      const saved: Uint8Array[] = [];
      const crashed = await run(kind, { crashAt: 8, everySteps: 3, checkpoint: (b) => saved.push(b) });
      expect((crashed.error as Error).message).toBe('crash');
      // Checkpoints after steps 3 (epoch 1), the end of epoch 1, and step 3 of epoch 2 (global step 8).
      expect(saved.length).toBe(3);
      // Rebuilt with another dropout seed and another global seed: the checkpoint restores both streams.
      const resumed = await run(kind, { resume: saved[2], seedBefore: 777, dropSeed: 31 });
      expect(resumed.error).toBe(null);
      expect([...crashed.values.slice(0, 8), ...resumed.values]).toEqual(whole.values);
      expect(resumed.weights).toEqual(whole.weights);
      expect(resumed.lr).toBe(whole.lr);
      expect(resumed.rng).toEqual(whole.rng);
      const strip = (h: { seconds: number; stepsPerSecond: number }[]) => h.map(({ seconds: _s, stepsPerSecond: _p, ...rest }) => rest);
      expect(strip(resumed.result!.history)).toEqual(strip(whole.result!.history));
      expect(resumed.result!.bestEpoch).toBe(whole.result!.bestEpoch);
      expect(memory().buffers).toBe(base);
    });
  }

  it('resume from an epoch-end checkpoint written to a file, and from the last one (nothing left to do)', async () => {
    const os = await import('node:os');
    const path = await import('node:path');
    const fs = await import('node:fs/promises');
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-resume-'));
    const file = path.join(dir, 'ckpt.safetensors');
    const whole = await run('cosine', {});
    const all: Uint8Array[] = [];
    await run('cosine', { checkpoint: (b) => all.push(b) });
    expect(all.length).toBe(3); // one per epoch
    await fs.writeFile(file, all[0]);
    const { model, optimizer, scheduler } = setup('cosine');
    const r = await fit({ model, optimizer, scheduler, trainData: data(3), valData: data(5), epochs: 3, batchSize: BATCH, seed: 4, clipGradNorm: 1, progress: false, lossFn: (o, t) => F.crossEntropy(o, t), resume: file });
    expect(r.history.map((h) => h.valLoss)).toEqual(whole.result!.history.map((h) => h.valLoss));
    const w = await Promise.all(model.parameters().map(async (p) => Array.from(await p.toArray())));
    expect(w).toEqual(whole.weights);
    const done = await fit({ model, optimizer, scheduler, trainData: data(3), valData: data(5), epochs: 3, batchSize: BATCH, seed: 4, clipGradNorm: 1, progress: false, lossFn: (o, t) => F.crossEntropy(o, t), resume: all[2] });
    expect(done.history.length).toBe(3);
    optimizer.dispose();
    model.dispose();
    await fs.rm(dir, { recursive: true });
  });

  it('a checkpoint that does not fit is a typed error before anything changes', async () => {
    const base = memory().buffers;
    const { model, optimizer, scheduler } = setup('cosine');
    const bytes = await saveCheckpoint({ model, optimizer, scheduler, extra: { note: 'x', inf: -Infinity } });
    const other = new nn.Linear(4, 3, { seed: 1 });
    const otherOpt = new optim.AdamW(other, { lr: 0.1 });
    await expect(loadCheckpoint(bytes, { model: other, optimizer: otherOpt, scheduler: new optim.StepLR(otherOpt, { stepSize: 1 }) })).rejects.toThrow(NN.StateDictError);
    await expect(loadCheckpoint(bytes, { model, optimizer })).rejects.toThrow(/scheduler state/);
    const lone = tensor([1], { requiresGrad: true });
    const sgd = new optim.SGD([lone], { lr: 1 });
    await expect(loadCheckpoint(bytes, { model, optimizer: sgd, scheduler })).rejects.toThrow(/AdamW state, the optimizer is SGD/);
    sgd.dispose();
    lone.dispose();
    await expect(loadCheckpoint(new Uint8Array([1, 2, 3]), { model })).rejects.toThrow(CheckpointError);
    const r = await loadCheckpoint(bytes, { model, optimizer, scheduler });
    expect(r.extra).toEqual({ note: 'x', inf: -Infinity });
    await expect(fit({ model, optimizer, trainData: data(3), epochs: 1, lossFn: F.crossEntropy, checkpoint: {} as any })).rejects.toThrow(ValueError);
    await expect(fit({ model, optimizer, trainData: data(3), epochs: 1, lossFn: F.crossEntropy, checkpoint: { onSave: () => {}, every: 2 } as any })).rejects.toThrow(/'every'/);
    await expect(fit({ model, optimizer, scheduler, trainData: data(3), epochs: 1, lossFn: F.crossEntropy, resume: bytes })).rejects.toThrow(/not written by fit/);
    optimizer.dispose();
    otherOpt.dispose();
    other.dispose();
    model.dispose();
    expect(memory().buffers).toBe(base);
  });

  it('getRngState / setRngState replay the global generator', () => {
    manualSeed(5);
    const s = getRngState();
    const a = tensor([0]);
    a.dispose();
    const d1 = new nn.Dropout(0.5);
    const x = tensor([1, 2, 3, 4, 5, 6, 7, 8]);
    const y1 = d1.forward(x);
    setRngState(s);
    const y2 = d1.forward(x);
    return Promise.all([y1.toArray(), y2.toArray()]).then(([u, v]) => {
      expect(Array.from(u)).toEqual(Array.from(v));
      expect(() => setRngState({ seed: -1, counter: 0 })).toThrow(ValueError);
      for (const t of [x, y1, y2]) t.dispose();
    });
  });
});
