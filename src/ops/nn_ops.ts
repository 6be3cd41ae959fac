// softmax, logSoftmax, layerNorm, embedding, concat and stack: the ops with kernels of their own.
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { checkDType } from '../tensor/dtype.js';
import { allocLike } from '../tensor/base.js';
import { normDim } from '../tensor/shape.js';
import { copy } from '../launch/elementwise.js';
import { softmax as launchSoftmax } from '../launch/softmax.js';
import { layerNormBackward, layerNormBackwardAffine, layerNormForward } from '../launch/layernorm.js';
import { gatherRows, scatterAddRows } from '../launch/gather.js';
import { record } from '../autograd/node.js';
import type { Tensor } from './tensor.js';
import { reshape } from './views.js';
import { inF32 } from './elementwise.js';
import { autocastRun } from './autocast.js';

function softmaxImpl(fn: string, log: boolean, x: Tensor, dim: number): Tensor {
  checkDType(fn, 'input', x.dtype, ['f32', 'f16']);
  if (dim === undefined || dim === null) throw new ValueError(`${fn}: dim is required`);
  const d = x.rank === 0 ? 0 : normDim(fn, dim, x.rank, x.shape);
  x.buf(fn);
  const ac = autocastRun(log ? 'logSoftmax' : 'softmax', [x], (w) => softmaxImpl(fn, log, w, d));
  if (ac) return ac;
  if (x.dtype === 'f16') return inF32('f16', [x], (w) => softmaxImpl(fn, log, w, d));
  const y = launchSoftmax(fn, log, x, null, d);
  return record(fn, y, [x], (g, [ys]) => [launchSoftmax(fn, log, ys, g, d)], [y]);
}

export const softmax = (x: Tensor, dim: number): Tensor => softmaxImpl('softmax', false, x, dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => softmaxImpl('logSoftmax', true, x, dim);

export function layerNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const fn = 'layerNorm';
  checkDType(fn, 'input', x.dtype, ['f32', 'f16']);
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
  if (!Array.isArray(ns)) throw new ShapeError(`${fn}: normalizedShape must be a size or an array of sizes, got ${String(normalizedShape)}`);
  const tail = x.shape.slice(x.rank - ns.length);
  if (ns.length > x.rank || !ns.every((d, i) => d === tail[i])) {
    throw new ShapeError(`${fn}: normalizedShape ${fmtShape(ns)} does not match the trailing dims of input ${fmtShape(x.shape)}`);
  }
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (!t) continue;
    t.buf(fn);
    if (t.shape.length !== ns.length || !t.shape.every((d, i) => d === ns[i])) throw new ShapeError(`${fn}: ${name} ${fmtShape(t.shape)} must have shape ${fmtShape(ns)}`);
    checkDType(fn, name, t.dtype, ['f32', 'f16']);
  }
  if (typeof eps !== 'number' || !(eps > 0)) throw new ValueError(`${fn}: eps must be > 0, got ${eps}`);
  x.buf(fn);
  const ac = autocastRun('layerNorm', [x, weight, bias], (a, w, b) => layerNorm(a!, ns, w, b, eps));
  if (ac) return ac;
  // f16 anywhere: statistics and the affine map in f32, the output rounded once to x's dtype.
  if ([x, weight, bias].some((t) => t?.dtype === 'f16')) return inF32(x.dtype, [x, weight, bias], (a, w, b) => layerNorm(a!, ns, w, b, eps));
  const { y, mean, rstd } = layerNormForward(x, weight ?? null, bias ?? null, ns.length, eps);
  const lead = x.shape.slice(0, x.rank - ns.length).map((_, i) => i);
  const out = record(fn, y, [x, weight, bias], (g, saved, needs) => {
    const [sx, sm, sr, sw] = saved;
    const dx = needs[0] ? layerNormBackward(sx, sw ?? null, g, sm, sr, ns.length, eps) : null;
    // dweight and dbias are column sums over the rows: one dispatch for both (a bias-only norm has no xhat to sum).
    const { dweight: dw, dbias: db } = needs[1] || (needs[2] && lead.length) ? layerNormBackwardAffine(sx, g, sm, sr, ns.length, needs[1], needs[2]) : { dweight: null, dbias: needs[2] ? g : null };
    return [dx, dw, db];
  }, [x, mean, rstd, ...(weight ? [weight] : [])]);
  mean.dispose();
  rstd.dispose();
  return out;
}

