// Classification metrics on the host, over label arrays (as sklearn.metrics).
import { ShapeError, ValueError, checkOptions } from '../errors.js';

type Labels = ArrayLike<number>;

function check(fn: string, yTrue: Labels, yPred: Labels): void {
  if (yTrue.length !== yPred.length) throw new ShapeError(`${fn}: yTrue has ${yTrue.length} labels but yPred has ${yPred.length}`);
}

function labelSet(yTrue: Labels, yPred: Labels, labels?: readonly number[]): number[] {
  if (labels) return labels.slice();
  const s = new Set<number>();
  for (let i = 0; i < yTrue.length; i++) s.add(yTrue[i]);
  for (let i = 0; i < yPred.length; i++) s.add(yPred[i]);
  return [...s].sort((a, b) => a - b);
}

/** Fraction of positions where the labels agree (NaN for no labels). */
export function accuracy(yTrue: Labels, yPred: Labels): number {
  check('accuracy', yTrue, yPred);
  if (yTrue.length === 0) return NaN;
  let ok = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) ok++;
  return ok / yTrue.length;
}

/** m[i][j] = number of samples with true label labels[i] predicted as labels[j]. */
export function confusionMatrix(yTrue: Labels, yPred: Labels, labels?: readonly number[]): number[][] {
  check('confusionMatrix', yTrue, yPred);
  const ls = labelSet(yTrue, yPred, labels);
  const index = new Map(ls.map((l, i) => [l, i]));
  const m = ls.map(() => ls.map(() => 0));
  for (let k = 0; k < yTrue.length; k++) {
    const i = index.get(yTrue[k]);
    const j = index.get(yPred[k]);
    if (i !== undefined && j !== undefined) m[i][j]++;
  }
  return m;
}

export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}
export interface PrecisionRecallF1 {
  labels: number[];
  perClass: (ClassScores & { label: number })[];
  macro: ClassScores;
  micro: ClassScores;
  weighted: ClassScores;
}

const safeDiv = (a: number, b: number) => (b === 0 ? 0 : a / b);
const f1Of = (p: number, r: number) => safeDiv(2 * p * r, p + r);

/** Per-class precision, recall, F1 and support with macro, micro and support-weighted averages (0 where undefined, as sklearn's zero_division=0). */
export function precisionRecallF1(yTrue: Labels, yPred: Labels, labels?: readonly number[]): PrecisionRecallF1 {
  check('precisionRecallF1', yTrue, yPred);
  const ls = labelSet(yTrue, yPred, labels);
  const m = confusionMatrix(yTrue, yPred, ls);
  let tpAll = 0, fpAll = 0, fnAll = 0, supportAll = 0;
  const perClass = ls.map((label, i) => {
    const tp = m[i][i];
    // Support counts every sample of this true label, including ones predicted outside `labels`.
    let support = 0;
    for (let k = 0; k < yTrue.length; k++) if (yTrue[k] === label) support++;
    let predictedAll = 0;
    for (let k = 0; k < yPred.length; k++) if (yPred[k] === label) predictedAll++;
    const precision = safeDiv(tp, predictedAll);
    const recall = safeDiv(tp, support);
    tpAll += tp;
    fpAll += predictedAll - tp;
    fnAll += support - tp;
    supportAll += support;
    return { label, precision, recall, f1: f1Of(precision, recall), support };
  });
  const mean = (k: 'precision' | 'recall' | 'f1') => (perClass.length ? perClass.reduce((a, c) => a + c[k], 0) / perClass.length : 0);
  const wmean = (k: 'precision' | 'recall' | 'f1') => safeDiv(perClass.reduce((a, c) => a + c[k] * c.support, 0), supportAll);
  const microP = safeDiv(tpAll, tpAll + fpAll);
  const microR = safeDiv(tpAll, tpAll + fnAll);
  return {
    labels: ls,
    perClass,
    macro: { precision: mean('precision'), recall: mean('recall'), f1: mean('f1'), support: supportAll },
    micro: { precision: microP, recall: microR, f1: f1Of(microP, microR), support: supportAll },
    weighted: { precision: wmean('precision'), recall: wmean('recall'), f1: wmean('f1'), support: supportAll },
  };
}

/** A printable table in the layout of sklearn's classification_report. names maps a label to its display name. */
export function classificationReport(yTrue: Labels, yPred: Labels, labels?: readonly number[], options?: { names?: Record<number, string> | string[]; digits?: number }): string {
  options = checkOptions('classificationReport', options, ['names', 'digits']);
  const digits = options.digits ?? 2;
  if (!Number.isInteger(digits) || digits < 0) throw new ValueError(`classificationReport: digits must be a non-negative integer, got ${digits}`);
  const r = precisionRecallF1(yTrue, yPred, labels);
  const name = (l: number) => {
    const n = options.names as Record<number, string> | undefined;
    return n && n[l] !== undefined ? String(n[l]) : String(l);
  };
  const rows: [string, string, string, string, string][] = r.perClass.map((c) => [name(c.label), c.precision.toFixed(digits), c.recall.toFixed(digits), c.f1.toFixed(digits), String(c.support)]);
  const avg = (label: string, s: ClassScores): [string, string, string, string, string] => [label, s.precision.toFixed(digits), s.recall.toFixed(digits), s.f1.toFixed(digits), String(s.support)];
  const tail: [string, string, string, string, string][] = [
    ['accuracy', '', '', accuracy(yTrue, yPred).toFixed(digits), String(r.macro.support)],
    avg('macro avg', r.macro),
    avg('micro avg', r.micro),
    avg('weighted avg', r.weighted),
  ];
  const head = ['', 'precision', 'recall', 'f1-score', 'support'];
  const w0 = Math.max(12, ...[...rows, ...tail].map((x) => x[0].length));
  const w = Math.max(9, digits + 3);
  const line = (cols: string[]) => cols[0].padStart(w0) + cols.slice(1).map((c) => ' ' + c.padStart(w)).join('');
  return [line(head), '', ...rows.map(line), '', ...tail.map(line), ''].join('\n');
}
