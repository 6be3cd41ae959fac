// Launcher of kernels/gather.wgsl: rows of a table picked by i32 indices (embedding), and the adjoint scatter-add.
// Every input is read in place (any offset and strides).
import { type TensorBase, allocLike } from '../tensor/base.js';
import { broadcastStrides } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, pad8 } from './common.js';
import { contiguousCopy, fill } from './elementwise.js';
import { sortAlong } from './sort.js';
import { defineFlag, oneOf } from '../gpu/flags.js';
import kernel from './kernels/gather.js';

function indexParams(idx: TensorBase): Record<string, number | number[]> {
  return { i_off: idx.offset, i_rank: idx.rank, i_shape: pad8(idx.shape), i_strides: pad8(idx.strides) };
}

/** out [...idx.shape, C] = table[idx] for a table [V, C]; an index outside [0, V) is an IndexError at the next sync. */
export function gatherRows<T extends TensorBase>(fn: string, table: T, idx: TensorBase): T {
  const [V, C] = table.shape;
  const R = idx.size;
  const tb = bufOf(table, fn), ib = bufOf(idx, fn);
  const out = allocLike(table, [...idx.shape, C], 'f32');
  if (R * C > 0) {
    dispatch(kernel, 'gather', {
      bindings: { table: tb, idx: ib, out: bufOf(out, fn) },
      params: {
        R, C, V, t_off: table.offset, t_sv: table.strides[0], t_sc: table.strides[1], s_off: 0, s_sc: 0, pad0: 0,
        ...indexParams(idx), s_strides: pad8([]),
      },
      workgroups: grid1d(Math.ceil((R * C) / 256)),
      label: fn,
      indexShape: idx.shape,
    });
  }
  return out;
}

/** How embedding's backward adds rows: 'sorted' (deterministic: the indices sorted, each row summed in order) or 'atomic'. */
export const embeddingBackwardFlag = defineFlag<'sorted' | 'atomic'>({
  name: 'embedding.backward',
  doc: 'how embedding gradients add repeated rows: sorted (deterministic) or float atomics',
  accepts: "'sorted' | 'atomic'",
  defaultDoc: "'sorted'",
  parse: oneOf(['sorted', 'atomic'] as const),
});

/**
 * acc [V, C] = sum over the indices of src's row into row idx[r]; src is [...idx.shape, C], any strides. By default
 * deterministic: the indices are sorted (stable) and each output element sums its rows in their original order; the
 * flag embedding.backward = 'atomic' adds with float atomics instead (the last bits then vary from run to run).
 */
export function scatterAddRows<T extends TensorBase>(fn: string, src: T, idx: TensorBase, V: number, C: number): T {
  if (embeddingBackwardFlag.get() !== 'atomic' && idx.size > 0) return scatterAddSorted(fn, src, idx, V, C);
  const R = idx.size;
  const sb = bufOf(src, fn), ib = bufOf(idx, fn);
  const acc = allocLike(src, [V, C], 'f32');
  fill(fn, acc, 0);
  if (R * C > 0) {
    const ss = broadcastStrides(src.shape, src.strides, [...idx.shape, C]);
    dispatch(kernel, 'scatter_add', {
      bindings: { src: sb, idx: ib, acc: bufOf(acc, fn) },
      params: {
        R, C, V, t_off: 0, t_sv: 0, t_sc: 0, s_off: src.offset, s_sc: ss[idx.rank], pad0: 0,
        ...indexParams(idx), s_strides: pad8(ss.slice(0, idx.rank)),
      },
      workgroups: grid1d(Math.ceil((R * C) / 256)),
      label: fn,
      indexShape: idx.shape,
    });
  }
  return acc;
}

function scatterAddSorted<T extends TensorBase>(fn: string, src: T, idx: TensorBase, V: number, C: number): T {
  const R = idx.size;
  const sb = bufOf(src, fn);
  const dense = idx.isContiguous ? null : contiguousCopy(fn, idx);
  const flat = dense ? dense.makeView([R], [1], 0) : idx.makeView([R], [1], idx.offset);
  dense?.dispose();
  const { values, indices } = sortAlong(fn, flat, 0, R, false);
  flat.dispose();
  const grad = allocLike(src, [V, C], 'f32');
  if (V * C > 0) {
    const ss = broadcastStrides(src.shape, src.strides, [...idx.shape, C]);
    dispatch(kernel, 'scatter_add_sorted', {
      bindings: { src: sb, sorted_ids: bufOf(values, fn), perm: bufOf(indices, fn), grad: bufOf(grad, fn) },
      params: {
        R, C, V, t_off: 0, t_sv: 0, t_sc: 0, s_off: src.offset, s_sc: ss[idx.rank], pad0: 0,
        ...indexParams(idx), s_strides: pad8(ss.slice(0, idx.rank)),
      },
      workgroups: grid1d(Math.ceil(Math.max(V * C, R) / 256)),
      label: fn,
      indexShape: idx.shape,
    });
  }
  values.dispose();
  indices.dispose();
  return grad;
}
