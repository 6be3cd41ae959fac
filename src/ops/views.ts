// View ops: new shape/strides over the same storage, no copy. contiguous() copies when needed.
import { ShapeError, ValueError, fmtShape } from '../errors.js';
import { type Tensor, empty } from '../tensor/tensor.js';
import { checkShape, contiguousStrides, isContiguous, normDim, numel } from '../tensor/shape.js';
import { elementwise } from './kernel_args.js';
import { record } from './record.js';
import { castRaw, copyF16 } from './cast.js';

function viewOf(x: Tensor, shape: number[], strides: number[], offset: number): Tensor {
  return x.makeView(shape, strides, offset);
}

/** A contiguous copy (or the tensor itself, as a new view, when already contiguous). */
export function contiguous(x: Tensor): Tensor {
  x.buf('contiguous');
  if (isContiguous(x.shape, x.strides)) {
    const v = viewOf(x, x.shape.slice(), contiguousStrides(x.shape), x.offset);
    return record('contiguous', v, [x], (g) => [g.makeView(g.shape, g.strides, g.offset)]);
  }
  if (x.dtype === 'f16') return copyF16(x, 'contiguous');
  const out = empty(x.shape.slice(), x.dtype);
  elementwise('unary', 'contiguous', out, { a: x }, 0);
  return record('contiguous', out, [x], (g) => [g.makeView(g.shape, g.strides, g.offset)]);
}

/**
 * x itself when it is contiguous from offset 0, which is what kernels without an offset or stride params need;
 * otherwise a dense copy. Not recorded for autograd: callers attach their own backward to the original x.
 */
export function dense(x: Tensor, fn: string): Tensor {
  x.buf(fn);
  if (x.offset === 0 && isContiguous(x.shape, x.strides)) return x;
  if (x.dtype === 'f16') return castRaw(x, 'f16', fn);
  const out = empty(x.shape.slice(), x.dtype);
  elementwise('unary', fn, out, { a: x }, 0);
  return out;
}

function inferReshape(fn: string, x: Tensor, shape: number[]): number[] {
  const n = x.size;
  let infer = -1;
  let known = 1;
  const out = shape.slice();
  for (let i = 0; i < out.length; i++) {
    const d = out[i];
    if (d === -1) {
      if (infer >= 0) throw new ShapeError(`${fn}: shape ${fmtShape(shape)} has more than one -1`);
      infer = i;
    } else if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(`${fn}: shape ${fmtShape(shape)} has an invalid size ${d}`);
    } else known *= d;
  }
  if (infer >= 0) {
    if (known === 0 || n % known !== 0) throw new ShapeError(`${fn}: cannot reshape ${fmtShape(x.shape)} (${n} elements) into ${fmtShape(shape)}`);
    out[infer] = n / known;
  }
  if (numel(out) !== n) throw new ShapeError(`${fn}: cannot reshape ${fmtShape(x.shape)} (${n} elements) into ${fmtShape(shape)} (${numel(out)} elements)`);
  return checkShape(fn, out);
}

/** Strides for viewing x as `shape` without a copy, or null when the layout does not allow it. */
function viewStrides(x: Tensor, shape: number[]): number[] | null {
  if (isContiguous(x.shape, x.strides)) return contiguousStrides(shape);
  // Merge x's dims into contiguous chunks, then split each chunk into the new dims.
  const oldShape: number[] = [];
  const oldStrides: number[] = [];
  for (let i = 0; i < x.rank; i++) {
    if (x.shape[i] === 1) continue;
    if (oldShape.length && oldStrides[oldStrides.length - 1] === x.strides[i] * x.shape[i]) {
      oldShape[oldShape.length - 1] *= x.shape[i];
      oldStrides[oldStrides.length - 1] = x.strides[i];
    } else {
      oldShape.push(x.shape[i]);
      oldStrides.push(x.strides[i]);
    }
  }
  const strides = new Array<number>(shape.length).fill(0);
  let chunk = 0;
  let remaining = oldShape[0] ?? 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (d === 1) {
      strides[i] = 0;
      continue;
    }
    while (remaining === 1 && chunk < oldShape.length - 1) remaining = oldShape[++chunk];
    if (remaining % d !== 0) return null;
    remaining /= d;
    strides[i] = oldStrides[chunk] * remaining;
  }
  return strides;
}

