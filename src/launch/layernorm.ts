// Launcher of kernels/layernorm.wgsl: normalisation over the trailing `normDims` dims of each row, forward and
// backward (dx; the weight and bias gradients are column sums the caller takes with the reduction kernel). Inputs are
// read in place where their normalized dims form one strided run (always, unless a view permutes them).
import { type TensorBase, allocLike } from '../tensor/base.js';
import { broadcastStrides, numel } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, dummy, pad8, runStride } from './common.js';
import { contiguousCopy } from './elementwise.js';
import kernel from './kernels/layernorm.js';

interface Run {
  t: TensorBase;
  off: number;
  /** Stride of the normalized run. */
  sc: number;
  /** Strides of the leading dims. */
  lead: number[];
}

/** t's leading dims and its normalized run, copying t only when the run is not one stride. */
function runOf(fn: string, t: TensorBase, shape: readonly number[], normDims: number, owned: TensorBase[]): Run {
  const strides = broadcastStrides(t.shape, t.strides, shape);
  const k = shape.length - normDims;
  const sc = runStride(shape.slice(k), strides.slice(k));
  if (sc !== null) return { t, off: t.offset, sc, lead: strides.slice(0, k) };
  const c = contiguousCopy(fn, t);
  owned.push(c);
  return runOf(fn, c, shape, normDims, owned);
}

function geometry(x: TensorBase, normDims: number): { rows: number; C: number; lead: number[] } {
  const lead = x.shape.slice(0, x.rank - normDims);
  const C = numel(x.shape.slice(x.rank - normDims));
  return { rows: C === 0 ? 0 : numel(lead), C, lead };
}

function affine(fn: string, w: TensorBase | null, normShape: number[], owned: TensorBase[]): { off: number; sc: number; buf: GPUBuffer | ReturnType<typeof bufOf> } {
  if (!w) return { off: 0, sc: 0, buf: dummy() };
  const r = runOf(fn, w, normShape, normShape.length, owned);
  return { off: r.off, sc: r.sc, buf: bufOf(r.t, fn) };
}

/** y, mean [rows] and rstd [rows] of x normalized over its last `normDims` dims. */
export function layerNormForward<T extends TensorBase>(x: T, weight: TensorBase | null, bias: TensorBase | null, normDims: number, eps: number): { y: T; mean: T; rstd: T } {
  const fn = 'layerNorm';
  bufOf(x, fn);
  const { rows, C, lead } = geometry(x, normDims);
  const normShape = x.shape.slice(x.rank - normDims);
  const owned: TensorBase[] = [];
  try {
    const xr = runOf(fn, x, x.shape, normDims, owned);
    const w = affine(fn, weight, normShape, owned);
    const b = affine(fn, bias, normShape, owned);
    const y = allocLike(x, x.shape.slice(), 'f32');
    const mean = allocLike(x, [rows], 'f32');
    const rstd = allocLike(x, [rows], 'f32');
    if (rows > 0) {
      dispatch(kernel, 'forward', {
        constants: { HAS_WEIGHT: weight ? 1 : 0, HAS_BIAS: bias ? 1 : 0 },
        bindings: { x: bufOf(xr.t, fn), weight: w.buf, bias: b.buf, y: bufOf(y, fn), mean: bufOf(mean, fn), rstd: bufOf(rstd, fn) },
        params: {
          rows, C, eps, rank: lead.length,
          x_off: xr.off, x_sc: xr.sc, dy_off: 0, dy_sc: 0, w_off: w.off, w_sc: w.sc, b_off: b.off, b_sc: b.sc,
          shape: pad8(lead), x_strides: pad8(xr.lead), dy_strides: pad8([]),
        },
        workgroups: grid1d(rows),
        label: fn,
      });
    }
    return { y, mean, rstd };
  } finally {
    for (const t of owned) t.dispose();
  }
}

