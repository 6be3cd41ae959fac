// The programmable-attention ratios of issue "flex attention", interleaved in one run on one adapter:
//   1. soft-capped causal flexAttention against plain fused causal scaledDotProductAttention, [B, H, N, D]
//      (default [1, 4, 1024, 64]); also flexAttention with only the causal maskMod, to separate the mask hook's cost
//      from the tanh's;
//   2. a causal sliding window of W (default 128) at N (default 4096) with a block mask against the same maskMod
//      without one, [1, windowHeads, N, D], and the block-masked call's extra memory (peak live bytes above q, k, v
//      and the output, and the block mask's own size).
//   node bench/flex_ratio.mjs [--runtime node|browser] [--rounds 5] [--reps 3] [--backward] [--window-rounds 3] [--window-reps 1]
//                             [--skip softcap|window] [--json F] [--chromium PATH]
// Every contender is checked against float64 on sampled rows before anything is timed (its first call also compiles
// its pipelines, which the timing leaves out). Per round, each contender runs `reps` calls back to back (wall time
// from the call to queue.onSubmittedWorkDone(), as bench/cli.mjs) and keeps their median; the order alternates
// between rounds, so load that changes during the run slows every contender alike. Reported: per contender the median
// and [min, max] over rounds of its per-round medians, and per ratio the median and spread over rounds of the
// in-round ratio; the load average before and after. --backward times forward + backward (loss = sum(out * dO)).
// --runtime browser runs the same code (bench/lib/flex_ratio.mjs) in headless Chromium on kiln's browser bundle
// (bench/page/flex.html, served and driven as the bench CLI's browser runtime: bench/lib/browser.mjs); the load average
// is the host's, read in Node.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { runFlexRatio } from './lib/flex_ratio.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({
  options: {
    runtime: { type: 'string', default: 'node' }, chromium: { type: 'string' },
    rounds: { type: 'string', default: '5' }, reps: { type: 'string', default: '3' }, backward: { type: 'boolean', default: false },
    shape: { type: 'string', default: '1,4,1024,64' }, cap: { type: 'string', default: '20' },
    window: { type: 'string', default: '128' }, 'window-n': { type: 'string', default: '4096' }, 'window-heads': { type: 'string', default: '1' },
    'window-rounds': { type: 'string', default: '3' }, 'window-reps': { type: 'string', default: '1' }, skip: { type: 'string', default: '' }, json: { type: 'string' }, dist: { type: 'string' },
  },
});
const opts = {
  rounds: Number(a.rounds), reps: Number(a.reps), backward: a.backward, shape: a.shape.split(',').map(Number), cap: Number(a.cap),
  window: Number(a.window), windowN: Number(a['window-n']), windowHeads: Number(a['window-heads']), windowRounds: Number(a['window-rounds']),
  windowReps: Number(a['window-reps']), skip: a.skip,
};
const log = (...m) => console.error(...m);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

let report;
if (a.runtime === 'node') {
  const k = await import(pathToFileURL(join(a.dist ?? join(ROOT, 'dist'), 'kiln.node.js')).href);
  report = await runFlexRatio(k, opts, { log, load });
  report.runtime = `node ${process.version}`;
} else if (a.runtime === 'browser') {
  const { launchChromium, serveStatic } = await import('./lib/browser.mjs');
  const { server, url } = await serveStatic(ROOT);
  const chrome = await launchChromium(a.chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium');
  try {
    const page = await chrome.browser.newPage();
    page.on('pageerror', (e) => log(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log(`console.${m.type()}: ${m.text()}`); });
    await page.exposeFunction('benchLog', (m) => log(m));
    await page.exposeFunction('benchLoad', () => load());
    await page.goto(`${url}/bench/page/flex.html`, { waitUntil: 'load' });
    report = await page.evaluate(async (o) => window.flexRatio(o), opts);
    report.runtime = await chrome.browser.version();
  } finally {
    await chrome.close();
    server.close();
  }
} else {
  console.error(`--runtime ${a.runtime}: node or browser`);
  process.exit(2);
}
if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2));
console.log(JSON.stringify(report.parts.map((p) => ({ title: p.title, ratios: p.ratios })), null, 1));
process.exit(0);
