// The bench's flex suite (bench/lib/runner.mjs) and its report section (bench/lib/report.mjs): every variant is
// checked against float64 before it is timed, the report names each variant and gives its time over plain fused
// causal SDPA's, and the shared flex-ratio code (bench/lib/flex_ratio.mjs, which bench/flex_ratio.mjs runs in Node and
// in Chromium) checks and interleaves its contenders.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as experimental from '../../src/experimental';
// @ts-expect-error plain ESM without types
import { FLEX_VARIANTS, runBench } from '../../bench/lib/runner.mjs';
// @ts-expect-error plain ESM without types
import { flexRatios, toMarkdown } from '../../bench/lib/report.mjs';
// @ts-expect-error plain ESM without types
import { runFlexRatio } from '../../bench/lib/flex_ratio.mjs';
// @ts-expect-error plain ESM without types
import { validateReport } from '../../bench/lib/schema.mjs';

const k = { ...K, ...experimental };

describe('bench flex suite', () => {
  it('has issue 14\'s cases beside plain fused SDPA: soft-cap, ALiBi, a sliding window with and without a block mask', () => {
    expect(FLEX_VARIANTS).toEqual(['sdpa causal', 'softcap causal', 'alibi causal', 'alibi causal computed', 'window 128', 'window 128 + block mask']);
  });

  it('runs every variant checked against float64 first (N = 160: the window cuts keys), and the report gives each over SDPA', async () => {
    const part = await runBench(k, { suites: ['flex'], sizes: [160], runs: 20, warmup: 1, batch: 1, heads: 2, dim: 16, probes: false, runtime: 'node' });
    const variants = part.cases.map((c: any) => c.params.variant);
    // lavapipe binds 16 storage buffers a stage: the captured-slopes ALiBi runs here (Chromium's SwiftShader skips it).
    expect(variants).toEqual(FLEX_VARIANTS);
    for (const c of part.cases) {
      expect(c.status, `${c.params.variant}: ${c.error ?? ''}`).toBe('ok');
      expect(c.check.against).toBe('cpu-f64-sampled');
      expect(c.maxErr).toBeLessThan(1e-5);
    }
    const report = {
      schemaVersion: 1, kiln: { version: '0', commit: null }, date: new Date().toISOString(), options: { suites: ['flex'], runs: 20, warmup: 1, quick: false },
      runtimes: [{ runtime: 'node', adapter: part.adapter, skipped: part.skipped }], cases: part.cases,
    };
    expect(validateReport(report)).toEqual([]);
    const ratios = flexRatios(report);
    expect(ratios.map((r: any) => r.variant)).toEqual(FLEX_VARIANTS.slice(1));
    for (const r of ratios) expect(r.ratio).toBeCloseTo(r.ms / r.sdpaMs, 12);
    const bm = ratios.find((r: any) => r.variant === 'window 128 + block mask');
    const win = part.cases.find((c: any) => c.params.variant === 'window 128');
    expect(bm.blockMaskSpeedup).toBeCloseTo(win.medianMs / bm.ms, 12);
    const md = toMarkdown(report);
    expect(md).toContain('## Flex attention: each variant over plain fused causal SDPA');
    expect(md).toMatch(/\| node \| flex \| flex \| 1x2x160x16 \| softcap causal \|/);
    expect(md).toContain('Block mask: node 1x2x160x16');
  }, 240_000);

  it('flexRatios pairs cases by runtime and shape, skips untimed ones, and uses kernel time only where it is trustworthy', () => {
    const c = (runtime: string, N: number, variant: string, medianMs: number, extra = {}) =>
      ({ suite: 'flex', runtime, shape: [1, 2, N, 64], params: { variant }, status: 'ok', medianMs, ...extra });
    const report = {
      cases: [
        c('node', 256, 'sdpa causal', 10, { gpuMs: 8 }), c('node', 256, 'softcap causal', 12, { gpuMs: 10 }),
        c('browser', 256, 'sdpa causal', 20, { gpuMs: 30, gpuTimingSuspect: true }), c('browser', 256, 'softcap causal', 30, { gpuMs: 25 }),
        c('browser', 256, 'window 128', 40), c('browser', 256, 'window 128 + block mask', 10),
        { ...c('browser', 512, 'softcap causal', 1), status: 'failed' }, c('browser', 512, 'sdpa causal', 5),
      ],
    };
    const rows = flexRatios(report);
    expect(rows.map((r: any) => `${r.runtime} ${r.shape[2]} ${r.variant} ${r.ratio}`)).toEqual([
      'browser 256 softcap causal 1.5', 'browser 256 window 128 2', 'browser 256 window 128 + block mask 0.5', 'node 256 softcap causal 1.2',
    ]);
    expect(rows[0].gpuRatio).toBeUndefined();
    expect(rows[3].gpuRatio).toBeCloseTo(1.25, 12);
    expect(rows[2].blockMaskSpeedup).toBe(4);
  });

  it('the flex-ratio runner checks each contender against float64 and interleaves them (a small shape)', async () => {
    const lines: string[] = [];
    const r = await runFlexRatio(K, { shape: [1, 2, 40, 16], rounds: 2, reps: 1, windowN: 160, windowRounds: 2 }, { log: (m: string) => lines.push(m), load: () => 'test' });
    expect(r.parts.map((p: any) => Object.keys(p.ratios))).toEqual([
      ['flex softcap causal / sdpa causal', 'flex causal / sdpa causal', 'flex softcap causal / flex causal'], ['window 128 / window 128 + block mask'],
    ]);
    for (const p of r.parts) {
      for (const c of Object.values(p.contenders) as any[]) expect(c.check.maxErr).toBeLessThanOrEqual(c.check.tol);
      for (const q of Object.values(p.ratios) as any[]) expect(q.median).toBeGreaterThan(0);
      expect(p.loadBefore).toBe('test');
    }
    expect(r.parts[1].blockMask.visited).toBeLessThan(r.parts[1].blockMask.total);
    expect(lines.some((l) => l.includes('round 2'))).toBe(true);
  }, 240_000);
});
