// Hand-written SVG charts for a bench report (no dependencies). Each function takes a report (bench/SCHEMA.md)
// and returns an SVG string; each copes with missing data (no peers, no peak probes, failed or errored cases).
//   speedupSvg(report)   fused-over-reference attention speedup vs N (report.mjs toSvg)
//   peersSvg(report)     kiln against peer engines: peer wall median / kiln wall median, per runtime, suite, size
//   rooflineSvg(report)  log-log roofline: arithmetic intensity (flops/bytes) vs achieved GFLOP/s, probed roofs
import { toSvg } from './report.mjs';

export const speedupSvg = toSvg;

/** Impl names that are kiln itself; every other impl is a peer engine. */
export const KILN_IMPLS = ['fused', 'reference', 'kiln'];
/** kiln's impl to compare peers against, per suite (attention: the fused kernel). */
const kilnImplFor = (suite) => (suite === 'attention' ? 'fused' : 'kiln');

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
const esc = (s) => String(s).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]);
const f1 = (x) => (Math.round(x * 10) / 10).toString();
const num = (x) => typeof x === 'number' && Number.isFinite(x);
const textW = (s, size = 11) => String(s).length * size * 0.58; // rough sans-serif advance

function variantText(c) {
  const p = c.params ?? {};
  if (c.suite === 'attention') return `${p.isCausal ? 'causal' : 'full'}${p.dtype === 'f16' ? ' f16' : ''}`;
  return '';
}
const shapeText = (c) => (Array.isArray(c.shape) ? c.shape.join('x') : String(c.shape ?? '?'));

