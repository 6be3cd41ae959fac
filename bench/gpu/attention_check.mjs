// Correctness of every attention kernel variant on this adapter, before anything is timed: fused forward and gradients
// (dq, dk, dv and the float mask's) against the reference path (matmul / softmax / matmul in f32), for f32 with the
// default variant (subgroup row folds and head-dim split where the adapter allows) and with subgroups off, and for f16
// (native variant, with shader-f16 from Dawn's vulkan_enable_f16_on_nvidia toggle) against the reference path on the
// same rounded inputs. Head dims 32 to 256, grouped-query heads, causal with Nq != Nk, a trainable [Nq, Nk] bias.
// Usage (device): bash bench/gpu/remote.sh bench/gpu/attention_check.mjs      exit 1 on any failure
import * as kiln from '../../dist/kiln.node.js';
import * as experimental from '../../dist/experimental.node.js';
import { writeFileSync } from 'node:fs';
import { maxErr } from './common.mjs';

// kiln's API and kiln/experimental (flags, tile choices, counters), which share one device.
const k = { ...kiln, ...experimental };

const info = await k.init({ dawnToggles: ['enable-dawn-features=vulkan_enable_f16_on_nvidia'] });
console.log(`adapter: ${info.description} features=${info.features.join(',')} subgroups=${JSON.stringify(info.subgroups ?? null)}`);
const hasF16 = info.features.includes('shader-f16');

const shapes = [
  // B, Hq, Hk, Nq, Nk, D, Dv, causal, bias
  [2, 3, 3, 37, 53, 32, 32, true, false],
  [1, 4, 2, 130, 97, 64, 64, false, true],
  [2, 8, 2, 65, 65, 64, 48, true, false],
  [1, 4, 4, 130, 130, 128, 128, true, false],
  [2, 2, 1, 77, 131, 128, 96, false, true],
  [1, 2, 2, 70, 70, 256, 256, false, false],
];
let ok = true;
const results = [];
for (const [B, Hq, Hk, Nq, Nk, D, Dv, causal, bias] of shapes) {
  for (const variant of ['f32', 'f32 no-subgroups', ...(hasF16 ? ['f16'] : [])]) {
    const f16 = variant === 'f16';
    k.setFlag('attention.subgroups', variant === 'f32 no-subgroups' ? false : undefined);
    const dtype = f16 ? 'f16' : 'f32';
    const mk = (shape, seed) => k.randn(shape, { seed, dtype, requiresGrad: true });
    const q = mk([B, Hq, Nq, D], 1), kk = mk([B, Hk, Nk, D], 2), v = mk([B, Hk, Nk, Dv], 3);
    const m = bias ? k.randn([Nq, Nk], { seed: 4, requiresGrad: true }) : null;
    const w = k.randn([B, Hq, Nq, Dv], { seed: 5 });
    const got = {};
    for (const impl of ['fused', 'reference']) {
      for (const t of [q, kk, v, m]) if (t) { t.grad?.dispose(); t.grad = null; }
      const o = k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal, attnMask: m, impl });
      k.tidy(() => o.float().mul(w).sum()).backward();
      got[impl] = [await o.toArray(), await q.grad.toArray(), await kk.grad.toArray(), await v.grad.toArray(), ...(m ? [await m.grad.toArray()] : [])];
      o.dispose();
    }
    const errs = got.fused.map((a, i) => maxErr(a, got.reference[i]));
    // f32: both paths compute in f32. f16: both round outputs and gradients once (2^-11 relative), the native delta
    // reads the rounded O, and the bias gradient sums B * Hq of those.
    const lim = f16 ? [2e-3, 1e-2, 1e-2, 1e-2, 3e-2] : [1e-5, 1e-4, 1e-4, 1e-4, 1e-4];
    const pass = errs.every((e, i) => e < lim[i]) && got.fused.every((a) => a.every(Number.isFinite));
    ok &&= pass;
    results.push({ shape: { B, Hq, Hk, Nq, Nk, D, Dv, causal, bias }, variant, errs, pass });
    console.log(`${variant.padEnd(16)} [B${B} Hq${Hq} Hk${Hk} Nq${Nq} Nk${Nk} D${D} Dv${Dv}]${causal ? ' causal' : ''}${bias ? ' bias' : ''}: ` +
      `out ${errs[0].toExponential(1)} dq ${errs[1].toExponential(1)} dk ${errs[2].toExponential(1)} dv ${errs[3].toExponential(1)}${bias ? ` dmask ${errs[4].toExponential(1)}` : ''} ${pass ? 'ok' : 'FAIL'}`);
    for (const t of [q, kk, v, m, w]) t?.dispose();
  }
}
k.setFlag('attention.subgroups', undefined);
writeFileSync(`${process.env.OUT ?? '/tmp'}/kiln_check.json`, JSON.stringify({ info, results, ok, date: new Date().toISOString() }, null, 1));
console.log(ok ? 'all variants agree with the reference path' : 'FAILURES above');
process.exit(ok ? 0 : 1);
