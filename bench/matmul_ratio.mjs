// Interleaved matmul ratios on one adapter, in one run: kiln against ONNX Runtime WebGPU and TF.js WebGPU (and,
// with --baseline DIR, against another kiln build, e.g. the one before a kernel change), n x n x n f32.
//   node bench/matmul_ratio.mjs [--sizes 256,512] [--rounds 7] [--reps 5] [--baseline /path/to/old/dist] [--json F]
// Each engine's result is checked against float64 (sampled entries) before anything is timed. Then, per round, every
// engine runs `reps` calls back to back and keeps their median; rounds alternate the engines' order, so a machine
// whose load changes during the run (shared cores) slows all of them alike. Reported: per engine the median over
// rounds of its per-round medians, and per peer the median over rounds of (peer / kiln) in that round.
// Timing as bench/cli.mjs: kiln and TF.js from the call to queue.onSubmittedWorkDone(); ONNX Runtime around
// `await session.run(feeds)`, which includes its upload of A and B and the readback of C (its outputs are CPU
// tensors), as in the CLI's peer rows.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadTfjs } from './lib/peers.mjs';
import { loadOrt } from './lib/peers-onnx.mjs';
import { matmulModel } from './lib/onnx.mjs';
import { matmulF64, maxAbsErr, sampleIndices } from './lib/reference.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({
  options: { sizes: { type: 'string', default: '256,512' }, rounds: { type: 'string', default: '7' }, reps: { type: 'string', default: '5' }, baseline: { type: 'string' }, json: { type: 'string' } },
});
const sizes = a.sizes.split(',').map(Number);
const rounds = Number(a.rounds), reps = Number(a.reps);
const log = (...m) => console.error(...m);
const median = (v) => { const s = v.slice().sort((x, y) => x - y); const h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2; };

async function loadKiln(dist) {
  const k = await import(pathToFileURL(join(dist, 'kiln.node.js')).href);
  const info = await k.init();
  return { k, info };
}

const kiln = await loadKiln(join(ROOT, 'dist'));
const base = a.baseline ? await loadKiln(a.baseline) : null;
const { tf, version: tfVersion } = await loadTfjs(ROOT, log);
const { ort, version: ortVersion } = loadOrt(ROOT, log);
const be = tf.backend();
const info = kiln.info;
log(`adapter: ${info.vendor} ${info.architecture} ${info.device} (${info.description}); load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);

async function engines(n) {
  const A = new Float32Array(n * n), B = new Float32Array(n * n);
  let s = 12345;
  const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  for (let i = 0; i < n * n; i++) { A[i] = r(); B[i] = r(); }
  const list = [];
  // kiln: wall clock from the call to sync() (queue.onSubmittedWorkDone), as bench/cli.mjs times it.
  const mk = (name, { k }) => {
    const at = k.tensor(A, { shape: [n, n] }), bt = k.tensor(B, { shape: [n, n] });
    return {
      name,
      async result() { const y = k.matmul(at, bt); const v = await y.toArray(); y.dispose(); return v; },
      async once() { const y = k.matmul(at, bt); await k.sync(); y.dispose(); },
      dispose() { at.dispose(); bt.dispose(); },
    };
  };
  list.push(mk('kiln', kiln));
  if (base) list.push(mk('kiln-baseline', base));
  const ta = tf.tensor(A, [n, n]), tb = tf.tensor(B, [n, n]);
  list.push({
    name: 'tfjs-webgpu',
    async result() { const y = tf.matMul(ta, tb); const v = await y.data(); y.dispose(); return v; },
    async once() { const y = tf.matMul(ta, tb); be.endComputePassEncoder(); be.submitQueue(); await be.device.queue.onSubmittedWorkDone(); y.dispose(); },
    dispose() { ta.dispose(); tb.dispose(); },
  });
  const session = await ort.InferenceSession.create(matmulModel(n), { executionProviders: ['webgpu'], graphOptimizationLevel: 'all' });
  const feeds = { A: new ort.Tensor('float32', A, [n, n]), B: new ort.Tensor('float32', B, [n, n]) };
  list.push({
    name: 'onnxruntime-webgpu',
    async result() { return (await session.run(feeds)).C.data; },
    async once() { await session.run(feeds); },
    dispose() { session.release?.(); },
  });
  return { A, B, list };
}

const report = { adapter: info, tfjs: tfVersion, onnxruntime: ortVersion, rounds, reps, sizes: [] };
for (const n of sizes) {
  const { A, B, list } = await engines(n);
  const at = sampleIndices(n * n, 256, n);
  const want = matmulF64(A, B, n, n, n, at);
  for (const e of list) {
    const { err, scale } = maxAbsErr(await e.result(), want, at);
    const tol = 1e-4 * Math.max(1, scale) * Math.sqrt(n) / 4;
    if (!(err <= tol)) throw new Error(`${e.name} ${n}^3: max error ${err} over ${tol}: not timed`);
    for (let i = 0; i < 2; i++) await e.once();
  }
  const per = Object.fromEntries(list.map((e) => [e.name, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? list.slice().reverse() : list;
    for (const e of order) {
      const t = [];
      for (let i = 0; i < reps; i++) { const t0 = performance.now(); await e.once(); t.push(performance.now() - t0); }
      per[e.name].push(median(t));
    }
  }
  const row = { n, engines: {}, ratios: {} };
  for (const e of list) {
    const ms = median(per[e.name]);
    row.engines[e.name] = { ms, gflops: (2 * n ** 3) / (ms * 1e6), perRound: per[e.name] };
    if (e.name !== 'kiln') row.ratios[`${e.name}/kiln`] = median(per[e.name].map((v, i) => v / per.kiln[i]));
  }
  report.sizes.push(row);
  const cells = list.map((e) => `${e.name} ${row.engines[e.name].ms.toFixed(2)} ms (${row.engines[e.name].gflops.toFixed(2)} GFLOP/s)`);
  console.log(`${n}^3: ${cells.join('; ')}; ratios (time / kiln's, per round, median): ${Object.entries(row.ratios).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
  for (const e of list) e.dispose();
}
report.loadavgAfter = (await import('node:os')).loadavg();
if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2));
process.exit(0);
