// Launcher of kernels/sort.wgsl: a bitonic sort of each row along one dim (any offset and strides), keeping the first
// K of each sorted row (sort: all, topk: k), and the scatter of their gradient back. Rows of up to 1024 padded
// elements sort in one dispatch in workgroup memory (several rows per workgroup when short); longer rows take the
// multi-pass path: blocks sorted locally, then per stage k one global dispatch per distance j >= 1024 and one local
// merge for the distances below. topk with k <= 256 of long rows keeps candidates instead: each block sorted on its
// own, its first k (rounded up to a power of two) kept, until a row fits one block (the same order: ties by index).
import { ShapeError, fmtShape } from '../errors.js';
import { type TensorBase, allocLike } from '../tensor/base.js';
import { contiguousStrides, numel } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { gpu } from '../gpu/device.js';
import { bufOf, dtCode, pad8 } from './common.js';
import { fill } from './elementwise.js';
import kernel from './kernels/sort.js';

const BLOCK = 1024;
const WG = 256;
/** Top-k with k up to this many, of rows longer than a block, keeps per-block candidates instead of a full sort. */
const TOPK_CANDIDATES = 256;

const nextPow2 = (n: number): number => {
  let p = 1;
  while (p < n) p *= 2;
  return p;
};

/** Fails before any work when the sort's scratch (two u32 words per padded element) exceeds a buffer binding. */
export function checkSortSize(fn: string, shape: readonly number[], dim: number): void {
  const L = shape[dim] ?? 1;
  const rows = numel(shape) / Math.max(L, 1);
  const bytes = rows * nextPow2(Math.max(L, 1)) * 4;
  const lim = gpu().device.limits;
  const max = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize);
  if (bytes > max) throw new ShapeError(`${fn}: sorting ${fmtShape(shape)} along dim ${dim} needs ${bytes} bytes of scratch, over this adapter's ${max}-byte binding limit`);
}

function others(v: readonly number[], dim: number): number[] {
  return v.filter((_, i) => i !== dim);
}

/**
 * Sorts x along `dim` (ascending, or descending) and returns the first K of each row: values (x's dtype) and indices
 * (i32), both contiguous with x's shape except K along `dim`. NaN sorts as the largest value; ties keep their order.
 */
