// The programmable-attention ratios of bench/flex_ratio.mjs, run against a kiln module `k` (Node bundle or browser
// bundle alike; browser-safe: no node imports). See bench/flex_ratio.mjs for what is measured and how.
//   runFlexRatio(k, opts, { log, load }) -> report; opts: { rounds, reps, backward, shape, cap, window, windowN,
//   windowHeads, windowRounds, windowReps, skip }; log(line); load() -> the host's load average (text; may be async).
import { flexRowsF64, maxAbsErr, sampleIndices } from './reference.mjs';

export const FLEX_RATIO_DEFAULTS = {
  rounds: 5, reps: 3, backward: false, shape: [1, 4, 1024, 64], cap: 20, window: 128, windowN: 4096, windowHeads: 1,
  windowRounds: 3, windowReps: 1, skip: '',
};

const median = (v) => { const s = v.slice().sort((x, y) => x - y); const h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2; };
const spread = (v) => [Math.min(...v), Math.max(...v)];

export async function runFlexRatio(k, options = {}, { log = () => {}, load = () => '' } = {}) {
  const o = { ...FLEX_RATIO_DEFAULTS, ...options };
  const info = await k.init();
  log(`adapter: ${info.vendor} ${info.architecture} ${info.device} (${info.description}); load average ${await load()}`);

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
        return { maxErr: err, tol, rows: rows.length, firstCallMs: first };
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
    const loadBefore = await load();
    log(`${title}: load average ${loadBefore}`);
    const checks = {};
    for (const c of list) checks[c.name] = await c.check();
    const per = Object.fromEntries(list.map((c) => [c.name, []]));
    const rat = Object.fromEntries(ratios.map(([x, y]) => [`${x} / ${y}`, []]));
    for (let r = 0; r < n; r++) {
      const order = r % 2 ? list.slice().reverse() : list;
      const got = {};
      for (const c of order) got[c.name] = await c.timeReps();
      for (const c of list) per[c.name].push(got[c.name]);
      for (const [x, y] of ratios) rat[`${x} / ${y}`].push(got[x] / got[y]);
      log(`  round ${r + 1}: ${list.map((c) => `${c.name} ${got[c.name].toFixed(1)} ms`).join(', ')}; load ${await load()}`);
    }
    const out = { title, loadBefore, loadAfter: await load(), contenders: {}, ratios: {} };
    for (const c of list) out.contenders[c.name] = { medianMs: median(per[c.name]), spreadMs: spread(per[c.name]), check: checks[c.name] };
    for (const key of Object.keys(rat)) out.ratios[key] = { median: median(rat[key]), spread: spread(rat[key]) };
    for (const c of list) log(`  ${c.name}: median ${out.contenders[c.name].medianMs.toFixed(1)} ms [${out.contenders[c.name].spreadMs.map((x) => x.toFixed(1)).join(', ')}]`);
    for (const key of Object.keys(rat)) log(`  ${key}: ${out.ratios[key].median.toFixed(3)}x [${out.ratios[key].spread.map((x) => x.toFixed(3)).join(', ')}]`);
    log(`  load average after: ${out.loadAfter}`);
    return out;
  }

  const { rounds, reps, cap, window: W, backward } = o;
  const report = { adapter: info, backward, rounds, reps, loadBefore: await load(), parts: [] };
  const causal = (_b, _h, i, j) => j.le(i);
  const causalRef = (_b, _h, i, j) => j <= i;

  if (!o.skip.includes('softcap')) {
    const shape = o.shape;
    const list = [
      contender('sdpa causal', shape, (q, kk, v) => k.F.scaledDotProductAttention(q, kk, v, { isCausal: true }), { maskMod: causalRef }, backward, reps),
      contender('flex causal', shape, (q, kk, v) => k.F.flexAttention(q, kk, v, { maskMod: causal }), { maskMod: causalRef }, backward, reps),
      contender('flex softcap causal', shape, (q, kk, v) => k.F.flexAttention(q, kk, v, { scoreMod: (s) => s.div(cap).tanh().mul(cap), maskMod: causal }),
        { scoreMod: (s) => cap * Math.tanh(s / cap), maskMod: causalRef }, backward, reps),
    ];
    try {
      report.parts.push({ shape, ...(await interleave(`soft-cap ${cap}, causal, [${shape}]${backward ? ', forward + backward' : ', forward'}`, list, rounds,
        [['flex softcap causal', 'sdpa causal'], ['flex causal', 'sdpa causal'], ['flex softcap causal', 'flex causal']])) });
    } finally {
      for (const c of list) c.dispose();
    }
  }

  if (!o.skip.includes('window')) {
    const N = o.windowN, Hw = o.windowHeads;
    const shape = [1, Hw, N, 64];
    const win = (_b, _h, i, j) => { const d = i.sub(j); return d.ge(0).logicalAnd(d.lt(W)); };
    const winRef = (_b, _h, i, j) => i - j >= 0 && i - j < W;
    const bm = k.createBlockMask(win, null, null, N, N);
    const stats = await bm.stats();
    const list = [
      contender(`window ${W} + block mask`, shape, (q, kk, v) => k.F.flexAttention(q, kk, v, { blockMask: bm }), { maskMod: winRef }, backward, o.windowReps),
      contender(`window ${W}`, shape, (q, kk, v) => k.F.flexAttention(q, kk, v, { maskMod: win }), { maskMod: winRef }, backward, o.windowReps),
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
    try {
      const extra = await mem();
      const part = await interleave(`sliding window ${W}, [${shape}]${backward ? ', forward + backward' : ', forward'}`, list, o.windowRounds,
        [[`window ${W}`, `window ${W} + block mask`]]);
      part.blockMask = { ...stats, bytes: 4 * bm.data.numel };
      part.extraBytesForward = extra;
      part.N = N;
      part.D = 64;
      log(`  block mask: ${stats.visited} of ${stats.total} blocks visited (${stats.full} full), ${4 * bm.data.numel} bytes; extra live bytes of a forward beyond q, k, v and the output: ${extra} (N * D * 4 = ${N * 64 * 4})`);
      report.parts.push({ shape, ...part });
    } finally {
      for (const c of list) c.dispose();
      bm.dispose();
    }
  }
  report.loadAfter = await load();
  return report;
}
