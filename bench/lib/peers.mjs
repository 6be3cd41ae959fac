// Peer engines, Node only: TensorFlow.js WebGPU (tfjs-core + tfjs-backend-webgpu 4.22, from the optional workspace
// bench/peers, installed on demand with `npm install --ignore-scripts`). Each peer case is checked before timing:
// attention against kiln's impl:'reference' output and float64 rows, matmul/softmax against float64.
// Timing matches kiln's wall clock: call, flush tf's command queue, await queue.onSubmittedWorkDone().
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defaultSizes } from './runner.mjs';
import { summarize } from './stats.mjs';
import { attentionRowsF64, matmulF64, maxAbsErr, sampleIndices, softmaxRowsF64 } from './reference.mjs';

const now = () => performance.now();

export async function loadTfjs(root, log) {
  const dir = join(root, 'bench/peers');
  if (!existsSync(join(dir, 'node_modules/@tensorflow/tfjs-backend-webgpu'))) {
    log('installing bench/peers (npm install --ignore-scripts) ...');
    execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  // The backend reads navigator.gpu when it registers; give it Dawn (the same module kiln loaded).
  const { create } = await import(pathToFileURL(join(root, 'node_modules/webgpu/index.js')).href);
  if (!globalThis.navigator?.gpu) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: create(['disable-dawn-features=timestamp_quantization']), userAgent: 'node' }, configurable: true, writable: true });
  }
  const req = createRequire(join(dir, 'package.json'));
  const tf = req('@tensorflow/tfjs-core');
  req('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") failed');
  await tf.ready();
  const version = req('@tensorflow/tfjs-backend-webgpu/package.json').version;
  return { tf, version };
}

export async function runPeers(k, { root, opts, onProgress = () => {}, log = () => {} }) {
  const { tf, version } = await loadTfjs(root, log);
  const be = tf.backend();
  const sync = async () => {
    // tfjs-webgpu keeps a compute pass open between ops: end it before submitting, as its own readback does.
    be.endComputePassEncoder();
    be.submitQueue();
    await be.device.queue.onSubmittedWorkDone();
  };
  const impl = 'tfjs-webgpu';
  const plans = [];
  for (const suite of opts.suites) {
    const sizes = opts.sizes ?? defaultSizes(suite, opts.quick);
    if (suite === 'attention') for (const N of sizes) for (const isCausal of [false, true]) plans.push({ suite, N, isCausal });
    else if (suite === 'matmul' || suite === 'softmax') for (const N of sizes) plans.push({ suite, N });
    else log(`peers: no tfjs case for ${suite}`);
  }
  const cases = [];
  let done = 0;
  for (const p of plans) {
    const label = `tfjs ${p.suite}${p.isCausal ? ' causal' : ''} N=${p.N}`;
    onProgress({ done, total: plans.length, label });
    const row = { suite: p.suite, impl, runtime: 'node', dtype: 'f32', peer: { engine: '@tensorflow/tfjs-backend-webgpu', version } };
    const held = [];
    try {
      let run, check;
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
        const q = tf.tensor(qa, shape), kt = tf.tensor(ka, shape), v = tf.tensor(va, shape);
        held.push(q, kt, v);
        const scale = tf.scalar(1 / Math.sqrt(D));
        held.push(scale);
        let mask = null;
        if (p.isCausal) {
          const m = new Float32Array(N * N);
          for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) m[i * N + j] = -Infinity;
          mask = tf.tensor(m, [N, N]);
          held.push(mask);
        }
        run = () => {
          let s = tf.mul(tf.matMul(q, kt, false, true), scale);
          if (mask) s = tf.add(s, mask);
          return tf.matMul(tf.softmax(s), v);
        };
        check = async (got) => {
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
        const a = tf.tensor(aa, [n, n]), b = tf.tensor(ba, [n, n]);
        held.push(a, b);
        run = () => tf.matMul(a, b);
        check = async (got) => {
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
        const x = tf.tensor(xa, [H, n, n]);
        held.push(x);
        run = () => tf.softmax(x);
        check = async (got) => {
          const { err } = maxAbsErr(got, softmaxRowsF64(xa, H * n, n));
          return { against: 'cpu-f64', maxErr: err, tol: 1e-5, passed: err <= 1e-5 };
        };
      }
      const first = tf.tidy(run);
      const chk = await check(await first.data());
      first.dispose();
      row.check = chk;
      row.maxErr = chk.maxErr;
      if (!chk.passed) {
        row.status = 'failed';
        log(`FAILED check: ${label}: maxErr ${chk.maxErr} (vs kiln reference ${chk.maxErrVsReference}): not timed`);
      } else {
        for (let i = 0; i < opts.warmup; i++) {
          const y = tf.tidy(run);
          await sync();
          y.dispose();
        }
        const wall = [];
        for (let i = 0; i < opts.runs; i++) {
          const t0 = now();
          const y = tf.tidy(run);
          await sync();
          wall.push(now() - t0);
          y.dispose();
          onProgress({ done: done + (i + 1) / opts.runs, total: plans.length, label });
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
      held.forEach((t) => t.dispose());
    }
    cases.push(row);
    done++;
    onProgress({ done, total: plans.length, label });
  }
  return { cases, version };
}
