// What the GPU-machine scripts share: a float64 attention for checks, the error measure, and a timing loop that
// amortises many calls over one sync (so the numbers are kernel time, not round trips).
import * as k from '../../dist/kiln.node.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sdpa } from '../lib/attention_reference.mjs';
import { validateReport } from '../lib/schema.mjs';

/** softmax(q k^T / sqrt(D)) v in float64, [B*H, Nq, D] flat; causal is top-left aligned (the shared reference). */
export function cpuAttention(q, kk, v, [B, H, Nq, Nk, D], causal) {
  const ref = (data, N) => ({ data, shape: [B, H, N, D] });
  return sdpa(ref(q, Nq), ref(kk, Nk), ref(v, Nk), { isCausal: causal }).out.data;
}

/** Largest |a - b| / max(1, |b|). */
export const maxErr = (a, b) => { let e = 0; for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]))); return e; };

/**
 * Median ms per call of fn: grows the batch of calls per sync until it takes minMs (or maxIters calls), then times
 * at least `repeats` batches and 20 calls in all (bench/SCHEMA.md's minimum runs). Returns { ms, min, max, q1, q3,
 * iters, runs }.
 */
export async function timeIt(fn, { minMs = 150, maxIters = 200, repeats = 5 } = {}) {
  for (let i = 0; i < 2; i++) { fn(); await k.sync(); }
  let iters = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) fn();
    await k.sync();
    if (performance.now() - t0 >= minMs || iters >= maxIters) {
      const batches = Math.max(repeats, Math.ceil(20 / iters));
      const samples = [];
      for (let r = 0; r < batches; r++) {
        const t1 = performance.now();
        for (let i = 0; i < iters; i++) fn();
        await k.sync();
        samples.push((performance.now() - t1) / iters);
      }
      samples.sort((a, b) => a - b);
      const at = (f) => samples[Math.floor(f * (batches - 1))];
      return { ms: at(0.5), min: samples[0], max: samples[batches - 1], q1: at(0.25), q3: at(0.75), iters, runs: batches * iters };
    }
    iters = Math.min(maxIters, iters * 4);
  }
}

/** init() and what the matrix-unit scripts print first: the adapter, its features and deviceInfo().subgroupMatrix. */
export async function probeSubgroupMatrix(log = console.log) {
  const info = await k.init();
  const sm = info.subgroupMatrix ?? null;
  log(`adapter: ${info.vendor} ${info.device} (${info.description}) software=${info.isSoftware}`);
  log(`features: ${info.features.join(', ')}`);
  log(`subgroupMatrix: ${JSON.stringify(sm)}`);
  return { info, sm, hasF16: info.features.includes('shader-f16'), real: !!sm?.matmul };
}

/**
 * bench/SCHEMA.md's report of a one-call GPU script (wall timing of call batches), with the commit pack.sh recorded;
 * `extra` adds the script's own fields (checks, PyTorch rows). Prints schema problems through `log`.
 */
export function gpuReport({ root, info, suite, sizes, quick, t0, cases, extra, log = console.log }) {
  let commit = { commit: null, dirty: null };
  try { if (existsSync(join(root, '.gpu/kiln-commit.json'))) commit = JSON.parse(readFileSync(join(root, '.gpu/kiln-commit.json'), 'utf8')); } catch {}
  const report = {
    schemaVersion: 1,
    kiln: { version: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version, ...commit },
    date: new Date().toISOString(),
    durationS: (performance.now() - t0) / 1000,
    host: { node: process.version, platform: `${process.platform}-${process.arch}` },
    options: { suites: [suite], sizes, quick, runs: 5, warmup: 2, runtimes: ['node'], probes: false },
    runtimes: [{ runtime: 'node', adapter: info, userAgent: `node ${process.version} (${process.platform}-${process.arch})`, timing: { gpu: null, wall: 'performance.now() around a batch of calls and one sync, / calls (median of 5 batches)' }, peaks: null, overhead: null, skipped: [] }],
    cases,
    ...extra,
  };
  const problems = validateReport(report);
  if (problems.length) log(`report schema problems: ${problems.join('; ')}`);
  return report;
}
