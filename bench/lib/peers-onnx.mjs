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
import { attentionModel, convModel, matmulModel, softmaxModel } from './onnx.mjs';
import { checkAndTime, errorRow, peerLabel, planPeerCases, preparePeerCase } from './peer_cases.mjs';
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
  const plans = planPeerCases(opts, log, 'onnxruntime');
  const total = plans.length * ORT_PROVIDERS.length;
  const cases = [];
  const providers = [];
  let done = 0;
  for (const provider of ORT_PROVIDERS) {
    const impl = `onnxruntime-${provider}`;
    let providerError = null;
    for (const p of plans) {
      const label = peerLabel(impl, p);
      onProgress({ done, total, label });
      const row = { suite: p.suite, impl, runtime: 'node', dtype: 'f32', peer: { engine: ORT_ENGINE, version, provider } };
      let session;
      try {
        if (providerError) throw new Error(`execution provider '${provider}' unavailable: ${providerError}`);
        const c = await preparePeerCase(k, p, opts);
        Object.assign(row, c.fields);
        const x = c.inputs;
        const t = (a, shape) => new ort.Tensor('float32', Float32Array.from(a), shape);
        let model, feeds, outName;
        if (x.kind === 'attention') {
          model = attentionModel(x.shape, x.isCausal);
          feeds = { Q: t(x.q, x.shape), K: t(x.k, x.shape), V: t(x.v, x.shape) };
          outName = 'O';
        } else if (x.kind === 'matmul') {
          model = matmulModel(x.n);
          feeds = { A: t(x.a, [x.n, x.n]), B: t(x.b, [x.n, x.n]) };
          outName = 'C';
        } else if (x.kind === 'conv') {
          model = convModel(x.xShape, x.wShape, x.outShape, x.w, 1);
          feeds = { X: t(x.x, x.xShape) };
          outName = 'Y';
        } else {
          model = softmaxModel(x.shape);
          feeds = { X: t(x.x, x.shape) };
          outName = 'Y';
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
        const chk = c.check(Array.from(first[outName].data));
        await checkAndTime(row, chk, () => session.run(feeds), { opts, log, label, onTick: (f) => onProgress({ done: done + f, total, label }) });
      } catch (e) {
        errorRow(row, e, p, log, label);
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
