// Hardware check of the training stack (fused cross-entropy, fused optimizer, a training loop) on
// whatever adapter init() picks. Run: node test/train/gpu_check.mjs (needs dist/ from npm run build).
import * as kiln from '../../dist/kiln.node.js';
import * as experimental from '../../dist/experimental.node.js';

// kiln's API and kiln/experimental (flags, tile choices, counters), which share one device.
const k = { ...kiln, ...experimental };

const info = await k.init();
console.log('adapter:', info.vendor, info.description, 'software:', info.isSoftware);
const { F, nn, optim, tensor, tidy, randn } = k;
const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

// 1. Cross-entropy: fused kernel vs the reference path.
{
  const N = 64, C = 1000;
  const x1 = randn([N, C], { seed: 1, requiresGrad: true });
  const x2 = randn([N, C], { seed: 1, requiresGrad: true });
  const t = tensor(Array.from({ length: N }, (_, i) => (i * 37) % C), { dtype: 'i32' });
  const l1 = F.crossEntropy(x1, t, { labelSmoothing: 0.1 });
  const l2 = F.crossEntropy(x2, t, { labelSmoothing: 0.1, impl: 'reference' });
  l1.backward();
  l2.backward();
  console.log(`crossEntropy [${N},${C}] fused ${(await l1.item()).toFixed(6)} ref ${(await l2.item()).toFixed(6)} grad max diff ${maxDiff(await x1.grad.toArray(), await x2.grad.toArray()).toExponential(2)}`);
}

// 2. Optimizers: fused vs reference over 5 steps.
for (const [name, make] of [
  ['SGD nesterov', (ps, impl) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01, impl })],
  ['Adam', (ps, impl) => new optim.Adam(ps, { lr: 0.01, weightDecay: 0.1, impl })],
  ['AdamW', (ps, impl) => new optim.AdamW(ps, { lr: 0.01, impl })],
]) {
  const finals = [];
  for (const impl of ['fused', 'reference']) {
    const ps = [randn([300, 70], { seed: 2, requiresGrad: true }), randn([70], { seed: 3, requiresGrad: true })];
    const opt = make(ps, impl);
    for (let s = 0; s < 5; s++) {
      opt.zeroGrad();
      tidy(() => ps[0].mul(ps[0]).sum().add(k.sin(ps[1]).sum()).backward());
      opt.step();
    }
    finals.push(await ps[0].toArray());
  }
  console.log(`${name}: fused vs reference after 5 steps, max diff ${maxDiff(finals[0], finals[1]).toExponential(2)}`);
}

// 3. XOR.
{
  const model = new nn.Sequential(new nn.Linear(2, 8, { seed: 1 }), new nn.Tanh(), new nn.Linear(8, 1, { seed: 2 }));
  const opt = new optim.Adam(model, { lr: 0.05 });
  const x = tensor([[0, 0], [0, 1], [1, 0], [1, 1]]);
  const y = tensor([[0], [1], [1], [0]]);
  let l;
  for (let i = 0; i < 300; i++) {
    l?.dispose();
    l = tidy(() => {
      opt.zeroGrad();
      const loss = F.binaryCrossEntropyWithLogits(model.forward(x), y);
      loss.backward();
      opt.step();
      return loss;
    });
  }
  console.log(`XOR loss after 300 steps: ${(await l.item()).toFixed(5)}`);
}

// 4. Step timing and counts.
for (const [inF, hid, out, B] of info.isSoftware ? [[64, 128, 10, 32]] : [[64, 128, 10, 32], [784, 1024, 10, 256]]) {
  const model = new nn.Sequential(new nn.Linear(inF, hid, { seed: 1 }), new nn.ReLU(), new nn.Linear(hid, out, { seed: 2 }));
  const opt = new optim.Adam(model, { lr: 1e-3 });
  const x = randn([B, inF], { seed: 5 });
  const y = tensor(Array.from({ length: B }, (_, i) => i % out), { dtype: 'i32' });
  const step = () => tidy(() => {
    opt.zeroGrad();
    const l = F.crossEntropy(model.forward(x), y);
    l.backward();
    opt.step();
    return l;
  });
  for (let i = 0; i < 5; i++) {
    const l = step();
    await l.item();
    l.dispose();
  }
  const before = k.memory().buffers;
  k.resetGpuStats();
  const N = 50;
  const t0 = performance.now();
  let last = null;
  for (let i = 0; i < N; i++) {
    last?.dispose();
    last = step();
  }
  await last.item();
  const ms = (performance.now() - t0) / N;
  console.log(`MLP ${inF}-${hid}-${out} batch ${B}: ${ms.toFixed(3)} ms/step (${N} steps, one readback at the end), ${k.gpuStats.dispatches / N} dispatches/step, ${k.gpuStats.submits} submits, buffers ${before} -> ${k.memory().buffers}`);
}
process.exit(0);
