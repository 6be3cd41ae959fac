// Printing tensors as PyTorch does: nested brackets, one number format for all elements (fixed with 4 decimals, or
// scientific when the magnitudes call for it, or integers), summarised past 1000 elements to the first and last 3 of
// every dim ('...' between), then the shape, dtype and requiresGrad.
import type { DType } from './dtype.js';

/** PyTorch's print options: summarise past `threshold` elements, keeping `edgeItems` at each end of each dim. */
export const PRINT = { threshold: 1000, edgeItems: 3, precision: 4, lineWidth: 100 };

function numberFormat(values: ArrayLike<number>, dtype: DType): (v: number) => string {
  if (dtype === 'bool') return (v) => (v ? 'true' : 'false');
  if (dtype === 'i32') return (v) => String(v);
  let maxAbs = 0;
  let minAbs = Infinity;
  let allInt = true;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    const a = Math.abs(v);
    if (a > maxAbs) maxAbs = a;
    if (a > 0 && a < minAbs) minAbs = a;
    if (!Number.isInteger(v)) allInt = false;
  }
  const special = (v: number) => (Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf');
  const p = PRINT.precision;
  if (allInt && maxAbs < 1e8) return (v) => (Number.isFinite(v) ? `${v.toFixed(0)}.` : special(v));
  const sci = maxAbs >= 1e8 || (minAbs < 10 ** -p && minAbs !== Infinity) || (maxAbs / minAbs > 1000 && maxAbs >= 1000);
  if (sci) return (v) => (Number.isFinite(v) ? v.toExponential(p).replace(/e([+-])(\d)$/, 'e$10$2') : special(v));
  return (v) => (Number.isFinite(v) ? v.toFixed(p) : special(v));
}

/** The kept indices of a dim of size n: all, or the first and last edgeItems with -1 marking the gap. */
function kept(n: number, summarise: boolean): number[] {
  const e = PRINT.edgeItems;
  if (!summarise || n <= 2 * e) return Array.from({ length: n }, (_, i) => i);
  return [...Array.from({ length: e }, (_, i) => i), -1, ...Array.from({ length: e }, (_, i) => n - e + i)];
}

/** The values of a row-major array of `shape` as PyTorch prints them, without the `tensor(` prefix. */
export function formatValues(values: ArrayLike<number>, shape: readonly number[], dtype: DType, indent: number): string {
  const n = values.length;
  const summarise = n > PRINT.threshold;
  // Format only what is shown, so the width comes from the shown numbers.
  const shown: number[] = [];
  const collect = (d: number, base: number) => {
    if (d === shape.length) return void shown.push(values[base]);
    const stride = shape.slice(d + 1).reduce((a, b) => a * b, 1);
    for (const i of kept(shape[d], summarise)) if (i >= 0) collect(d + 1, base + i * stride);
  };
  collect(0, 0);
  const fmt = numberFormat(shown, dtype);
  const width = shown.reduce((w, v) => Math.max(w, fmt(v).length), 0);
  const cell = (v: number) => fmt(v).padStart(width);
  if (shape.length === 0) return fmt(values[0]);
  const rec = (d: number, base: number, pad: number): string => {
    const stride = shape.slice(d + 1).reduce((a, b) => a * b, 1);
    const idx = kept(shape[d], summarise);
    if (d === shape.length - 1) {
      const parts = idx.map((i) => (i < 0 ? '...' : cell(values[base + i])));
      // Wrap long rows as PyTorch does.
      const lines: string[] = [];
      let line = '';
      for (const part of parts) {
        const next = line ? `${line}, ${part}` : part;
        if (line && pad + next.length + 2 > PRINT.lineWidth) {
          lines.push(line + ',');
          line = part;
        } else line = next;
      }
      lines.push(line);
      return `[${lines.join('\n' + ' '.repeat(pad + 1))}]`;
    }
    const sep = ',' + '\n'.repeat(shape.length - d - 1) + ' '.repeat(pad + 1);
    return `[${idx.map((i) => (i < 0 ? '...' : rec(d + 1, base + i * stride, pad + 1))).join(sep)}]`;
  };
  return rec(0, 0, indent);
}

/** `tensor(<values>, shape=[..], dtype=.., requiresGrad=true, gradFn=..)`; values null: `<body>` given instead. */
export function formatTensor(values: ArrayLike<number> | null, body: string, shape: readonly number[], dtype: DType, extras: string[]): string {
  const head = 'tensor(';
  const v = values ? formatValues(values, shape, dtype, head.length) : body;
  return `${head}${v}, ${[`shape=[${shape.join(', ')}]`, `dtype=${dtype}`, ...extras].join(', ')})`;
}
