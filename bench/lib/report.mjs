// Report writers: Markdown table, SVG chart (fused-over-reference attention speedup vs N), and --compare.
const fmt = (x, d = 3) => (x === undefined || x === null || Number.isNaN(x) ? '' : Number(x).toPrecision(d));
const fmtMs = (x) => (x === undefined || x === null ? '' : x >= 100 ? x.toFixed(1) : x >= 1 ? x.toFixed(3) : x.toFixed(4));

export function caseKey(c) {
  return [c.runtime, c.suite, c.impl, c.shape.join('x'), JSON.stringify(c.params ?? {})].join('|');
}

function paramText(c) {
  const p = c.params ?? {};
  if (c.suite === 'attention') return [p.isCausal ? 'causal' : '', p.dtype === 'f16' ? 'f16' : ''].filter(Boolean).join(' ');
  if (c.suite === 'flex') return p.variant ?? '';
  return '';
}

export function toMarkdown(report, comparison) {
  const L = [];
  L.push(`# kiln benchmark report`);
  L.push('');
  L.push(`- date: ${report.date}; kiln ${report.kiln.version} @ ${report.kiln.commit ?? 'unknown'}${report.kiln.dirty ? ' (dirty tree)' : ''}`);
  L.push(`- options: suites ${report.options.suites.join(', ')}; runs ${report.options.runs} after ${report.options.warmup} warm-up; ${report.options.quick ? 'quick' : 'full'}`);
  for (const r of report.runtimes) {
    const a = r.adapter ?? {};
    L.push(`- **${r.runtime}**: ${a.vendor ?? ''} ${a.architecture ?? ''} ${a.device ?? ''} (${a.description ?? ''})${a.isSoftware ? ' [software]' : ''}; ${r.userAgent ?? ''}`);
    if (r.peaks) L.push(`  - peaks (${r.peaks.timing}): FMA ${fmt(r.peaks.fma?.gflops, 4)} GFLOP/s, copy ${fmt(r.peaks.copy?.gbps, 4)} GB/s`);
    if (r.overhead) L.push(`  - dispatch overhead: ${fmt(r.overhead.perDispatchUs, 3)} us/dispatch (200 tiny adds, one sync); one add round trip ${fmtMs(r.overhead.singleDispatchRoundTripMs)} ms`);
    if (r.peers?.length) L.push(`  - peers: ${r.peers.map((p) => `${p.engine}${p.version ? ` ${p.version}` : ''}${p.provider ? ` (${p.provider})` : ''}${p.error ? ` **ERROR: ${p.error}**` : ''}`).join('; ')}`);
    for (const s of r.skipped ?? []) L.push(`  - skipped ${s.suite}: ${s.reason}`);
    if (r.error) L.push(`  - runtime error: ${r.error}`);
  }
  L.push('');
  L.push('Times in ms: wall = performance.now() to queue.onSubmittedWorkDone (median [q1, q3], min..max); gpu = summed kernel time from timestamp queries (median). GFLOP/s and GB/s use gpu time when present, else wall. Bytes are the algorithmic minimum (inputs read once, output written once).');
  L.push('');
  L.push('| runtime | suite | impl | shape | variant | wall median | q1 | q3 | min | max | gpu median | GFLOP/s | GB/s | % peak FLOP | % peak BW | max err | check |');
  L.push('|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const c of report.cases) {
    const chk = c.check ? `${c.check.against}${c.check.maxErrVsReference !== undefined ? `, vs ref ${fmt(c.check.maxErrVsReference, 2)}` : ''}${c.status !== 'ok' ? ` **${c.status.toUpperCase()}**` : ''}` : c.status;
    L.push(`| ${c.runtime} | ${c.suite} | ${c.impl} | ${c.shape.join('x')} | ${paramText(c)} | ${fmtMs(c.medianMs)} | ${fmtMs(c.q1)} | ${fmtMs(c.q3)} | ${fmtMs(c.minMs)} | ${fmtMs(c.maxMs)} | ${fmtMs(c.gpuMs)} | ${fmt(c.gflops)} | ${fmt(c.gbps)} | ${fmt(c.pctPeakFlops, 2)} | ${fmt(c.pctPeakBw, 2)} | ${fmt(c.maxErr, 2)} | ${chk} |`);
  }
  const sp = speedups(report);
  if (sp.length) {
    L.push('');
    L.push('## Attention: fused over reference (wall median ratio; > 1 means fused is faster)');
    L.push('');
    // Peer columns (only peers with a timed case): peer ms and peer ms / fused ms (> 1 means kiln's fused is faster).
    const peers = PEER_IMPLS.filter((p) => sp.some((s) => s.peerMs[p.impl] !== undefined));
    L.push(`| runtime | variant | N | reference ms | fused ms | speedup | gpu speedup |${peers.map((p) => ` ${p.impl} ms | fused vs ${p.short} |`).join('')}`);
    L.push(`|---|---|---:|---:|---:|---:|---:|${peers.map(() => '---:|---:|').join('')}`);
    for (const s of sp) L.push(`| ${s.runtime} | ${s.causal ? 'causal' : 'full'}${s.dtype === 'f16' ? ' f16' : ''} | ${s.N} | ${fmtMs(s.refMs)} | ${fmtMs(s.fusedMs)} | ${fmt(s.speedup)} | ${fmt(s.gpuSpeedup)} |${peers.map((p) => ` ${fmtMs(s.peerMs[p.impl])} | ${fmt(s.peerMs[p.impl] / s.fusedMs)} |`).join('')}`);
  }
  const fr = flexRatios(report);
  if (fr.length) {
    L.push('');
    L.push('## Flex attention: each variant over plain fused causal SDPA (same runtime and shape; wall medians of sequential cases, < 1 means faster)');
    L.push('');
    L.push('| runtime | shape | variant | variant ms | SDPA causal ms | variant / SDPA | gpu variant / SDPA |');
    L.push('|---|---|---|---:|---:|---:|---:|');
    for (const r of fr) L.push(`| ${r.runtime} | ${r.shape.join('x')} | ${r.variant} | ${fmtMs(r.ms)} | ${fmtMs(r.sdpaMs)} | ${fmt(r.ratio)} | ${fmt(r.gpuRatio)} |`);
    const bm = fr.filter((r) => r.blockMaskSpeedup !== undefined);
    if (bm.length) {
      L.push('');
      L.push(`Block mask: ${bm.map((r) => `${r.runtime} ${r.shape.join('x')}: the window without one takes ${fmt(r.blockMaskSpeedup)}x the time with one`).join('; ')}.`);
    }
  }
  const profiled = report.cases.filter((c) => Array.isArray(c.profile) && c.profile.length);
  for (const c of profiled) {
    L.push('');
    L.push(`## Training step profile: ${c.runtime}, attention ${c.impl}, [${c.shape.join(',')}] (one step, GPU time per kernel)`);
    L.push('');
    L.push('Bytes bound: the summed sizes of the storage buffers each dispatch binds (pooled buffers round sizes up by at most 25%), an upper bound on the bytes it moves; GB/s = bytes bound / gpu time.');
    L.push('');
    L.push('| kernel | dispatches | gpu ms | share | bytes bound | GB/s (upper bound) |');
    L.push('|---|---:|---:|---:|---:|---:|');
    for (const p of c.profile) {
      const mb = p.boundBytes ? `${(p.boundBytes / 2 ** 20).toFixed(2)} MiB` : '';
      const gbps = p.boundBytes && p.gpuMs ? fmt(p.boundBytes / (p.gpuMs * 1e6)) : '';
      L.push(`| ${p.kernel} | ${p.dispatches} | ${fmtMs(p.gpuMs)} | ${(100 * p.share).toFixed(1)}% | ${mb} | ${gbps} |`);
    }
  }
  if (comparison) {
    L.push('');
    L.push(`## Compared with ${comparison.against}`);
    L.push('');
    L.push(comparison.regressions.length ? `${comparison.regressions.length} regression(s) (> ${comparison.thresholdPct}% slower):` : `No regressions (> ${comparison.thresholdPct}% slower) among ${comparison.matched} matched cases.`);
    if (comparison.rows.length) {
      L.push('');
      L.push('| case | metric | old ms | new ms | change | IQRs overlap (likely noise) |');
      L.push('|---|---|---:|---:|---:|---|');
      for (const r of comparison.rows) L.push(`| ${r.key} | ${r.metric} | ${fmtMs(r.oldMs)} | ${fmtMs(r.newMs)} | ${r.changePct >= 0 ? '+' : ''}${r.changePct.toFixed(1)}%${r.regression ? ' **REGRESSION**' : ''} | ${r.iqrOverlap === undefined ? '' : r.iqrOverlap ? 'yes' : 'no'} |`);
    }
  }
  return L.join('\n') + '\n';
}

