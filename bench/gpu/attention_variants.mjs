// The fused attention kernels' variants on a real GPU: f32 and f16 (native f16 variant vs widening to f32), each with
// the forward's row folds by subgroup shuffles or by workgroup memory. Asks Dawn for shader-f16 (on NVIDIA's Vulkan
// driver Dawn hides it unless the toggle vulkan_enable_f16_on_nvidia is on). Checks every variant against float64 on
// the same inputs (f16: already rounded), and native f16 gradients against the widening path, before timing any.
// Usage (device): bash bench/gpu/remote.sh bench/gpu/attention_variants.mjs [--quick]   (results: bench/results/h100-2026-11-22/kiln_variants.json)
import * as kiln from '../../dist/kiln.node.js';
import * as experimental from '../../dist/experimental.node.js';
import { writeFileSync } from 'node:fs';
import { cpuAttention, maxErr, timeIt } from './common.mjs';

// kiln's API and kiln/experimental (flags, tile choices, counters), which share one device.
const k = { ...kiln, ...experimental };

const quick = process.argv.includes('--quick');
const out = process.env.OUT ?? '/tmp';
const info = await k.init({ dawnToggles: ['enable-dawn-features=vulkan_enable_f16_on_nvidia'] });
console.log(`adapter: ${info.vendor} ${info.description} software=${info.isSoftware} features=${info.features.join(',')} subgroups=${JSON.stringify(info.subgroups ?? null)}`);
const hasF16 = info.features.includes('shader-f16');
if (!hasF16) console.log('no shader-f16 on this adapter even with the toggle: only the widening path can run');


let ok = true;
const checks = [];
const modes = hasF16 ? ['native', 'widen'] : ['widen'];
for (const [B, H, Nq, Nk, D, causal] of [[2, 3, 37, 53, 64, true], [1, 4, 130, 130, 128, true], [2, 2, 257, 129, 64, false]]) {
  const q = k.randn([B, H, Nq, D], { seed: 1, dtype: 'f16', requiresGrad: true });
  const kk = k.randn([B, H, Nk, D], { seed: 2, dtype: 'f16', requiresGrad: true });
  const v = k.randn([B, H, Nk, D], { seed: 3, dtype: 'f16', requiresGrad: true });
  const w = k.randn([B, H, Nq, D], { seed: 4 });
  const want = cpuAttention(await q.toArray(), await kk.toArray(), await v.toArray(), [B, H, Nq, Nk, D], causal);
  const res = {};
  for (const mode of modes) {
    k.setFlag('attention.f16', mode);
    for (const t of [q, kk, v]) { t.grad?.dispose(); t.grad = null; }
    const o = k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal });
    const of = await o.toArray();
    k.tidy(() => o.float().mul(w).sum()).backward();
    res[mode] = { fwdErr: maxErr(of, want), grads: [await q.grad.toArray(), await kk.grad.toArray(), await v.grad.toArray()] };
  }
  k.setFlag('attention.f16', undefined);
  const gradErr = hasF16 ? Math.max(...res.native.grads.map((g, i) => maxErr(g, res.widen.grads[i]))) : 0;
  // f16 output: half an ulp is 4.9e-4 relative; gradients are rounded once, and the native delta reads the f16 O.
  const pass = modes.every((m) => res[m].fwdErr < 1e-3) && gradErr < 1e-2;
  ok &&= pass;
  checks.push({ shape: [B, H, Nq, Nk, D], causal, ...Object.fromEntries(modes.map((m) => [`${m}FwdErr`, res[m].fwdErr])), gradNativeVsWiden: gradErr, pass });
  console.log(`check [${B},${H},${Nq},${Nk},${D}] causal=${causal}: ${modes.map((m) => `${m} fwd err ${res[m].fwdErr.toExponential(2)}`).join(', ')}, grads native vs widen ${gradErr.toExponential(2)} ${pass ? 'ok' : 'FAIL'}`);
  for (const t of [q, kk, v, w]) t.dispose();
}
for (const [B, H, Nq, Nk, D, causal] of [[2, 3, 37, 53, 64, true], [1, 4, 130, 130, 128, false], [2, 2, 257, 129, 32, false]]) {
  const q = k.randn([B, H, Nq, D], { seed: 1 }), kk = k.randn([B, H, Nk, D], { seed: 2 }), v = k.randn([B, H, Nk, D], { seed: 3 });
  const want = cpuAttention(await q.toArray(), await kk.toArray(), await v.toArray(), [B, H, Nq, Nk, D], causal);
  for (const sg of [true, false]) {
    k.setFlag('attention.subgroups', sg);
    let err;
    try { err = maxErr(await k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal }).toArray(), want); } catch (e) { console.log(`subgroups=${sg}: ${e.message}`); continue; }
    const pass = err < 1e-4;
    ok &&= pass;
    checks.push({ shape: [B, H, Nq, Nk, D], causal, subgroups: sg, f32Err: err, pass });
    console.log(`check f32 [${B},${H},${Nq},${Nk},${D}] causal=${causal} subgroups=${sg}: err ${err.toExponential(2)} ${pass ? 'ok' : 'FAIL'}`);
  }
  k.setFlag('attention.subgroups', undefined);
  for (const t of [q, kk, v]) t.dispose();
}
if (!ok) { console.log('correctness failed: not timing'); process.exit(1); }


const rows = [];
for (const [N, D, causal] of quick ? [[4096, 64, false], [4096, 128, false]] : [[1024, 64, false], [4096, 64, false], [4096, 64, true], [4096, 128, false], [4096, 128, true], [2048, 256, false]]) {
  const B = 4, H = 8;
  const flops = 4 * B * H * N * N * D * (causal ? 0.5 : 1);
  const row = { B, H, N, D, causal };
  const variants = [['f32', 'f32', undefined, true], ['f32 no-subgroups', 'f32', undefined, false], ...(hasF16 ? [['f16 native', 'f16', 'native', true], ['f16 native no-subgroups', 'f16', 'native', false]] : []), ['f16 widen', 'f16', 'widen', true]];
  for (const [name, dtype, mode, sg] of variants) {
    k.setFlag('attention.f16', mode);
    k.setFlag('attention.subgroups', sg ? undefined : false);
    const q = k.randn([B, H, N, D], { seed: 1, dtype, requiresGrad: true }), kk = k.randn([B, H, N, D], { seed: 2, dtype, requiresGrad: true }), v = k.randn([B, H, N, D], { seed: 3, dtype, requiresGrad: true });
    const fwd = (await timeIt(() => k.tidy(() => { k.noGrad(() => k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal })); }))).ms;
    const fb = (await timeIt(() => k.tidy(() => {
      const o = k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal });
      (dtype === 'f16' ? o.float() : o).sum().backward();
      for (const t of [q, kk, v]) { t.grad?.dispose(); t.grad = null; }
    }))).ms;
    row[name] = { fwdMs: fwd, fwdTflops: flops / fwd / 1e9, fwdBwdMs: fb };
    console.log(`B=${B} H=${H} N=${N} D=${D} causal=${causal} ${name}: fwd ${fwd.toFixed(3)} ms (${(flops / fwd / 1e9).toFixed(2)} TFLOP/s) fwd+bwd ${fb.toFixed(3)} ms`);
    for (const t of [q, kk, v]) t.dispose();
  }
  k.setFlag('attention.f16', undefined);
  k.setFlag('attention.subgroups', undefined);
  rows.push(row);
}
writeFileSync(`${out}/kiln_variants.json`, JSON.stringify({ info, checks, rows, date: new Date().toISOString() }, null, 1));
process.exit(0);
