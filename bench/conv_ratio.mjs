// Interleaved convolution ratios on one adapter, in one run: kiln's conv2d against TF.js WebGPU's conv2d and ONNX
// Runtime WebGPU's Conv (and, with --baseline DIR, against another kiln build, e.g. the one before a kernel change),
// on the conv suite's ResNet-like 3x3 layer [8, 32, s, s] -> 64 channels, padding 1. With --train, kiln (and the
// baseline) also time a layer's backward pass alone: the input gradient and the weight gradient.
//   node bench/conv_ratio.mjs [--sizes 14,28] [--rounds 5] [--reps 3] [--baseline /path/to/old/dist] [--train] [--no-peers] [--json F]
// Every engine's forward result is checked against float64 (sampled outputs) before anything is timed; kiln's
// gradients are checked against the float64 input and weight gradients at sampled entries. Then, per round, every
// engine runs `reps` calls back to back and keeps their median; rounds alternate the engines' order, so a machine whose
// load changes during the run (shared cores) slows all of them alike. Reported: per engine the median over rounds of
// its per-round medians, the spread (min..max of the per-round medians), and per peer the median over rounds of
// (peer / kiln) in that round. Timing as bench/matmul_ratio.mjs: kiln and TF.js from the call to
// queue.onSubmittedWorkDone(); ONNX Runtime around `await session.run(feeds)` (its upload and readback included, as in
// the CLI's peer rows). TF.js runs NHWC, its native layout (the input is transposed once, outside the timing).
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadTfjs } from './lib/peers.mjs';
import { loadOrt } from './lib/peers-onnx.mjs';
import { convModel } from './lib/onnx.mjs';
import { convShapes, convCheck } from './lib/runner.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({
  options: {
    sizes: { type: 'string', default: '14,28' }, rounds: { type: 'string', default: '5' }, reps: { type: 'string', default: '3' },
    baseline: { type: 'string' }, train: { type: 'boolean', default: false }, 'no-peers': { type: 'boolean', default: false }, json: { type: 'string' },
  },
});
const sizes = a.sizes.split(',').map(Number);
const rounds = Number(a.rounds), reps = Number(a.reps);
const log = (...m) => console.error(...m);
const median = (v) => { const s = v.slice().sort((x, y) => x - y); const h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2; };
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

async function loadKiln(dist) {
  const k = await import(pathToFileURL(join(dist, 'kiln.node.js')).href);
  const info = await k.init();
  return { k, info };
}

const kiln = await loadKiln(join(ROOT, 'dist'));
const base = a.baseline ? await loadKiln(a.baseline) : null;
const peers = !a['no-peers'];
const { tf, version: tfVersion } = peers ? await loadTfjs(ROOT, log) : {};
const { ort, version: ortVersion } = peers ? loadOrt(ROOT, log) : {};
const info = kiln.info;
log(`adapter: ${info.vendor} ${info.architecture} ${info.device} (${info.description}); load average ${load()}`);

function random(n, seed) {
  const v = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; v[i] = (s / 2 ** 32) * 2 - 1; }
  return v;
}

// Float64 gradients of sum(y * g) for y = conv2d(x, w, padding p) (stride 1): dx and dw at the sampled flat indices.
function gradsF64(xa, wa, ga, [N, C, H, W], [O, , KH, KW], p, atX, atW) {
  const dx = atX.map((i) => {
    const n = Math.floor(i / (C * H * W)), c = Math.floor(i / (H * W)) % C, ih = Math.floor(i / W) % H, iw = i % W;
    let s = 0;
    for (let o = 0; o < O; o++) for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
      const oh = ih + p - kh, ow = iw + p - kw;
      if (oh < 0 || ow < 0 || oh >= H || ow >= W) continue;
      s += wa[((o * C + c) * KH + kh) * KW + kw] * ga[((n * O + o) * H + oh) * W + ow];
    }
    return s;
  });
  const dw = atW.map((i) => {
    const o = Math.floor(i / (C * KH * KW)), c = Math.floor(i / (KH * KW)) % C, kh = Math.floor(i / KW) % KH, kw = i % KW;
    let s = 0;
    for (let n = 0; n < N; n++) for (let oh = 0; oh < H; oh++) for (let ow = 0; ow < W; ow++) {
      const ih = oh - p + kh, iw = ow - p + kw;
      if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
      s += ga[((n * O + o) * H + oh) * W + ow] * xa[((n * C + c) * H + ih) * W + iw];
    }
    return s;
  });
  return { dx, dw };
}

