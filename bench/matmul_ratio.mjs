// Interleaved matmul ratios on one adapter, in one run: kiln against ONNX Runtime WebGPU and TF.js WebGPU (and,
// with --baseline DIR, against another kiln build, e.g. the one before a kernel change), n x n x n f32.
//   node bench/matmul_ratio.mjs [--sizes 256,512] [--rounds 7] [--reps 5] [--baseline /path/to/old/dist] [--json F]
// --op attention: the same for scaled dot-product attention forward, f32 [B, H, n, D] (--bhd 1,4,64; --causal),
// kiln's fused kernel against the peers' op graphs (bench/cli.mjs's: softmax(Q K^T scale [+ mask]) V), each checked
// against float64 rows first.
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
import { attentionModel, matmulModel } from './lib/onnx.mjs';
import { attentionRowsF64, matmulF64, maxAbsErr, sampleIndices } from './lib/reference.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({
  options: {
    sizes: { type: 'string', default: '256,512' }, rounds: { type: 'string', default: '7' }, reps: { type: 'string', default: '5' }, baseline: { type: 'string' }, json: { type: 'string' },
    op: { type: 'string', default: 'matmul' }, bhd: { type: 'string', default: '1,4,64' }, causal: { type: 'boolean', default: false },
  },
});
const attention = a.op === 'attention';
const [AB, AH, AD] = a.bhd.split(',').map(Number);
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
  // matmul: A [n, n], B [n, n]; attention: q, k, v [AB, AH, n, AD].
  const shape = attention ? [AB, AH, n, AD] : [n, n];
  const len = shape.reduce((x, y) => x * y);
  const inputs = attention ? [new Float32Array(len), new Float32Array(len), new Float32Array(len)] : [new Float32Array(len), new Float32Array(len)];
  let s = 12345;
  const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  for (const x of inputs) for (let i = 0; i < len; i++) x[i] = r();
  const list = [];
  // kiln: wall clock from the call to sync() (queue.onSubmittedWorkDone), as bench/cli.mjs times it.
  const mk = (name, { k }) => {
    const ts = inputs.map((x) => k.tensor(x, { shape }));
    const op = () => (attention ? k.F.scaledDotProductAttention(ts[0], ts[1], ts[2], { isCausal: a.causal }) : k.matmul(ts[0], ts[1]));
    return {
      name,
      async result() { const y = op(); const v = await y.toArray(); y.dispose(); return v; },
      async once() { const y = op(); await k.sync(); y.dispose(); },
      dispose() { for (const t of ts) t.dispose(); },
    };
  };
  list.push(mk('kiln', kiln));
  if (base) list.push(mk('kiln-baseline', base));
  const tt = inputs.map((x) => tf.tensor(x, shape));
  let tfOp = () => tf.matMul(tt[0], tt[1]);
  let mask = null;
  if (attention) {
    const scale = tf.scalar(1 / Math.sqrt(AD));
    tt.push(scale);
    if (a.causal) {
      const m = new Float32Array(n * n);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) m[i * n + j] = -Infinity;
      mask = tf.tensor(m, [n, n]);
      tt.push(mask);
    }
    tfOp = () => {
      let sc = tf.mul(tf.matMul(tt[0], tt[1], false, true), scale);
      if (mask) sc = tf.add(sc, mask);
      return tf.matMul(tf.softmax(sc), tt[2]);
    };
  }
  list.push({
    name: 'tfjs-webgpu',
    // tf.tidy frees the graph's intermediates (scores, probabilities) with the call.
    async result() { const y = tf.tidy(tfOp); const v = await y.data(); y.dispose(); return v; },
    async once() { const y = tf.tidy(tfOp); be.endComputePassEncoder(); be.submitQueue(); await be.device.queue.onSubmittedWorkDone(); y.dispose(); },
    dispose() { for (const t of tt) t.dispose(); },
  });
  const model = attention ? attentionModel(shape, a.causal) : matmulModel(n);
  const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], graphOptimizationLevel: 'all' });
  const names = attention ? ['Q', 'K', 'V'] : ['A', 'B'];
  const feeds = Object.fromEntries(names.map((nm, i) => [nm, new ort.Tensor('float32', inputs[i], shape)]));
  const outName = attention ? 'O' : 'C';
  list.push({
    name: 'onnxruntime-webgpu',
    async result() { return (await session.run(feeds))[outName].data; },
    async once() { await session.run(feeds); },
    dispose() { session.release?.(); },
  });
  return { inputs, list };
}

/** Sampled float64 entries of the op's result, and the entries' indices. */
function reference(n, inputs) {
  if (!attention) {
    const at = sampleIndices(n * n, 256, n);
    return { at, want: matmulF64(inputs[0], inputs[1], n, n, n, at) };
  }
  // 24 whole rows of the [AB * AH * n, AD] output.
  const rows = Array.from({ length: 24 }, (_, i) => Math.floor(((i + 0.5) / 24) * AB * AH * n));
  const outRows = attentionRowsF64(inputs[0], inputs[1], inputs[2], AB * AH, n, AD, { isCausal: a.causal, rows });
  const at = rows.flatMap((row) => Array.from({ length: AD }, (_, d) => row * AD + d));
  return { at, want: outRows.data ?? outRows };
}

const report = { op: a.op, bhd: attention ? [AB, AH, AD] : null, causal: a.causal, adapter: info, tfjs: tfVersion, onnxruntime: ortVersion, rounds, reps, sizes: [] };
for (const n of sizes) {
  const { inputs, list } = await engines(n);
  const { at, want } = reference(n, inputs);
  for (const e of list) {
    const { err, scale } = maxAbsErr(await e.result(), want, at);
    const tol = attention ? 2e-5 * Math.max(1, scale) : 1e-4 * Math.max(1, scale) * Math.sqrt(n) / 4;
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
    const flops = attention ? (4 * AB * AH * n * n * AD) / (a.causal ? 2 : 1) : 2 * n ** 3;
    row.engines[e.name] = { ms, gflops: flops / (ms * 1e6), perRound: per[e.name] };
    if (e.name !== 'kiln') row.ratios[`${e.name}/kiln`] = median(per[e.name].map((v, i) => v / per.kiln[i]));
  }
  report.sizes.push(row);
  const cells = list.map((e) => `${e.name} ${row.engines[e.name].ms.toFixed(2)} ms (${row.engines[e.name].gflops.toFixed(2)} GFLOP/s)`);
  console.log(`${attention ? `attention [${AB},${AH},${n},${AD}]${a.causal ? ' causal' : ''}` : `${n}^3`}: ${cells.join('; ')}; ratios (time / kiln's, per round, median): ${Object.entries(row.ratios).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
  for (const e of list) e.dispose();
}
report.loadavgAfter = (await import('node:os')).loadavg();
if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2));
process.exit(0);
