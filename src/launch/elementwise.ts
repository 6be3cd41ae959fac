// Launchers of kernels/elementwise.wgsl: unary and binary maps, select, fill, copy and accumulate over strided views
// of up to 8 dims, with PyTorch broadcasting. Outputs are allocated here (like an input) or given (a view to write).
import type { DType } from '../tensor/dtype.js';
import { type TensorBase, allocLike } from '../tensor/base.js';
import { broadcastShapes, broadcastStrides, contiguousStrides } from '../tensor/shape.js';
import { dispatch, grid1d, kernelVariant } from '../gpu/kernels.js';
import { dtCode, dummy, nativeF16, pad8, rawBuf } from './common.js';
import kernel from './kernels/elementwise.js';

type Codes = typeof kernel.constants;
type Table<P extends string> = { readonly [K in keyof Codes as K extends `${P}${infer N}` ? N : never]: number };

function table<P extends string>(prefix: P): Table<P> {
  const out: Record<string, number> = {};
  for (const [name, code] of Object.entries(kernel.constants)) if (name.startsWith(prefix)) out[name.slice(prefix.length)] = code;
  return out as Table<P>;
}

/** Unary op codes (elementwise.wgsl's UNARY_* constants, read from the kernel at build time). */
export const U = table('UNARY_');
/** Binary op codes (BINARY_*). */
export const B = table('BINARY_');
export type UnaryOp = keyof typeof U;
export type BinaryOp = keyof typeof B;

/**
 * What the backward of each unary op reads: its input x, its output y, both, neither (the gradient alone), or null
 * for an op without a gradient. Typed over every UNARY_* code, so an op added to the kernel without a rule here does
 * not compile; the derivative itself is unary_grad_f in the kernel, beside the forward.
 */
export const UNARY_GRAD: { readonly [K in UnaryOp]: 'x' | 'y' | 'xy' | 'g' | null } = {
  COPY: 'g', NEG: 'g', ADD_SCALAR: 'g', MUL_SCALAR: 'g',
  EXP: 'y', SQRT: 'y', TANH: 'y', SIGMOID: 'y', RSQRT: 'xy',
  LOG: 'x', RELU: 'x', GELU: 'x', POW: 'x', ABS: 'x', SIN: 'x', COS: 'x', CLAMP: 'x', SOFTPLUS: 'x', LOG1P: 'x', SILU: 'x', ERF: 'x',
  NOT: null,
};

/** Whether each binary op has a backward in binary_grad_f (typed over every BINARY_* code). */
export const BINARY_GRAD: { readonly [K in BinaryOp]: boolean } = {
  ADD: true, SUB: true, MUL: true, DIV: true, POW: true, MAX: true, MIN: true,
  EQ: false, NE: false, LT: false, LE: false, GT: false, GE: false, AND: false, OR: false, SAME: false,
};

const WG = 256;
/** The entries `native` also runs (its FORM override: the index here). */
const FORMS: readonly string[] = ['unary', 'binary', 'unary_backward', 'binary_backward'];

type Entry = keyof typeof kernel.entries;

/**
 * Dispatches one entry of elementwise.wgsl writing `out` (any strides) from up to three inputs broadcast to its shape.
 * `out2` is binary_backward's second output (same geometry as out); `outUnused` binds a placeholder for out, whose
 * geometry still lays out the elements.
 */
function launch(entry: Entry, fn: string, out: TensorBase, inputs: { a?: TensorBase; b?: TensorBase; c?: TensorBase; out2?: TensorBase; outUnused?: boolean }, op = 0, scalar = 0, scalar2 = 0): void {
  const shape = out.shape;
  const n = out.size;
  const { a, b, c } = inputs;
  const strides = (t?: TensorBase) => (t ? pad8(broadcastStrides(t.shape, t.strides, shape)) : pad8([]));
  const buf = (t: TensorBase) => rawBuf(t, fn);
  const params = {
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
  };
  const workgroups = grid1d(Math.ceil(n / WG));
  // All-f16 ops read and write f16 storage where the adapter has shader-f16 (`native`, in the kernel's f16 variant);
  // a comparison's result is bool, so it stays here.
  const outBuf = inputs.outUnused ? dummy(true, 0) : buf(out);
  const out2Buf = inputs.out2 ? buf(inputs.out2) : dummy(true, 1);
  const form = FORMS.indexOf(entry);
  if (form >= 0 && [a, b, c, inputs.out2, out].every((t) => !t || t.dtype === 'f16') && nativeF16()) {
    // (a and b: wgsl_reflect counts the op functions' parameters of those names as uses of the packed bindings.)
    const bindings = { a: dummy(), b: dummy(), a_n: a ? buf(a) : dummy(), b_n: b ? buf(b) : dummy(), c_n: c ? buf(c) : dummy(), out_n: outBuf, out2_n: out2Buf };
    if (n > 0) dispatch(kernelVariant(kernel, ['f16']), 'native', { constants: { OP: op, FORM: form }, bindings, params, workgroups, label: fn });
    return;
  }
  // f16 outputs are written through the atomic views of the same buffers (out_h, out2_h); see elementwise.wgsl.
  const half = out.dtype === 'f16';
  const bindings = {
    a: a ? buf(a) : dummy(),
    b: b ? buf(b) : dummy(),
    c: c ? buf(c) : dummy(),
    out: half ? dummy(true, 2) : outBuf,
    out2: half ? dummy(true, 3) : out2Buf,
    out_h: half ? outBuf : dummy(true, 2),
    out2_h: half ? out2Buf : dummy(true, 3),
  };
  if (n === 0) return;
  dispatch(kernel, entry, {
    constants: { OP: op, A_DT: a ? dtCode(a, fn, true) : 0, C_DT: c ? dtCode(c, fn, true) : 0, OUT_DT: dtCode(out, fn, true) },
    bindings,
    params,
    workgroups,
    label: fn,
  });
}

