// Attention heatmaps as SVG (text, for pages and reports) and PNG (bytes, via fast-png).
import { encode } from 'fast-png';
import { ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import type { TensorBase as Tensor } from '../tensor/base.js';

export interface Matrix {
  rows: number;
  cols: number;
  /** Row-major values. */
  data: ArrayLike<number>;
}

export interface HeatmapOptions {
  rowLabels?: string[];
  colLabels?: string[];
  title?: string;
  /** Cell size in pixels (default 24 for SVG, 8 for PNG). */
  cell?: number;
  /** Value mapped to the lowest colour (default: the minimum, or 0 for probabilities). */
  min?: number;
  /** Value mapped to the highest colour (default: the maximum). */
  max?: number;
  /** Write each cell's value in the SVG (default: when the matrix is at most 16 x 16). */
  showValues?: boolean;
}

const HEATMAP_KEYS = ['rowLabels', 'colLabels', 'title', 'cell', 'min', 'max', 'showValues'] as const;

// Anchors of a perceptually ordered dark-blue -> teal -> yellow ramp.
const RAMP: [number, number, number][] = [
  [13, 8, 135],
  [84, 2, 163],
  [139, 10, 165],
  [185, 50, 137],
  [219, 92, 104],
  [244, 136, 73],
  [254, 188, 43],
  [240, 249, 33],
];

/** RGB for t in [0, 1]. */
export function colorAt(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const a = RAMP[i], b = RAMP[i + 1];
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f)) as [number, number, number];
}

function range(m: Matrix, o: HeatmapOptions): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < m.data.length; i++) {
    const v = m.data[i];
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) lo = hi = 0;
  const min = o.min ?? (lo >= 0 && hi <= 1 ? 0 : lo);
  const max = o.max ?? hi;
  return [min, max > min ? max : min + 1];
}

function check(m: Matrix, o: HeatmapOptions): void {
  if (!Number.isInteger(m.rows) || !Number.isInteger(m.cols) || m.rows < 1 || m.cols < 1 || m.data.length !== m.rows * m.cols) {
    throw new ShapeError(`heatmap: a ${m.rows} x ${m.cols} matrix needs ${m.rows * m.cols} values, got ${m.data.length}`);
  }
  if (o.rowLabels && o.rowLabels.length !== m.rows) throw new ShapeError(`heatmap: ${o.rowLabels.length} row labels for ${m.rows} rows`);
  if (o.colLabels && o.colLabels.length !== m.cols) throw new ShapeError(`heatmap: ${o.colLabels.length} column labels for ${m.cols} columns`);
  if (o.cell !== undefined && !(o.cell >= 1)) throw new ValueError(`heatmap: cell must be >= 1, got ${o.cell}`);
}

const esc = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** An SVG document drawing the matrix, with optional row and column labels (queries and keys). */
export function heatmapSVG(m: Matrix, options?: HeatmapOptions): string {
  const o = checkOptions('heatmapSVG', options, HEATMAP_KEYS);
  check(m, o);
  const cell = o.cell ?? 24;
  const [min, max] = range(m, o);
  const charW = 7;
  const left = o.rowLabels ? Math.min(200, 10 + charW * Math.max(...o.rowLabels.map((l) => l.length))) : 4;
  const top = (o.title ? 24 : 4) + (o.colLabels ? Math.min(200, 10 + charW * Math.max(...o.colLabels.map((l) => l.length))) : 0);
  const width = left + m.cols * cell + 4;
  const height = top + m.rows * cell + 4;
  const show = o.showValues ?? (m.rows <= 16 && m.cols <= 16 && cell >= 20);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  if (o.title) parts.push(`<text x="${left}" y="16" font-size="13" font-weight="bold">${esc(o.title)}</text>`);
  for (let r = 0; r < m.rows; r++) {
    for (let c = 0; c < m.cols; c++) {
      const v = m.data[r * m.cols + c];
      const t = (v - min) / (max - min);
      const [R, G, Bc] = colorAt(t);
      const x = left + c * cell, y = top + r * cell;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="rgb(${R},${G},${Bc})"><title>${r},${c}: ${Number(v).toPrecision(4)}</title></rect>`);
      if (show) parts.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle" fill="${t > 0.6 ? 'black' : 'white'}" font-size="9">${Number(v).toFixed(2)}</text>`);
    }
  }
  if (o.rowLabels) o.rowLabels.forEach((l, r) => parts.push(`<text x="${left - 6}" y="${top + r * cell + cell / 2 + 4}" text-anchor="end">${esc(l)}</text>`));
  if (o.colLabels) {
    o.colLabels.forEach((l, c) => {
      const x = left + c * cell + cell / 2 + 4, y = top - 6;
      parts.push(`<text x="${x}" y="${y}" transform="rotate(-60 ${x} ${y})">${esc(l)}</text>`);
    });
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** PNG bytes of the matrix, each value a cell x cell square (no labels). */
export function heatmapPNG(m: Matrix, options?: HeatmapOptions): Uint8Array {
  const o = checkOptions('heatmapPNG', options, HEATMAP_KEYS);
  check(m, o);
  const cell = Math.round(o.cell ?? 8);
  const [min, max] = range(m, o);
  const width = m.cols * cell, height = m.rows * cell;
  const px = new Uint8Array(width * height * 3);
  for (let r = 0; r < m.rows; r++) {
    for (let c = 0; c < m.cols; c++) {
      const rgb = colorAt((m.data[r * m.cols + c] - min) / (max - min));
      for (let y = r * cell; y < (r + 1) * cell; y++) {
        for (let x = c * cell; x < (c + 1) * cell; x++) px.set(rgb, (y * width + x) * 3);
      }
    }
  }
  return encode({ width, height, data: px, channels: 3, depth: 8 });
}

/** Reads a [rows, cols] slice of an attention-weights tensor; leading dims pick `index` (default 0s). */
export async function matrixOf(t: Tensor, index: number[] = []): Promise<Matrix> {
  if (t.rank < 2) throw new ShapeError(`heatmap: weights ${fmtShape(t.shape)} need at least 2 dims`);
  const lead = t.shape.slice(0, -2);
  const idx = lead.map((_, i) => index[i] ?? 0);
  idx.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v >= lead[i]) throw new ShapeError(`heatmap: index ${JSON.stringify(index)} is out of range for weights ${fmtShape(t.shape)}`);
  });
  const rows = t.shape[t.rank - 2], cols = t.shape[t.rank - 1];
  const all = await t.toArray();
  let off = 0;
  for (let i = 0; i < lead.length; i++) off = off * lead[i] + idx[i];
  return { rows, cols, data: Array.from(all.subarray(off * rows * cols, (off + 1) * rows * cols)) };
}

/** SVG heatmap straight from a weights tensor [..., Nq, Nk]. */
export async function attentionHeatmapSVG(t: Tensor, options?: HeatmapOptions & { index?: number[] }): Promise<string> {
  const { index, ...o } = checkOptions('attentionHeatmapSVG', options, [...HEATMAP_KEYS, 'index']);
  return heatmapSVG(await matrixOf(t, index), o);
}
export async function attentionHeatmapPNG(t: Tensor, options?: HeatmapOptions & { index?: number[] }): Promise<Uint8Array> {
  const { index, ...o } = checkOptions('attentionHeatmapPNG', options, [...HEATMAP_KEYS, 'index']);
  return heatmapPNG(await matrixOf(t, index), o);
}
