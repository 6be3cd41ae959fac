// Matmul on the lent GPU (H200), in ONE call: probe, check every variant, then time, with PyTorch beside each number.
//   1. Probe: init() (Dawn toggles allow_unsafe_apis + vulkan_enable_f16_on_nvidia are kiln's defaults in Node) and
//      deviceInfo().subgroupMatrix: the adapter's subgroup-matrix configs, the one kiln's probe kernel trusted, the
//      builtins' spelling that compiled, or why none.
//   2. Check, before anything is timed: every variant against float64 (sampled entries) on the same inputs:
//        f32 'highest' (scalar kernel), f32 'high' and 'medium' and f16, each with the subgroup-matrix body (where the
//        probe trusted a config) and with the portable body (flag matmul.matrixBody = 'portable'); the real body
//        against the portable one entry by entry (same f16 tiles, same f32 sums up to summation order).
//      A variant that fails is reported and never timed; the script exits 1 if any failed.
//   3. Time each checked variant (many calls per sync, median of 5 batches) at the shapes below, then PyTorch
//      (bench/gpu/torch_matmul.py: torch.matmul in f32 with TF32 off and on, and f16, CUDA events) on the same shapes.
//   4. Write $OUT/matmul_report.json (bench/SCHEMA.md's report: top level, runtime, cases; variant in params) and
//      $OUT/matmul_report.md (one table: ms and TFLOP/s of each kiln variant beside PyTorch's).
// Usage (device): bash bench/gpu/remote.sh bench/gpu/matmul_h200.mjs [--quick]
// Here (lavapipe): node bench/gpu/matmul_h200.mjs --quick --no-torch   (the portable body and scalar kernel only)
import * as kiln from '../../dist/kiln.node.js';
import * as experimental from '../../dist/experimental.node.js';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { matmulF64, maxAbsErr, sampleIndices } from '../lib/reference.mjs';
import { gpuReport, probeSubgroupMatrix } from './common.mjs';

const k = { ...kiln, ...experimental };
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const quick = process.argv.includes('--quick');
const noTorch = process.argv.includes('--no-torch');
const OUT = process.env.OUT ?? process.env.KILN_BENCH_OUT ?? '/tmp';
const t0 = performance.now();
const log = (...m) => console.log(...m);

// ---- 1. probe
const { info, sm, hasF16, real } = await probeSubgroupMatrix(log);

// ---- variants: [name, dtype, precision, body]
const variants = [['f32 highest (scalar)', 'f32', 'highest', 'auto']];
for (const body of [...(real ? ['auto'] : []), ...(hasF16 ? ['portable'] : [])]) {
  const tag = body === 'auto' ? 'subgroup-matrix' : 'portable';
  variants.push([`f32 high (${tag})`, 'f32', 'high', body], [`f32 medium (${tag})`, 'f32', 'medium', body], [`f16 (${tag})`, 'f16', 'highest', body]);
}

function withVariant([, , precision, body], fn) {
  k.setMatmulPrecision(precision);
  k.setFlag('matmul.matrixBody', body === 'portable' ? 'portable' : undefined);
  try {
    return fn();
  } finally {
    k.setMatmulPrecision('highest');
    k.setFlag('matmul.matrixBody', undefined);
  }
}

// Inputs: seeded randn, rounded to f16 for the f16 variants (so float64 multiplies what the kernel multiplies).
function inputs(M, K, N, dtype) {
  const a = k.randn([M, K], { seed: 11 }), b = k.randn([K, N], { seed: 12 });
  if (dtype === 'f32') return { a, b };
  const ah = a.to('f16'), bh = b.to('f16');
  a.dispose();
  b.dispose();
  return { a: ah, b: bh };
}

