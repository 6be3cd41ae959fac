// Issue 17's GPU half: the fusion lab (bench/fusion_lab.mjs: eager, compiled replay-only, compiled fused; losses
// checked equal to eager step for step before any time is reported) on the lent GPU, at the lab's own size and at
// sizes that fill the GPU, with PyTorch's same step (bench/gpu/torch_fusion.py: eager and torch.compile, f32, TF32 off)
// beside each row, in one call.
//   1. For each size, `fusion_lab.mjs --json` in its own process (so one size's failure does not stop the rest):
//      dispatches per step and ms per step of each contender, whether its losses equal eager's.
//   2. PyTorch on the same sizes.
//   3. $OUT/fusion_report.json (everything) and $OUT/fusion_report.md (one table).
// Usage (device): bash bench/gpu/remote.sh bench/gpu/fusion_h200.mjs [--quick]
// Here (lavapipe): node bench/gpu/fusion_h200.mjs --quick --no-torch
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const quick = process.argv.includes('--quick');
const noTorch = process.argv.includes('--no-torch');
const OUT = process.env.OUT ?? process.env.KILN_BENCH_OUT ?? '/tmp';
const log = (...m) => console.log(...m);

// The issue's model, then sizes that give the GPU work (E a multiple of 64 per head, T long enough for attention).
const sizes = quick
  ? [{ L: 2, E: 32, B: 4, T: 16, H: 4, FF: 64, V: 67, rounds: 3, steps: 3 }]
  : [
      { L: 2, E: 32, B: 4, T: 16, H: 4, FF: 64, V: 67, rounds: 5, steps: 20 },
      { L: 4, E: 256, B: 16, T: 128, H: 4, FF: 1024, V: 512, rounds: 5, steps: 5 },
      { L: 4, E: 512, B: 16, T: 256, H: 8, FF: 2048, V: 2048, rounds: 3, steps: 3 },
    ];

const results = [];
for (const s of sizes) {
  const json = join(OUT, `fusion_${s.L}x${s.E}_${s.B}x${s.T}.json`);
  const args = Object.entries(s).flatMap(([key, v]) => [`--${key === 'L' ? 'layers' : key}`, String(v)]);
  const t0 = performance.now();
  try {
    const text = execFileSync(process.execPath, [join(ROOT, 'bench/fusion_lab.mjs'), ...args, '--json', json], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 240_000 });
    log(text.split('\n').filter((l) => !l.startsWith('  ') || /dispatches\/step/.test(l)).join('\n'));
    results.push({ size: s, lab: JSON.parse(readFileSync(json, 'utf8')), seconds: (performance.now() - t0) / 1000 });
  } catch (e) {
    log(`size ${JSON.stringify(s)} failed: ${String(e.message ?? e).slice(0, 400)}`);
    results.push({ size: s, error: String(e.message ?? e).slice(0, 400) });
  }
}

let torch = null;
if (!noTorch) {
  try {
    const text = execFileSync('python3', [join(ROOT, 'bench/gpu/torch_fusion.py'), JSON.stringify(sizes.map(({ rounds, steps, ...m }) => m))], { encoding: 'utf8', timeout: 300_000 });
    torch = JSON.parse(text.trim().split('\n').pop());
  } catch (e) {
    log(`PyTorch failed: ${String(e.message ?? e).slice(0, 400)}`);
  }
}

const key = (m) => `${m.L}/${m.E}/${m.B}/${m.T}`;
const lines = [
  '| size L/E/B/T | contender | dispatches/step | ms/step | vs kiln eager | losses = eager | PyTorch eager ms | torch.compile ms |',
  '|---|---|---:|---:|---:|---|---:|---:|',
];
for (const r of results) {
  const tr = (mode) => torch?.rows.find((x) => key(x.size) === key(r.size) && x.mode === mode);
  const tms = (mode) => (tr(mode)?.ms !== undefined ? tr(mode).ms.toFixed(2) : tr(mode)?.error ? 'error' : '-');
  if (!r.lab) {
    lines.push(`| ${key(r.size)} | failed | | | | | ${tms('eager')} | ${tms('compile')} |`);
    continue;
  }
  const eager = r.lab.contenders.find((c) => c.name === 'eager');
  for (const c of r.lab.contenders) {
    lines.push(`| ${key(r.size)} | ${c.name} | ${c.dispatches} | ${c.median.toFixed(2)} | ${(eager.median / c.median).toFixed(2)}x | ${c.lossesEqualEager ? 'yes' : 'NO'} | ${c.name === 'eager' ? tms('eager') : ''} | ${c.name === 'eager' ? tms('compile') : ''} |`);
  }
}
const md = [`# Fusion lab on ${results.find((r) => r.lab)?.lab.adapter ?? 'the adapter'}${torch ? `; PyTorch ${torch.torch} on ${torch.device}` : ''}`, '', ...lines, ''].join('\n');
writeFileSync(join(OUT, 'fusion_report.md'), md);
writeFileSync(join(OUT, 'fusion_report.json'), JSON.stringify({ date: new Date().toISOString(), results, torch }, null, 2));
log(md);
process.exit(results.some((r) => !r.lab || r.lab.contenders.some((c) => !c.lossesEqualEager)) ? 1 : 0);