export function reshape(x: Tensor, shape: number[]): Tensor {
  x.buf('reshape');
  const target = inferReshape('reshape', x, shape);
  const strides = viewStrides(x, target);
  if (strides) {
    const v = viewOf(x, target, strides, x.offset);
    const inShape = x.shape.slice();
    return record('reshape', v, [x], (g) => [reshape(g, inShape)]);
  }
  const c = contiguous(x);
  const v = reshape(c, target);
  c.dispose();
  return v;
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  const s = normDim('flatten', startDim, x.rank, x.shape);
  const e = normDim('flatten', endDim, x.rank, x.shape);
  if (x.rank === 0) return reshape(x, [1]);
  const shape = [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}

export function permute(x: Tensor, dims: number[]): Tensor {
  x.buf('permute');
  if (!Array.isArray(dims) || dims.length !== x.rank) {
    throw new ShapeError(`permute: dims ${JSON.stringify(dims)} must list each of the ${x.rank} dims of ${fmtShape(x.shape)} once`);
  }
  const norm = dims.map((d) => normDim('permute', d, x.rank, x.shape));
  if (new Set(norm).size !== norm.length) throw new ShapeError(`permute: dims ${JSON.stringify(dims)} repeat a dim`);
  const v = viewOf(x, norm.map((d) => x.shape[d]), norm.map((d) => x.strides[d]), x.offset);
  const inverse = new Array<number>(norm.length);
  norm.forEach((d, i) => (inverse[d] = i));
  return record('permute', v, [x], (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  const a = normDim('transpose', d0, x.rank, x.shape);
  const b = normDim('transpose', d1, x.rank, x.shape);
  const dims = x.shape.map((_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  x.buf('unsqueeze');
  const d = normDim('unsqueeze', dim, x.rank + 1, x.shape);
  const shape = x.shape.slice();
  const strides = x.strides.slice();
  shape.splice(d, 0, 1);
  strides.splice(d, 0, d < x.rank ? x.strides[d] * x.shape[d] : 1);
  const v = viewOf(x, shape, strides, x.offset);
  return record('unsqueeze', v, [x], (g) => [squeeze(g, d)]);
}

export function squeeze(x: Tensor, dim?: number | number[]): Tensor {
  x.buf('squeeze');
  let dims: number[];
  if (dim === undefined) dims = x.shape.flatMap((s, i) => (s === 1 ? [i] : []));
  else dims = (Array.isArray(dim) ? dim : [dim]).map((d) => normDim('squeeze', d, x.rank, x.shape)).filter((d) => x.shape[d] === 1);
  const shape = x.shape.filter((_, i) => !dims.includes(i));
  const strides = x.strides.filter((_, i) => !dims.includes(i));
  const inShape = x.shape.slice();
  const v = viewOf(x, shape, strides, x.offset);
  return record('squeeze', v, [x], (g) => [reshape(g, inShape)]);
}

export function expand(x: Tensor, shape: number[]): Tensor {
  x.buf('expand');
  if (shape.length < x.rank) throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to fewer dims ${fmtShape(shape)}`);
  const off = shape.length - x.rank;
  const target = shape.map((d, i) => (d === -1 ? (i >= off ? x.shape[i - off] : -1) : d));
  const strides = target.map((d, i) => {
    if (i < off) {
      if (d < 0) throw new ShapeError(`expand: -1 is not allowed for a new leading dim (${fmtShape(shape)})`);
      return 0;
    }
    const s = x.shape[i - off];
    if (s === d) return x.strides[i - off];
    if (s === 1) return 0;
    throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)} (dim ${i}: ${s} vs ${d})`);
  });
  checkShape('expand', target);
  const inShape = x.shape.slice();
  const v = viewOf(x, target, strides, x.offset);
  return record('expand', v, [x], (g) => [sumToShape(g, inShape)]);
}

/** Elements start, start+step, ... < end along dim (a view). */
export function slice(x: Tensor, dim: number, start = 0, end?: number, step = 1): Tensor {
  x.buf('slice');
  const d = normDim('slice', dim, x.rank, x.shape);
  const size = x.shape[d];
  if (!Number.isInteger(step) || step < 1) throw new ValueError(`slice: step must be a positive integer, got ${step}`);
  const norm = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, 0), size);
  const s = norm(start);
  const e = end === undefined ? size : norm(end);
  const len = Math.max(0, Math.ceil((e - s) / step));
  const shape = x.shape.slice();
  shape[d] = len;
  const strides = x.strides.slice();
  strides[d] = x.strides[d] * step;
  const v = viewOf(x, shape, strides, x.offset + s * x.strides[d]);
  const inShape = x.shape.slice();
  return record('slice', v, [x], (g) => [sliceBackward(g, inShape, d, s, step)]);
}

function sliceBackward(g: Tensor, inShape: number[], d: number, start: number, step: number): Tensor {
  const out = empty(inShape, 'f32');
  elementwise('fill', 'slice.backward', out, {}, 0, 0);
  const target = out.makeView(g.shape, out.strides.map((s, i) => (i === d ? s * step : s)), start * out.strides[d]);
  elementwise('unary', 'slice.backward', target, { a: g }, 0);
  target.dispose();
  return out;
}

export function select(x: Tensor, dim: number, index: number): Tensor {
  const d = normDim('select', dim, x.rank, x.shape);
  const size = x.shape[d];
  if (!Number.isInteger(index) || index < -size || index >= size) throw new ShapeError(`select: index ${index} is out of range for dim ${d} of ${fmtShape(x.shape)}`);
  const s = slice(x, d, index < 0 ? index + size : index, (index < 0 ? index + size : index) + 1);
  const out = squeeze(s, d);
  s.dispose();
  return out;
}

/** Sums a gradient over the dims that broadcasting added or stretched, back to `shape`. */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g.makeView(g.shape, g.strides, g.offset);
  const off = g.rank - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < g.rank; i++) if (i < off || (shape[i - off] === 1 && g.shape[i] !== 1)) dims.push(i);
  if (g.dtype === 'f16') {
    // No f16 reduction kernel: sum in f32, round once.
    const wide = castRaw(g, 'f32', 'sumToShape');
    const s32 = sumToShape(wide, shape);
    wide.dispose();
    const out = castRaw(s32, 'f16', 'sumToShape');
    s32.dispose();
    return out;
  }
  const summed = sumDims(g, dims, true);
  const out = reshape(summed, shape.slice());
  summed.dispose();
  return out;
}

// Set by reduce.ts (which imports this file) to avoid an import cycle.
let sumDims: (x: Tensor, dims: number[], keepdim: boolean) => Tensor = () => {
  throw new Error('reduce not loaded');
};
export function setSumDims(fn: typeof sumDims): void {
  sumDims = fn;
}

export function detach(x: Tensor): Tensor {
  x.buf('detach');
  return x.makeView(x.shape.slice(), x.strides.slice(), x.offset);
}