/** Peer impls with a column in the attention speedup table (only timed, check-passed cases count). */
export const PEER_IMPLS = [
  { impl: 'tfjs-webgpu', short: 'tfjs' },
  { impl: 'onnxruntime-webgpu', short: 'ORT webgpu' },
  { impl: 'onnxruntime-cpu', short: 'ORT cpu' },
];

export function speedups(report) {
  const by = new Map();
  for (const c of report.cases) {
    if (c.suite !== 'attention' || c.status !== 'ok') continue;
    const dtype = c.params?.dtype ?? 'f32';
    const key = `${c.runtime}|${c.params?.isCausal ? 1 : 0}|${dtype}|${c.shape.join('x')}`;
    const e = by.get(key) ?? { runtime: c.runtime, causal: !!c.params?.isCausal, dtype, N: c.shape[2], shape: c.shape };
    e[c.impl] = c;
    by.set(key, e);
  }
  const out = [];
  for (const e of by.values()) {
    if (!e.fused || !e.reference) continue;
    out.push({
      runtime: e.runtime, causal: e.causal, dtype: e.dtype, N: e.N, shape: e.shape, tfjsMs: e['tfjs-webgpu']?.medianMs,
      peerMs: Object.fromEntries(PEER_IMPLS.map((p) => [p.impl, e[p.impl]?.medianMs])),
      refMs: e.reference.medianMs, fusedMs: e.fused.medianMs, speedup: e.reference.medianMs / e.fused.medianMs,
      gpuSpeedup: e.reference.gpuMs && e.fused.gpuMs ? e.reference.gpuMs / e.fused.gpuMs : undefined,
    });
  }
  return out.sort((a, b) => a.runtime.localeCompare(b.runtime) || a.dtype.localeCompare(b.dtype) || Number(a.causal) - Number(b.causal) || a.N - b.N);
}