// ---- 2. checks
const checkShapes = quick ? [[64, 96, 80], [129, 67, 33]] : [[256, 256, 256], [257, 129, 65], [1024, 1024, 1024], [4096, 4096, 4096]];
const checks = [];
let failed = false;
for (const [M, K, N] of checkShapes) {
  const at = sampleIndices(M * N, 512, N);
  const byVariant = new Map();
  for (const v of variants) {
    const [name, dtype, precision] = v;
    const { a, b } = inputs(M, K, N, dtype);
    const [av, bv] = [await a.toArray(), await b.toArray()];
    const y = withVariant(v, () => k.matmul(a, b));
    const got = await y.toArray();
    const want = matmulF64(av, bv, M, K, N, at);
    const { err } = maxAbsErr(got, want, at);
    // 'highest' and 'high' at f32 accuracy; 'medium' with f16-rounded inputs; f16 with the output rounded to f16.
    // randn inputs: a sum of K products of size ~1 has size ~sqrt(K); f16 inputs or outputs cost ~2^-11 relative.
    const rel = precision === 'medium' || dtype === 'f16' ? 2e-3 : 2e-5;
    const tol = 2 * rel * Math.sqrt(K);
    const row = { shape: [M, K, N], variant: name, against: 'cpu-f64-sampled', maxErr: err, tol, passed: err <= tol };
    byVariant.set(name, got);
    // The real body against the portable one, entry by entry: the same f16 tiles and f32 sums (order may differ).
    const twin = name.replace('(subgroup-matrix)', '(portable)');
    if (twin !== name && byVariant.has(twin) === false) row.vsPortable = null;
    checks.push(row);
    if (!row.passed) failed = true;
    log(`check ${name} [${M},${K},${N}]: max err ${err.toExponential(2)} (tol ${tol.toExponential(2)}) ${row.passed ? 'ok' : 'FAILED'}`);
    for (const t of [a, b, y]) t.dispose();
  }
  for (const row of checks.filter((r) => r.shape[0] === M && r.variant.includes('(subgroup-matrix)'))) {
    const mine = byVariant.get(row.variant), twin = byVariant.get(row.variant.replace('(subgroup-matrix)', '(portable)'));
    if (!mine || !twin) continue;
    let d = 0, s = 1;
    for (let i = 0; i < mine.length; i++) (d = Math.max(d, Math.abs(mine[i] - twin[i]))), (s = Math.max(s, Math.abs(twin[i])));
    row.vsPortable = d;
    const tol = (row.variant.startsWith('f16') ? 2e-3 : 1e-5) * s * Math.sqrt(K) / 8;
    if (!(d <= tol)) (row.passed = false), (failed = true);
    log(`  ${row.variant} vs portable: max diff ${d.toExponential(2)} (tol ${tol.toExponential(2)}) ${d <= tol ? 'ok' : 'FAILED'}`);
  }
}

// ---- 3. timing (checked variants only; the portable body is a CI body, timed only at the smallest shape)
const timeShapes = quick ? [[128, 128, 128]] : [[1024, 1024, 1024], [2048, 2048, 2048], [4096, 4096, 4096], [8192, 8192, 8192], [4096, 4096, 1024]];
const okVariants = variants.filter(([name]) => checks.filter((c) => c.variant === name).every((c) => c.passed));
async function timeCall(fn, { minMs = 200, maxIters = 200, repeats = 5 } = {}) {
  const run = () => k.tidy(() => { fn(); });
  for (let i = 0; i < 2; i++) run();
  await k.sync();
  let iters = 1;
  for (;;) {
    const s0 = performance.now();
    for (let i = 0; i < iters; i++) run();
    await k.sync();
    if (performance.now() - s0 >= minMs || iters >= maxIters) break;
    iters = Math.min(maxIters, iters * 4);
  }
  const samples = [];
  for (let r = 0; r < repeats; r++) {
    const s1 = performance.now();
    for (let i = 0; i < iters; i++) run();
    await k.sync();
    samples.push((performance.now() - s1) / iters);
  }
  samples.sort((x, y) => x - y);
  return { ms: samples[repeats >> 1], q1: samples[1], q3: samples[repeats - 2], min: samples[0], max: samples[repeats - 1], iters };
}
const cases = [];
for (const [M, K, N] of timeShapes) {
  for (const v of okVariants) {
    const [name, dtype, precision, body] = v;
    if (body === 'portable' && M * K * N > 1024 ** 3) continue;
    const { a, b } = inputs(M, K, N, dtype);
    const t = await withVariant(v, () => timeCall(() => k.matmul(a, b)));
    const flops = 2 * M * K * N;
    const c = {
      suite: 'matmul', impl: 'kiln', runtime: 'node', shape: [M, K, N], dtype: 'f32', params: { variant: name, dtype, precision, body },
      flops, bytes: (M * K + K * N + M * N) * (dtype === 'f16' ? 2 : 4), status: 'ok',
      check: checks.find((r) => r.variant === name) ?? null, maxErr: Math.max(...checks.filter((r) => r.variant === name).map((r) => r.maxErr)),
      runs: 20, warmup: 2, medianMs: t.ms, q1: t.q1, q3: t.q3, minMs: t.min, maxMs: t.max, meanMs: t.ms, rateBasis: 'wall',
      gflops: flops / (t.ms * 1e6), gbps: 0, callsPerSync: t.iters,
    };
    c.gbps = c.bytes / (t.ms * 1e6);
    cases.push(c);
    log(`time ${name} [${M},${K},${N}]: ${t.ms.toFixed(3)} ms, ${(c.gflops / 1e3).toFixed(1)} TFLOP/s (${t.iters} calls a sync)`);
    a.dispose();
    b.dispose();
  }
}

