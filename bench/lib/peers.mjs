// Peer engines, Node only: TensorFlow.js WebGPU (tfjs-core + tfjs-backend-webgpu 4.22, from the optional workspace
// bench/peers, installed on demand with `npm install --ignore-scripts`). Each peer case is checked before timing:
// attention against kiln's impl:'reference' output and float64 rows, matmul/softmax against float64.
// Timing matches kiln's wall clock: call, flush tf's command queue, await queue.onSubmittedWorkDone().
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkAndTime, errorRow, peerLabel, planPeerCases, preparePeerCase } from './peer_cases.mjs';

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
  const plans = planPeerCases(opts, log, 'tfjs');
  const cases = [];
  let done = 0;
  for (const p of plans) {
    const label = peerLabel('tfjs', p);
    onProgress({ done, total: plans.length, label });
    const row = { suite: p.suite, impl, runtime: 'node', dtype: 'f32', peer: { engine: '@tensorflow/tfjs-backend-webgpu', version } };
    const held = [];
    const hold = (t) => (held.push(t), t);
    try {
      const c = await preparePeerCase(k, p, opts);
      Object.assign(row, c.fields);
      const x = c.inputs;
      let run;
      if (x.kind === 'attention') {
        const q = hold(tf.tensor(x.q, x.shape)), kt = hold(tf.tensor(x.k, x.shape)), v = hold(tf.tensor(x.v, x.shape));
        const scale = hold(tf.scalar(1 / Math.sqrt(x.D)));
        let mask = null;
        if (x.isCausal) {
          const N = x.shape[2];
          const m = new Float32Array(N * N);
          for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) m[i * N + j] = -Infinity;
          mask = hold(tf.tensor(m, [N, N]));
        }
        run = () => {
          let s = tf.mul(tf.matMul(q, kt, false, true), scale);
          if (mask) s = tf.add(s, mask);
          return tf.matMul(tf.softmax(s), v);
        };
      } else if (x.kind === 'matmul') {
        const a = hold(tf.tensor(x.a, [x.n, x.n])), b = hold(tf.tensor(x.b, [x.n, x.n]));
        run = () => tf.matMul(a, b);
      } else if (x.kind === 'conv') {
        // TF.js's native layouts: NHWC input and [kh, kw, in, out] filters (the same numbers, transposed once here).
        const xt = hold(tf.transpose(tf.tensor(x.x, x.xShape), [0, 2, 3, 1]));
        const ft = hold(tf.transpose(tf.tensor(x.w, x.wShape), [2, 3, 1, 0]));
        run = () => tf.conv2d(xt, ft, 1, 'same');
      } else {
        const t = hold(tf.tensor(x.x, x.shape));
        run = () => tf.softmax(t);
      }
      const first = tf.tidy(x.kind === 'conv' ? () => tf.transpose(run(), [0, 3, 1, 2]) : run);
      const chk = c.check(await first.data());
      first.dispose();
      const once = async () => {
        const y = tf.tidy(run);
        await sync();
        y.dispose();
      };
      await checkAndTime(row, chk, once, { opts, log, label, onTick: (f) => onProgress({ done: done + f, total: plans.length, label }) });
    } catch (e) {
      errorRow(row, e, p, log, label);
    } finally {
      held.forEach((t) => t.dispose());
    }
    cases.push(row);
    done++;
    onProgress({ done, total: plans.length, label });
  }
  return { cases, version };
}
