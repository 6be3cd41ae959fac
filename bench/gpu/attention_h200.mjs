// Attention on the lent GPU (H200), in ONE call: probe, check every variant, then time, with PyTorch beside each number.
//   1. Probe: init() (Dawn toggles allow_unsafe_apis + vulkan_enable_f16_on_nvidia are kiln's defaults in Node) and
//      deviceInfo().subgroupMatrix: the adapter's subgroup-matrix configs, the one kiln's probe trusted, or why none.
//   2. Check, before anything is timed, every variant's forward and gradients (dq, dk, dv of sum(o * dO)) against the
//      float64 reference on the same (f16-rounded) inputs: f16 on the scalar kernels (attention.matrixBody 'off'), f16
//      on the matrix kernels with the subgroup-matrix body (where the probe trusted a config) and with the portable
//      body ('portable'), and f32 'medium' on the matrix kernels; then the real body against the portable one, entry
//      by entry (same f16 tiles, f32 sums up to summation order). Each check also reads which kernels ran (dispatch
//      labels, where the adapter has timestamp queries). A variant that fails is reported and never timed; the
//      script exits 1 if any failed.
//   3. Time each checked variant: f16 forward and forward+backward at [4, 8, 4096, 64] and [4, 8, 4096, 128], causal
//      off and on (many calls per sync, median of 5 batches); then PyTorch (bench/gpu/torch_attention.py:
//      scaled_dot_product_attention in f16 and f32, forward and forward+backward, CUDA events) on the same shapes.
//      TFLOP/s count 4 B H Nq Nk D for the forward (halved under causal) and 2.5 times that for the backward.
//   4. Write $OUT/attention_report.json (bench/SCHEMA.md's report; variant in params) and $OUT/attention_report.md.
// Usage (device): bash bench/gpu/remote.sh bench/gpu/attention_h200.mjs [--quick] [--no-torch]
// Here (lavapipe): node bench/gpu/attention_h200.mjs --quick --no-torch   (the scalar kernels and the portable body)
import * as kiln from '../../dist/kiln.node.js';
import * as experimental from '../../dist/experimental.node.js';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sdpa, sdpaBackward } from '../lib/attention_reference.mjs';
import { gpuReport, probeSubgroupMatrix, timeIt } from './common.mjs';

const k = { ...kiln, ...experimental };
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const quick = process.argv.includes('--quick');
const noTorch = process.argv.includes('--no-torch');
const OUT = process.env.OUT ?? process.env.KILN_BENCH_OUT ?? '/tmp';
const t0 = performance.now();
const log = (...m) => console.log(...m);

// ---- 1. probe
const { info, sm, hasF16, real } = await probeSubgroupMatrix(log);
if (!hasF16) {
  log('no shader-f16: nothing to measure');
  process.exit(1);
}

// ---- variants: [name, dtype, matrixBody, precision]
const variants = [['f16 scalar', 'f16', 'off', 'highest']];
if (real) variants.push(['f16 matrix (subgroup-matrix)', 'f16', 'auto', 'highest'], ['f32 medium matrix (subgroup-matrix)', 'f32', 'auto', 'medium']);
variants.push(['f16 matrix (portable)', 'f16', 'portable', 'highest'], ['f32 medium matrix (portable)', 'f32', 'portable', 'medium']);

async function withVariant([, , body, precision], fn) {
  k.setMatmulPrecision(precision);
  k.setFlag('attention.matrixBody', body === 'auto' ? undefined : body);
  try {
    return await fn();
  } finally {
    k.setMatmulPrecision('highest');
    k.setFlag('attention.matrixBody', undefined);
  }
}

// Seeded inputs rounded to f16 (as Float32Array), so float64 sees what every variant's kernels multiply.
function halfData(n, seed) {
  const t = k.randn([n], { seed }).to('f16');
  return t.toArray().then(async (a) => (t.dispose(), Float32Array.from(a)));
}
const make = (data, shape, dtype, requiresGrad = false) => k.tensor(data, { shape, dtype, requiresGrad });

