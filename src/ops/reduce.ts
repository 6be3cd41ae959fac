// Reductions over any dims, with keepdim, and their backward rules.
import { ShapeError, fmtShape } from '../errors.js';
import { checkDType } from '../tensor/dtype.js';
import { normDim } from '../tensor/shape.js';
import { B, binary, unary, U } from '../launch/elementwise.js';
import { reduce } from '../launch/reduce.js';
import { record } from '../autograd/node.js';
import type { Tensor } from './tensor.js';
import { expand, reshape } from './views.js';

function normDims(fn: string, x: Tensor, dim: number | number[] | undefined | null): number[] {
  if (dim === undefined || dim === null) return x.shape.map((_, i) => i);
  const list = Array.isArray(dim) ? dim : [dim];
  const out = list.map((d) => normDim(fn, d, x.rank, x.shape));
  if (new Set(out).size !== out.length) throw new ShapeError(`${fn}: dims ${JSON.stringify(dim)} repeat a dim of ${fmtShape(x.shape)}`);
  return out.sort((a, b) => a - b);
}

/** A reduced gradient broadcast back over the reduced dims (a view). */
function expandBack(g: Tensor, inShape: number[], dims: number[], keepdim: boolean): Tensor {
  const r = keepdim ? g : reshape(g, inShape.map((d, i) => (dims.includes(i) ? 1 : d)));
  return expand(r, inShape);
}

export function sum(x: Tensor, dim?: number | number[] | null, keepdim = false): Tensor {
  checkDType('sum', 'input', x.dtype, ['f32', 'i32', 'bool']);
  const dims = normDims('sum', x, dim);
  const inShape = x.shape.slice();
  return record('sum', reduce('sum', x, dims, keepdim, 'sum'), [x], (g) => [expandBack(g, inShape, dims, keepdim)]);
}

export function mean(x: Tensor, dim?: number | number[] | null, keepdim = false): Tensor {
  checkDType('mean', 'input', x.dtype, ['f32']);
  const dims = normDims('mean', x, dim);
  const count = dims.reduce((a, d) => a * x.shape[d], 1);
  const inShape = x.shape.slice();
  const out = reduce('mean', x, dims, keepdim, 'sum', count === 0 ? NaN : 1 / count);
  return record('mean', out, [x], (g) => [unary('mean.backward', expandBack(g, inShape, dims, keepdim), U.MUL_SCALAR, 1 / count)]);
}

function maxMin(fn: 'max' | 'min', x: Tensor, dim?: number | number[] | null, keepdim = false): Tensor {
  checkDType(fn, 'input', x.dtype, ['f32', 'i32']);
  const dims = normDims(fn, x, dim);
  const inShape = x.shape.slice();
  const out = reduce(fn, x, dims, keepdim, fn);
  // The gradient flows to every element equal to the extremum, split evenly among ties.
  return record(fn, out, [x], (g, [sx, y]) => {
    // max() over everything shares the gradient among the elements it picked, NaNs included (torch.max); over given
    // dims (amax) a NaN result gives its group NaN gradients, as PyTorch.
    const hit = binary(`${fn}.backward`, sx, expandBack(y, inShape, dims, keepdim), dim === undefined || dim === null ? B.SAME : B.EQ, 'f32');
    const count = reduce(`${fn}.backward`, hit, dims, true, 'sum');
    return [binary(`${fn}.backward`, binary(`${fn}.backward`, expandBack(g, inShape, dims, keepdim), hit, B.MUL, 'f32'), count, B.DIV, 'f32')];
  }, [x, out]);
}
export const max = (x: Tensor, dim?: number | number[] | null, keepdim = false): Tensor => maxMin('max', x, dim, keepdim);
export const min = (x: Tensor, dim?: number | number[] | null, keepdim = false): Tensor => maxMin('min', x, dim, keepdim);

function argExtremum(fn: 'argmax' | 'argmin', x: Tensor, dim?: number | null, keepdim = false): Tensor {
  checkDType(fn, 'input', x.dtype, ['f32', 'i32']);
  if (dim === undefined || dim === null) {
    if (x.size === 0) throw new ShapeError(`${fn}: cannot reduce over an empty dim of [0] (${fmtShape(x.shape)}, flattened)`);
    const flat = reshape(x, [-1]);
    const r = reduce(fn, flat, [0], false, fn);
    flat.dispose();
    if (!keepdim) return r;
    // keepdim over every dim keeps the input's rank, all ones (as PyTorch).
    const k = reshape(r, x.shape.map(() => 1));
    r.dispose();
    return k;
  }
  return reduce(fn, x, [normDim(fn, dim, x.rank, x.shape)], keepdim, fn);
}
export const argmax = (x: Tensor, dim?: number | null, keepdim = false): Tensor => argExtremum('argmax', x, dim, keepdim);
export const argmin = (x: Tensor, dim?: number | null, keepdim = false): Tensor => argExtremum('argmin', x, dim, keepdim);