/** The params both backward entries read: x's and dy's views (dy broadcast to x's shape). */
function backwardParams(x: Run, dy: Run, rows: number, C: number, lead: number[], eps: number, w: { off: number; sc: number }) {
  return {
    rows, C, eps, rank: lead.length,
    x_off: x.off, x_sc: x.sc, dy_off: dy.off, dy_sc: dy.sc, w_off: w.off, w_sc: w.sc, b_off: 0, b_sc: 0,
    shape: pad8(lead), x_strides: pad8(x.lead), dy_strides: pad8(dy.lead),
  };
}

/** dx from the saved x, mean, rstd, the weight and the incoming gradient dy (broadcast to x's shape). */
export function layerNormBackward<T extends TensorBase>(x: T, weight: TensorBase | null, dy: TensorBase, mean: TensorBase, rstd: TensorBase, normDims: number, eps: number): T {
  const fn = 'layerNorm.backward';
  const { rows, C, lead } = geometry(x, normDims);
  const normShape = x.shape.slice(x.rank - normDims);
  const owned: TensorBase[] = [];
  try {
    const xr = runOf(fn, x, x.shape, normDims, owned);
    const gr = runOf(fn, dy, x.shape, normDims, owned);
    const w = affine(fn, weight, normShape, owned);
    const dx = allocLike(x, x.shape.slice(), 'f32');
    if (rows > 0) {
      dispatch(kernel, 'backward', {
        constants: { HAS_WEIGHT: weight ? 1 : 0, HAS_BIAS: 0 },
        bindings: { x: bufOf(xr.t, fn), weight: w.buf, dy: bufOf(gr.t, fn), saved_mean: bufOf(mean, fn), saved_rstd: bufOf(rstd, fn), dx: bufOf(dx, fn) },
        params: backwardParams(xr, gr, rows, C, lead, eps, w),
        workgroups: grid1d(rows),
        label: fn,
      });
    }
    return dx;
  } finally {
    for (const t of owned) t.dispose();
  }
}

/**
 * The affine parameters' gradients in one dispatch: dweight = the column sums of dy * xhat (xhat recomputed from the
 * saved statistics) and dbias = the column sums of dy, each shaped as the normalized dims; null where not wanted.
 */
export function layerNormBackwardAffine<T extends TensorBase>(x: T, dy: TensorBase, mean: TensorBase, rstd: TensorBase, normDims: number, wantWeight: boolean, wantBias: boolean): { dweight: T | null; dbias: T | null } {
  const fn = 'layerNorm.backward';
  const { rows, C, lead } = geometry(x, normDims);
  const normShape = x.shape.slice(x.rank - normDims);
  const owned: TensorBase[] = [];
  try {
    const xr = runOf(fn, x, x.shape, normDims, owned);
    const gr = runOf(fn, dy, x.shape, normDims, owned);
    const dweight = wantWeight ? allocLike(x, normShape.slice(), 'f32') : null;
    const dbias = wantBias ? allocLike(x, normShape.slice(), 'f32') : null;
    if (C > 0 && (dweight || dbias)) {
      dispatch(kernel, 'backward_affine', {
        constants: { HAS_WEIGHT: dweight ? 1 : 0, HAS_BIAS: dbias ? 1 : 0 },
        bindings: {
          x: dweight ? bufOf(xr.t, fn) : dummy(), dy: bufOf(gr.t, fn), saved_mean: dweight ? bufOf(mean, fn) : dummy(), saved_rstd: dweight ? bufOf(rstd, fn) : dummy(),
          dweight: dweight ? bufOf(dweight, fn) : dummy(true, 0), dbias: dbias ? bufOf(dbias, fn) : dummy(true, 1),
        },
        params: backwardParams(xr, gr, rows, C, lead, 0, { off: 0, sc: 0 }),
        workgroups: grid1d(Math.ceil(C / 64)), // one thread per column, WG = 64
        label: fn,
      });
    }
    return { dweight, dbias };
  } finally {
    for (const t of owned) t.dispose();
  }
}
