// Tile sweep of the fused attention kernels (flag attention.tiles, applied to forward, dkdv and dq at once):
// each config is first checked against the reference path (forward and gradients), then timed.
// Usage (device): bash bench/gpu/remote.sh bench/gpu/attention_tiles.mjs
import * as kiln from '../../dist/kiln.node.js';
import * as experimental from '../../dist/experimental.node.js';
import { maxErr, timeIt as timeLoop } from './common.mjs';

// kiln's API and kiln/experimental (flags, tile choices, counters), which share one device.
const k = { ...kiln, ...experimental };

const timeIt = async (fn) => (await timeLoop(fn, { minMs: 100, maxIters: 100, repeats: 3 })).ms;

await k.init();

async function check(D, causal) {
  const [B, H, Nq, Nk] = [2, 2, 133, 133];
  const q = k.randn([B, H, Nq, D], { seed: 4, requiresGrad: true }), kk = k.randn([B, H, Nk, D], { seed: 5, requiresGrad: true }), v = k.randn([B, H, Nk, D], { seed: 6, requiresGrad: true });
  const w = k.randn([B, H, Nq, D], { seed: 7 });
  const res = [];
  for (const impl of ['fused', 'reference']) {
    for (const t of [q, kk, v]) { t.grad?.dispose(); t.grad = null; }
    const o = k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal, impl });
    o.mul(w).sum().backward();
    res.push([await o.toArray(), await q.grad.toArray(), await kk.grad.toArray(), await v.grad.toArray()]);
  }
  return Math.max(...res[0].map((x, i) => maxErr(x, res[1][i])));
}


const sweeps = {
  64: [null, { BLOCK_M: 32, BLOCK_N: 32, THREADS: 128 }, { BLOCK_M: 32, BLOCK_N: 32, THREADS: 64 }],
  128: [null, { BLOCK_M: 16, BLOCK_N: 16, THREADS: 64 }],
};
// --final: a short check of the chosen defaults at N = 2048 (plus one alternative forward for D = 128).
const final = process.argv.includes('--final');
if (final) {
  sweeps[64] = [null];
  sweeps[128] = [null, { forward: { BLOCK_M: 32, BLOCK_N: 32, THREADS: 64 } }];
}
for (const D of [64, 128]) {
  for (const cfg of sweeps[D]) {
    k.setFlag('attention.tiles', cfg ?? undefined);
    const tag = cfg ? JSON.stringify(cfg) : `default fwd ${JSON.stringify(k.chooseTiles('forward', D))} dkdv ${JSON.stringify(k.chooseTiles('dkdv', D))} dq ${JSON.stringify(k.chooseTiles('dq', D))}`;
    const e = Math.max(await check(D, false), await check(D, true));
    if (!(e < 1e-3)) { console.log(`D=${D} ${tag}: err ${e} FAIL, not timed`); continue; }
    for (const causal of [false, true]) {
      const [B, H, N] = process.env.SMALL ? [1, 1, 64] : final ? [4, 8, 2048] : [4, 8, 4096];
      const q = k.randn([B, H, N, D], { seed: 1, requiresGrad: true }), kk = k.randn([B, H, N, D], { seed: 2, requiresGrad: true }), v = k.randn([B, H, N, D], { seed: 3, requiresGrad: true });
      const flops = 4 * B * H * N * N * D * (causal ? 0.5 : 1);
      const fwd = await timeIt(() => k.tidy(() => { k.noGrad(() => k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal })); }));
      const fb = await timeIt(() => k.tidy(() => { const o = k.F.scaledDotProductAttention(q, kk, v, { isCausal: causal }); o.sum().backward(); for (const t of [q, kk, v]) { t.grad?.dispose(); t.grad = null; } }));
      console.log(`D=${D} N=${N} causal=${causal} ${tag}: err ${e.toExponential(1)} fwd ${fwd.toFixed(3)} ms (${(flops / fwd / 1e9).toFixed(2)} TFLOP/s) fwd+bwd ${fb.toFixed(3)} ms (${(3.5 * flops / fb / 1e9).toFixed(2)} TFLOP/s, ${(fb / fwd).toFixed(2)}x fwd)`);
      for (const t of [q, kk, v]) t.dispose();
    }
  }
}
k.setFlag('attention.tiles', undefined);
process.exit(0);
