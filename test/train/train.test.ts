import { describe, expect, it } from 'vitest';
import { nn, optim, F, tensor, tidy, memory, fit, TensorDataset, accuracy, type Tensor } from '../../src/index';
import { gpuStats, resetGpuStats } from '../../src/experimental';

describe('training', () => {
  it('a small MLP learns XOR (loss < 0.05)', async () => {
    const t0 = Date.now();
    const model = new nn.Sequential(new nn.Linear(2, 8, { seed: 1 }), new nn.Tanh(), new nn.Linear(8, 1, { seed: 2 }));
    const opt = new optim.Adam(model, { lr: 0.05 });
    const x = tensor([[0, 0], [0, 1], [1, 0], [1, 1]]);
    const y = tensor([[0], [1], [1], [0]]);
    let last = Infinity;
    for (let i = 0; i < 300; i++) {
      const loss = tidy(() => {
        opt.zeroGrad();
        const l = F.binaryCrossEntropyWithLogits(model.forward(x), y);
        l.backward();
        opt.step();
        return l;
      });
      if (i % 50 === 49 || i === 299) last = await loss.item();
      loss.dispose();
    }
    expect(last).toBeLessThan(0.05);
    const p = model.forward(x);
    expect(Array.from(await p.toArray()).map((v) => (v > 0 ? 1 : 0))).toEqual([0, 1, 1, 0]);
    for (const t of [x, y, p]) t.dispose();
    opt.dispose();
    model.dispose();
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('a linear model fits a known regression (weights within 1e-2) via fit()', async () => {
    const t0 = Date.now();
    const N = 256;
    const trueW = [2, -3, 0.5], trueB = 1.25;
    const xs: number[][] = [];
    const ys: number[] = [];
    let s = 1;
    const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
    for (let i = 0; i < N; i++) {
      const r = [rnd(), rnd(), rnd()];
      xs.push(r);
      ys.push(r[0] * trueW[0] + r[1] * trueW[1] + r[2] * trueW[2] + trueB + 0.001 * rnd());
    }
    const model = new nn.Linear(3, 1, { seed: 3 });
    const opt = new optim.SGD(model, { lr: 0.1, momentum: 0.9 });
    const data = new TensorDataset(xs, ys, { yShape: [1] });
    const result = await fit({ model, optimizer: opt, trainData: data, epochs: 15, batchSize: 32, lossFn: (o, t) => F.mseLoss(o, t), seed: 1, progress: false });
    expect(result.history.length).toBe(15);
    expect(result.history[14].trainLoss).toBeLessThan(1e-4);
    const w = Array.from(await model.weight.toArray());
    w.forEach((v, i) => expect(Math.abs(v - trueW[i])).toBeLessThan(1e-2));
    expect(Math.abs((await model.bias!.toArray())[0] - trueB)).toBeLessThan(1e-2);
    opt.dispose();
    model.dispose();
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('300 training steps keep memory().buffers flat (step 300 == step 50)', async () => {
    const base = memory().buffers;
    const model = new nn.Sequential(new nn.Linear(16, 32, { seed: 1 }), new nn.LayerNorm(32), new nn.GELU(), new nn.Dropout(0.1, { seed: 3 }), new nn.Linear(32, 4, { seed: 2 }));
    const emb = new nn.Embedding(10, 16, { seed: 4 });
    const params = [...emb.parameters(), ...model.parameters()];
    const opt = new optim.AdamW(params, { lr: 1e-3 });
    const idx = tensor(Array.from({ length: 8 }, (_, i) => i % 10), { dtype: 'i32' });
    const targets = tensor(Array.from({ length: 8 }, (_, i) => i % 4), { dtype: 'i32' });
    let at50 = -1;
    for (let step = 1; step <= 300; step++) {
      tidy(() => {
        opt.zeroGrad();
        const loss = F.crossEntropy(model.forward(emb.forward(idx)), targets, { labelSmoothing: 0.1 });
        loss.backward();
        optim.clipGradNorm(params, 1.0);
        opt.step();
      });
      if (step === 50) at50 = memory().buffers;
      if (step % 100 === 0) await emb.weight.toArray();
    }
    expect(memory().buffers).toBe(at50);
    opt.zeroGrad();
    opt.dispose();
    model.dispose();
    emb.dispose();
    idx.dispose();
    targets.dispose();
    expect(memory().buffers).toBe(base);
  });

  it('fit: validation, early stopping with patience and best-checkpoint restore, progress bar', async () => {
    // Classes separable by the sign of x0; a huge lr makes later epochs worse so early stopping triggers.
    const xs: number[][] = [];
    const ys: number[] = [];
    for (let i = 0; i < 64; i++) {
      const a = Math.sin(i * 1.7), b = Math.cos(i * 2.3);
      xs.push([a, b]);
      ys.push(a > 0 ? 1 : 0);
    }
    const train = new TensorDataset(xs.slice(0, 48), ys.slice(0, 48), { yDtype: 'i32' });
    const val = new TensorDataset(xs.slice(48), ys.slice(48), { yDtype: 'i32' });
    const model = new nn.Sequential(new nn.Linear(2, 8, { seed: 5 }), new nn.ReLU(), new nn.Linear(8, 2, { seed: 6 }));
    const opt = new optim.SGD(model, { lr: 0.5 });
    let out = '';
    const stream = { write: (s: string) => (out += s), isTTY: true };
    let calls = 0;
    const res = await fit({
      model, optimizer: opt, trainData: train, valData: val, epochs: 30, batchSize: 16, patience: 3,
      lossFn: (o, t) => F.crossEntropy(o, t), progressStream: stream,
      evaluate: async (m) => {
        const b = val.getBatch([...Array(val.length).keys()]);
        const logits = m.forward(b.inputs) as Tensor;
        const pred = logits.argmax(1);
        const acc = accuracy(await b.targets.toArray(), await pred.toArray());
        for (const t of [b.inputs, b.targets, logits, pred]) t.dispose();
        return { valAccuracy: acc };
      },
      onEpoch: () => {
        calls++;
      },
    });
    expect(calls).toBe(res.history.length);
    expect(res.history[0].valLoss).toBeGreaterThan(0);
    expect(res.history[0].valAccuracy).toBeGreaterThanOrEqual(0);
    expect(out).toMatch(/epoch 1\/30 \[=+>?\s*\] 3\/3 loss \d+\.\d{4} val \d+\.\d{4} [\d.]+ steps\/s/);
    const best = Math.min(...res.history.map((h) => h.valLoss!));
    expect(res.bestValue).toBe(best);
    if (res.stoppedEarly) expect(res.history.length - res.bestEpoch).toBe(3);
    // The restored weights give the best validation loss again.
    const b = val.getBatch([...Array(val.length).keys()]);
    const l = F.crossEntropy(model.forward(b.inputs) as Tensor, b.targets);
    expect(await l.item()).toBeCloseTo(best, 4);
    for (const t of [b.inputs, b.targets, l]) t.dispose();
    opt.dispose();
    model.dispose();
  });

  it('measures one training step of a 64-128-10 MLP, batch 32', async () => {
    const model = new nn.Sequential(new nn.Linear(64, 128, { seed: 1 }), new nn.ReLU(), new nn.Linear(128, 10, { seed: 2 }));
    const opt = new optim.Adam(model, { lr: 1e-3 });
    const x = tensor(Float32Array.from({ length: 32 * 64 }, (_, i) => Math.sin(i)), { shape: [32, 64] });
    const y = tensor(Array.from({ length: 32 }, (_, i) => i % 10), { dtype: 'i32' });
    const step = () => tidy(() => {
      opt.zeroGrad();
      const l = F.crossEntropy(model.forward(x), y);
      l.backward();
      opt.step();
      return l;
    });
    for (let i = 0; i < 3; i++) await step().item();
    resetGpuStats();
    const t0 = performance.now();
    const N = 20;
    let last: Tensor | null = null;
    for (let i = 0; i < N; i++) {
      last?.dispose();
      last = step();
    }
    await last!.item();
    const ms = (performance.now() - t0) / N;
    const dispatches = gpuStats.dispatches / N;
    const submits = gpuStats.submits;
    console.log(`MLP 64-128-10 batch 32: ${ms.toFixed(2)} ms/step, ${dispatches} dispatches/step, ${submits} submits over ${N} steps (+1 readback), uploads ${gpuStats.uploads / N}/step`);
    last!.dispose();
    for (const t of [x, y]) t.dispose();
    opt.dispose();
    model.dispose();
    expect(ms).toBeGreaterThan(0);
  });
});