function checkClose(name, got, want, at) {
  let err = 0, scale = 0;
  at.forEach((i, j) => { err = Math.max(err, Math.abs(got[i] - want[j])); scale = Math.max(scale, Math.abs(want[j])); });
  if (!(err <= 1e-4 * Math.max(1, scale))) throw new Error(`${name}: max error ${err} (scale ${scale}): not timed`);
}

function engines(s) {
  const sh = convShapes(s);
  const xa = random(sh.x.reduce((p, v) => p * v, 1), 7), wa = random(sh.w.reduce((p, v) => p * v, 1), 11);
  const ga = random(sh.out.reduce((p, v) => p * v, 1), 13);
  const list = [];
  const mk = (name, { k }) => {
    const xt = k.tensor(xa, { shape: sh.x }), wt = k.tensor(wa, { shape: sh.w }), gt = k.tensor(ga, { shape: sh.out });
    const xg = k.tensor(xa, { shape: sh.x, requiresGrad: true }), wg = k.tensor(wa, { shape: sh.w, requiresGrad: true });
    const fwd = () => k.F.conv2d(xt, wt, null, { padding: sh.pad });
    // One leaf requiring grad at a time, so a backward is that one gradient's kernel (and the forward before it).
    const back = (which) => {
      const y = which === 'input' ? k.F.conv2d(xg, wt, null, { padding: sh.pad }) : k.F.conv2d(xt, wg, null, { padding: sh.pad });
      y.backward(gt);
      y.dispose();
      const leaf = which === 'input' ? xg : wg;
      const grad = leaf.grad;
      leaf.grad = null;
      return grad;
    };
    return {
      name, k,
      async result() { const y = fwd(); const v = await y.toArray(); y.dispose(); return v; },
      async once() { const y = fwd(); await k.sync(); y.dispose(); },
      async grad(which) { const g = back(which); const v = await g.toArray(); g.dispose(); return v; },
      async backOnce(which) { const g = back(which); await k.sync(); g.dispose(); },
      dispose() { for (const t of [xt, wt, gt, xg, wg]) t.dispose(); },
    };
  };
  list.push(mk('kiln', kiln));
  if (base) list.push(mk('kiln-baseline', base));
  return { sh, xa, wa, ga, list };
}

async function peerEngines(s, xa, wa) {
  const sh = convShapes(s);
  const list = [];
  const be = tf.backend();
  const [N, C, H, W] = sh.x, [O, , KH, KW] = sh.w;
  const xt = tf.tidy(() => tf.transpose(tf.tensor(xa, sh.x), [0, 2, 3, 1]));
  const ft = tf.tidy(() => tf.transpose(tf.tensor(wa, sh.w), [2, 3, 1, 0]));
  list.push({
    name: 'tfjs-webgpu',
    async result() { const y = tf.tidy(() => tf.transpose(tf.conv2d(xt, ft, 1, 'same'), [0, 3, 1, 2])); const v = await y.data(); y.dispose(); return v; },
    async once() { const y = tf.conv2d(xt, ft, 1, 'same'); be.endComputePassEncoder(); be.submitQueue(); await be.device.queue.onSubmittedWorkDone(); y.dispose(); },
    dispose() { xt.dispose(); ft.dispose(); },
  });
  const session = await ort.InferenceSession.create(convModel(sh.x, sh.w, sh.out, wa, sh.pad), { executionProviders: ['webgpu'], graphOptimizationLevel: 'all' });
  const feeds = { X: new ort.Tensor('float32', xa, [N, C, H, W]) };
  const outName = session.outputNames[0];
  list.push({
    name: 'onnxruntime-webgpu',
    async result() { return (await session.run(feeds))[outName].data; },
    async once() { await session.run(feeds); },
    dispose() { session.release?.(); },
  });
  void O; void KH; void KW;
  return list;
}

