// ONNX Runtime peers, Node only: onnxruntime-node 1.30 (optional workspace bench/peers, installed on demand with
// `npm install --ignore-scripts`; its own Dawn serves the WebGPU execution provider and follows VK_ICD_FILENAMES,
// which kiln's init() has set by the time this runs). Providers 'webgpu' and 'cpu', impl 'onnxruntime-<provider>'.
// Graphs are built by lib/onnx.mjs (plain ONNX ops, opset 17; never com.microsoft MultiHeadAttention, which gave
// wrong answers on software adapters). Each case is checked like the tfjs peer before it is timed.
// Timing: wall time around `await session.run(feeds)`; outputs come back as CPU tensors (run() includes the readback).
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { defaultSizes } from './runner.mjs';
import { summarize } from './stats.mjs';
import { attentionRowsF64, matmulF64, maxAbsErr, sampleIndices, softmaxRowsF64 } from './reference.mjs';
import { attentionModel, matmulModel, softmaxModel } from './onnx.mjs';

const now = () => performance.now();
export const ORT_ENGINE = 'onnxruntime-node';
export const ORT_PROVIDERS = ['webgpu', 'cpu'];

export function loadOrt(root, log) {
  const dir = join(root, 'bench/peers');
  if (!existsSync(join(dir, 'node_modules/onnxruntime-node/package.json'))) {
    // On the lent GPU machine remote.sh links pack.sh's slim copy here (tfjs only, no network): do not try npm.
    if (existsSync(join(dir, 'node_modules')) && lstatSync(join(dir, 'node_modules')).isSymbolicLink()) throw new Error('onnxruntime-node is not in the linked bench/peers/node_modules (pack.sh copies tfjs only)');
    log('installing bench/peers (npm install --ignore-scripts) ...');
    execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  const req = createRequire(join(dir, 'package.json'));
  const ort = req('onnxruntime-node');
  const version = req('onnxruntime-node/package.json').version;
  return { ort, version };
}

/** Returns { cases, version, providers: [{ provider, error? }] }; a provider that cannot create a session is reported, not thrown. */
export async function runOrtPeers(k, { root, opts, onProgress = () => {}, log = () => {} }) {
  const { ort, version } = loadOrt(root, log);
  log(`onnxruntime-node ${version}: providers ${ORT_PROVIDERS.join(', ')}; VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? '(unset)'}`);
  const plans = [];
  for (const suite of opts.suites) {
    const sizes = opts.sizes ?? defaultSizes(suite, opts.quick);
    if (suite === 'attention') for (const N of sizes) for (const isCausal of [false, true]) plans.push({ suite, N, isCausal });
    else if (suite === 'matmul' || suite === 'softmax') for (const N of sizes) plans.push({ suite, N });
    else log(`peers: no onnxruntime case for ${suite}`);
  }
  const total = plans.length * ORT_PROVIDERS.length;
  const cases = [];
  const providers = [];
  let done = 0;
  for (const provider of ORT_PROVIDERS) {
    const impl = `onnxruntime-${provider}`;
    let providerError = null;
    for (const p of plans) {
      const label = `${impl} ${p.suite}${p.isCausal ? ' causal' : ''} N=${p.N}`;
      onProgress({ done, total, label });
      const row = { suite: p.suite, impl, runtime: 'node', dtype: 'f32', peer: { engine: ORT_ENGINE, version, provider } };
      let session;
      try {
        if (providerError) throw new Error(`execution provider '${provider}' unavailable: ${providerError}`);
        let model, feeds, check, outName;
        if (p.suite === 'attention') {
          const { batch: B, heads: H, dim: D } = opts;
          const N = p.N;
          const shape = [B, H, N, D];
          const pairs = B * H * (p.isCausal ? (N * (N + 1)) / 2 : N * N);
          Object.assign(row, { shape, params: { isCausal: p.isCausal }, flops: 4 * pairs * D, bytes: 4 * B * H * N * D * 4 });
          // Same seeds as kiln's attention cases, so the inputs are identical.
          const kq = k.randn(shape, { seed: 11 }), kk = k.randn(shape, { seed: 12 }), kv = k.randn(shape, { seed: 13 });
          const [qa, ka, va] = await Promise.all([kq.toArray(), kk.toArray(), kv.toArray()]);
          const refFits = B * H * N * N * 4 <= (k.deviceInfo?.().limits?.maxStorageBufferBindingSize ?? 2 ** 27);
          const kref = refFits ? await k.tidy(() => k.F.scaledDotProductAttention(kq, kk, kv, { isCausal: p.isCausal, impl: 'reference' })).toArray() : null;
          kq.dispose(); kk.dispose(); kv.dispose();
          model = attentionModel(shape, p.isCausal);
          const t = (a) => new ort.Tensor('float32', Float32Array.from(a), shape);
          feeds = { Q: t(qa), K: t(ka), V: t(va) };
          outName = 'O';
          check = (got) => {
            const rows = sampleIndices(B * H * N, 64, N + 7);
            const want = attentionRowsF64(qa, ka, va, B * H, N, D, { isCausal: p.isCausal, rows });
            const at = rows.flatMap((r) => Array.from({ length: D }, (_, d) => r * D + d));
            const { err, scale: sc } = maxAbsErr(got, want, at);
            const out = { against: 'cpu-f64-sampled', maxErr: err, tol: 1e-3 * Math.max(1, sc) };
            if (kref) out.maxErrVsReference = maxAbsErr(got, kref).err;
            out.passed = out.maxErr <= out.tol && (out.maxErrVsReference ?? 0) <= out.tol;
            return out;
          };
        } else if (p.suite === 'matmul') {
          const n = p.N;
          Object.assign(row, { shape: [n, n, n], params: {}, flops: 2 * n ** 3, bytes: 3 * n * n * 4 });
          const ka = k.randn([n, n], { seed: 21 }), kb = k.randn([n, n], { seed: 22 });
          const [aa, ba] = await Promise.all([ka.toArray(), kb.toArray()]);
          ka.dispose(); kb.dispose();
          model = matmulModel(n);
          feeds = { A: new ort.Tensor('float32', Float32Array.from(aa), [n, n]), B: new ort.Tensor('float32', Float32Array.from(ba), [n, n]) };
          outName = 'C';
          check = (got) => {
            const at = sampleIndices(n * n, 512, n);
            const { err, scale } = maxAbsErr(got, matmulF64(aa, ba, n, n, n, at), at);
            const tol = (1e-4 * Math.max(1, scale) * Math.sqrt(n)) / 4;
            return { against: 'cpu-f64-sampled', maxErr: err, tol, passed: err <= tol };
          };
        } else {
          const n = p.N, H = opts.heads;
          Object.assign(row, { shape: [H, n, n], params: { dim: -1 }, flops: 5 * H * n * n, bytes: 2 * H * n * n * 4 });
          const kx = k.randn([H, n, n], { seed: 31 });
          const xa = await kx.toArray();
          kx.dispose();
          model = softmaxModel([H, n, n]);
          feeds = { X: new ort.Tensor('float32', Float32Array.from(xa), [H, n, n]) };
          outName = 'Y';
          check = (got) => {
            const { err } = maxAbsErr(got, softmaxRowsF64(xa, H * n, n));
            return { against: 'cpu-f64', maxErr: err, tol: 1e-5, passed: err <= 1e-5 };
          };
        }
        try {
          session = await ort.InferenceSession.create(model, { executionProviders: [provider], graphOptimizationLevel: 'all' });
        } catch (e) {
          // A provider that cannot start (e.g. no WebGPU adapter) fails every case the same way: say so once.
          providerError = String(e?.message ?? e);
          log(`onnxruntime: cannot create a '${provider}' session: ${providerError}`);
          throw e;
        }
        const first = await session.run(feeds);
        const chk = check(Array.from(first[outName].data));
        row.check = chk;
        row.maxErr = chk.maxErr;
        if (!chk.passed) {
          row.status = 'failed';
          log(`FAILED check: ${label}: maxErr ${chk.maxErr} (vs kiln reference ${chk.maxErrVsReference}): not timed`);
        } else {
          for (let i = 0; i < opts.warmup; i++) await session.run(feeds);
          const wall = [];
          for (let i = 0; i < opts.runs; i++) {
            const t0 = now();
            await session.run(feeds);
            wall.push(now() - t0);
            onProgress({ done: done + (i + 1) / opts.runs, total, label });
          }
          const ws = summarize(wall);
          Object.assign(row, { status: 'ok', runs: opts.runs, warmup: opts.warmup, medianMs: ws.median, q1: ws.q1, q3: ws.q3, minMs: ws.min, maxMs: ws.max, meanMs: ws.mean, rateBasis: 'wall' });
          row.gflops = row.flops / (ws.median * 1e6);
          row.gbps = row.bytes / (ws.median * 1e6);
        }
      } catch (e) {
        row.status = 'error';
        row.error = String(e?.message ?? e);
        row.flops ??= 0; row.bytes ??= 0; row.shape ??= [p.N];
        log(`ERROR ${label}: ${row.error}`);
      } finally {
        await session?.release?.().catch(() => {});
      }
      cases.push(row);
      done++;
      onProgress({ done, total, label });
    }
    providers.push(providerError ? { engine: ORT_ENGINE, version, provider, error: providerError } : { engine: ORT_ENGINE, version, provider });
  }
  return { cases, version, providers };
}
