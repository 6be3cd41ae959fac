// Mixed precision end to end: a small attention classifier (self-attention, mean pooling, linear head) trained 150
// steps with autocast + GradScaler reaches the f32 model's final loss (within 25%), with no NaN and f32 parameters;
// an overflowing step (a scale far too large for f16 gradients) is skipped and the scale halves until it fits; fit()
// takes autocast and gradScaler.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';

const B = 16, N = 8, E = 16, C = 3;

/** Sequences of random tokens whose class is the token that appears most often in the first half. */
function data(seed: number): { x: K.Tensor; y: K.Tensor } {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) / 2 ** 24;
  const ids = new Int32Array(B * N), labels = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const cls = Math.floor(rand() * C);
    labels[b] = cls;
    for (let t = 0; t < N; t++) ids[b * N + t] = t < N / 2 && rand() < 0.7 ? cls : C + Math.floor(rand() * 5);
  }
  return { x: K.tensor(ids, { shape: [B, N], dtype: 'i32' }), y: K.tensor(labels, { dtype: 'i32' }) };
}

class Classifier extends K.nn.Module {
  emb = new K.nn.Embedding(C + 5, E, { seed: 1 });
  attn = new K.nn.MultiheadAttention(E, 2, { seed: 2 });
  head = new K.nn.Linear(E, C, { seed: 3 });
  forward(x: K.Tensor): K.Tensor {
    const h = this.emb.forward(x);
    const a = K.add(h, this.attn.forward(h));
    return this.head.forward(K.mean(a, 1));
  }
}

async function train(amp: boolean, steps: number, initScale?: number): Promise<{ loss: number; scaler: K.optim.GradScaler | null; model: Classifier; skipped: number }> {
  const model = new Classifier();
  const opt = new K.optim.Adam(model.parameters(), { lr: 1e-2 });
  const scaler = amp ? new K.optim.GradScaler(initScale ? { initScale } : undefined) : null;
  let loss = NaN, skipped = 0;
  for (let i = 0; i < steps; i++) {
    const { x, y } = data(i % 10);
    const l = K.tidy(() => {
      opt.zeroGrad();
      if (!scaler) {
        const out = K.F.crossEntropy(model.forward(x), y);
        out.backward();
        opt.step();
        return out.detach();
      }
      const out = K.autocast(() => K.F.crossEntropy(model.forward(x), y));
      scaler.scale(out).backward();
      scaler.step(opt);
      return out.detach();
    });
    if (scaler && (await scaler.update())) skipped++;
    if (i >= steps - 10) loss = (Number.isNaN(loss) ? 0 : loss) + (await l.item()) / 10;
    l.dispose();
    x.dispose();
    y.dispose();
  }
  opt.zeroGrad();
  opt.dispose();
  return { loss, scaler, model, skipped };
}

describe('mixed-precision training', () => {
  it('autocast + GradScaler reaches the f32 loss within 25% in 150 steps; parameters stay f32 and finite', async () => {
    const f32 = await train(false, 150);
    const amp = await train(true, 150);
    expect(Number.isFinite(amp.loss)).toBe(true);
    expect(amp.loss).toBeLessThan(f32.loss * 1.25 + 0.02);
    expect(f32.loss).toBeLessThan(0.9); // it learned something (chance is ln 3 = 1.10)
    for (const p of amp.model.parameters()) {
      expect(p.dtype).toBe('f32');
      expect((await p.toArray()).every(Number.isFinite)).toBe(true);
    }
    for (const r of [f32, amp]) r.model.dispose();
    amp.scaler?.dispose();
  }, 400_000);

  it('a scale too large for f16 gradients skips steps and halves until they fit', async () => {
    const r = await train(true, 6, 2 ** 40);
    expect(r.skipped).toBeGreaterThan(0);
    expect(r.scaler!.getScale()).toBe(2 ** (40 - r.skipped));
    for (const p of r.model.parameters()) expect((await p.toArray()).every(Number.isFinite)).toBe(true);
    r.model.dispose();
    r.scaler?.dispose();
  });

  it('fit() trains under autocast with a GradScaler (and clips the unscaled gradients)', async () => {
    const model = new Classifier();
    const opt = new K.optim.Adam(model.parameters(), { lr: 1e-2 });
    const scaler = new K.optim.GradScaler();
    const { x, y } = data(3);
    const ids = await x.toArray(), labels = await y.toArray();
    // Token ids stay i32: a Dataset of its own (TensorDataset holds f32 features).
    const trainData = {
      length: B,
      getBatch: (idx: number[]) => ({
        inputs: K.tensor(Int32Array.from(idx.flatMap((i) => Array.from(ids.subarray(i * N, (i + 1) * N)))), { shape: [idx.length, N], dtype: 'i32' }),
        targets: K.tensor(Int32Array.from(idx.map((i) => labels[i])), { dtype: 'i32' }),
      }),
    };
    const res = await K.fit({ model, optimizer: opt, trainData, epochs: 3, batchSize: 8, lossFn: (o, t) => K.F.crossEntropy(o, t), autocast: 'f16', gradScaler: scaler, clipGradNorm: 1, progress: false });
    expect(res.history.length).toBe(3);
    expect(res.history[2].trainLoss).toBeLessThan(res.history[0].trainLoss);
    await expect(K.fit({ model, optimizer: opt, trainData, epochs: 1, lossFn: (o, t) => K.F.crossEntropy(o, t), autocast: 'bf16' as never })).rejects.toThrow(/autocast/);
    for (const t of [x, y]) t.dispose();
    opt.dispose();
    model.dispose();
    scaler.dispose();
  });
});

