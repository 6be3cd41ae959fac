// The training-step autocast row, interleaved: one step (forward, backward, AdamW) of the small transformer of
// bench/lib/runner.mjs's trainstep suite (embedding, one causal encoder layer, a token classifier, cross-entropy) in
// f32 against the same step under autocast (f16 matmul, linear and attention; f32 weights) with a GradScaler (its
// update's one readback inside the timed span), in one run on one adapter.
//   node bench/trainstep_amp.mjs [--sizes 64,128] [--rounds 5] [--reps 3] [--json F]
// Per round each precision runs `reps` steps back to back and keeps their median; the order alternates by round.
// Reported per N: medians over rounds of ms/step, the median and range of autocast / f32 per round, and each
// precision's peak live GPU memory over one step (memory().peakBytes after resetPeak) and that peak above the bytes
// live before the step.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({ options: { sizes: { type: 'string', default: '64,128' }, rounds: { type: 'string', default: '5' }, reps: { type: 'string', default: '3' }, json: { type: 'string' } } });
const sizes = a.sizes.split(',').map(Number), rounds = Number(a.rounds), reps = Number(a.reps);
const k = await import(pathToFileURL(join(ROOT, 'dist/kiln.node.js')).href);
const info = await k.init();
const load = () => loadavg().map((v) => v.toFixed(2)).join(' ');
console.log(`adapter: ${info.vendor} ${info.architecture} ${info.device} (${info.description}); load average ${load()}`);
const median = (v) => { const s = v.slice().sort((p, q) => p - q); const h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2; };

function model(N, amp) {
  const B = 4, E = 64, H = 4, V = 96, FF = 128;
  const emb = new k.nn.Embedding(V, E, { seed: 1 });
  const layer = new k.nn.TransformerEncoderLayer(E, H, { dimFeedforward: FF, dropout: 0, isCausal: true, seed: 2 });
  const head = new k.nn.Linear(E, V, { seed: 3 });
  const opt = new k.optim.AdamW([...emb.parameters(), ...layer.parameters(), ...head.parameters()], { lr: 1e-3 });
  const ids = Int32Array.from({ length: B * N }, (_, i) => (i * 7919 + 13) % V);
  const tokens = k.tensor(ids, { shape: [B, N], dtype: 'i32' });
  const targets = k.tensor(Int32Array.from(ids, (_t, i) => ids[(i + 1) % ids.length]), { shape: [B * N], dtype: 'i32' });
  const forward = () => k.F.crossEntropy(head.forward(layer.forward(emb.forward(tokens))).reshape([B * N, V]), targets);
  const scaler = amp ? new k.optim.GradScaler() : null;
  const step = async () => {
    const loss = k.tidy(() => {
      opt.zeroGrad();
      if (!scaler) {
        const l = forward();
        l.backward();
        opt.step();
        return l;
      }
      const l = k.autocast(() => forward());
      const scaled = scaler.scale(l);
      scaled.backward();
      scaler.step(opt);
      return l;
    });
    if (scaler) await scaler.update();
    await k.sync();
    return loss;
  };
  const dispose = () => { for (const m of [emb, layer, head]) m.dispose(); for (const t of [tokens, targets]) t.dispose(); opt.dispose?.(); };
  return { step, dispose };
}

const rows = [];
for (const N of sizes) {
  const ms = { f32: [], autocast: [] }, ratio = [], mem = {};
  const m = { f32: model(N, false), autocast: model(N, true) };
  for (const p of ['f32', 'autocast']) {
    (await m[p].step()).dispose(); // pipelines compiled, optimizer state allocated
    k.resetPeak();
    const base = k.memory().bytes;
    const loss = await m[p].step();
    mem[p] = { peakBytes: k.memory().peakBytes, stepBytes: k.memory().peakBytes - base, loss: (await loss.toArray())[0] };
    loss.dispose();
  }
  for (let r = 0; r < rounds; r++) {
    const per = {};
    for (const p of r % 2 ? ['autocast', 'f32'] : ['f32', 'autocast']) {
      const v = [];
      for (let i = 0; i < reps; i++) { const t0 = performance.now(); (await m[p].step()).dispose(); v.push(performance.now() - t0); }
      per[p] = median(v);
      ms[p].push(per[p]);
    }
    ratio.push(per.autocast / per.f32);
  }
  m.f32.dispose();
  m.autocast.dispose();
  rows.push({ N, ms, ratio, mem });
}
console.log(`\n${rounds} rounds x ${reps} reps; load average at the end ${load()}`);
console.log('| shape [B,N,E] | f32 ms/step | autocast ms/step | autocast / f32 (median, range) | f32 peak (step) | autocast peak (step) |\n|---|---:|---:|---:|---:|---:|');
const kib = (b) => `${(b / 1024).toFixed(0)} KiB`;
for (const r of rows) {
  console.log(`| [4,${r.N},64] | ${median(r.ms.f32).toFixed(1)} | ${median(r.ms.autocast).toFixed(1)} | ${median(r.ratio).toFixed(2)} (${Math.min(...r.ratio).toFixed(2)}-${Math.max(...r.ratio).toFixed(2)}) | ${kib(r.mem.f32.peakBytes)} (${kib(r.mem.f32.stepBytes)}) | ${kib(r.mem.autocast.peakBytes)} (${kib(r.mem.autocast.stepBytes)}) |`);
}
if (a.json) writeFileSync(a.json, JSON.stringify({ adapter: info, rounds, reps, rows }, null, 2));
