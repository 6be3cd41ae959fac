// Reductions over any dims, with keepdim, and their backward rules.
import { ShapeError, fmtShape } from '../errors.js';
import { checkDType } from '../tensor/dtype.js';
import { type Tensor, empty } from '../tensor/tensor.js';
import { contiguousStrides, normDim } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { dtCode, pad8 } from './kernel_args.js';
import { expand, reshape, setSumDims } from './views.js';
import { mul, mulScalar, withTmp, binaryRaw, B } from './elementwise.js';
import { record } from './record.js';

const OPS = { sum: 0, max: 1, min: 2, argmax: 3, argmin: 4 } as const;
type ReduceOp = keyof typeof OPS;

function normDims(fn: string, x: Tensor, dim: number | number[] | undefined): number[] {
  if (dim === undefined || dim === null) return x.shape.map((_, i) => i);
  const list = Array.isArray(dim) ? dim : [dim];
  const out = list.map((d) => normDim(fn, d, x.rank, x.shape));
  if (new Set(out).size !== out.length) throw new ShapeError(`${fn}: dims ${JSON.stringify(dim)} repeat a dim of ${fmtShape(x.shape)}`);
  return out.sort((a, b) => a - b);
}

function reduceRaw(fn: string, x: Tensor, dims: number[], keepdim: boolean, op: ReduceOp, scale = 1): Tensor {
  x.buf(fn);
  const kept = x.shape.map((_, i) => i).filter((i) => !dims.includes(i));
  const outShape = keepdim ? x.shape.map((d, i) => (dims.includes(i) ? 1 : d)) : kept.map((i) => x.shape[i]);
  const R = dims.reduce((a, d) => a * x.shape[d], 1);
  const nOut = kept.reduce((a, d) => a * x.shape[d], 1);
  if (R === 0 && op !== 'sum') throw new ShapeError(`${fn}: cannot reduce over an empty dim of ${fmtShape(x.shape)}`);
  const outDType = op === 'argmax' || op === 'argmin' ? 'i32' : op === 'sum' && x.dtype !== 'f32' ? 'i32' : x.dtype === 'bool' ? 'f32' : x.dtype;
  // A long reduction into few outputs would leave most of the GPU idle (one workgroup per output):
  // reduce chunks of a contiguous trailing block first, then the partial results.
  const trailing = dims.length > 0 && dims.every((d, i) => d === x.rank - dims.length + i);
  if (R >= 65536 && nOut < 256 && trailing && x.isContiguous && (op === 'sum' || op === 'max' || op === 'min')) {
    let C = 1024;
    while (C > 16 && R % C !== 0) C >>= 1;
    if (R % C === 0 && C > 16) {
      const v = x.makeView([nOut, C, R / C], [R, R / C, 1], x.offset);
      const partial = reduceRaw(fn, v, [2], false, op, 1);
      v.dispose();
      const total = reduceRaw(fn, partial, [1], false, op, scale);
      partial.dispose();
      const shaped = total.makeView(outShape, contiguousStrides(outShape), 0);
      total.dispose();
      return shaped;
    }
  }
  const out = empty(outShape, outDType);
  if (nOut === 0) return out;
  const perGroup = R > 64;
  const WG = 64;
  dispatch('reduce.wgsl', perGroup ? 'per_group' : 'per_thread', {
    constants: { OP: OPS[op], A_DT: dtCode(x) },
    bindings: { x: x.buf(fn).buffer, out: out.buf(fn).buffer },
    params: {
      n_out: nOut,
      R,
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

/** Broadcasts a reduced gradient back over the reduced dims. */
function expandBack(g: Tensor, inShape: number[], dims: number[], keepdim: boolean): Tensor {
  const keptShape = inShape.map((d, i) => (dims.includes(i) ? 1 : d));
  const r = keepdim ? g.makeView(g.shape, g.strides, g.offset) : reshape(g, keptShape);
  const e = expand(r, inShape);
  r.dispose();
  return e;
}

export function sum(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  checkDType('sum', 'input', x.dtype, ['f32', 'i32', 'bool']);
  const dims = normDims('sum', x, dim);
  const out = reduceRaw('sum', x, dims, keepdim, 'sum');
  const inShape = x.shape.slice();
  return record('sum', out, [x], (g) => [expandBack(g, inShape, dims, keepdim)]);
}
setSumDims((x, dims, keepdim) => sum(x, dims, keepdim));

export function mean(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  checkDType('mean', 'input', x.dtype, ['f32']);
  const dims = normDims('mean', x, dim);
  const R = dims.reduce((a, d) => a * x.shape[d], 1);
  const out = reduceRaw('mean', x, dims, keepdim, 'sum', R === 0 ? NaN : 1 / R);
  const inShape = x.shape.slice();
  return record('mean', out, [x], (g) => [withTmp(expandBack(g, inShape, dims, keepdim), (e) => mulScalar(e, 1 / R))]);
}

function maxMin(fn: 'max' | 'min', x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  checkDType(fn, 'input', x.dtype, ['f32', 'i32']);
  const dims = normDims(fn, x, dim);
  const out = reduceRaw(fn, x, dims, keepdim, fn);
  const inShape = x.shape.slice();
  // Gradient flows to every element equal to the extremum, split evenly among ties.
  return record(fn, out, [x], (g, [sx, y]) => {
    const yb = expandBack(y, inShape, dims, keepdim);
    const hit = binaryRaw(`${fn}.backward`, sx, yb, B.eq, 'f32');
    yb.dispose();
    const count = reduceRaw(`${fn}.backward`, hit, dims, true, 'sum');
    const gb = expandBack(g, inShape, dims, keepdim);
    const share = withTmp(gb, (t) => mul(t, hit));
    hit.dispose();
    const res = withTmp(share, (t) => withTmp(count, (c) => binaryRaw(`${fn}.backward`, t, c, B.div, 'f32')));
    return [res];
  }, [x, out]);
}
export const max = (x: Tensor, dim?: number | number[], keepdim = false): Tensor => maxMin('max', x, dim, keepdim);
export const min = (x: Tensor, dim?: number | number[], keepdim = false): Tensor => maxMin('min', x, dim, keepdim);

export function argmax(x: Tensor, dim?: number, keepdim = false): Tensor {
  checkDType('argmax', 'input', x.dtype, ['f32', 'i32']);
  if (dim === undefined) {
    const flat = reshape(x, [-1]);
    const r = withTmp(flat, (t) => reduceRaw('argmax', t, [0], false, 'argmax'));
    // keepdim over every dim keeps the input's rank, all ones (as PyTorch).
    return keepdim ? withTmp(r, (t) => reshape(t, x.shape.map(() => 1))) : r;
  }
  return reduceRaw('argmax', x, [normDim('argmax', dim, x.rank, x.shape)], keepdim, 'argmax');
}
export function argmin(x: Tensor, dim?: number, keepdim = false): Tensor {
  checkDType('argmin', 'input', x.dtype, ['f32', 'i32']);
  if (dim === undefined) {
    const flat = reshape(x, [-1]);
    const r = withTmp(flat, (t) => reduceRaw('argmin', t, [0], false, 'argmin'));
    // keepdim over every dim keeps the input's rank, all ones (as PyTorch).
    return keepdim ? withTmp(r, (t) => reshape(t, x.shape.map(() => 1))) : r;
  }
  return reduceRaw('argmin', x, [normDim('argmin', dim, x.rank, x.shape)], keepdim, 'argmin');
}
