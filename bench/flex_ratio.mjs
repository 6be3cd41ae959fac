// The programmable-attention ratios of issue "flex attention", interleaved in one run on one adapter:
//   1. soft-capped causal flexAttention against plain fused causal scaledDotProductAttention, [B, H, N, D]
//      (default [1, 4, 1024, 64]); also flexAttention with only the causal maskMod, to separate the mask hook's cost
//      from the tanh's;
//   2. a causal sliding window of W (default 128) at N (default 4096) with a block mask against the same maskMod
//      without one, [1, windowHeads, N, D], and the block-masked call's extra memory (peak live bytes above q, k, v
//      and the output, and the block mask's own size).
//   node bench/flex_ratio.mjs [--rounds 5] [--reps 3] [--backward] [--window-rounds 3] [--window-reps 1] [--skip softcap|window] [--json F]
// Every contender is checked against float64 on sampled rows before anything is timed (its first call also compiles
// its pipelines, which the timing leaves out). Per round, each contender runs `reps` calls back to back (wall time
// from the call to queue.onSubmittedWorkDone(), as bench/cli.mjs) and keeps their median; the order alternates
// between rounds, so load that changes during the run slows every contender alike. Reported: per contender the median
// and [min, max] over rounds of its per-round medians, and per ratio the median and spread over rounds of the
// in-round ratio; the load average before and after. --backward times forward + backward (loss = sum(out * dO)).
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { flexRowsF64, maxAbsErr, sampleIndices } from './lib/reference.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' }, reps: { type: 'string', default: '3' }, backward: { type: 'boolean', default: false },
    shape: { type: 'string', default: '1,4,1024,64' }, cap: { type: 'string', default: '20' },
    window: { type: 'string', default: '128' }, 'window-n': { type: 'string', default: '4096' }, 'window-heads': { type: 'string', default: '1' },
    'window-rounds': { type: 'string', default: '3' }, 'window-reps': { type: 'string', default: '1' }, skip: { type: 'string', default: '' }, json: { type: 'string' }, dist: { type: 'string' },
  },
});
const rounds = Number(a.rounds), reps = Number(a.reps), cap = Number(a.cap), W = Number(a.window);
const log = (...m) => console.error(...m);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const median = (v) => { const s = v.slice().sort((x, y) => x - y); const h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2; };
const spread = (v) => [Math.min(...v), Math.max(...v)];

const k = await import(pathToFileURL(join(a.dist ?? join(ROOT, 'dist'), 'kiln.node.js')).href);
const info = await k.init();
log(`adapter: ${info.vendor} ${info.architecture} ${info.device} (${info.description}); load average ${load()}`);

function contender(name, shape, run, ref, backward, reps) {
  const [B, H, N, D] = shape;
  const q = k.randn(shape, { seed: 11, requiresGrad: backward }), kk = k.randn(shape, { seed: 12, requiresGrad: backward }), v = k.randn(shape, { seed: 13, requiresGrad: backward });
  const dO = backward ? k.randn(shape, { seed: 14 }) : null;
  const call = async () => {
    const out = run(q, kk, v);
    if (backward) {
      const loss = k.tidy(() => out.mul(dO).sum());
      loss.backward();
      loss.dispose();
      for (const t of [q, kk, v]) { t.grad?.dispose(); t.grad = null; }
    }
    await k.sync();
    out.dispose();
  };
  return {
    name,
    async check() {
      const t0 = performance.now();
      const out = run(q, kk, v);
      const [qa, ka, va, got] = await Promise.all([q.toArray(), kk.toArray(), v.toArray(), out.toArray()]);
      out.dispose();
      const first = performance.now() - t0;
      const rows = sampleIndices(B * H * N, 24, N + 1);
      const want = flexRowsF64(qa, ka, va, B, H, N, D, { ...ref, rows });
      const at = rows.flatMap((r) => Array.from({ length: D }, (_, d) => r * D + d));
      const { err, scale } = maxAbsErr(got, want, at);
      const tol = 1e-3 * Math.max(1, scale);
      if (backward) await call(); // compiles the backward
      log(`  ${name}: first call (compile + run) ${(first / 1000).toFixed(1)} s; max error ${err.toExponential(2)} (tol ${tol.toExponential(1)}) against float64 on ${rows.length} rows`);
      if (!(err <= tol)) throw new Error(`${name}: check failed`);
    },
    async timeReps() {
      const times = [];
      for (let r = 0; r < reps; r++) { const t0 = performance.now(); await call(); times.push(performance.now() - t0); }
      return median(times);
    },
    dispose() { for (const t of [q, kk, v, dO]) t?.dispose(); },
  };
}

