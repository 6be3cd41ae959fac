// Launcher of kernels/gather.wgsl: rows of a table picked by i32 indices (embedding), and the adjoint scatter-add.
// Every input is read in place (any offset and strides).
import { type TensorBase, allocLike } from '../tensor/base.js';
import { broadcastStrides } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf, pad8 } from './common.js';
import { fill } from './elementwise.js';
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

/** acc [V, C] = sum over the indices of src's row into row idx[r] (zeros first); src is [...idx.shape, C], any strides. */
export function scatterAddRows<T extends TensorBase>(fn: string, src: T, idx: TensorBase, V: number, C: number): T {
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
