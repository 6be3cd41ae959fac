#!/usr/bin/env node
// kiln benchmark CLI. See bench/README.md.
//   npm run bench -- --suite attention|matmul|softmax|layernorm|conv|all --sizes 256,1024 --runtime node|browser|both
//                    --quick --json out.json --md out.md --svg out.svg --compare old.json
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runBench, SUITES } from './lib/runner.mjs';
import { compareReports, toMarkdown, toSvg } from './lib/report.mjs';
import { peersSvg, rooflineSvg } from './lib/charts.mjs';
import { SCHEMA_VERSION, validateReport } from './lib/schema.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const HELP = `usage: npm run bench -- [options]
  --suite S        attention | matmul | softmax | layernorm | trainstep | conv | flex | all, or a comma list (default all)
  --sizes A,B      sizes (attention N, matmul n for n^3, softmax [H,n,n], layerNorm [n,embed], conv side s of
                   [8,32,s,s] -> 64 3x3); default per suite
  --runtime R      node | browser | both (default node)
  --quick          small sizes, for the software adapter (a few minutes)
  --runs N         timed runs a case, >= 20 (default 20; 30 without --quick)
  --warmup N       warm-up runs a case (default 3)
  --batch B --heads H --dim D --embed E   attention B, H, D (default 1, 2, 64); layerNorm width (768)
  --dtype f32|f16|f32,f16   attention inputs in f32 and/or f16 (f16: binary16 storage, f32 arithmetic; default f32)
  --no-probes      skip the roofline probes and the dispatch-overhead measurement
  --json F --md F --svg F   outputs (default bench/out/report.{json,md,svg})
  --compare OLD    print cases > --threshold % (default 10) slower than OLD.json; --fail-on-regression exits 3
  --chromium PATH  browser binary (default /usr/bin/chromium or $CHROMIUM)
  --peers          also time TensorFlow.js WebGPU and ONNX Runtime (webgpu, cpu) in Node (attention, matmul, softmax;
                   installs bench/peers on demand; on by default; conv: TF.js conv2d and ORT Conv)
  --no-peers       kiln only`;

const { values: a } = parseArgs({
  options: {
    suite: { type: 'string', default: 'all' }, sizes: { type: 'string' }, runtime: { type: 'string', default: 'node' },
    quick: { type: 'boolean', default: false }, runs: { type: 'string' }, warmup: { type: 'string', default: '3' },
    batch: { type: 'string', default: '1' }, heads: { type: 'string', default: '2' }, dim: { type: 'string', default: '64' },
    dtype: { type: 'string', default: 'f32' },
    embed: { type: 'string', default: '768' }, 'no-probes': { type: 'boolean', default: false },
    json: { type: 'string' }, md: { type: 'string' }, svg: { type: 'string' }, compare: { type: 'string' },
    threshold: { type: 'string', default: '10' }, 'fail-on-regression': { type: 'boolean', default: false },
    chromium: { type: 'string' }, peers: { type: 'boolean', default: true }, 'no-peers': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
  },
});
if (a['no-peers']) a.peers = false;
if (a.help) {
  console.log(HELP);
  process.exit(0);
}
const suites = a.suite === 'all' ? SUITES : a.suite.split(',').map((s) => s.trim().toLowerCase());
for (const s of suites) if (!SUITES.includes(s)) { console.error(`unknown suite '${s}' (one of ${SUITES.join(', ')}, all)`); process.exit(2); }
const runtimes = a.runtime === 'both' ? ['node', 'browser'] : [a.runtime];
for (const r of runtimes) if (!['node', 'browser'].includes(r)) { console.error(`unknown runtime '${r}'`); process.exit(2); }
let runs = Number(a.runs ?? (a.quick ? 20 : 30));
if (!(runs >= 20)) { console.error(`--runs ${a.runs}: at least 20 timed runs a case; using 20`); runs = 20; }
const opts = {
  suites, sizes: a.sizes ? a.sizes.split(',').map(Number) : undefined, quick: a.quick, runs, warmup: Number(a.warmup),
  batch: Number(a.batch), heads: Number(a.heads), dim: Number(a.dim), embed: Number(a.embed), probes: !a['no-probes'],
  dtypes: a.dtype.split(',').map((d) => d.trim()),
};
if (opts.dtypes.some((d) => d !== 'f32' && d !== 'f16')) { console.error(`--dtype ${a.dtype}: f32, f16 or f32,f16`); process.exit(2); }
if (opts.sizes?.some((n) => !Number.isInteger(n) || n < 1)) { console.error(`--sizes ${a.sizes}: positive integers, comma-separated`); process.exit(2); }
if (a.peers && !runtimes.includes('node')) console.error('--peers: peers run in the node runtime only; ignored');

// remote.sh (the lent GPU machine) sets KILN_BENCH_OUT to the folder whose files come back.
const OUT = process.env.KILN_BENCH_OUT ? resolve(process.env.KILN_BENCH_OUT) : join(ROOT, 'bench/out');
const jsonPath = resolve(a.json ?? join(OUT, 'report.json'));
const mdPath = resolve(a.md ?? (a.json ? jsonPath.replace(/\.json$/, '') + '.md' : join(OUT, 'report.md')));
const svgPath = resolve(a.svg ?? (a.json ? jsonPath.replace(/\.json$/, '') + '.svg' : join(OUT, 'report.svg')));
const wgsl = { fma: readFileSync(join(ROOT, 'bench/kernels/fma.wgsl'), 'utf8'), copy: readFileSync(join(ROOT, 'bench/kernels/copy.wgsl'), 'utf8') };

// ---- progress bar (stderr) ----
const tty = process.stderr.isTTY;
let lastLine = '';
function progress(rt, { done, total, label }) {
  const width = 28;
  const f = total ? Math.min(1, done / total) : 0;
  const bar = '#'.repeat(Math.round(f * width)).padEnd(width, '.');
  const line = `[${rt}] [${bar}] ${String(Math.floor(done)).padStart(3)}/${total} ${label}`;
  if (tty) process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
  else if (line.replace(/\[#*\.*\]/, '') !== lastLine.replace(/\[#*\.*\]/, '') && Number.isInteger(done)) process.stderr.write(line + '\n');
  lastLine = line;
}
const log = (rt) => (msg) => process.stderr.write(`${tty ? '\r\x1b[2K' : ''}[${rt}] ${msg}\n`);

function gitInfo() {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
    return { commit, dirty };
  } catch {
    // No git (e.g. the GPU machine's copy): fall back to what pack.sh recorded, if anything.
    try { return JSON.parse(readFileSync(join(ROOT, '.gpu/kiln-commit.json'), 'utf8')); } catch { return { commit: null, dirty: null }; }
  }
}

async function runNode() {
  const bundle = join(ROOT, 'dist/kiln.node.js');
  if (!existsSync(bundle)) throw new Error('dist/kiln.node.js is missing: run `npm run build` (npm run bench does it in prebench)');
  // kiln's API and kiln/experimental (flags, GPU timers, the device), which share one device.
  const k = { ...(await import(bundle)), ...(await import(join(ROOT, 'dist/experimental.node.js'))) };
  const part = await runBench(k, { ...opts, runtime: 'node', wgsl, onProgress: (p) => progress('node', p), log: log('node') });
  part.userAgent = `node ${process.version} (${process.platform}-${process.arch})`;
  if (a.peers) {
    try {
      const { runPeers } = await import('./lib/peers.mjs');
      const peers = await runPeers(k, { root: ROOT, opts, onProgress: (p) => progress('node/tfjs', p), log: log('node/tfjs') });
      for (const c of peers.cases) {
        if (c.status === 'ok' && part.peaks?.fma) c.pctPeakFlops = (100 * c.gflops) / part.peaks.fma.gflops;
        if (c.status === 'ok' && part.peaks?.copy) c.pctPeakBw = (100 * c.gbps) / part.peaks.copy.gbps;
      }
      part.cases.push(...peers.cases);
      part.peers = [{ engine: '@tensorflow/tfjs-backend-webgpu', version: peers.version }];
    } catch (e) {
      log('node/tfjs')(`peers failed: ${e?.stack ?? e}`);
      part.peers = [{ engine: '@tensorflow/tfjs-backend-webgpu', error: String(e?.message ?? e) }];
    }
    // ONNX Runtime (webgpu and cpu providers): after kiln's init, so VK_ICD_FILENAMES is set before ORT's Dawn loads.
    try {
      const { runOrtPeers } = await import('./lib/peers-onnx.mjs');
      const ortp = await runOrtPeers(k, { root: ROOT, opts, onProgress: (p) => progress('node/ort', p), log: log('node/ort') });
      // % of peak only against the GPU probes, so not for the CPU provider.
      for (const c of ortp.cases.filter((c) => c.peer?.provider !== 'cpu')) {
        if (c.status === 'ok' && part.peaks?.fma) c.pctPeakFlops = (100 * c.gflops) / part.peaks.fma.gflops;
        if (c.status === 'ok' && part.peaks?.copy) c.pctPeakBw = (100 * c.gbps) / part.peaks.copy.gbps;
      }
      part.cases.push(...ortp.cases);
      part.peers.push(...ortp.providers);
    } catch (e) {
      log('node/ort')(`onnxruntime peers failed: ${e?.stack ?? e}`);
      part.peers.push({ engine: 'onnxruntime-node', error: String(e?.message ?? e) });
    }
  }
  return part;
}

async function runBrowser() {
  const { runInBrowser } = await import('./lib/browser.mjs');
  return runInBrowser({ root: ROOT, opts, chromium: a.chromium, onProgress: (p) => progress('browser', p), log: log('browser') });
}

const started = Date.now();
const parts = [];
for (const rt of runtimes) {
  try {
    parts.push(rt === 'node' ? await runNode() : await runBrowser());
  } catch (e) {
    log(rt)(`runtime failed: ${e?.stack ?? e}`);
    parts.push({ runtime: rt, error: String(e?.message ?? e), cases: [], skipped: [] });
  }
  if (tty) process.stderr.write('\n');
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const report = {
  schemaVersion: SCHEMA_VERSION,
  kiln: { version: pkg.version, ...gitInfo() },
  date: new Date().toISOString(),
  durationS: (Date.now() - started) / 1000,
  host: { node: process.version, platform: `${process.platform}-${process.arch}` },
  options: { ...opts, runtimes },
  runtimes: parts.map(({ cases, ...rest }) => rest),
  cases: parts.flatMap((p) => p.cases),
};
const problems = validateReport(report);
if (problems.length) log('report')(`schema problems: ${problems.join('; ')}`);

let comparison;
if (a.compare) {
  const old = JSON.parse(readFileSync(resolve(a.compare), 'utf8'));
  comparison = compareReports(old, report, Number(a.threshold), a.compare);
}
for (const p of [jsonPath, mdPath, svgPath]) mkdirSync(dirname(p), { recursive: true });
writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
const md = toMarkdown(report, comparison);
writeFileSync(mdPath, md);
writeFileSync(svgPath, toSvg(report));
// More charts beside report.svg: kiln against peers, and a roofline (bench/lib/charts.mjs).
const chartBase = svgPath.replace(/\.svg$/, '');
writeFileSync(`${chartBase}-peers.svg`, peersSvg(report));
writeFileSync(`${chartBase}-roofline.svg`, rooflineSvg(report));
process.stdout.write(md);
console.error(`wrote ${jsonPath}, ${mdPath}, ${svgPath} in ${report.durationS.toFixed(1)} s`);
if (comparison) {
  for (const r of comparison.regressions) console.error(`REGRESSION ${r.key}: ${r.metric} ${r.oldMs.toFixed(4)} -> ${r.newMs.toFixed(4)} ms (+${r.changePct.toFixed(1)}%)${r.iqrOverlap ? ' (IQRs overlap: maybe noise)' : ''}`);
  if (!comparison.regressions.length) console.error(`no regressions > ${comparison.thresholdPct}% against ${a.compare} (${comparison.matched} cases matched)`);
}
// A peer that fails its check is a finding about the peer (reported, not timed), not a kiln failure.
const peerFailures = report.cases.filter((c) => c.status !== 'ok' && /tfjs|onnx|peer/.test(c.impl));
for (const c of peerFailures) console.error(`peer ${c.impl} ${c.suite} ${c.shape.join('x')}: ${c.status === 'error' ? `error: ${c.error}` : `failed its check (max err ${c.maxErr})`}; not timed`);
const bad = report.cases.filter((c) => c.status !== 'ok' && !peerFailures.includes(c)).length + parts.filter((p) => p.error).length;
process.exit(bad ? 1 : comparison?.regressions.length && a['fail-on-regression'] ? 3 : 0);
