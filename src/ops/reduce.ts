// Reductions over any dims, with keepdim, and their backward rules.
import { ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { checkDType } from '../tensor/dtype.js';
import { tidy } from '../tensor/base.js';
import { contiguousStrides, normDim } from '../tensor/shape.js';
import { B, binary, select, unary, U } from '../launch/elementwise.js';
import { reduce } from '../launch/reduce.js';
import { gatherDim, scatterAddDim } from '../launch/indexing.js';
import { record } from '../autograd/node.js';
import { withGradMode } from '../autograd/mode.js';
import type { Tensor } from './tensor.js';
import { inF32, scalarLike, toDType } from './elementwise.js';
import { autocastRun } from './autocast.js';
import { expand, reshape } from './views.js';

function normDims(fn: string, x: Tensor, dim: number | number[] | undefined | null): number[] {
  if (dim === undefined || dim === null) return x.shape.map((_, i) => i);
  const list = Array.isArray(dim) ? dim : [dim];
  const out = list.map((d) => normDim(fn, d, x.rank, x.shape));
  if (new Set(out).size !== out.length) throw new ShapeError(`${fn}: dims ${JSON.stringify(dim)} repeat a dim of ${fmtShape(x.shape)}`);
  return out.sort((a, b) => a - b);
}

/** A reduced gradient broadcast back over the reduced dims (a view). */
function expandBack(g: Tensor, inShape: number[], dims: number[], keepdim: boolean): Tensor {
  const r = keepdim ? g : reshape(g, inShape.map((d, i) => (dims.includes(i) ? 1 : d)));
  return expand(r, inShape);
}

export function sum(x: Tensor, dim?: number | number[] | null, keepdim = false): Tensor {
  checkDType('sum', 'input', x.dtype, ['f32', 'f16', 'i32', 'bool']);
  const dims = normDims('sum', x, dim);
  const ac = autocastRun('sum', [x], (w) => sum(w, dim, keepdim));
  if (ac) return ac;
  const inShape = x.shape.slice();
  return record('sum', reduce('sum', x, dims, keepdim, 'sum'), [x], (g) => [expandBack(g, inShape, dims, keepdim)]);
}

export function mean(x: Tensor, dim?: number | number[] | null, keepdim = false): Tensor {
  checkDType('mean', 'input', x.dtype, ['f32', 'f16']);
  const dims = normDims('mean', x, dim);
  const count = dims.reduce((a, d) => a * x.shape[d], 1);
  const inShape = x.shape.slice();
  const out = reduce('mean', x, dims, keepdim, 'sum', count === 0 ? NaN : 1 / count);
  return record('mean', out, [x], (g) => [unary('mean.backward', expandBack(g, inShape, dims, keepdim), U.MUL_SCALAR, 1 / count)]);
}

function maxMin(fn: 'max' | 'min' | 'amax' | 'amin', x: Tensor, dim?: number | number[] | null, keepdim = false): Tensor {
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32']);
  const dims = normDims(fn, x, dim);
  const inShape = x.shape.slice();
  const op = fn === 'max' || fn === 'amax' ? 'max' : 'min';
  const out = reduce(fn, x, dims, keepdim, op);
  const fd = x.dtype === 'f16' ? 'f16' : 'f32';
  // The gradient flows to every element equal to the extremum, split evenly among ties.
  return record(fn, out, [x], (g, [sx, y]) => {
    // max() over everything shares the gradient among the elements it picked, NaNs included (torch.max); over given
    // dims (amax) a NaN result gives its group NaN gradients, as PyTorch.
    const hit = binary(`${fn}.backward`, sx, expandBack(y, inShape, dims, keepdim), fn === 'max' || fn === 'min' ? B.SAME : B.EQ, fd);
    const count = reduce(`${fn}.backward`, hit, dims, true, 'sum');
    return [binary(`${fn}.backward`, binary(`${fn}.backward`, expandBack(g, inShape, dims, keepdim), hit, B.MUL, fd), count, B.DIV, fd)];
  }, [x, out]);
}
/** The maximum over `dims` (all by default), as PyTorch's torch.amax: the gradient is shared evenly among ties. */
export const amax = (x: Tensor, dim?: number | number[] | null, keepdim = false): Tensor => maxMin('amax', x, dim, keepdim);
export const amin = (x: Tensor, dim?: number | number[] | null, keepdim = false): Tensor => maxMin('amin', x, dim, keepdim);

export interface MaxResult {
  values: Tensor;
  /** i32: the first index of the extremum along the dim (the first NaN, where there is one). */
  indices: Tensor;
}

/**
 * Over one dim, PyTorch's (values, indices): the values are gathered at argmax / argmin (NaN wins, ties go to the first
 * index), and the gradient flows to that index alone.
 */
function maxMinDim(fn: 'max' | 'min', x: Tensor, dim: number, keepdim: boolean): MaxResult {
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32']);
  if (x.dtype === 'f16') {
    // Picked through f32 (exact both ways: every f16 is an f32), so the values and their gradient come back in f16.
    return tidy(() => {
      const r = maxMinDim(fn, toDType(x, 'f32'), dim, keepdim);
      return { values: toDType(r.values, 'f16'), indices: r.indices };
    });
  }
  if (typeof dim !== 'number') throw new ValueError(`${fn}: dim must be a single dim (as PyTorch's ${fn}), got ${JSON.stringify(dim)}; use a${fn}(x, dims) to reduce several`);
  if (typeof keepdim !== 'boolean') throw new ValueError(`${fn}: keepdim must be true or false, got ${String(keepdim)}`);
  if (x.rank === 0) {
    normDim(fn, dim, 1);
    const flat = reshape(x, [1]);
    const r = maxMinDim(fn, flat, 0, false);
    flat.dispose();
    return r;
  }
  const d = normDim(fn, dim, x.rank, x.shape);
  if (x.shape[d] === 0) throw new ShapeError(`${fn}: cannot reduce over an empty dim of ${fmtShape(x.shape)}`);
  const idx = reduce(fn, x, [d], true, fn === 'max' ? 'argmax' : 'argmin');
  const pos = contiguousStrides(idx.shape);
  const inShape = x.shape.slice();
  const keptShape = idx.shape.slice();
  const vals = record(fn, gatherDim(fn, x, d, idx, pos, idx.shape), [x], (g, [si]) => [scatterAddDim(`${fn}.backward`, null, inShape, d, si, g, pos, keptShape)], [idx]);
  if (keepdim) return { values: vals, indices: idx };
  const squeezed = keptShape.filter((_, i) => i !== d);
  const values = reshape(vals, squeezed);
  const indices = idx.makeView(squeezed, contiguousStrides(squeezed), idx.offset);
  vals.dispose();
  idx.dispose();
  return { values, indices };
}

/**
 * max(x): the maximum of every element (a 0-d tensor; the gradient is shared among the elements that hold it, as
 * torch.max). max(x, dim, keepdim?): { values, indices } along one dim, as PyTorch's.
 */
export function max(x: Tensor): Tensor;
export function max(x: Tensor, dim: number, keepdim?: boolean): MaxResult;
export function max(x: Tensor, dim?: number | null, keepdim?: boolean): Tensor | MaxResult;
export function max(x: Tensor, dim?: number | null, keepdim = false): Tensor | MaxResult {
  return dim === undefined || dim === null ? maxMin('max', x) : maxMinDim('max', x, dim, keepdim);
}
/** min(x), or min(x, dim, keepdim?) → { values, indices }, as max. */
export function min(x: Tensor): Tensor;
export function min(x: Tensor, dim: number, keepdim?: boolean): MaxResult;
export function min(x: Tensor, dim?: number | null, keepdim?: boolean): Tensor | MaxResult;
export function min(x: Tensor, dim?: number | null, keepdim = false): Tensor | MaxResult {
  return dim === undefined || dim === null ? maxMin('min', x) : maxMinDim('min', x, dim, keepdim);
}

function argExtremum(fn: 'argmax' | 'argmin', x: Tensor, dim?: number | null, keepdim = false): Tensor {
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32']);
  if (dim === undefined || dim === null) {
    if (x.size === 0) throw new ShapeError(`${fn}: cannot reduce over an empty dim of [0] (${fmtShape(x.shape)}, flattened)`);
    const flat = reshape(x, [-1]);
    const r = reduce(fn, flat, [0], false, fn);
    flat.dispose();
    if (!keepdim) return r;
    // keepdim over every dim keeps the input's rank, all ones (as PyTorch).
    const k = reshape(r, x.shape.map(() => 1));
    r.dispose();
    return k;
  }
  return reduce(fn, x, [normDim(fn, dim, x.rank, x.shape)], keepdim, fn);
}
export const argmax = (x: Tensor, dim?: number | null, keepdim = false): Tensor => argExtremum('argmax', x, dim, keepdim);
export const argmin = (x: Tensor, dim?: number | null, keepdim = false): Tensor => argExtremum('argmin', x, dim, keepdim);

// ---------------------------------------------------------------- statistics and logic over dims

export interface VarOptions {
  /** Subtracted from the count in the divisor: 1 (default) is Bessel's correction, 0 the population variance. */
  correction?: number;
  keepdim?: boolean;
}

type DimArg = number | number[] | null | undefined;

/** var(x, dim?, opts?) also takes var(x, opts) (dim omitted), as PyTorch's keyword form. */
function splitVarArgs(fn: string, dim: DimArg | VarOptions, options?: VarOptions): [DimArg, { correction: number; keepdim: boolean }] {
  let d: DimArg;
  let o: VarOptions | undefined = options;
  if (dim !== null && typeof dim === 'object' && !Array.isArray(dim)) {
    if (options !== undefined) throw new ValueError(`${fn}: options given twice`);
    o = dim;
  } else d = dim as DimArg;
  const opts = checkOptions(fn, o, ['correction', 'keepdim']);
  const correction = opts.correction ?? 1;
  if (typeof correction !== 'number' || !Number.isFinite(correction) || correction < 0) throw new ValueError(`${fn}: correction must be a finite number >= 0, got ${String(correction)}`);
  if (opts.keepdim !== undefined && typeof opts.keepdim !== 'boolean') throw new ValueError(`${fn}: keepdim must be true or false, got ${String(opts.keepdim)}`);
  return [d, { correction, keepdim: opts.keepdim ?? false }];
}

/** sum((x - mean)^2) / (N - correction), its mean (keepdim) and 1 / (N - correction), without recording. */
function varianceParts(fn: string, x: Tensor, dims: number[], keepdim: boolean, correction: number): { v: Tensor; scale: number } {
  const count = dims.reduce((a, d) => a * x.shape[d], 1);
  // N - correction <= 0 divides by zero: NaN for a zero sum, inf otherwise (as PyTorch's).
  const scale = 1 / Math.max(0, count - correction);
  const v = withGradMode(false, () => tidy(() => {
    const mu = reduce(fn, x, dims, true, 'sum', count === 0 ? NaN : 1 / count);
    const d = binary(fn, x, mu, B.SUB, 'f32');
    return reduce(fn, binary(fn, d, d, B.MUL, 'f32'), dims, keepdim, 'sum', scale);
  }));
  return { v, scale };
}

/** d var / dx times g: g * 2 / (N - correction) * (x - mean). */
function varBackward(fn: string, g: Tensor, x: Tensor, dims: number[], keepdim: boolean, scale: number): Tensor {
  const count = dims.reduce((a, d) => a * x.shape[d], 1);
  const mu = reduce(fn, x, dims, true, 'sum', 1 / count);
  const centred = binary(fn, x, mu, B.SUB, 'f32');
  const ge = expandBack(g, x.shape, dims, keepdim);
  return unary(fn, binary(fn, ge, centred, B.MUL, 'f32'), U.MUL_SCALAR, 2 * scale);
}

/** The variance over `dims` (all by default) with `correction` (default 1, Bessel's), as PyTorch's torch.var. */
function variance(x: Tensor, dim?: DimArg | VarOptions, options?: VarOptions): Tensor {
  const fn = 'var';
  checkDType(fn, 'input', x.dtype, ['f32', 'f16']);
  const ac = autocastRun('var', [x], (w) => variance(w, dim, options));
  if (ac) return ac;
  if (x.dtype === 'f16') return inF32('f16', [x], (w) => variance(w, dim, options));
  const [d, { correction, keepdim }] = splitVarArgs(fn, dim, options);
  const dims = normDims(fn, x, d);
  const { v, scale } = varianceParts(fn, x, dims, keepdim, correction);
  return record(fn, v, [x], (g, [sx]) => [varBackward(`${fn}.backward`, g, sx, dims, keepdim, scale)], [x]);
}
export { variance as var };

/** The standard deviation, sqrt(var); its gradient is 0 where it is 0 (as PyTorch's). */
export function std(x: Tensor, dim?: DimArg | VarOptions, options?: VarOptions): Tensor {
  const fn = 'std';
  checkDType(fn, 'input', x.dtype, ['f32', 'f16']);
  const ac = autocastRun('std', [x], (w) => std(w, dim, options));
  if (ac) return ac;
  if (x.dtype === 'f16') return inF32('f16', [x], (w) => std(w, dim, options));
  const [d, { correction, keepdim }] = splitVarArgs(fn, dim, options);
  const dims = normDims(fn, x, d);
  const { v, scale } = varianceParts(fn, x, dims, keepdim, correction);
  const s = unary(fn, v, U.SQRT);
  v.dispose();
  return record(fn, s, [x], (g, [sx, ss]) => {
    // g / (2 std), zero where std is 0.
    const half = binary(`${fn}.backward`, g, unary(`${fn}.backward`, ss, U.MUL_SCALAR, 2), B.DIV, 'f32');
    const zero = binary(`${fn}.backward`, ss, scalarLike(ss, 0, 'f32'), B.EQ, 'bool');
    const gv = select(`${fn}.backward`, zero, scalarLike(ss, 0, 'f32'), half);
    return [varBackward(`${fn}.backward`, gv, sx, dims, keepdim, scale)];
  }, [x, s]);
}

/**
 * log(sum(exp(x))) over `dim`, stably: the maximum is subtracted first (an infinite maximum is not, so all -inf gives
 * -inf and any +inf gives +inf); NaN propagates. Gradient: softmax(x) times g.
 */
export function logsumexp(x: Tensor, dim: number | number[], keepdim = false): Tensor {
  const fn = 'logsumexp';
  checkDType(fn, 'input', x.dtype, ['f32', 'f16']);
  const ac = autocastRun('logsumexp', [x], (w) => logsumexp(w, dim, keepdim));
  if (ac) return ac;
  if (x.dtype === 'f16') return inF32('f16', [x], (w) => logsumexp(w, dim, keepdim));
  if (dim === undefined || dim === null) throw new ValueError(`${fn}: dim is required`);
  const dims = normDims(fn, x, dim);
  if (dims.some((d) => x.shape[d] === 0)) throw new ShapeError(`${fn}: cannot reduce over an empty dim of ${fmtShape(x.shape)}`);
  const out = withGradMode(false, () => tidy(() => {
    const m = reduce(fn, x, dims, true, 'max');
    const inf = binary(fn, unary(fn, m, U.ABS), scalarLike(m, Infinity, 'f32'), B.EQ, 'bool');
    const shift = select(fn, inf, scalarLike(m, 0, 'f32'), m);
    const s = reduce(fn, unary(fn, binary(fn, x, shift, B.SUB, 'f32'), U.EXP), dims, true, 'sum');
    const r = binary(fn, unary(fn, s, U.LOG), shift, B.ADD, 'f32');
    return keepdim ? r : reshape(r, r.shape.filter((_, i) => !dims.includes(i)));
  }));
  const inShape = x.shape.slice();
  return record(fn, out, [x], (g, [sx, so]) => {
    const p = unary(`${fn}.backward`, binary(`${fn}.backward`, sx, expandBack(so, inShape, dims, keepdim), B.SUB, 'f32'), U.EXP);
    return [binary(`${fn}.backward`, expandBack(g, inShape, dims, keepdim), p, B.MUL, 'f32')];
  }, [x, out]);
}

function allAny(fn: 'all' | 'any', x: Tensor, dim: DimArg, keepdim: boolean): Tensor {
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32', 'bool']);
  const dims = normDims(fn, x, dim);
  const count = dims.reduce((a, d) => a * x.shape[d], 1);
  return tidy(() => {
    // Truth as PyTorch's: nonzero, NaN included.
    const b = x.dtype === 'bool' ? x : binary(fn, x, scalarLike(x, 0, x.dtype), B.NE, 'bool');
    const n = reduce(fn, b, dims, keepdim, 'sum');
    return fn === 'all' ? binary(fn, n, scalarLike(n, count, 'i32'), B.EQ, 'bool') : binary(fn, n, scalarLike(n, 0, 'i32'), B.GT, 'bool');
  });
}
/** Whether every element (over `dim`, or all) is true / nonzero; bool. An empty reduction is true. */
export const all = (x: Tensor, dim?: DimArg, keepdim = false): Tensor => allAny('all', x, dim, keepdim);
/** Whether any element (over `dim`, or all) is true / nonzero; bool. An empty reduction is false. */
export const any = (x: Tensor, dim?: DimArg, keepdim = false): Tensor => allAny('any', x, dim, keepdim);