async function timeRounds(list, once) {
  const per = Object.fromEntries(list.map((e) => [e.name, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? list.slice().reverse() : list;
    for (const e of order) {
      const t = [];
      for (let i = 0; i < reps; i++) { const t0 = performance.now(); await once(e); t.push(performance.now() - t0); }
      per[e.name].push(median(t));
    }
  }
  return per;
}

function summarise(label, list, per, flop) {
  const row = { engines: {}, ratios: {} };
  for (const e of list) {
    const ms = median(per[e.name]);
    row.engines[e.name] = { ms, min: Math.min(...per[e.name]), max: Math.max(...per[e.name]), gflops: flop / (ms * 1e6), perRound: per[e.name] };
    if (e.name !== 'kiln') row.ratios[`${e.name}/kiln`] = median(per[e.name].map((v, i) => v / per.kiln[i]));
  }
  const cells = list.map((e) => { const r = row.engines[e.name]; return `${e.name} ${r.ms.toFixed(1)} ms [${r.min.toFixed(0)}..${r.max.toFixed(0)}] (${r.gflops.toFixed(2)} GFLOP/s)`; });
  console.log(`${label}: ${cells.join('; ')}; ratios (time / kiln's, per round, median): ${Object.entries(row.ratios).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ') || '-'}; load average ${load()}`);
  return row;
}

const report = { adapter: info, tfjs: tfVersion, onnxruntime: ortVersion, rounds, reps, loadavgBefore: loadavg(), sizes: [] };
for (const s of sizes) {
  const { sh, xa, wa, ga, list } = engines(s);
  const all = peers ? [...list, ...(await peerEngines(s, xa, wa))] : list;
  for (const e of all) {
    const c = convCheck(xa, wa, s, await e.result());
    if (!c.passed) throw new Error(`${e.name} [${sh.x}]: max error ${c.maxErr} over ${c.tol}: not timed`);
    for (let i = 0; i < 2; i++) await e.once();
  }
  const flop = 2 * sh.out.reduce((p, v) => p * v, 1) * sh.w[1] * sh.w[2] * sh.w[3];
  const row = { s, shape: sh.x, forward: summarise(`[${sh.x}] -> ${sh.w[0]} 3x3 forward`, all, await timeRounds(all, (e) => e.once()), flop) };
  if (a.train) {
    const nx = sh.x.reduce((p, v) => p * v, 1), nw = sh.w.reduce((p, v) => p * v, 1);
    const atX = Array.from({ length: 64 }, (_, i) => Math.floor((i * 2654435761) % nx));
    const atW = Array.from({ length: 64 }, (_, i) => Math.floor((i * 40503 + 17) % nw));
    const want = gradsF64(xa, wa, ga, sh.x, sh.w, sh.pad, atX, atW);
    for (const e of list) {
      checkClose(`${e.name} input gradient`, await e.grad('input'), want.dx, atX);
      checkClose(`${e.name} weight gradient`, await e.grad('weight'), want.dw, atW);
    }
    for (const which of ['input', 'weight']) {
      // forward + that gradient, as a layer's training step runs them
      row[which] = summarise(`[${sh.x}] -> ${sh.w[0]} 3x3 forward + ${which} gradient`, list, await timeRounds(list, (e) => e.backOnce(which)), 2 * flop);
    }
  }
  report.sizes.push(row);
  for (const e of all) e.dispose();
}
report.loadavgAfter = loadavg();
if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2));
process.exit(0);
