// Batched matmul with PyTorch's broadcasting and 1-D rules, and its backward.
import { f16Unsupported } from '../tensor/dtype.js';
import { DTypeError, DeviceError, ShapeError, fmtShape } from '../errors.js';
import { type Tensor, empty } from '../tensor/tensor.js';
import { broadcastShapes, numel } from '../tensor/shape.js';
import { dispatch } from '../gpu/kernels.js';
import { gpu } from '../gpu/device.js';
import { record } from './record.js';
import { reshape, sumToShape, transpose, unsqueeze, squeeze } from './views.js';
import { add, withTmp } from './elementwise.js';

/** out[..., M, N] = a[..., M, K] @ b[..., K, N] on 2-D-or-more operands (any strides). */
function matmul2(a: Tensor, b: Tensor, alpha = 1): Tensor {
  const M = a.shape[a.rank - 2], K = a.shape[a.rank - 1], N = b.shape[b.rank - 1];
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const count = numel(batch);
  // Validate before allocating, so a rejected call leaves memory as it was.
  if (batch.length > 4) throw new ShapeError(`matmul: at most 4 batch dims are supported, got ${fmtShape(batch)}`);
  if (count > gpu().device.limits.maxComputeWorkgroupsPerDimension) throw new DeviceError(`matmul: ${count} batch entries exceed the dispatch limit`);
  const out = empty([...batch, M, N], 'f32');
  if (count === 0 || M === 0 || N === 0) return out;
  const bs = (t: Tensor): number[] => {
    const lead = t.shape.slice(0, -2), ls = t.strides.slice(0, -2);
    const off = batch.length - lead.length;
    return batch.map((d, i) => (i < off || lead[i - off] === 1 ? 0 : ls[i - off]));
  };
  const pad4 = (v: number[]) => [...Array(4 - v.length).fill(0), ...v];
  const batchShape = [...Array(4 - batch.length).fill(1), ...batch];
  dispatch('matmul.wgsl', 'main', {
    bindings: { a: a.buf('matmul').buffer, b: b.buf('matmul').buffer, out: out.buf('matmul').buffer },
    params: {
      M, N, K,
      batch_rank: 4,
      a_off: a.offset, b_off: b.offset,
      a_sm: a.strides[a.rank - 2], a_sk: a.strides[a.rank - 1],
      b_sk: b.strides[b.rank - 2], b_sn: b.strides[b.rank - 1],
      alpha, pad0: 0,
      batch_shape: batchShape,
      a_bs: pad4(bs(a)),
      b_bs: pad4(bs(b)),
    },
    workgroups: [Math.ceil(N / 64), Math.ceil(M / 64), count],
    label: 'matmul',
  });
  return out;
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  a.buf('matmul');
  b.buf('matmul');
  if (a.dtype === 'f16' || b.dtype === 'f16') throw f16Unsupported('matmul');
  if (a.dtype !== 'f32' || b.dtype !== 'f32') throw new DTypeError(`matmul: needs f32 operands, got ${a.dtype} and ${b.dtype}`);
  if (a.rank === 0 || b.rank === 0) throw new ShapeError(`matmul: operands must have at least 1 dim, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const K1 = a.shape[a.rank - 1];
  const K2 = b.rank === 1 ? b.shape[0] : b.shape[b.rank - 2];
  if (K1 !== K2) {
    throw new ShapeError(`matmul: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}: inner dimensions differ (${K1} vs ${K2})`);
  }
  if (a.rank >= 2 && b.rank >= 2) broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  // 1-D operands: promote, multiply, then drop the added dim (as PyTorch).
  const a2 = a.rank === 1 ? unsqueeze(a, 0) : a;
  const b2 = b.rank === 1 ? unsqueeze(b, 1) : b;
  let out: Tensor;
  try {
    out = matmul2(a2, b2);
  } catch (e) {
    if (a2 !== a) a2.dispose();
    if (b2 !== b) b2.dispose();
    throw e;
  }
  const aShape = a2.shape.slice(), bShape = b2.shape.slice();
  out = record('matmul', out, [a2, b2], (g, [sa, sb], needs) => [
    needs[0] ? withTmp(transpose(sb, -1, -2), (bt) => withTmp(matmul(g, bt), (t) => sumToShape(t, aShape))) : null,
    needs[1] ? withTmp(transpose(sa, -1, -2), (at) => withTmp(matmul(at, g), (t) => sumToShape(t, bShape))) : null,
  ], [a2, b2]);
  if (a.rank === 1 || b.rank === 1) {
    let r = out;
    if (a.rank === 1) r = withTmp(r, (t) => squeeze(t, -2));
    if (b.rank === 1) r = withTmp(r, (t) => squeeze(t, -1));
    out = r;
  }
  if (a2 !== a) a2.dispose();
  if (b2 !== b) b2.dispose();
  return out;
}

/** x @ w^T + b, with w [out, in] as PyTorch's Linear stores it. */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  if (w.rank !== 2) throw new ShapeError(`linear: weight must be [out, in], got ${fmtShape(w.shape)}`);
  if (x.shape[x.rank - 1] !== w.shape[1]) {
    throw new ShapeError(`linear: input ${fmtShape(x.shape)} has ${x.shape[x.rank - 1]} features but weight ${fmtShape(w.shape)} expects ${w.shape[1]}`);
  }
  if (b && (b.rank !== 1 || b.shape[0] !== w.shape[0])) throw new ShapeError(`linear: bias ${fmtShape(b.shape)} must be [${w.shape[0]}]`);
  if (x.rank > 2) {
    // Fold the leading dims into rows: one [rows, in] @ [in, out] product instead of a batched
    // matmul of many short matrices that fill few tiles, and a weight gradient that is one
    // product over all rows rather than per-batch products summed afterwards.
    const lead = x.shape.slice(0, -1);
    const x2 = reshape(x, [numel(lead), x.shape[x.rank - 1]]);
    const y2 = linear(x2, w, b);
    x2.dispose();
    return withTmp(y2, (t) => reshape(t, [...lead, w.shape[0]]));
  }
  const wt = transpose(w, 0, 1);
  const y = matmul(x, wt);
  wt.dispose();
  if (!b) return y;
  return withTmp(y, (t) => add(t, b));
}