/** Rows of `weight` [num, dim] picked by i32 `indices` (any shape); out is indices.shape + [dim]. */
export function embedding(indices: Tensor, weight: Tensor): Tensor {
  const fn = 'embedding';
  indices.buf(fn);
  weight.buf(fn);
  if (indices.dtype !== 'i32') throw new DTypeError(`${fn}: indices must be i32, got ${indices.dtype}`);
  if (weight.rank !== 2) throw new ShapeError(`${fn}: weight must be [num, dim], got ${fmtShape(weight.shape)}`);
  checkDType(fn, 'weight', weight.dtype, ['f32', 'f16']);
  // An f16 table is gathered as f32 (a cast of the table per call: the gather kernel reads 32-bit words).
  if (weight.dtype === 'f16') return inF32('f16', [weight], (w) => embedding(indices, w!));
  const [V, C] = weight.shape;
  const out = gatherRows(fn, weight, indices);
  return record(fn, out, [null, weight], (g, [si]) => [null, scatterAddRows(`${fn}.backward`, g, si, V, C)], [indices]);
}

/** Joins tensors along an existing dim. */
export function concat(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ValueError('concat: needs a non-empty array of tensors');
  const first = tensors[0];
  for (const t of tensors) t.buf('concat');
  const d = normDim('concat', dim, first.rank, first.shape);
  for (const t of tensors) {
    if (t.dtype !== first.dtype) throw new DTypeError(`concat: dtypes differ (${first.dtype} vs ${t.dtype})`);
    if (t.rank !== first.rank || t.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      throw new ShapeError(`concat: shapes ${tensors.map((x) => fmtShape(x.shape)).join(', ')} differ outside dim ${d}`);
    }
  }
  const shape = first.shape.slice();
  shape[d] = tensors.reduce((a, t) => a + t.shape[d], 0);
  const out = allocLike(first, shape, first.dtype);
  const starts: number[] = [];
  let start = 0;
  for (const t of tensors) {
    starts.push(start);
    const target = out.makeView(t.shape.slice(), out.strides.slice(), start * out.strides[d]);
    copy('concat', target, t);
    target.dispose();
    start += t.shape[d];
  }
  const sizes = tensors.map((t) => t.shape[d]);
  return record('concat', out, tensors, (g) =>
    sizes.map((size, i) => {
      const shp = g.shape.slice();
      shp[d] = size;
      return g.makeView(shp, g.strides.slice(), g.offset + starts[i] * g.strides[d]);
    }),
  );
}

export function stack(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ValueError('stack: needs a non-empty array of tensors');
  const first = tensors[0];
  for (const t of tensors) t.buf('stack');
  const d = normDim('stack', dim, first.rank + 1, first.shape);
  // Validate here so the message names the caller's shapes, not the unsqueezed ones.
  for (const t of tensors) {
    if (t.rank !== first.rank || t.shape.some((s, i) => s !== first.shape[i])) {
      throw new ShapeError(`stack: all tensors need the same shape, got ${tensors.map((x) => fmtShape(x.shape)).join(', ')}`);
    }
  }
  const expanded = tensors.map((t) => {
    const shp = t.shape.slice();
    shp.splice(d, 0, 1);
    return reshape(t, shp);
  });
  try {
    return concat(expanded, d);
  } finally {
    for (const e of expanded) e.dispose();
  }
}