async function interleave(title, list, n, ratios) {
  log(`${title}: load average ${load()}`);
  for (const c of list) await c.check();
  const per = Object.fromEntries(list.map((c) => [c.name, []]));
  const rat = Object.fromEntries(ratios.map(([x, y]) => [`${x} / ${y}`, []]));
  for (let r = 0; r < n; r++) {
    const order = r % 2 ? list.slice().reverse() : list;
    const got = {};
    for (const c of order) got[c.name] = await c.timeReps();
    for (const c of list) per[c.name].push(got[c.name]);
    for (const [x, y] of ratios) rat[`${x} / ${y}`].push(got[x] / got[y]);
    log(`  round ${r + 1}: ${list.map((c) => `${c.name} ${got[c.name].toFixed(1)} ms`).join(', ')}; load ${load()}`);
  }
  const out = { title, loadAfter: load(), contenders: {}, ratios: {} };
  for (const c of list) out.contenders[c.name] = { medianMs: median(per[c.name]), spreadMs: spread(per[c.name]) };
  for (const key of Object.keys(rat)) out.ratios[key] = { median: median(rat[key]), spread: spread(rat[key]) };
  for (const c of list) log(`  ${c.name}: median ${out.contenders[c.name].medianMs.toFixed(1)} ms [${out.contenders[c.name].spreadMs.map((x) => x.toFixed(1)).join(', ')}]`);
  for (const key of Object.keys(rat)) log(`  ${key}: ${out.ratios[key].median.toFixed(3)}x [${out.ratios[key].spread.map((x) => x.toFixed(3)).join(', ')}]`);
  log(`  load average after: ${out.loadAfter}`);
  return out;
}

const report = { adapter: info, backward: a.backward, rounds, reps, loadBefore: load(), parts: [] };
const causal = (_b, _h, i, j) => j.le(i);
const causalRef = (_b, _h, i, j) => j <= i;

if (!a.skip.includes('softcap')) {
  const shape = a.shape.split(',').map(Number);
  const list = [
    contender('sdpa causal', shape, (q, kk, v) => k.F.scaledDotProductAttention(q, kk, v, { isCausal: true }), { maskMod: causalRef }, a.backward, reps),
    contender('flex causal', shape, (q, kk, v) => k.F.flexAttention(q, kk, v, { maskMod: causal }), { maskMod: causalRef }, a.backward, reps),
    contender('flex softcap causal', shape, (q, kk, v) => k.F.flexAttention(q, kk, v, { scoreMod: (s) => s.div(cap).tanh().mul(cap), maskMod: causal }),
      { scoreMod: (s) => cap * Math.tanh(s / cap), maskMod: causalRef }, a.backward, reps),
  ];
  report.parts.push({ shape, ...(await interleave(`soft-cap ${cap}, causal, [${shape}]${a.backward ? ', forward + backward' : ', forward'}`, list, rounds,
    [['flex softcap causal', 'sdpa causal'], ['flex causal', 'sdpa causal'], ['flex softcap causal', 'flex causal']])) });
  for (const c of list) c.dispose();
}

if (!a.skip.includes('window')) {
  const N = Number(a['window-n']), Hw = Number(a['window-heads']);
  const shape = [1, Hw, N, 64];
  const win = (_b, _h, i, j) => { const d = i.sub(j); return d.ge(0).logicalAnd(d.lt(W)); };
  const winRef = (_b, _h, i, j) => i - j >= 0 && i - j < W;
  const bm = k.createBlockMask(win, null, null, N, N);
  const stats = await bm.stats();
  const list = [
    contender(`window ${W} + block mask`, shape, (q, kk, v) => k.F.flexAttention(q, kk, v, { blockMask: bm }), { maskMod: winRef }, a.backward, Number(a['window-reps'])),
    contender(`window ${W}`, shape, (q, kk, v) => k.F.flexAttention(q, kk, v, { maskMod: win }), { maskMod: winRef }, a.backward, Number(a['window-reps'])),
  ];
  // Extra memory of the block-masked call: the peak of live GPU bytes during it, above what lives before it and its
  // output (q, k, v [and grads] are live before).
  const mem = async () => {
    const q = k.randn(shape, { seed: 1 }), kk = k.randn(shape, { seed: 2 }), v = k.randn(shape, { seed: 3 });
    await k.sync();
    const base = k.memory().bytes;
    k.resetPeak();
    const out = k.F.flexAttention(q, kk, v, { blockMask: bm });
    await k.sync();
    const peak = k.memory().peakBytes - base - 4 * out.numel;
    for (const t of [q, kk, v, out]) t.dispose();
    return peak;
  };
  const extra = await mem();
  const part = await interleave(`sliding window ${W}, [${shape}]${a.backward ? ', forward + backward' : ', forward'}`, list, Number(a['window-rounds']),
    [[`window ${W}`, `window ${W} + block mask`]]);
  part.blockMask = { ...stats, bytes: 4 * bm.data.numel };
  part.extraBytesForward = extra;
  part.N = N;
  part.D = 64;
  log(`  block mask: ${stats.visited} of ${stats.total} blocks visited (${stats.full} full), ${4 * bm.data.numel} bytes; extra live bytes of a forward beyond q, k, v and the output: ${extra} (N * D * 4 = ${N * 64 * 4})`);
  report.parts.push({ shape, ...part });
  for (const c of list) c.dispose();
  bm.dispose();
}
report.loadAfter = load();
if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2));
console.log(JSON.stringify(report.parts.map((p) => ({ title: p.title, ratios: p.ratios })), null, 1));
process.exit(0);
