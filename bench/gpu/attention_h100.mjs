// Fused attention on a real GPU: first checks correctness (fused against the reference path and a
// float64 CPU computation), then times fused and reference forward and forward+backward over a sweep.
// Usage (device): bash bench/gpu/remote.sh bench/gpu/attention_h100.mjs [--quick]
import * as k from '../../dist/kiln.node.js';
import { writeFileSync } from 'node:fs';
import { cpuAttention, maxErr, timeIt } from './common.mjs';

const quick = process.argv.includes('--quick');
const out = process.env.OUT ?? '/tmp';
const info = await k.init();
console.log(`adapter: ${info.vendor} ${info.device} ${info.description} software=${info.isSoftware} features=${info.features.join(',')}`);
console.log(`limits: wgmem=${info.limits.maxComputeWorkgroupStorageSize} binding=${info.limits.maxStorageBufferBindingSize}`);


// ---- correctness first
let ok = true;
const checks = [];
for (const [B, H, Nq, Nk, D, causal] of [[1, 2, 1, 1, 64, false], [2, 3, 37, 53, 64, true], [1, 4, 130, 130, 128, true], [2, 2, 257, 129, 64, false], [1, 2, 64, 64, 128, false]]) {
  const q = k.randn([B, H, Nq, D], { seed: 1 }), kk = k.randn([B, H, Nk, D], { seed: 2 }), v = k.randn([B, H, Nk, D], { seed: 3 });
  const want = cpuAttention(await q.toArray(), await kk.toArray(), await v.toArray(), [B, H, Nq, Nk, D], causal);
  const f = await k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal }).toArray();
  const r = await k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal, impl: 'reference' }).toArray();
  const ef = maxErr(f, want), er = maxErr(r, want);
  // gradients: fused vs reference path
  const qg = k.randn([B, H, Nq, D], { seed: 4, requiresGrad: true }), kg = k.randn([B, H, Nk, D], { seed: 5, requiresGrad: true }), vg = k.randn([B, H, Nk, D], { seed: 6, requiresGrad: true });
  const w = k.randn([B, H, Nq, D], { seed: 7 });
  const grads = [];
  for (const impl of ['fused', 'reference']) {
    for (const t of [qg, kg, vg]) { t.grad?.dispose(); t.grad = null; }
    k.F.scaledDotProductAttention(qg, kg, vg, { isCausal: causal, impl }).mul(w).sum().backward();
    grads.push([await qg.grad.toArray(), await kg.grad.toArray(), await vg.grad.toArray()]);
  }
  const eg = Math.max(...grads[0].map((g, i) => maxErr(g, grads[1][i])));
  const pass = ef < 1e-4 && er < 1e-4 && eg < 1e-3;
  ok &&= pass;
  checks.push({ shape: [B, H, Nq, Nk, D], causal, fusedErr: ef, referenceErr: er, gradErr: eg, pass });
  console.log(`check [${B},${H},${Nq},${Nk},${D}] causal=${causal}: fused err ${ef.toExponential(2)} reference err ${er.toExponential(2)} grad fused-vs-ref ${eg.toExponential(2)} ${pass ? 'ok' : 'FAIL'}`);
}
if (!ok) { console.log('correctness failed: not timing'); process.exit(1); }

// ---- timing

const rows = [];
const Ns = quick ? [1024, 4096] : [512, 1024, 2048, 4096, 8192, 16384];
const bindLimit = info.limits.maxStorageBufferBindingSize;
for (const D of [64, 128]) {
  for (const causal of [false, true]) {
    for (const N of Ns) {
      const B = N >= 8192 ? 1 : 4, H = 8;
      const q = k.randn([B, H, N, D], { seed: 1, requiresGrad: true }), kk = k.randn([B, H, N, D], { seed: 2, requiresGrad: true }), v = k.randn([B, H, N, D], { seed: 3, requiresGrad: true });
      const flops = 4 * B * H * N * N * D * (causal ? 0.5 : 1);
      const row = { B, H, N, D, causal };
      for (const impl of ['fused', 'reference']) {
        if (impl === 'reference' && B * H * N * N * 4 > Math.min(bindLimit, 2 ** 31)) { row[impl] = null; continue; }
        const fwd = await timeIt(() => k.tidy(() => { k.noGrad(() => k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal, impl })); }));
        const fb = await timeIt(() => k.tidy(() => { const o = k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal, impl }); o.sum().backward(); for (const t of [q, kk, v]) { t.grad?.dispose(); t.grad = null; } }));
        row[impl] = { fwdMs: fwd.ms, fwdTflops: flops / fwd.ms / 1e9, fwdBwdMs: fb.ms, fwdBwdTflops: (3.5 * flops) / fb.ms / 1e9 };
      }
      rows.push(row);
      const f = row.fused, r = row.reference;
      console.log(`B=${B} H=${H} N=${N} D=${D} causal=${causal}: fused fwd ${f.fwdMs.toFixed(3)} ms (${f.fwdTflops.toFixed(2)} TFLOP/s) fwd+bwd ${f.fwdBwdMs.toFixed(3)} ms` +
        (r ? ` | reference fwd ${r.fwdMs.toFixed(3)} ms fwd+bwd ${r.fwdBwdMs.toFixed(3)} ms | speedup fwd ${(r.fwdMs / f.fwdMs).toFixed(2)}x fwd+bwd ${(r.fwdBwdMs / f.fwdBwdMs).toFixed(2)}x` : ' | reference: N x N scores exceed the binding limit'));
      for (const t of [q, kk, v]) t.dispose();
    }
  }
}
// matmul for context
const mm = [];
for (const n of [1024, 4096]) {
  const a = k.randn([n, n], { seed: 1 }), b = k.randn([n, n], { seed: 2 });
  const t = await timeIt(() => k.tidy(() => { k.matmul(a, b); }));
  mm.push({ n, ms: t.ms, tflops: (2 * n ** 3) / t.ms / 1e9 });
  console.log(`matmul ${n}^3 f32: ${t.ms.toFixed(3)} ms, ${(2 * n ** 3 / t.ms / 1e9).toFixed(2)} TFLOP/s`);
}
writeFileSync(`${out}/kiln_h100.json`, JSON.stringify({ info, checks, rows, matmul: mm, date: new Date().toISOString() }, null, 1));
process.exit(0);