/**
 * Per flex case with a plain fused causal SDPA case of the same runtime and shape (both timed): its wall median over
 * SDPA's (and the GPU-time ratio where both have trustworthy kernel times); the block-masked window row also carries
 * the unmasked window's time over its own.
 */
export function flexRatios(report) {
  const ok = report.cases.filter((c) => c.suite === 'flex' && c.status === 'ok');
  const key = (c) => `${c.runtime}|${c.shape.join('x')}`;
  const find = (c, variant) => ok.find((o) => key(o) === key(c) && o.params?.variant === variant);
  const gpu = (c) => (c.gpuMs !== undefined && !c.gpuTimingSuspect ? c.gpuMs : undefined);
  const out = [];
  for (const c of ok) {
    const sdpa = find(c, 'sdpa causal');
    if (!sdpa || c === sdpa) continue;
    const row = { runtime: c.runtime, shape: c.shape, variant: c.params.variant, ms: c.medianMs, sdpaMs: sdpa.medianMs, ratio: c.medianMs / sdpa.medianMs };
    if (gpu(c) !== undefined && gpu(sdpa) !== undefined) row.gpuRatio = gpu(c) / gpu(sdpa);
    const unmasked = c.params.variant.endsWith(' + block mask') ? find(c, c.params.variant.replace(' + block mask', '')) : undefined;
    if (unmasked) row.blockMaskSpeedup = unmasked.medianMs / c.medianMs;
    out.push(row);
  }
  return out.sort((a, b) => a.runtime.localeCompare(b.runtime) || a.shape[2] - b.shape[2]);
}

const esc = (s) => String(s).replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch]);

