// f16 kernels on one adapter, in one run: the flag f16.kernels 'native' (f16 storage read and written directly;
// shader-f16) against 'packed' (pairs of halves in 32-bit words, atomic half stores), interleaved.
//   node bench/f16_kernels.mjs [--rounds 7] [--reps 5] [--n 1024] [--mm 256] [--json F]
// Per round each setting runs `reps` calls back to back and keeps their median; the order of the settings alternates
// by round, so a machine whose load changes (shared cores) slows both alike. Reported per case: each setting's median
// over rounds, and the median and range over rounds of packed / native. Wall clock from the call to sync().
// Cases: add and gelu of [n, n] f16; sum(gelu(x) * y) forward + backward; matmul mm^3 f16, forward and forward +
// backward. Before timing, both settings' results are compared bit for bit.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, reps: { type: 'string', default: '5' }, n: { type: 'string', default: '1024' }, mm: { type: 'string', default: '256' }, json: { type: 'string' } } });
const rounds = Number(a.rounds), reps = Number(a.reps), n = Number(a.n), mm = Number(a.mm);
const k = await import(pathToFileURL(join(ROOT, 'dist/kiln.node.js')).href);
const x = await import(pathToFileURL(join(ROOT, 'dist/experimental.node.js')).href);
const info = await k.init();
const load = () => loadavg().map((v) => v.toFixed(2)).join(' ');
console.log(`adapter: ${info.vendor} ${info.architecture} ${info.device} (${info.description}); shader-f16: ${k.deviceInfo().features.includes('shader-f16')}; load average ${load()}`);
const median = (v) => { const s = v.slice().sort((p, q) => p - q); const h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2; };

const X = k.randn([n, n], { seed: 1, dtype: 'f16' }), Y = k.randn([n, n], { seed: 2, dtype: 'f16' });
const A = k.randn([mm, mm], { seed: 3, dtype: 'f16' }), B = k.randn([mm, mm], { seed: 4, dtype: 'f16' });
const grad = (f) => () => {
  const p = k.randn([mm, mm], { seed: 5, dtype: 'f16', requiresGrad: true });
  const loss = f(p);
  loss.backward();
  return p.grad.clone();
};
const cases = {
  [`add [${n},${n}]`]: () => k.add(X, Y),
  [`gelu [${n},${n}]`]: () => k.gelu(X),
  [`gelu(x)*y fwd+bwd [${mm},${mm}]`]: grad((p) => k.sum(k.mul(k.gelu(p), A))),
  [`matmul ${mm}^3`]: () => k.matmul(A, B),
  [`matmul ${mm}^3 fwd+bwd`]: grad((p) => k.sum(k.matmul(p, B))),
};
const modes = ['native', 'packed'];
async function once(mode, f) {
  x.setFlag('f16.kernels', mode);
  const t0 = performance.now();
  const keep = [];
  k.tidy(() => { keep.push(k.keep ? k.keep(f()) : f()); });
  await k.sync();
  const ms = performance.now() - t0;
  for (const t of keep) t.dispose();
  return ms;
}
// Both settings give the same bits.
for (const [name, f] of Object.entries(cases)) {
  const outs = [];
  for (const mode of modes) {
    x.setFlag('f16.kernels', mode);
    const t = k.tidy(() => k.keep(f()));
    outs.push(new Uint16Array(new Float32Array(await t.toArray()).map((v) => v).buffer));
    t.dispose();
  }
  const [p, q] = outs;
  let diff = 0;
  for (let i = 0; i < p.length; i++) if (p[i] !== q[i]) diff++;
  console.log(`${name}: native and packed results ${diff ? `DIFFER in ${diff} words` : 'bit-identical'}`);
}
const times = Object.fromEntries(Object.keys(cases).map((c) => [c, { native: [], packed: [], ratio: [] }]));
for (let r = 0; r < rounds; r++) {
  for (const [name, f] of Object.entries(cases)) {
    const order = r % 2 ? [...modes].reverse() : modes;
    const per = {};
    for (const mode of order) {
      await once(mode, f); // warm
      const v = [];
      for (let i = 0; i < reps; i++) v.push(await once(mode, f));
      per[mode] = median(v);
      times[name][mode].push(per[mode]);
    }
    times[name].ratio.push(per.packed / per.native);
  }
}
x.setFlag('f16.kernels', undefined);
console.log(`\n${rounds} rounds x ${reps} reps; load average at the end ${load()}`);
console.log('| case | native ms | packed ms | packed / native (median, range) |\n|---|---:|---:|---:|');
for (const [name, t] of Object.entries(times)) {
  const rs = t.ratio;
  console.log(`| ${name} | ${median(t.native).toFixed(2)} | ${median(t.packed).toFixed(2)} | ${median(rs).toFixed(2)} (${Math.min(...rs).toFixed(2)}-${Math.max(...rs).toFixed(2)}) |`);
}
if (a.json) writeFileSync(a.json, JSON.stringify({ adapter: info, rounds, reps, times }, null, 2));
for (const t of [X, Y, A, B]) t.dispose();
