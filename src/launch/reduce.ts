// Launchers of kernels/reduce.wgsl: reductions over any set of dims of a strided tensor, without copying it first,
// and sumTo, which sums a broadcast gradient back to an input's shape (every broadcasting op's backward).
import { ShapeError, fmtShape } from '../errors.js';
import { type TensorBase, allocLike } from '../tensor/base.js';
import { contiguousStrides } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, dtCode, pad8, rawBuf } from './common.js';
import { cast } from './cast.js';
import kernel from './kernels/reduce.js';

export type ReduceOp = 'sum' | 'max' | 'min' | 'argmax' | 'argmin';
const C = kernel.constants;
/** Each reduction's op code: reduce.wgsl's RED_* constants (read from the kernel at build time). */
const R: { readonly [K in ReduceOp]: number } = { sum: C.RED_SUM, max: C.RED_MAX, min: C.RED_MIN, argmax: C.RED_ARGMAX, argmin: C.RED_ARGMIN };

/**
 * x reduced over `dims` (sorted, distinct) with `op`; sums are multiplied by `scale` (mean = sum * 1/R). Output: the
 * kept dims (or all dims with the reduced ones as 1 when keepdim), contiguous; x's dtype for float sums and extrema
 * (f16 accumulated in f32 and rounded once), i32 for integer and boolean sums and for argmax / argmin.
 */
export function reduce<T extends TensorBase>(fn: string, x: T, dims: readonly number[], keepdim: boolean, op: ReduceOp, scale = 1): T {
  const wide = reduceWide(fn, x, dims, keepdim, op, scale);
  if (x.dtype !== 'f16' || wide.dtype !== 'f32') return wide;
  try {
    return cast(wide, 'f16', fn);
  } finally {
    wide.dispose();
  }
}

/** reduce(), with f16 inputs' float results left in f32 (so a two-stage reduction rounds only at the end). */
function reduceWide<T extends TensorBase>(fn: string, x: T, dims: readonly number[], keepdim: boolean, op: ReduceOp, scale = 1): T {
  const code = dtCode(x, fn, true);
  const xb = rawBuf(x, fn);
  const kept = x.shape.map((_, i) => i).filter((i) => !dims.includes(i));
  const outShape = keepdim ? x.shape.map((d, i) => (dims.includes(i) ? 1 : d)) : kept.map((i) => x.shape[i]);
  const count = dims.reduce((a, d) => a * x.shape[d], 1);
  const nOut = kept.reduce((a, d) => a * x.shape[d], 1);
  if (count === 0 && op !== 'sum') throw new ShapeError(`${fn}: cannot reduce over an empty dim of ${fmtShape(x.shape)}`);
  const outDType = op === 'argmax' || op === 'argmin' ? 'i32' : op === 'sum' && (x.dtype === 'i32' || x.dtype === 'bool') ? 'i32' : x.dtype === 'i32' ? 'i32' : 'f32';
  // A long reduction into few outputs would leave most of the GPU idle (one workgroup per output): reduce chunks of a
  // contiguous trailing block first, then the partial results.
  const trailing = dims.length > 0 && dims.every((d, i) => d === x.rank - dims.length + i);
  if (count >= 65536 && nOut < 256 && trailing && x.isContiguous && (op === 'sum' || op === 'max' || op === 'min')) {
    let C = 1024;
    while (C > 16 && count % C !== 0) C >>= 1;
    if (count % C === 0 && C > 16) {
      const v = x.makeView([nOut, C, count / C], [count, count / C, 1], x.offset);
      try {
        const partial = reduceWide(fn, v, [2], false, op, 1);
        try {
          const total = reduceWide(fn, partial, [1], false, op, scale);
          const shaped = total.makeView(outShape, contiguousStrides(outShape), 0);
          total.dispose();
          return shaped;
        } finally {
          partial.dispose();
        }
      } finally {
        v.dispose();
      }
    }
  }
  const out = allocLike(x, outShape, outDType);
  if (nOut === 0) return out;
  const perGroup = count > 64;
  const WG = 64;
  dispatch(kernel, perGroup ? 'per_group' : 'per_thread', {
    constants: { OP: R[op], A_DT: code },
    bindings: { x: xb, out: bufOf(out, fn) },
    params: {
      n_out: nOut,
      R: count,
      out_rank: kept.length,
      red_rank: dims.length,
      off: x.offset,
      scale,
      pad0: 0,
      pad1: 0,
      out_shape: pad8(kept.map((i) => x.shape[i])),
      out_strides: pad8(kept.map((i) => x.strides[i])),
      red_shape: pad8(dims.map((i) => x.shape[i])),
      red_strides: pad8(dims.map((i) => x.strides[i])),
    },
    workgroups: grid1d(perGroup ? nOut : Math.ceil(nOut / WG)),
    label: fn,
  });
  return out;
}

/**
 * g summed over the dims that broadcasting added or stretched, back to `shape` (a new tensor; a view of g when the
 * shapes already agree). f16 gradients are summed in f32 and rounded once.
 */
export function sumTo<T extends TensorBase>(g: T, shape: readonly number[], fn = 'sumTo'): T {
  if (g.rank === shape.length && g.shape.every((d, i) => d === shape[i])) return g.makeView(g.shape.slice(), g.strides.slice(), g.offset);
  const off = g.rank - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < g.rank; i++) if (i < off || (shape[i - off] === 1 && g.shape[i] !== 1)) dims.push(i);
  if (g.dtype === 'f16') {
    const wide = cast(g, 'f32', fn);
    try {
      const s = sumTo(wide, shape, fn);
      try {
        return cast(s, 'f16', fn);
      } finally {
        s.dispose();
      }
    } finally {
      wide.dispose();
    }
  }
  const summed = reduce(fn, g, dims, true, 'sum');
  // keepdim leaves the input's rank, contiguous: dropping the leading dims is a view.
  if (summed.rank === shape.length) return summed;
  const v = summed.makeView(shape.slice(), contiguousStrides(shape), summed.offset);
  summed.dispose();
  return v;
}