/** op(x) elementwise into a new contiguous tensor of dtype `outDType` (default x's). */
export function unary<T extends TensorBase>(fn: string, x: T, op: number, scalar = 0, scalar2 = 0, outDType: DType = x.dtype): T {
  rawBuf(x, fn); // dtype, disposed and lost-device checks before the output exists
  const out = allocLike(x, x.shape.slice(), outDType);
  launch('unary', fn, out, { a: x }, op, scalar, scalar2);
  return out;
}

/** op(a, b) with broadcasting into a new contiguous tensor of dtype `outDType`. */
export function binary<T extends TensorBase>(fn: string, a: T, b: TensorBase, op: number, outDType: DType): T {
  rawBuf(a, fn); // disposed and lost-device checks before the output exists
  rawBuf(b, fn);
  const out = allocLike(a, broadcastShapes(fn, a.shape, b.shape), outDType);
  launch('binary', fn, out, { a, b }, op);
  return out;
}

/** cond ? a : b, broadcasting all three, into a new tensor of a's dtype. */
export function select<T extends TensorBase>(fn: string, cond: TensorBase, a: T, b: TensorBase): T {
  rawBuf(cond, fn); // disposed and lost-device checks before the output exists
  rawBuf(a, fn);
  rawBuf(b, fn);
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
  launch('unary', fn, dst, { a: src }, U.COPY);
}

/** A contiguous copy of x (same class and dtype), from any strides. */
export function contiguousCopy<T extends TensorBase>(fn: string, x: T): T {
  const out = allocLike(x, x.shape.slice(), x.dtype);
  copy(fn, out, x);
  return out;
}

/**
 * The gradient of a unary op in one dispatch: dx = d op(x)/dx * g from what UNARY_GRAD says the op reads (x its input,
 * y its output; the other may be null). Same shape as g.
 */
export function unaryBackward<T extends TensorBase>(fn: string, op: UnaryOp, g: T, x: TensorBase | null, y: TensorBase | null, scalar = 0, scalar2 = 0): T {
  const ref = x ?? y ?? g;
  rawBuf(g, fn);
  const dx = allocLike(g, g.shape.slice(), ref.dtype);
  launch('unary_backward', fn, dx, { a: x ?? ref, b: y ?? ref, c: g }, U[op], scalar, scalar2);
  return dx;
}

/**
 * The gradients of a binary op in one dispatch, over the output's shape (the caller sums them back to broadcast
 * operands): [dx, dy], each computed only where `needs` says so (null otherwise).
 */
export function binaryBackward<T extends TensorBase>(fn: string, op: BinaryOp, g: T, x: TensorBase, y: TensorBase, needs: readonly boolean[]): [T | null, T | null] {
  rawBuf(g, fn);
  rawBuf(x, fn);
  rawBuf(y, fn);
  const dx = needs[0] ? allocLike(g, g.shape.slice(), x.dtype) : null;
  const dy = needs[1] ? allocLike(g, g.shape.slice(), y.dtype) : null;
  const out = dx ?? dy;
  if (!out) return [null, null];
  // out and out2 share one geometry (the output's, contiguous); with dy alone, out is a placeholder laid out as dy.
  launch('binary_backward', fn, out, { a: x, b: y, c: g, out2: dy ?? undefined, outUnused: !dx }, B[op], (dx ? 1 : 0) | (dy ? 2 : 0));
  return [dx, dy];
}

/** dst += src in place (dst strided as given, src broadcast to it; f32 or f16 on either side, summed in f32). */
export function accumulate(fn: string, dst: TensorBase, src: TensorBase): void {
  launch('accumulate', fn, dst, { a: src });
}