// ---- 2. checks
const checkShapes = quick ? [[[1, 2, 37, 64], false], [[1, 2, 37, 64], true]] : [[[1, 2, 257, 64], false], [[1, 2, 257, 64], true], [[2, 2, 129, 128], true], [[1, 4, 300, 64], true]];
const checks = [];
let failed = false;
const labelsOf = async (fn) => {
  if (!k.hasTimestampQuery()) return fn().then(() => null);
  const timer = k.startGpuTimer();
  await fn();
  return Object.keys((await timer.stop()).byLabel);
};
for (const [shape, causal] of checkShapes) {
  const n = shape.reduce((a, b) => a * b);
  const [qd, kd, vd, dod] = await Promise.all([halfData(n, 21), halfData(n, 22), halfData(n, 23), halfData(n, 24)]);
  const ref = (data) => ({ data: Float64Array.from(data), shape });
  const want = sdpa(ref(qd), ref(kd), ref(vd), { isCausal: causal });
  const wantG = sdpaBackward(ref(qd), ref(kd), ref(vd), ref(dod), { isCausal: causal });
  const outs = new Map();
  for (const v of variants) {
    const [name, dtype] = v;
    const q = make(qd, shape, dtype, true), kk = make(kd, shape, dtype, true), vv = make(vd, shape, dtype, true), dO = make(dod, shape, 'f32');
    let got, grads;
    const labels = await withVariant(v, () => labelsOf(async () => {
      const o = k.F.scaledDotProductAttention(q, kk, vv, { isCausal: causal });
      got = await o.toArray();
      const loss = k.tidy(() => o.float().mul(dO).sum());
      loss.backward();
      grads = [await q.grad.toArray(), await kk.grad.toArray(), await vv.grad.toArray()];
      for (const t of [o, loss]) t.dispose();
    }));
    const err = (a, w) => { let e = 0; for (let i = 0; i < w.length; i++) e = Math.max(e, Number.isNaN(a[i]) ? Infinity : Math.abs(a[i] - w[i])); return e; };
    // f16 outputs (and P rounded to f16 on the matrix path): ~2^-11 relative on values of size ~1; gradients carry
    // the rounding of dS and of o through delta (the unit tests' measured worst is below a third of these).
    const row = {
      shape, causal, variant: name, against: 'cpu-f64', labels,
      outErr: err(got, want.out.data), gradErr: Math.max(err(grads[0], wantG.dq.data), err(grads[1], wantG.dk.data), err(grads[2], wantG.dv.data)),
      outTol: 2e-3, gradTol: 1e-2,
    };
    row.passed = row.outErr <= row.outTol && row.gradErr <= row.gradTol;
    outs.set(name, [got, ...grads]);
    checks.push(row);
    if (!row.passed) failed = true;
    log(`check ${name} [${shape}] causal=${causal}: out err ${row.outErr.toExponential(2)} grad err ${row.gradErr.toExponential(2)} ${row.passed ? 'ok' : 'FAILED'}${labels ? `  (${labels.filter((l) => l.startsWith('attention')).join(' ')})` : ''}`);
    for (const t of [q, kk, vv, dO]) t.dispose();
  }
  // The real body against the portable one, entry by entry: forward and every gradient.
  for (const row of checks.filter((r) => r.shape === shape && r.variant.includes('(subgroup-matrix)'))) {
    const mine = outs.get(row.variant), twin = outs.get(row.variant.replace('(subgroup-matrix)', '(portable)'));
    let d = 0;
    for (let t = 0; t < mine.length; t++) for (let i = 0; i < mine[t].length; i++) d = Math.max(d, Math.abs(mine[t][i] - twin[t][i]));
    row.vsPortable = d;
    if (!(d <= 2e-3)) (row.passed = false), (failed = true);
    log(`  ${row.variant} vs portable: max diff ${d.toExponential(2)} ${d <= 2e-3 ? 'ok' : 'FAILED'}`);
  }
}