export function sortAlong<T extends TensorBase>(fn: string, x: T, dim: number, K: number, descending: boolean): { values: T; indices: T } {
  const code = dtCode(x, fn);
  const xb = bufOf(x, fn);
  const rank0 = x.rank === 0;
  const L = rank0 ? 1 : x.shape[dim];
  const outShape = rank0 ? [] : x.shape.map((s, i) => (i === dim ? K : s));
  const values = allocLike(x, outShape, x.dtype);
  const indices = allocLike(x, outShape, 'i32');
  const rows = L === 0 ? 0 : x.size / L;
  if (rows === 0 || K === 0) return { values, indices };
  const P = nextPow2(L);
  const oStrides = contiguousStrides(outShape);
  const base = {
    rows, L, P, K, k: 0, j: 0,
    x_off: x.offset,
    x_sl: rank0 ? 0 : x.strides[dim],
    o_sl: rank0 ? 0 : oStrides[dim],
    outer_rank: rank0 ? 0 : x.rank - 1,
    g_off: 0, g_sl: 0, seg: P, p_in: 0, kk: 0, pad0: 0,
    outer_shape: pad8(rank0 ? [] : others(x.shape, dim)),
    x_outer: pad8(rank0 ? [] : others(x.strides, dim)),
    o_outer: pad8(rank0 ? [] : others(oStrides, dim)),
    g_outer: pad8([]),
  };
  const constants = { X_DT: code, DESC: descending ? 1 : 0 };
  const pair = (n: number) => ({ key: allocLike(x, [n], 'i32'), idx: allocLike(x, [n], 'i32') });
  let cur = pair(rows * P);
  let Pcur = P;
  const localSort = (fromX: boolean, seg: number) =>
    dispatch(kernel, 'local_sort', {
      constants: { ...constants, FROM_X: fromX ? 1 : 0 },
      bindings: { x: xb, skey: bufOf(cur.key, fn), sidx: bufOf(cur.idx, fn) },
      params: { ...base, P: Pcur, seg },
      workgroups: grid1d(Math.ceil((rows * Pcur) / BLOCK)),
      label: fn,
    });
  try {
    if (P > BLOCK && K <= TOPK_CANDIDATES) {
      // Top-k of long rows: sort each block on its own, keep its first kk, until a row fits one block.
      const kk = nextPow2(Math.max(K, 1));
      localSort(true, BLOCK);
      while (Pcur > BLOCK) {
        const Pn = (Pcur / BLOCK) * kk;
        const next = pair(rows * Pn);
        dispatch(kernel, 'compact', {
          bindings: { skey: bufOf(cur.key, fn), sidx: bufOf(cur.idx, fn), dkey: bufOf(next.key, fn), didx: bufOf(next.idx, fn) },
          params: { ...base, P: Pn, p_in: Pcur, kk },
          workgroups: grid1d(Math.ceil((rows * Pn) / WG)),
          label: fn,
        });
        cur.key.dispose();
        cur.idx.dispose();
        cur = next;
        Pcur = Pn;
        localSort(false, Math.min(Pcur, BLOCK));
      }
    } else {
      localSort(true, P);
      const scratch = { skey: bufOf(cur.key, fn), sidx: bufOf(cur.idx, fn) };
      const blocks = Math.ceil((rows * P) / BLOCK);
      for (let k = 2 * BLOCK; k <= P; k *= 2) {
        for (let j = k / 2; j >= BLOCK; j /= 2) {
          dispatch(kernel, 'global_step', { constants, bindings: scratch, params: { ...base, k, j }, workgroups: grid1d(Math.ceil((rows * P) / 2 / WG)), label: fn });
        }
        dispatch(kernel, 'local_merge', { constants, bindings: scratch, params: { ...base, k }, workgroups: grid1d(blocks), label: fn });
      }
    }
    dispatch(kernel, 'finish', {
      constants,
      bindings: { x: xb, sidx: bufOf(cur.idx, fn), values: bufOf(values, fn), indices: bufOf(indices, fn) },
      params: { ...base, P: Pcur },
      workgroups: grid1d(Math.ceil((rows * K) / WG)),
      label: fn,
    });
  } finally {
    cur.key.dispose();
    cur.idx.dispose();
  }
  return { values, indices };
}

/**
 * The gradient of a sort or topk along `dim`: zeros of `inShape` with g[.., c, ..] written at indices[.., c, ..] (the
 * indices are distinct within a row, so nothing accumulates). g may be any view of the output's shape.
 */
export function sortBackward<T extends TensorBase>(fn: string, g: T, indices: TensorBase, inShape: readonly number[], dim: number): T {
  const gb = bufOf(g, fn);
  const ib = bufOf(indices, fn);
  const gx = allocLike(g, inShape.slice(), 'f32');
  fill(fn, gx, 0);
  const rank0 = inShape.length === 0;
  const K = rank0 ? 1 : indices.shape[dim];
  const rows = K === 0 ? 0 : indices.size / K;
  if (rows === 0) return gx;
  const xStrides = contiguousStrides(inShape);
  dispatch(kernel, 'scatter_back', {
    bindings: { x: ib, g: gb, gx: bufOf(gx, fn) },
    params: {
      rows, L: 0, P: 1, K, k: 0, j: 0, seg: 1, p_in: 0, kk: 0, pad0: 0,
      x_off: indices.offset,
      x_sl: rank0 ? 0 : xStrides[dim],
      o_sl: rank0 ? 0 : indices.strides[dim],
      outer_rank: rank0 ? 0 : inShape.length - 1,
      g_off: g.offset,
      g_sl: rank0 ? 0 : g.strides[dim],
      outer_shape: pad8(rank0 ? [] : others(indices.shape, dim)),
      x_outer: pad8(rank0 ? [] : others(xStrides, dim)),
      o_outer: pad8(rank0 ? [] : others(indices.strides, dim)),
      g_outer: pad8(rank0 ? [] : others(g.strides, dim)),
    },
    workgroups: grid1d(Math.ceil((rows * K) / WG)),
    label: fn,
  });
  return gx;
}
