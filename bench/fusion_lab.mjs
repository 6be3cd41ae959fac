// Fusion lab: one training step (embedding, causal transformer encoder layers, a token head, cross-entropy, AdamW)
// run eagerly, compiled without fusion (replay only) and compiled with fusion, in one process, interleaved round by
// round (the order rotating each round), each contender with its own identically initialised model. Prints
// dispatches per step, ms per step (median and spread over rounds) and whether the losses agree, with the load average.
//   node bench/fusion_lab.mjs [--layers 2] [--E 32] [--B 4] [--T 16] [--rounds 5] [--steps 10] [--H 4] [--FF 2E] [--V 67] [--clip 1] [--ablate 1] [--json out.json]
// --clip 1: clipGradNorm(params, 1) before the optimizer step.
// --ablate 1: also, for each compiler pass, the fused step's dispatches with that one pass switched off (and whether
//   its losses still equal eager's): what each pass contributes on this model.
// Needs dist/ (npm run build).
import { existsSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(ROOT, 'dist/kiln.node.js');
if (!existsSync(bundle)) throw new Error('dist/kiln.node.js is missing: run `npm run build`');
const k = { ...(await import(bundle)), ...(await import(join(ROOT, 'dist/experimental.node.js'))) };

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? (name === 'json' ? args[i + 1] : Number(args[i + 1])) : dflt;
};
const L = opt('layers', 2), E = opt('E', 32), B = opt('B', 4), T = opt('T', 16), rounds = opt('rounds', 5), steps = opt('steps', 10);
const H = opt('H', 4), FF = opt('FF', 2 * E), V = opt('V', 67);
const clip = opt('clip', 0) > 0;

const info = await k.init();

function model() {
  const emb = new k.nn.Embedding(V, E, { seed: 1 });
  const layers = Array.from({ length: L }, (_, i) => new k.nn.TransformerEncoderLayer(E, H, { dimFeedforward: FF, dropout: 0, isCausal: true, seed: 10 + 20 * i }));
  const head = new k.nn.Linear(E, V, { seed: 3 });
  const params = [...emb.parameters(), ...layers.flatMap((l) => l.parameters()), ...head.parameters()];
  const opt = new k.optim.AdamW(params, { lr: 3e-3 });
  const fn = (tokens, targets) =>
    k.tidy(() => {
      opt.zeroGrad();
      let h = emb.forward(tokens);
      for (const l of layers) h = l.forward(h);
      const loss = k.F.crossEntropy(head.forward(h).reshape([B * T, V]), targets);
      loss.backward();
      if (clip) k.optim.clipGradNorm(params, 1).dispose();
      opt.step();
      return loss;
    });
  return fn;
}

const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % V);
const tokens = k.tensor(ids, { shape: [B, T] });
const targets = k.tensor(Int32Array.from(ids, (_t, i) => ids[(i + 1) % ids.length]), { shape: [B * T] });

const contenders = [
  { name: 'eager', step: model() },
  { name: 'replay-only', step: k.compile(model(), { fuse: false }) },
  { name: 'fused', step: k.compile(model(), { fuse: true }) },
];

// Warm-up: pipelines compiled, traces taken, plans made (compiled steps replay from the third call).
const losses = {};
for (const c of contenders) {
  losses[c.name] = [];
  for (let s = 0; s < 4; s++) {
    const loss = c.step(tokens, targets);
    losses[c.name].push(await loss.item());
    loss.dispose();
  }
  k.resetGpuStats();
  const loss = c.step(tokens, targets);
  c.dispatches = k.gpuStats.dispatches;
  losses[c.name].push(await loss.item());
  loss.dispose();
  c.ms = [];
}

for (let r = 0; r < rounds; r++) {
  // The order rotates each round, so no contender always runs after the same one.
  for (let j = 0; j < contenders.length; j++) {
    const c = contenders[(j + r) % contenders.length];
    await k.sync();
    const t0 = performance.now();
    let last = null;
    for (let s = 0; s < steps; s++) {
      last?.dispose();
      last = c.step(tokens, targets);
    }
    losses[c.name].push(await last.item());
    last.dispose();
    c.ms.push((performance.now() - t0) / steps);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const load = loadavg().map((x) => x.toFixed(2)).join(' ');
const eager = contenders[0];
console.log(`fusion lab: ${L}-layer causal transformer E=${E} B=${B} T=${T} H=${H} FF=${FF} V=${V}, AdamW${clip ? ' + clipGradNorm' : ''}; adapter ${info.adapter ?? info.description ?? JSON.stringify(info).slice(0, 80)}`);
console.log(`${rounds} rounds x ${steps} steps, interleaved; load average ${load}`);
for (const c of contenders) {
  const m = median(c.ms);
  const lo = Math.min(...c.ms), hi = Math.max(...c.ms);
  const same = losses[c.name].every((v, i) => Math.abs(v - losses.eager[i]) <= 1e-5 * Math.max(1, Math.abs(losses.eager[i])));
  console.log(
    `  ${c.name.padEnd(12)} ${String(c.dispatches).padStart(4)} dispatches/step  ${m.toFixed(1).padStart(7)} ms/step (${lo.toFixed(1)}..${hi.toFixed(1)})  ` +
      `x${(median(eager.ms) / m).toFixed(2)} vs eager  losses ${same ? 'equal eager' : 'DIFFER from eager'}`,
  );
  if (c.step.fallbackReason) console.log(`    fallback: ${c.step.fallbackReason}`);
}
if (opt('ablate', 0) > 0) {
  const fusedCount = contenders[2].dispatches;
  console.log(`ablation: dispatches/step of the fused step with one pass off (all passes on: ${fusedCount})`);
  for (const name of k.compilePasses) {
    const step = k.compile(model(), { fuse: { [name]: false } });
    const ls = [];
    let n = 0;
    for (let s = 0; s < 5; s++) {
      if (s === 4) k.resetGpuStats();
      const loss = step(tokens, targets);
      if (s === 4) n = k.gpuStats.dispatches;
      ls.push(await loss.item());
      loss.dispose();
    }
    const same = ls.every((v, i) => Math.abs(v - losses.eager[i]) <= 1e-5 * Math.max(1, Math.abs(losses.eager[i])));
    console.log(`  without ${name.padEnd(16)} ${String(n).padStart(4)} dispatches/step (the pass saves ${n - fusedCount})  losses ${same ? 'equal eager' : 'DIFFER from eager'}${step.fallbackReason ? `  fallback: ${step.fallbackReason}` : ''}`);
    step.dispose();
  }
}
console.log(contenders[2].step.explain());
const json = opt('json');
const equal = (c) => losses[c.name].every((v, i) => Math.abs(v - losses.eager[i]) <= 1e-5 * Math.max(1, Math.abs(losses.eager[i])));
if (json) {
  writeFileSync(json, JSON.stringify({
    L, E, B, T, H, FF, V, clip, rounds, steps, load, adapter: info.description ?? null,
    contenders: contenders.map((c) => ({ name: c.name, dispatches: c.dispatches, ms: c.ms, median: median(c.ms), lossesEqualEager: equal(c), losses: losses[c.name], fallback: c.step.fallbackReason ?? null })),
  }, null, 2));
}
process.exit(0);
