// Launchers of kernels/indexing.wgsl (gather along a dim and the deterministic scatter-add) and kernels/scan.wgsl
// (prefix sums along a dim). Every input is read in place (any offset and strides, broadcast index views included).
import { type TensorBase, allocLike } from '../tensor/base.js';
import { contiguousStrides } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, dtCode, dummy, pad8 } from './common.js';
import kernel from './kernels/indexing.js';
import scan from './kernels/scan.js';

const WG = 256;

/**
 * out[c] = x[c with c[dim] = idx[c]], out shaped like idx (which may be a broadcast view); `posStrides` map an output
 * coordinate to the flat position in the caller's index tensor, and `indexShape` is that tensor's shape (for the
 * IndexError an out-of-range index raises at the next sync).
 */
export function gatherDim<T extends TensorBase>(fn: string, x: T, dim: number, idx: TensorBase, posStrides: readonly number[], indexShape: readonly number[]): T {
  const code = dtCode(x, fn);
  const xb = bufOf(x, fn), ib = bufOf(idx, fn);
  const out = allocLike(x, idx.shape.slice(), x.dtype);
  if (out.size === 0) return out;
  dispatch(kernel, 'gather', {
    constants: { X_DT: code },
    bindings: { x: xb, idx: ib, out: bufOf(out, fn) },
    params: {
      n: out.size, rank: idx.rank, dim, L: x.shape[dim], P: 0, x_off: x.offset, i_off: idx.offset, s_off: 0, pad0: 0, pad1: 0, pad2: 0,
      out_shape: pad8(idx.shape), x_strides: pad8(x.strides), i_strides: pad8(idx.strides), s_strides: pad8([]),
      ipos_strides: pad8(posStrides), i_shape: pad8(idx.shape),
    },
    workgroups: grid1d(Math.ceil(out.size / WG)),
    label: fn,
    indexShape,
  });
  return out;
}

/**
 * A tensor of `shape` (x's, when x is given) = x (or zeros) plus src scattered along dim by idx (idx and src share
 * idx's shape; idx may be a broadcast view). Deterministic: each output element sums its contributions in index order.
 */
export function scatterAddDim<T extends TensorBase>(fn: string, x: TensorBase | null, shape: readonly number[], dim: number, idx: TensorBase, src: T, posStrides: readonly number[], indexShape: readonly number[]): T {
  const code = dtCode(src, fn);
  const sb = bufOf(src, fn), ib = bufOf(idx, fn);
  const xb = x ? bufOf(x, fn) : dummy();
  const out = allocLike(src, shape.slice(), src.dtype);
  if (out.size === 0) return out;
  dispatch(kernel, 'scatter_add', {
    constants: { X_DT: code, HAS_X: x ? 1 : 0 },
    bindings: { x: xb, idx: ib, src: sb, out: bufOf(out, fn) },
    params: {
      n: out.size, rank: shape.length, dim, L: shape[dim], P: idx.shape[dim], x_off: x ? x.offset : 0, i_off: idx.offset, s_off: src.offset,
      pad0: 0, pad1: 0, pad2: 0,
      out_shape: pad8(shape), x_strides: pad8(x ? x.strides : contiguousStrides(shape)), i_strides: pad8(idx.strides),
      s_strides: pad8(src.strides), ipos_strides: pad8(posStrides), i_shape: pad8(idx.shape),
    },
    workgroups: grid1d(Math.ceil(out.size / WG)),
    label: fn,
    indexShape,
  });
  return out;
}

/** Inclusive prefix sums of x along dim (reverse: from the end), contiguous; f32 for f32, i32 for i32 and bool. */
export function cumsumDim<T extends TensorBase>(fn: string, x: T, dim: number, reverse = false): T {
  const code = dtCode(x, fn);
  const xb = bufOf(x, fn);
  const out = allocLike(x, x.shape.slice(), x.dtype === 'f32' ? 'f32' : 'i32');
  const rank0 = x.rank === 0;
  const L = rank0 ? 1 : x.shape[dim];
  if (x.size === 0) return out;
  const rows = x.size / L;
  const others = (v: readonly number[]) => (rank0 ? [] : v.filter((_, i) => i !== dim));
  const perGroup = L > 64 && rows < 4096;
  dispatch(scan, perGroup ? 'per_group' : 'per_thread', {
    constants: { X_DT: code, REVERSE: reverse ? 1 : 0 },
    bindings: { x: xb, out: bufOf(out, fn) },
    params: {
      rows, L, x_off: x.offset, x_sl: rank0 ? 0 : x.strides[dim], o_sl: rank0 ? 0 : out.strides[dim], outer_rank: rank0 ? 0 : x.rank - 1, pad0: 0, pad1: 0,
      outer_shape: pad8(others(x.shape)), x_outer: pad8(others(x.strides)), o_outer: pad8(others(out.strides)),
    },
    workgroups: grid1d(perGroup ? rows : Math.ceil(rows / WG)),
    label: fn,
  });
  return out;
}