function header(W, H, title, subtitle) {
  const p = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`];
  if (subtitle) p.push(`<text x="${W / 2}" y="40" text-anchor="middle" font-size="11" fill="#555">${esc(subtitle)}</text>`);
  return p;
}
function emptySvg(title, message) {
  const W = 640, H = 200;
  return [...header(W, H, title), `<text x="${W / 2}" y="${H / 2 + 10}" text-anchor="middle" fill="#555">${esc(message)}</text>`, '</svg>'].join('\n') + '\n';
}

/** Rows of (runtime, suite, shape, variant) with a kiln time and the peers measured there. */
export function peerComparisons(report) {
  const groups = new Map();
  for (const c of report?.cases ?? []) {
    if (!c || typeof c.impl !== 'string') continue;
    const key = [c.runtime, c.suite, shapeText(c), JSON.stringify(c.params ?? {})].join('|');
    const g = groups.get(key) ?? { runtime: c.runtime, suite: c.suite, shape: c.shape, variant: variantText(c), kiln: undefined, peers: [] };
    if (c.impl === kilnImplFor(c.suite)) g.kiln = c;
    else if (!KILN_IMPLS.includes(c.impl)) g.peers.push(c);
    groups.set(key, g);
  }
  const suiteOrder = ['attention', 'matmul', 'softmax', 'layernorm'];
  const rows = [];
  for (const g of groups.values()) {
    if (!g.peers.length) continue;
    const kilnMs = g.kiln?.status === 'ok' && num(g.kiln.medianMs) && g.kiln.medianMs > 0 ? g.kiln.medianMs : undefined;
    rows.push({
      runtime: g.runtime, suite: g.suite, shape: g.shape, variant: g.variant, kilnMs, kilnStatus: g.kiln ? g.kiln.status : 'missing',
      peers: g.peers.map((p) => {
        const ok = p.status === 'ok' && num(p.medianMs) && p.medianMs > 0;
        return { impl: p.impl, status: p.status, ms: ok ? p.medianMs : undefined, ratio: ok && kilnMs ? p.medianMs / kilnMs : undefined };
      }).sort((a, b) => a.impl.localeCompare(b.impl)),
    });
  }
  const size = (r) => (Array.isArray(r.shape) ? r.shape.reduce((a, b) => a * b, 1) : 0);
  const si = (s) => (suiteOrder.includes(s) ? suiteOrder.indexOf(s) : suiteOrder.length);
  return rows.sort((a, b) => String(a.runtime).localeCompare(String(b.runtime)) || si(a.suite) - si(b.suite) || String(a.suite).localeCompare(String(b.suite))
    || size(a) - size(b) || a.variant.localeCompare(b.variant));
}

/**
 * Horizontal bars on a log axis centred on 1: for each (runtime, suite, size) one bar per peer, its length the
 * ratio peer wall median / kiln wall median (> 1: kiln is faster). Peers are timed by wall clock only, so kiln's
 * wall median is used too. Failed / errored peers (or missing kiln times) are marked in place of a bar.
 */
export function peersSvg(report) {
  const title = 'kiln against peer engines: peer time / kiln time (wall median)';
  const rows = peerComparisons(report);
  if (!rows.length) return emptySvg(title, 'no peer-engine cases in this report (run with --peers)');
  const peerNames = [...new Set(rows.flatMap((r) => r.peers.map((p) => p.impl)))].sort();
  const color = (impl) => COLORS[peerNames.indexOf(impl) % COLORS.length];
  const labels = rows.map((r) => `${r.runtime} ${r.suite} ${shapeText(r)}${r.variant ? ' ' + r.variant : ''}`);
  const kilnLabel = (r) => (r.kilnMs ? `kiln ${r.suite === 'attention' ? 'fused ' : ''}${fmtMs(r.kilnMs)} ms` : `kiln ${r.kilnStatus}`);
  const barH = 14, gap = 3, groupPad = 12;
  const ml = Math.max(160, ...labels.map((l) => textW(l, 11) + 16), ...rows.map((r) => textW(kilnLabel(r), 10) + 16));
  const mr = 40, mt = 76, legendRowH = 18;
  const W = Math.max(760, Math.ceil(ml + 480 + mr));
  const plotH = rows.reduce((s, r) => s + Math.max(2, r.peers.length) * (barH + gap) + groupPad, 0);
  const mb = 56 + legendRowH * Math.ceil(peerNames.length / 4);
  const H = Math.ceil(mt + plotH + mb);
  const ratios = rows.flatMap((r) => r.peers.map((p) => p.ratio)).filter(num);
  let lo = Math.log10(Math.min(0.5, ...ratios)), hi = Math.log10(Math.max(2, ...ratios));
  lo = Math.floor(lo * 2) / 2; hi = Math.ceil(hi * 2) / 2; // half decades
  const x0 = ml, x1 = W - mr;
  const X = (v) => x0 + ((Math.log10(v) - lo) / (hi - lo)) * (x1 - x0);
  const p = header(W, H, title, 'bar length on a log scale from 1; right of the dashed line (> 1) kiln is faster, left the peer is faster');
  // grid
  const ticks = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) for (const m of [1, 2, 5]) { const v = m * 10 ** e; if (Math.log10(v) >= lo - 1e-9 && Math.log10(v) <= hi + 1e-9) ticks.push(v); }
  for (const v of ticks) {
    p.push(`<line x1="${f1(X(v))}" y1="${mt - 6}" x2="${f1(X(v))}" y2="${f1(mt + plotH)}" stroke="#e4e4e4"/>`,
      `<text x="${f1(X(v))}" y="${f1(mt + plotH + 16)}" text-anchor="middle" font-size="11">${v >= 1 ? v : v.toPrecision(1)}x</text>`);
  }
  p.push(`<text x="${f1((x0 + x1) / 2)}" y="${f1(mt + plotH + 36)}" text-anchor="middle">peer wall median / kiln wall median (log scale)</text>`);
  p.push(`<text x="${f1(X(1) + 6)}" y="${mt - 10}" font-size="11" fill="#2a7">kiln faster →</text>`,
    `<text x="${f1(X(1) - 6)}" y="${mt - 10}" font-size="11" fill="#a33" text-anchor="end">← peer faster</text>`);
  let y = mt;
  rows.forEach((r, i) => {
    const n = Math.max(2, r.peers.length), gh = n * (barH + gap);
    if (i % 2 === 0) p.push(`<rect x="4" y="${f1(y - groupPad / 2)}" width="${W - 8}" height="${f1(gh + groupPad)}" fill="#f6f7fb"/>`);
    p.push(`<text x="${f1(ml - 10)}" y="${f1(y + barH - 2)}" text-anchor="end" font-size="11">${esc(labels[i])}</text>`,
      `<text x="${f1(ml - 10)}" y="${f1(y + 2 * barH)}" text-anchor="end" font-size="10" fill="#666">${esc(kilnLabel(r))}</text>`);
    r.peers.forEach((q, j) => {
      const by = y + j * (barH + gap);
      if (q.ratio !== undefined) {
        const xa = X(Math.min(1, q.ratio)), xb = X(Math.max(1, q.ratio));
        const w = Math.max(1.5, xb - xa);
        const txt = `${q.ratio >= 10 ? q.ratio.toFixed(1) : q.ratio.toFixed(2)}x`;
        p.push(`<rect x="${f1(xa)}" y="${f1(by)}" width="${f1(w)}" height="${barH}" fill="${color(q.impl)}"><title>${esc(`${labels[i]}: ${q.impl} ${fmtMs(q.ms)} ms vs ${kilnLabel(r)} -> ${txt}`)}</title></rect>`);
        const right = q.ratio >= 1, label = `${txt} (${q.impl} ${fmtMs(q.ms)} ms)`, lw = textW(label, 10);
        // beside the bar's far end; inside it (white) where that would run off the plot and the bar is long enough
        // else on the other side of the 1x line (a short bar whose label would run into the row labels or off the edge)
        const fitsOut = right ? xb + 4 + lw <= W - 4 : xa - 4 - lw >= ml - 4;
        const inside = !fitsOut && w > lw + 8;
        const flip = !fitsOut && !inside;
        const tx = flip ? (right ? xa - 4 : xb + 4) : right ? (inside ? xb - 4 : xb + 4) : inside ? xa + 4 : xa - 4;
        const anchor = (right !== inside) !== flip ? 'start' : 'end';
        p.push(`<text x="${f1(tx)}" y="${f1(by + barH - 3)}" font-size="10" text-anchor="${anchor}"${inside ? ' fill="white"' : ''}>${esc(label)}</text>`);
      } else {
        const why = q.status !== 'ok' ? `${q.impl}: ${q.status} (not timed)` : `${q.impl} ${fmtMs(q.ms)} ms; no kiln time to compare`;
        p.push(`<rect x="${f1(X(1) - 5)}" y="${f1(by + 2)}" width="10" height="${barH - 4}" fill="none" stroke="${color(q.impl)}" stroke-dasharray="2 2"/>`,
          `<text x="${f1(X(1) + 9)}" y="${f1(by + barH - 3)}" font-size="10" fill="#a33">${esc(why)}</text>`);
      }
    });
    y += gh + groupPad;
  });
  p.push(`<line x1="${f1(X(1))}" y1="${mt - 6}" x2="${f1(X(1))}" y2="${f1(mt + plotH)}" stroke="#444" stroke-dasharray="4 3"/>`);
  // legend
  const ly = mt + plotH + 50;
  peerNames.forEach((name, k) => {
    const lx = x0 + (k % 4) * 150, yy = ly + Math.floor(k / 4) * legendRowH;
    p.push(`<rect x="${f1(lx)}" y="${f1(yy)}" width="12" height="12" fill="${color(name)}"/><text x="${f1(lx + 17)}" y="${f1(yy + 10)}" font-size="11">${esc(name)}</text>`);
  });
  p.push('</svg>');
  return p.join('\n') + '\n';
}

const fmtMs = (x) => (!num(x) ? '?' : x >= 100 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toPrecision(2));
const fmtSi = (v) => {
  if (v >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
};

/** Points for the roofline: ok cases with flops, bytes (> 0) and a rate. */
export function rooflinePoints(report) {
  return (report?.cases ?? []).filter((c) => c && c.status === 'ok' && num(c.flops) && c.flops > 0 && num(c.bytes) && c.bytes > 0 && num(c.gflops) && c.gflops > 0)
    .map((c) => ({ runtime: c.runtime, suite: c.suite, impl: c.impl, shape: c.shape, variant: variantText(c), ai: c.flops / c.bytes, gflops: c.gflops, basis: c.rateBasis }));
}

/**
 * Log-log roofline: x = arithmetic intensity (flops / algorithmic-minimum bytes), y = achieved GFLOP/s; per runtime
 * with probes, the probed FMA rate is the flat roof and the probed copy bandwidth (GB/s x intensity) the slanted one.
 */
export function rooflineSvg(report) {
  const title = 'kiln roofline: achieved GFLOP/s vs arithmetic intensity';
  const pts = rooflinePoints(report);
  const roofs = (report?.runtimes ?? []).filter((r) => r && r.peaks && (num(r.peaks.fma?.gflops) || num(r.peaks.copy?.gbps)))
    .map((r) => ({ runtime: r.runtime, fma: num(r.peaks.fma?.gflops) && r.peaks.fma.gflops > 0 ? r.peaks.fma.gflops : undefined, bw: num(r.peaks.copy?.gbps) && r.peaks.copy.gbps > 0 ? r.peaks.copy.gbps : undefined, timing: r.peaks.timing }));
  if (!pts.length && !roofs.length) return emptySvg(title, 'no timed cases with flops and bytes, and no peak probes, in this report');
  const W = 900, H = 600, m = { l: 74, r: 24, t: 56, b: 100 };
  const ais = pts.map((q) => q.ai), gfs = pts.map((q) => q.gflops);
  for (const r of roofs) if (r.fma && r.bw) ais.push(r.fma / r.bw);
  for (const r of roofs) if (r.fma) gfs.push(r.fma);
  if (!ais.length) ais.push(1);
  if (!gfs.length) gfs.push(1);
  const xlo = Math.floor(Math.log10(Math.min(...ais)) - 0.3), xhi = Math.ceil(Math.log10(Math.max(...ais)) + 0.3);
  const ylo = Math.floor(Math.log10(Math.min(...gfs)) - 0.3), yhi = Math.ceil(Math.log10(Math.max(...gfs)) + 0.15);
  const px0 = m.l, px1 = W - m.r, py0 = H - m.b, py1 = m.t;
  const X = (v) => px0 + ((Math.log10(v) - xlo) / (xhi - xlo)) * (px1 - px0);
  const Y = (v) => py0 - ((Math.log10(v) - ylo) / (yhi - ylo)) * (py0 - py1);
  const sub = roofs.length ? `roofs from the probes (${roofs.map((r) => `${r.runtime}: ${r.fma ? fmtSi(r.fma) + ' GFLOP/s FMA' : 'no FMA probe'}, ${r.bw ? fmtSi(r.bw) + ' GB/s copy' : 'no copy probe'}`).join('; ')})`
    : 'no peak probes in this report (--no-probes?): points only';
  const p = header(W, H, title, sub);
  p.push(`<defs><clipPath id="plot"><rect x="${px0}" y="${py1}" width="${px1 - px0}" height="${py0 - py1}"/></clipPath></defs>`);
  for (let e = xlo; e <= xhi; e++) {
    p.push(`<line x1="${f1(X(10 ** e))}" y1="${py1}" x2="${f1(X(10 ** e))}" y2="${py0}" stroke="#e4e4e4"/>`, `<text x="${f1(X(10 ** e))}" y="${py0 + 16}" text-anchor="middle" font-size="11">${fmtSi(10 ** e)}</text>`);
    for (let k = 2; k < 10 && e < xhi; k++) p.push(`<line x1="${f1(X(k * 10 ** e))}" y1="${py0}" x2="${f1(X(k * 10 ** e))}" y2="${py0 + 3}" stroke="#999"/>`);
  }
  for (let e = ylo; e <= yhi; e++) {
    p.push(`<line x1="${px0}" y1="${f1(Y(10 ** e))}" x2="${px1}" y2="${f1(Y(10 ** e))}" stroke="#e4e4e4"/>`, `<text x="${px0 - 6}" y="${f1(Y(10 ** e) + 4)}" text-anchor="end" font-size="11">${fmtSi(10 ** e)}</text>`);
    for (let k = 2; k < 10 && e < yhi; k++) p.push(`<line x1="${px0 - 3}" y1="${f1(Y(k * 10 ** e))}" x2="${px0}" y2="${f1(Y(k * 10 ** e))}" stroke="#999"/>`);
  }
  p.push(`<rect x="${px0}" y="${py1}" width="${px1 - px0}" height="${py0 - py1}" fill="none" stroke="#333"/>`);
  p.push(`<text x="${(px0 + px1) / 2}" y="${py0 + 38}" text-anchor="middle">arithmetic intensity (flops / byte, algorithmic minimum bytes; log scale)</text>`);
  p.push(`<text x="18" y="${(py0 + py1) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(py0 + py1) / 2})">achieved GFLOP/s (log scale)</text>`);
  // roofs
  const xmin = 10 ** xlo, xmax = 10 ** xhi;
  const placed = []; // label boxes for simple collision avoidance (roof labels first, then point labels)
  roofs.forEach((r, k) => {
    const dash = k ? ` stroke-dasharray="${6 + 2 * k} 4"` : '';
    const name = roofs.length > 1 ? `${r.runtime} ` : '';
    if (r.fma && r.bw) {
      const ridge = r.fma / r.bw;
      const a = Math.max(xmin, r.fma / r.bw / 1e6);
      p.push(`<polyline clip-path="url(#plot)" fill="none" stroke="#222" stroke-width="2"${dash} points="${f1(X(a))},${f1(Y(a * r.bw))} ${f1(X(ridge))},${f1(Y(r.fma))} ${f1(X(xmax))},${f1(Y(r.fma))}"/>`);
      p.push(`<text x="${f1(px1 - 4)}" y="${f1(Y(r.fma) - 6 - 14 * k)}" text-anchor="end" font-size="11">${esc(`${name}peak FMA ${fmtSi(r.fma)} GFLOP/s`)}</text>`);
      placed.push({ x0: px1 - 4 - textW(`${name}peak FMA ${fmtSi(r.fma)} GFLOP/s`), x1: px1, y0: Y(r.fma) - 18 - 14 * k, y1: Y(r.fma) + 3 },
        { x0: X(ridge), x1: px1, y0: Y(r.fma) - 3, y1: Y(r.fma) + 3 });
      // bandwidth label along the slanted roof, a bit left of the ridge
      const lxv = Math.max(xmin * 1.5, ridge / 30);
      const ang = (Math.atan2(Y(lxv * 10 * r.bw) - Y(lxv * r.bw), X(lxv * 10) - X(lxv)) * 180) / Math.PI;
      const bx = X(lxv), by = Y(lxv * r.bw) - 6 - 14 * k;
      if (by > py1 + 10 && by < py0) p.push(`<text x="${f1(bx)}" y="${f1(by)}" font-size="11" transform="rotate(${ang.toFixed(1)} ${f1(bx)} ${f1(by)})">${esc(`${name}copy ${fmtSi(r.bw)} GB/s`)}</text>`);
      p.push(`<line x1="${f1(X(ridge))}" y1="${f1(Y(r.fma))}" x2="${f1(X(ridge))}" y2="${py0}" stroke="#bbb" stroke-dasharray="2 3"/>`,
        `<text x="${f1(X(ridge) + 4)}" y="${py0 - 6 - 14 * k}" font-size="10" fill="#777">${esc(`${name}ridge ${fmtSi(ridge)} flop/B`)}</text>`);
    } else if (r.fma) {
      p.push(`<line clip-path="url(#plot)" x1="${px0}" y1="${f1(Y(r.fma))}" x2="${px1}" y2="${f1(Y(r.fma))}" stroke="#222" stroke-width="2"${dash}/>`,
        `<text x="${f1(px1 - 4)}" y="${f1(Y(r.fma) - 6 - 14 * k)}" text-anchor="end" font-size="11">${esc(`${name}peak FMA ${fmtSi(r.fma)} GFLOP/s (no copy probe)`)}</text>`);
    } else if (r.bw) {
      p.push(`<line clip-path="url(#plot)" x1="${f1(X(xmin))}" y1="${f1(Y(xmin * r.bw))}" x2="${f1(X(xmax))}" y2="${f1(Y(xmax * r.bw))}" stroke="#222" stroke-width="2"${dash}/>`);
    }
  });
  // points: colour by suite, shape by impl class (kiln filled circle, peer open square)
  const suites = [...new Set(pts.map((q) => q.suite))];
  const impls = [...new Set(pts.map((q) => q.impl))];
  const runtimes = [...new Set(pts.map((q) => q.runtime))];
  const col = (s) => COLORS[suites.indexOf(s) % COLORS.length];
  const overlaps = (b) => placed.some((o) => b.x0 < o.x1 && b.x1 > o.x0 && b.y0 < o.y1 && b.y1 > o.y0);
  const sorted = [...pts].sort((a, b) => b.gflops - a.gflops);
  for (const q of sorted) placed.push({ x0: X(q.ai) - 4, x1: X(q.ai) + 4, y0: Y(q.gflops) - 4, y1: Y(q.gflops) + 4 });
  for (const q of sorted) {
    const cx = X(q.ai), cy = Y(q.gflops);
    const label = `${runtimes.length > 1 ? q.runtime + ' ' : ''}${q.suite}${KILN_IMPLS.includes(q.impl) && q.impl !== 'kiln' ? ' ' + q.impl : ''}${!KILN_IMPLS.includes(q.impl) ? ' [' + q.impl + ']' : ''} ${shapeText(q)}${q.variant ? ' ' + q.variant : ''}`;
    const tip = `${label}: ${fmtSi(q.ai)} flop/B, ${fmtSi(q.gflops)} GFLOP/s (${q.basis ?? 'wall'} time)`;
    const peer = !KILN_IMPLS.includes(q.impl);
    p.push(peer
      ? `<rect x="${f1(cx - 4)}" y="${f1(cy - 4)}" width="8" height="8" fill="white" stroke="${col(q.suite)}" stroke-width="2"><title>${esc(tip)}</title></rect>`
      : `<circle cx="${f1(cx)}" cy="${f1(cy)}" r="4.5" fill="${col(q.suite)}" stroke="white" stroke-width="0.8"><title>${esc(tip)}</title></circle>`);
    const w = textW(label, 9.5), h = 11;
    const cands = [];
    for (const dy of [0, -11, 11, -22, 22, -33, 33, -44, 44]) { cands.push([cx + 7, cy + 3 + dy, 'start']); cands.push([cx - 7, cy + 3 + dy, 'end']); }
    let chosen;
    for (const [tx, ty, anchor] of cands) {
      const b = anchor === 'start' ? { x0: tx, x1: tx + w, y0: ty - h + 2, y1: ty + 2 } : { x0: tx - w, x1: tx, y0: ty - h + 2, y1: ty + 2 };
      if (b.x0 < px0 + 2 || b.x1 > px1 - 2 || b.y0 < py1 + 2 || b.y1 > py0 - 2) continue;
      if (overlaps(b)) continue;
      chosen = { tx, ty, anchor, b };
      break;
    }
    if (!chosen) continue; // no room: the <title> tooltip still names the point
    placed.push(chosen.b);
    if (Math.abs(chosen.ty - 3 - cy) > 6) {
      const lx = chosen.anchor === 'start' ? chosen.tx - 1 : chosen.tx + 1;
      p.push(`<line x1="${f1(cx)}" y1="${f1(cy)}" x2="${f1(lx)}" y2="${f1(chosen.ty - 3)}" stroke="#aaa" stroke-width="0.7"/>`);
    }
    p.push(`<text x="${f1(chosen.tx)}" y="${f1(chosen.ty)}" font-size="9.5" text-anchor="${chosen.anchor}" fill="#222">${esc(label)}</text>`);
  }
  if (!pts.length) p.push(`<text x="${(px0 + px1) / 2}" y="${(py0 + py1) / 2}" text-anchor="middle" fill="#555">no timed cases with flops and bytes in this report</text>`);
  // legend: suites (colour), kiln vs peer (marker)
  let lx = px0, ly = py0 + 58;
  const item = (svg, text) => {
    const w = 22 + textW(text, 11) + 16;
    if (lx + w > px1) { lx = px0; ly += 18; }
    p.push(svg(lx, ly), `<text x="${f1(lx + 16)}" y="${f1(ly + 4)}" font-size="11">${esc(text)}</text>`);
    lx += w;
  };
  for (const s of suites) item((x, y) => `<circle cx="${f1(x + 5)}" cy="${f1(y)}" r="4.5" fill="${col(s)}"/>`, s);
  if (impls.some((i) => !KILN_IMPLS.includes(i))) {
    item((x, y) => `<circle cx="${f1(x + 5)}" cy="${f1(y)}" r="4.5" fill="#888"/>`, 'kiln');
    item((x, y) => `<rect x="${f1(x + 1)}" y="${f1(y - 4)}" width="8" height="8" fill="white" stroke="#888" stroke-width="2"/>`, 'peer engine [name]');
  }
  const skipped = (report?.cases ?? []).filter((c) => c && c.status === 'ok' && !(num(c.bytes) && c.bytes > 0)).length;
  const notOk = (report?.cases ?? []).filter((c) => c && c.status !== 'ok').length;
  const notes = [skipped ? `${skipped} case(s) without bytes (e.g. trainstep) not plotted` : '', notOk ? `${notOk} failed/errored case(s) not plotted` : ''].filter(Boolean).join('; ');
  if (notes) p.push(`<text x="${px0}" y="${f1(ly + 20)}" font-size="10" fill="#666">${esc(notes)}</text>`);
  p.push('</svg>');
  return p.join('\n') + '\n';
}

/** All three charts, keyed by the file suffix they are written under ('' -> report.svg). */
export function allCharts(report) {
  return { '': speedupSvg(report), '-peers': peersSvg(report), '-roofline': rooflineSvg(report) };
}