// ---- 3. timing (checked variants; the portable body is a CI body, timed only in --quick; f32 medium not timed)
const timeShapes = quick ? [[[1, 2, 128, 64], false]] : [[[4, 8, 4096, 64], false], [[4, 8, 4096, 64], true], [[4, 8, 4096, 128], false], [[4, 8, 4096, 128], true]];
const timed = variants.filter(([name, dtype, body]) => dtype === 'f16' && (quick || body !== 'portable') && checks.filter((c) => c.variant === name).every((c) => c.passed));
const cases = [];
for (const [shape, causal] of timeShapes) {
  const [B, H, N, D] = shape;
  const fwdFlops = (4 * B * H * N * N * D) / (causal ? 2 : 1);
  for (const v of timed) {
    const [name, dtype, body] = v;
    const [q, kk, vv] = [1, 2, 3].map((seed) => k.randn(shape, { seed, dtype, requiresGrad: true }));
    for (const [what, flops, fn] of [
      ['forward', fwdFlops, () => k.tidy(() => { k.F.scaledDotProductAttention(q, kk, vv, { isCausal: causal }); })],
      ['forward+backward', 3.5 * fwdFlops, () => k.tidy(() => {
        k.F.scaledDotProductAttention(q, kk, vv, { isCausal: causal }).float().sum().backward();
        for (const t of [q, kk, vv]) { t.grad?.dispose(); t.grad = null; }
      })],
    ]) {
      const t = await withVariant(v, () => timeIt(fn, { minMs: 200, maxIters: 100 }));
      const c = {
        suite: what === 'forward' ? 'attention' : 'attention-fwdbwd', impl: 'kiln', runtime: 'node', shape, dtype,
        params: { variant: name, body, causal, pass: what }, flops, bytes: 4 * B * H * N * D * 2, status: 'ok',
        check: checks.find((r) => r.variant === name) ?? null,
        maxErr: Math.max(...checks.filter((r) => r.variant === name).map((r) => Math.max(r.outErr, r.gradErr))),
        runs: t.runs, warmup: 2, medianMs: t.ms, q1: t.q1, q3: t.q3, minMs: t.min, maxMs: t.max, meanMs: t.ms, rateBasis: 'wall',
        gflops: flops / (t.ms * 1e6), gbps: 0, callsPerSync: t.iters,
      };
      c.gbps = c.bytes / (t.ms * 1e6);
      cases.push(c);
      log(`time ${name} ${what} [${shape}] causal=${causal}: ${t.ms.toFixed(3)} ms, ${(c.gflops / 1e3).toFixed(1)} TFLOP/s (${t.iters} calls a sync)`);
    }
    for (const t of [q, kk, vv]) t.dispose();
  }
}

// ---- PyTorch on the same shapes, in the same call
let torch = null;
if (!noTorch) {
  try {
    const text = execFileSync('python3', [join(ROOT, 'bench/gpu/torch_attention.py'), JSON.stringify(timeShapes)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    torch = JSON.parse(text.trim().split('\n').pop());
    for (const r of torch.rows) log(`torch ${r.dtype} [${r.shape}] causal=${r.causal}: forward ${r.fwdMs.toFixed(3)} ms, forward+backward ${r.fwdBwdMs.toFixed(3)} ms`);
  } catch (e) {
    torch = { error: String(e?.message ?? e) };
    log(`PyTorch did not run: ${torch.error}`);
  }
}

// ---- 4. report
const report = gpuReport({ root: ROOT, info, suite: 'attention', sizes: timeShapes.map(([s]) => s[2]), quick, t0, cases, extra: { subgroupMatrix: sm, checks, torch }, log });
writeFileSync(join(OUT, 'attention_report.json'), JSON.stringify(report, null, 2));
const torchMs = (c, dtype) => {
  const r = torch?.rows?.find((x) => x.dtype === dtype && x.causal === c.params.causal && x.shape.join() === c.shape.join());
  return r ? (c.params.pass === 'forward' ? r.fwdMs : r.fwdBwdMs) : undefined;
};
const md = [
  `# kiln attention on ${info.device || info.description} (${report.date})`,
  '',
  `subgroupMatrix: ${sm ? `configs ${JSON.stringify(sm.configs)}; kiln uses ${JSON.stringify(sm.matmul)} (${sm.spelling ?? 'none'})${sm.reason ? `; ${sm.reason}` : ''}` : 'not offered'}`,
  '',
  '| shape [B,H,N,D] | causal | pass | variant | kiln ms | kiln TFLOP/s | torch f16 ms | torch f32 ms |',
  '|---|---|---|---|---:|---:|---:|---:|',
  ...cases.map((c) => `| ${c.shape.join('x')} | ${c.params.causal} | ${c.params.pass} | ${c.params.variant} | ${c.medianMs.toFixed(3)} | ${(c.gflops / 1e3).toFixed(1)} | ${torchMs(c, 'f16')?.toFixed(3) ?? ''} | ${torchMs(c, 'f32')?.toFixed(3) ?? ''} |`),
  '',
  '| check | shape | causal | out err | grad err | vs portable | kernels | passed |',
  '|---|---|---|---:|---:|---:|---|---|',
  ...checks.map((r) => `| ${r.variant} | ${r.shape.join('x')} | ${r.causal} | ${r.outErr.toExponential(2)} | ${r.gradErr.toExponential(2)} | ${r.vsPortable == null ? '' : r.vsPortable.toExponential(2)} | ${(r.labels ?? []).filter((l) => l.startsWith('attention')).join(' ')} | ${r.passed} |`),
].join('\n');
writeFileSync(join(OUT, 'attention_report.md'), md + '\n');
log(`wrote ${join(OUT, 'attention_report.json')} and attention_report.md in ${report.durationS.toFixed(1)} s`);
process.exit(failed ? 1 : 0);
