// The hand-written SVG charts (bench/lib/charts.mjs) on synthetic reports, including missing data.
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM without types
import { peersSvg, rooflineSvg, speedupSvg, peerComparisons, rooflinePoints, allCharts } from '../../bench/lib/charts.mjs';

const att = (impl: string, N: number, ms: number, status = 'ok', isCausal = false) => ({
  suite: 'attention', impl, runtime: 'node', shape: [1, 2, N, 64], dtype: 'f32', params: { isCausal },
  flops: 4 * 2 * N * N * 64, bytes: 4 * 4 * 2 * N * 64, status, medianMs: status === 'ok' ? ms : undefined,
  gflops: status === 'ok' ? (4 * 2 * N * N * 64) / ms / 1e6 : undefined, rateBasis: 'wall',
});
const op = (suite: string, impl: string, shape: number[], ms: number, flops: number, bytes: number, status = 'ok') => ({
  suite, impl, runtime: 'node', shape, dtype: 'f32', params: {}, flops, bytes, status,
  medianMs: status === 'ok' ? ms : undefined, gflops: status === 'ok' ? flops / ms / 1e6 : undefined, rateBasis: 'gpu',
});

const full = {
  schemaVersion: 1, date: '2026-11-22T00:00:00Z', kiln: { version: '0', commit: null, dirty: false },
  options: { suites: ['attention', 'matmul', 'softmax'], runs: 20, warmup: 3, quick: true },
  runtimes: [{ runtime: 'node', peaks: { timing: 'timestamp-query', fma: { gflops: 5000 }, copy: { gbps: 500 } } }],
  cases: [
    att('fused', 256, 1), att('reference', 256, 2), att('tfjs-webgpu', 256, 1.5), att('onnxruntime-webgpu', 256, 0.5),
    att('onnxruntime-cpu', 256, 40), att('fused', 1024, 4), att('reference', 1024, 0, 'error'), att('tfjs-webgpu', 1024, 0, 'failed'),
    op('matmul', 'kiln', [256, 256, 256], 0.2, 2 * 256 ** 3, 3 * 4 * 256 ** 2), op('matmul', 'onnxruntime-cpu', [256, 256, 256], 3, 2 * 256 ** 3, 3 * 4 * 256 ** 2),
    op('softmax', 'kiln', [2, 256, 256], 0, 5 * 2 * 256 * 256, 8 * 2 * 256 * 256, 'failed'), op('softmax', 'onnxruntime-webgpu', [2, 256, 256], 0.1, 5 * 2 * 256 * 256, 8 * 2 * 256 * 256),
    { ...op('trainstep', 'fused', [4, 256, 64], 10, 1e9, 0), params: { heads: 4 } },
  ],
};

/** Minimal well-formedness: one root <svg>, balanced tags, no stray '&' or '<' in text, no NaN / undefined leaking. */
function checkSvg(svg: string) {
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  expect(svg.trim().endsWith('</svg>')).toBe(true);
  expect(svg).not.toMatch(/NaN|undefined|Infinity|null/);
  expect(svg).not.toMatch(/&(?!amp;|lt;|gt;|quot;|#39;)/);
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)([^<>]*?)(\/?)>/g)) {
    const [, close, name, attrs, self] = m;
    expect(attrs).not.toMatch(/</);
    if (self) continue;
    if (close) expect(stack.pop()).toBe(name);
    else stack.push(name);
  }
  expect(stack).toEqual([]);
  // nothing outside tags but text: every '<' starts a tag
  expect(svg.replace(/<(\/?)([a-zA-Z]+)([^<>]*?)(\/?)>/g, '')).not.toMatch(/[<>]/);
  expect(svg.match(/<svg\b/g)).toHaveLength(1);
}

describe('bench charts', () => {
  it('peer comparisons treat any impl other than fused/reference/kiln as a peer', () => {
    const rows = peerComparisons(full);
    const a256 = rows.find((r: any) => r.suite === 'attention' && r.shape[2] === 256);
    expect(a256.kilnMs).toBe(1);
    expect(a256.peers.map((p: any) => p.impl)).toEqual(['onnxruntime-cpu', 'onnxruntime-webgpu', 'tfjs-webgpu']);
    expect(a256.peers.map((p: any) => p.ratio)).toEqual([40, 0.5, 1.5]);
    const a1024 = rows.find((r: any) => r.suite === 'attention' && r.shape[2] === 1024);
    expect(a1024.peers[0]).toMatchObject({ impl: 'tfjs-webgpu', status: 'failed', ratio: undefined });
    const sm = rows.find((r: any) => r.suite === 'softmax');
    expect(sm.kilnMs).toBeUndefined();
    expect(sm.peers[0].ratio).toBeUndefined();
  });

  it('peers chart: one bar per timed peer, failed peers marked, a legend entry per peer', () => {
    const svg = peersSvg(full);
    checkSvg(svg);
    for (const name of ['tfjs-webgpu', 'onnxruntime-webgpu', 'onnxruntime-cpu']) expect(svg).toContain(`>${name}</text>`);
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(4); // 3 at attention N=256 + matmul; softmax has no kiln time
    expect(svg).toContain('40.0x');
    expect(svg).toContain('tfjs-webgpu: failed (not timed)');
    expect(svg).toContain('no kiln time to compare');
  });

  it('roofline: both roofs, a labelled point per timed case with bytes, trainstep and failed cases skipped', () => {
    const pts = rooflinePoints(full);
    expect(pts).toHaveLength(9);
    expect(pts.some((q: any) => q.suite === 'trainstep')).toBe(false);
    const svg = rooflineSvg(full);
    checkSvg(svg);
    expect(svg).toContain('peak FMA 5k GFLOP/s');
    expect(svg).toContain('copy 500 GB/s');
    expect(svg).toContain('ridge 10 flop/B');
    expect(svg.match(/<circle [^>]*><title>/g)).toHaveLength(4); // kiln: fused x2, reference, matmul (reference N=1024 errored, softmax failed)
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(5); // peers: 3 at attention N=256, matmul, softmax (tfjs N=1024 failed)
    expect(svg).toContain('without bytes');
  });

  it('copes with no peers, no peaks and no cases', () => {
    const noPeers = { ...full, runtimes: [{ runtime: 'node', peaks: null }], cases: full.cases.filter((c) => ['fused', 'reference', 'kiln'].includes(c.impl)) };
    const p = peersSvg(noPeers);
    checkSvg(p);
    expect(p).toContain('no peer-engine cases');
    const r = rooflineSvg(noPeers);
    checkSvg(r);
    expect(r).toContain('no peak probes');
    expect(r).not.toContain('peak FMA');
    const empty = { ...full, runtimes: [{ runtime: 'node', error: 'no adapter' }], cases: [] };
    for (const svg of Object.values(allCharts(empty)) as string[]) checkSvg(svg);
    expect(rooflineSvg(empty)).toContain('no timed cases');
    expect(speedupSvg(empty)).toContain('no attention cases');
    // peaks present but no cases: the roofs alone
    const roofsOnly = { ...full, cases: [] };
    checkSvg(rooflineSvg(roofsOnly));
    expect(rooflineSvg(roofsOnly)).toContain('peak FMA');
    // only one of the probes
    const fmaOnly = { ...full, runtimes: [{ runtime: 'node', peaks: { timing: 'wall-clock', fma: { gflops: 100 }, copy: null } }] };
    checkSvg(rooflineSvg(fmaOnly));
    expect(rooflineSvg(fmaOnly)).toContain('no copy probe');
  });
});
