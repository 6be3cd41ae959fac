// embedding's backward on one adapter, in one run: the flag embedding.backward 'sorted' (deterministic: the ids
// sorted, each gradient row summed in order) against 'atomic' (float compare-exchange adds), interleaved.
//   node bench/embedding_backward.mjs [--rounds 7] [--reps 5] [--json F]
// Per round each setting runs `reps` backward passes of sum(embedding(ids, W) * G) back to back and keeps their
// median; the settings alternate in order by round. Reported per shape: medians over rounds and the median and range
// of sorted / atomic per round. Wall clock from the call to sync(). First, the sorted gradient is checked to be the
// same bits on repeats.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, reps: { type: 'string', default: '5' }, json: { type: 'string' } } });
const rounds = Number(a.rounds), reps = Number(a.reps);
const k = await import(pathToFileURL(join(ROOT, 'dist/kiln.node.js')).href);
const x = await import(pathToFileURL(join(ROOT, 'dist/experimental.node.js')).href);
const info = await k.init();
const load = () => loadavg().map((v) => v.toFixed(2)).join(' ');
console.log(`adapter: ${info.vendor} ${info.architecture} ${info.device} (${info.description}); load average ${load()}`);
const median = (v) => { const s = v.slice().sort((p, q) => p - q); const h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2; };

// [V, C, R]: charlm's table and batch; a word-level vocabulary with a longer batch.
const shapes = [[96, 64, 512], [5000, 128, 4096]];
const cases = shapes.map(([V, C, R]) => {
  let s = 7;
  const ids = Int32Array.from({ length: R }, () => ((s = (s * 1103515245 + 12345) >>> 0) % (s % 3 === 0 ? V : Math.min(V, 50))));
  const idx = k.tensor(ids, { dtype: 'i32' });
  const G = k.randn([R, C], { seed: 2 });
  const W = k.randn([V, C], { seed: 1, requiresGrad: true });
  const run = () => { W.grad?.dispose(); W.grad = null; k.tidy(() => k.sum(k.mul(k.embedding(idx, W), G)).backward()); };
  return { name: `V=${V} C=${C} R=${R}`, run, W, dispose: () => { for (const t of [idx, G, W]) t.dispose(); } };
});
for (const c of cases) {
  x.setFlag('embedding.backward', 'sorted');
  const bits = [];
  for (let i = 0; i < 3; i++) { c.run(); bits.push(new Uint32Array((await c.W.grad.toArray()).buffer).join(',')); }
  console.log(`${c.name}: sorted gradient ${bits.every((b) => b === bits[0]) ? 'bit-identical over 3 runs' : 'DIFFERS between runs'}`);
}
const modes = ['sorted', 'atomic'];
const times = Object.fromEntries(cases.map((c) => [c.name, { sorted: [], atomic: [], ratio: [] }]));
for (let r = 0; r < rounds; r++) {
  for (const c of cases) {
    const per = {};
    for (const mode of r % 2 ? [...modes].reverse() : modes) {
      x.setFlag('embedding.backward', mode);
      c.run();
      await k.sync();
      const v = [];
      for (let i = 0; i < reps; i++) { const t0 = performance.now(); c.run(); await k.sync(); v.push(performance.now() - t0); }
      per[mode] = median(v);
      times[c.name][mode].push(per[mode]);
    }
    times[c.name].ratio.push(per.sorted / per.atomic);
  }
}
x.setFlag('embedding.backward', undefined);
console.log(`\n${rounds} rounds x ${reps} reps; load average at the end ${load()}`);
console.log('| shape | sorted ms | atomic ms | sorted / atomic (median, range) |\n|---|---:|---:|---:|');
for (const [name, t] of Object.entries(times)) console.log(`| ${name} | ${median(t.sorted).toFixed(2)} | ${median(t.atomic).toFixed(2)} | ${median(t.ratio).toFixed(2)} (${Math.min(...t.ratio).toFixed(2)}-${Math.max(...t.ratio).toFixed(2)}) |`);
if (a.json) writeFileSync(a.json, JSON.stringify({ adapter: info, rounds, reps, times }, null, 2));
for (const c of cases) c.dispose();