// ---- PyTorch on the same shapes, in the same call
let torch = null;
if (!noTorch) {
  try {
    const text = execFileSync('python3', [join(ROOT, 'bench/gpu/torch_matmul.py'), JSON.stringify(timeShapes)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    torch = JSON.parse(text.trim().split('\n').pop());
    for (const r of torch.rows) log(`torch ${r.dtype} [${r.shape}]: ${r.ms.toFixed(3)} ms, ${(2 * r.shape[0] * r.shape[1] * r.shape[2] / r.ms / 1e9).toFixed(1)} TFLOP/s`);
  } catch (e) {
    torch = { error: String(e?.message ?? e) };
    log(`PyTorch did not run: ${torch.error}`);
  }
}

// ---- 4. report
const report = gpuReport({ root: ROOT, info, suite: 'matmul', sizes: timeShapes.map((s) => s[0]), quick, t0, cases, extra: { subgroupMatrix: sm, checks, torch }, log });
writeFileSync(join(OUT, 'matmul_report.json'), JSON.stringify(report, null, 2));
const torchMs = (shape, dtype) => torch?.rows?.find((r) => r.dtype === dtype && r.shape.join() === shape.join())?.ms;
const md = [
  `# kiln matmul on ${info.device || info.description} (${report.date})`,
  '',
  `subgroupMatrix: ${sm ? `configs ${JSON.stringify(sm.configs)}; matmul uses ${JSON.stringify(sm.matmul)} (${sm.spelling ?? 'none'})${sm.reason ? `; ${sm.reason}` : ''}` : 'not offered'}`,
  '',
  '| shape [M,K,N] | variant | kiln ms | kiln TFLOP/s | torch f32 (TF32 off) | torch f32 (TF32) | torch f16 |',
  '|---|---|---:|---:|---:|---:|---:|',
  ...cases.map((c) => `| ${c.shape.join('x')} | ${c.params.variant} | ${c.medianMs.toFixed(3)} | ${(c.gflops / 1e3).toFixed(1)} | ${torchMs(c.shape, 'f32')?.toFixed(3) ?? ''} | ${torchMs(c.shape, 'tf32')?.toFixed(3) ?? ''} | ${torchMs(c.shape, 'f16')?.toFixed(3) ?? ''} |`),
  '',
  '| check | shape | max err | tol | vs portable | passed |',
  '|---|---|---:|---:|---:|---|',
  ...checks.map((r) => `| ${r.variant} | ${r.shape.join('x')} | ${r.maxErr.toExponential(2)} | ${r.tol.toExponential(2)} | ${r.vsPortable == null ? '' : r.vsPortable.toExponential(2)} | ${r.passed} |`),
].join('\n');
writeFileSync(join(OUT, 'matmul_report.md'), md + '\n');
log(`wrote ${join(OUT, 'matmul_report.json')} and matmul_report.md in ${report.durationS.toFixed(1)} s`);
process.exit(failed ? 1 : 0);
