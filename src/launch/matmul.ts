// Launcher of kernels/matmul.wgsl: batched out[..., M, N] = alpha * a[..., M, K] @ b[..., K, N] over strided
// operands (any strides, batch dims broadcast), 16 x 64 output tiles, 4 x 8 per thread. Where B's rows are contiguous
// and 16-byte aligned (every offset and stride of B a multiple of 4 elements) it reads B as vec4 (`main_vec`).
import { DeviceError, ShapeError, fmtShape } from '../errors.js';
import { type TensorBase, allocLike } from '../tensor/base.js';
import { broadcastShapes, numel } from '../tensor/shape.js';
import { gpu } from '../gpu/device.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { bufOf } from './common.js';
import kernel from './kernels/matmul.js';

/** Output tile of one workgroup (kernels/matmul.wgsl TM x TN). */
const TILE_M = 16;
const TILE_N = 64;

/** Checks that a @ b (2-D or more each) can launch on this adapter, before anything is allocated. */
export function checkMatmul(fn: string, a: TensorBase, b: TensorBase): void {
  const batch = broadcastShapes(fn, a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (batch.length > 4) throw new ShapeError(`${fn}: at most 4 batch dims are supported, got ${fmtShape(batch)}`);
  const count = numel(batch);
  const lim = gpu().device.limits.maxComputeWorkgroupsPerDimension;
  const M = a.shape[a.rank - 2], N = b.shape[b.rank - 1];
  // The kernel finds its tile and batch entry from its linear workgroup id, so the count folds into a 2-D grid.
  const tiles = Math.ceil(N / TILE_N) * Math.ceil(M / TILE_M) * count;
  if (tiles > lim * lim) throw new DeviceError(`${fn}: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} needs ${tiles} workgroups, over this adapter's ${lim} x ${lim}`);
}

/** out = alpha * a @ b for operands of rank >= 2 (validated by checkMatmul). */
export function matmul<T extends TensorBase>(fn: string, a: T, b: TensorBase, alpha = 1): T {
  checkMatmul(fn, a, b);
  const M = a.shape[a.rank - 2], K = a.shape[a.rank - 1], N = b.shape[b.rank - 1];
  const batch = broadcastShapes(fn, a.shape.slice(0, -2), b.shape.slice(0, -2));
  const count = numel(batch);
  const ab = bufOf(a, fn), bb = bufOf(b, fn);
  const out = allocLike(a, [...batch, M, N], 'f32');
  if (count === 0 || M === 0 || N === 0) return out;
  const bs = (t: TensorBase): number[] => {
    const lead = t.shape.slice(0, -2), ls = t.strides.slice(0, -2);
    const off = batch.length - lead.length;
    return batch.map((_, i) => (i < off || lead[i - off] === 1 ? 0 : ls[i - off]));
  };
  const pad4 = (v: number[]) => [...Array(4 - v.length).fill(0), ...v];
  const bBatch = bs(b);
  const b_sk = b.strides[b.rank - 2], b_sn = b.strides[b.rank - 1];
  // vec4 reads of B: N a multiple of 4, its rows contiguous, and every row start 16-byte aligned.
  const vec = N % 4 === 0 && b_sn === 1 && (K === 1 || b_sk % 4 === 0) && b.offset % 4 === 0 && bBatch.every((s) => s % 4 === 0);
  const q = vec ? 4 : 1;
  dispatch(kernel, vec ? 'main_vec' : 'main', {
    bindings: vec ? { a: ab, b4: bb, out: bufOf(out, fn) } : { a: ab, b: bb, out: bufOf(out, fn) },
    params: {
      M, N, K,
      batch_rank: 4,
      a_off: a.offset, b_off: b.offset / q,
      a_sm: a.strides[a.rank - 2], a_sk: a.strides[a.rank - 1],
      b_sk: K === 1 ? 0 : b_sk / q, b_sn,
      alpha, pad0: 0,
      batch_shape: [...Array(4 - batch.length).fill(1), ...batch],
      a_bs: pad4(bs(a)),
      b_bs: pad4(bBatch.map((s) => s / q)),
    },
    workgroups: grid1d(Math.ceil(N / TILE_N) * Math.ceil(M / TILE_M) * count),
    label: fn,
  });
  return out;
}