/** Hand-written SVG line chart: speedup (reference / fused wall median) vs N, one line per runtime x variant. */
export function toSvg(report) {
  const W = 640, H = 400, m = { l: 60, r: 170, t: 40, b: 50 };
  const sp = speedups(report);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - 60}" y="22" text-anchor="middle" font-size="14">kiln attention: fused over reference speedup vs N</text>`];
  if (!sp.length) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no attention cases with both impls in this report</text></svg>`);
    return parts.join('\n') + '\n';
  }
  const Ns = [...new Set(sp.map((s) => s.N))].sort((a, b) => a - b);
  const lx = Ns.map(Math.log2);
  const x0 = Math.min(...lx), x1 = Math.max(...lx) === x0 ? x0 + 1 : Math.max(...lx);
  const ymax = Math.max(1.2, ...sp.map((s) => s.speedup)) * 1.1;
  const X = (n) => m.l + ((Math.log2(n) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (v) => H - m.b - (v / ymax) * (H - m.t - m.b);
  parts.push(`<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`, `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`);
  for (const n of Ns) parts.push(`<text x="${X(n)}" y="${H - m.b + 18}" text-anchor="middle">${n}</text>`);
  const step = ymax > 8 ? 2 : ymax > 3 ? 1 : 0.5;
  for (let v = 0; v <= ymax; v += step) parts.push(`<line x1="${m.l - 4}" y1="${Y(v)}" x2="${W - m.r}" y2="${Y(v)}" stroke="#ddd"/><text x="${m.l - 8}" y="${Y(v) + 4}" text-anchor="end">${v}</text>`);
  parts.push(`<line x1="${m.l}" y1="${Y(1)}" x2="${W - m.r}" y2="${Y(1)}" stroke="#888" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">sequence length N (log scale)</text>`);
  parts.push(`<text x="16" y="${(m.t + H - m.b) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(m.t + H - m.b) / 2})">speedup (reference ms / fused ms)</text>`);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
  const series = new Map();
  for (const s of sp) {
    const name = `${s.runtime} ${s.causal ? 'causal' : 'full'}${s.dtype === 'f16' ? ' f16' : ''}`;
    if (!series.has(name)) series.set(name, []);
    series.get(name).push(s);
  }
  let i = 0;
  for (const [name, pts] of series) {
    const c = colors[i % colors.length];
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((p) => `${X(p.N).toFixed(1)},${Y(p.speedup).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) parts.push(`<circle cx="${X(p.N).toFixed(1)}" cy="${Y(p.speedup).toFixed(1)}" r="3.5" fill="${c}"><title>${esc(name)} N=${p.N}: ${p.speedup.toFixed(2)}x</title></circle>`);
    parts.push(`<rect x="${W - m.r + 12}" y="${m.t + 18 * i}" width="12" height="12" fill="${c}"/><text x="${W - m.r + 30}" y="${m.t + 18 * i + 10}">${esc(name)}</text>`);
    i++;
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** Matches cases by (runtime, suite, impl, shape, params); compares gpu medians when both have them, else wall. */
export function compareReports(oldReport, newReport, thresholdPct = 10, against = 'old report') {
  const old = new Map(oldReport.cases.filter((c) => c.status === 'ok').map((c) => [caseKey(c), c]));
  const rows = [];
  let matched = 0;
  for (const c of newReport.cases) {
    if (c.status !== 'ok') continue;
    const o = old.get(caseKey(c));
    if (!o) continue;
    matched++;
    const metric = o.gpuMs !== undefined && c.gpuMs !== undefined ? 'gpuMs' : 'medianMs';
    const changePct = (100 * (c[metric] - o[metric])) / o[metric];
    // Whether the interquartile ranges overlap: a > threshold change with overlapping IQRs is likely noise.
    const [q1, q3] = metric === 'gpuMs' ? ['gpuQ1', 'gpuQ3'] : ['q1', 'q3'];
    const iqrOverlap = c[q1] !== undefined && o[q3] !== undefined ? c[q1] <= o[q3] && o[q1] <= c[q3] : undefined;
    rows.push({ key: caseKey(c), metric, oldMs: o[metric], newMs: c[metric], changePct, regression: changePct > thresholdPct, iqrOverlap });
  }
  return { against, thresholdPct, matched, rows, regressions: rows.filter((r) => r.regression) };
}
