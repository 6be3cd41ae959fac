// Launchers of kernels/elementwise.wgsl: unary and binary maps, select, fill, copy and accumulate over strided views
// of up to 8 dims, with PyTorch broadcasting. Outputs are allocated here (like an input) or given (a view to write).
import type { DType } from '../tensor/dtype.js';
import { type TensorBase, allocLike } from '../tensor/base.js';
import { broadcastShapes, broadcastStrides, contiguousStrides } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, dtCode, dummy, pad8 } from './common.js';

/** Unary op codes of elementwise.wgsl (UNARY_*). */
export const U = {
  copy: 0, neg: 1, exp: 2, log: 3, sqrt: 4, relu: 5, gelu: 6, tanh: 7, sigmoid: 8, pow: 9, abs: 10,
  addScalar: 11, mulScalar: 12, not: 13, rsqrt: 14, geluGrad: 15, sin: 16, cos: 17, clamp: 18, sign: 19,
  reciprocal: 20, scalarSub: 21, scalarDiv: 22, square: 23, floor: 24, log1p: 25, softplus: 26, scalarPow: 27,
  reluGrad: 28,
} as const;
/** Binary op codes of elementwise.wgsl (BINARY_*). */
export const B = {
  add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6, eq: 7, ne: 8, lt: 9, le: 10, gt: 11, ge: 12,
  and: 13, or: 14, atan2: 15, pickMax: 16, pickMin: 17, same: 18,
} as const;

const WG = 256;

type Entry = 'unary' | 'binary' | 'select_where' | 'fill' | 'accumulate';

/** Dispatches one entry of elementwise.wgsl writing `out` (any strides) from up to three inputs broadcast to its shape. */
function launch(entry: Entry, fn: string, out: TensorBase, inputs: { a?: TensorBase; b?: TensorBase; c?: TensorBase }, op = 0, scalar = 0, scalar2 = 0): void {
  const shape = out.shape;
  const n = out.size;
  const { a, b, c } = inputs;
  const strides = (t?: TensorBase) => (t ? pad8(broadcastStrides(t.shape, t.strides, shape)) : pad8([]));
  const bindings = {
    a: a ? bufOf(a, fn) : dummy(),
    b: b ? bufOf(b, fn) : dummy(),
    c: c ? bufOf(c, fn) : dummy(),
    out: bufOf(out, fn),
  };
  if (n === 0) return;
  dispatch('elementwise.wgsl', entry, {
    constants: { OP: op, A_DT: a ? dtCode(a, fn) : 0, OUT_DT: dtCode(out, fn) },
    bindings,
    params: {
      n,
      rank: shape.length,
      a_off: a?.offset ?? 0,
      b_off: b?.offset ?? 0,
      c_off: c?.offset ?? 0,
      o_off: out.offset,
      scalar,
      scalar2,
      shape: pad8(shape),
      a_strides: strides(a),
      b_strides: strides(b),
      c_strides: strides(c),
      o_strides: pad8(out.strides.length ? out.strides : contiguousStrides(shape)),
    },
    workgroups: grid1d(Math.ceil(n / WG)),
    label: fn,
  });
}

/** op(x) elementwise into a new contiguous tensor of dtype `outDType` (default x's). */
export function unary<T extends TensorBase>(fn: string, x: T, op: number, scalar = 0, scalar2 = 0, outDType: DType = x.dtype): T {
  dtCode(x, fn);
  const out = allocLike(x, x.shape.slice(), outDType);
  launch('unary', fn, out, { a: x }, op, scalar, scalar2);
  return out;
}

/** dst <- op(src) into an existing view (dst's shape; src broadcast to it). */
export function unaryInto(fn: string, dst: TensorBase, src: TensorBase, op: number, scalar = 0, scalar2 = 0): void {
  launch('unary', fn, dst, { a: src }, op, scalar, scalar2);
}

/** op(a, b) with broadcasting into a new contiguous tensor of dtype `outDType`. */
export function binary<T extends TensorBase>(fn: string, a: T, b: TensorBase, op: number, outDType: DType): T {
  dtCode(a, fn);
  dtCode(b, fn);
  const out = allocLike(a, broadcastShapes(fn, a.shape, b.shape), outDType);
  launch('binary', fn, out, { a, b }, op);
  return out;
}

/** cond ? a : b, broadcasting all three, into a new tensor of a's dtype. */
export function select<T extends TensorBase>(fn: string, cond: TensorBase, a: T, b: TensorBase): T {
  dtCode(cond, fn);
  dtCode(a, fn);
  dtCode(b, fn);
  const out = allocLike(a, broadcastShapes(fn, cond.shape, a.shape, b.shape), a.dtype);
  launch('select_where', fn, out, { a, b, c: cond });
  return out;
}

/** Every element of the view `t` <- value (stored as t's dtype). */
export function fill(fn: string, t: TensorBase, value: number): void {
  launch('fill', fn, t, {}, 0, value);
}

/** dst <- src elementwise (src broadcast to dst's shape), any strides on both sides; same dtype. */
export function copy(fn: string, dst: TensorBase, src: TensorBase): void {
  launch('unary', fn, dst, { a: src }, U.copy);
}

/** A contiguous copy of x (same class and dtype), from any strides. */
export function contiguousCopy<T extends TensorBase>(fn: string, x: T): T {
  const out = allocLike(x, x.shape.slice(), x.dtype);
  copy(fn, out, x);
  return out;
}

/** dst += src in place (f32, dst strided as given, src broadcast to it). */
export function accumulate(fn: string, dst: TensorBase, src: TensorBase): void {
  launch('accumulate', fn, dst, { a: src });
}
