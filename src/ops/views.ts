// View ops: new shape / strides / offset over the same storage, no copy; contiguous() copies only when needed.
import { ShapeError, ValueError, fmtShape } from '../errors.js';
import { allocLike } from '../tensor/base.js';
import { checkShape, contiguousStrides, isContiguous, normDim, numel } from '../tensor/shape.js';
import { contiguousCopy, fill, copy } from '../launch/elementwise.js';
import { cast } from '../launch/cast.js';
import { sumTo } from '../launch/reduce.js';
import { record } from '../autograd/node.js';
import type { Tensor } from './tensor.js';

/** A view of x that stays on the tape with an identity gradient (x.detach() is the one without). */
function alias(fn: string, x: Tensor, shape: number[], strides: number[], offset: number): Tensor {
  return record(fn, x.makeView(shape, strides, offset), [x], (g) => [g]);
}

/** A contiguous tensor with x's values: x itself (as a new view) when already contiguous, else a copy. */
export function contiguous(x: Tensor): Tensor {
  x.buf('contiguous');
  if (isContiguous(x.shape, x.strides)) return alias('contiguous', x, x.shape.slice(), contiguousStrides(x.shape), x.offset);
  const out = x.dtype === 'f16' ? cast(x, 'f16', 'contiguous') : contiguousCopy('contiguous', x);
  return record('contiguous', out, [x], (g) => [g]);
}

function inferReshape(fn: string, x: Tensor, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new ShapeError(`${fn}: shape must be an array of sizes, got ${JSON.stringify(shape) ?? String(shape)}`);
  const n = x.size;
  let infer = -1;
  let known = 1;
  const out = shape.slice() as number[];
  for (let i = 0; i < out.length; i++) {
    const d = out[i];
    if (d === -1) {
      if (infer >= 0) throw new ShapeError(`${fn}: shape ${fmtShape(out)} has more than one -1`);
      infer = i;
    } else if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new ShapeError(`${fn}: shape ${JSON.stringify(shape)} has an invalid size ${JSON.stringify(d) ?? String(d)}`);
    } else known *= d;
  }
  if (infer >= 0) {
    if (known === 0 || n % known !== 0) throw new ShapeError(`${fn}: cannot reshape ${fmtShape(x.shape)} (${n} elements) into ${fmtShape(out)}`);
    out[infer] = n / known;
  }
  if (numel(out) !== n) throw new ShapeError(`${fn}: cannot reshape ${fmtShape(x.shape)} (${n} elements) into ${fmtShape(out)} (${numel(out)} elements)`);
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
    if (d === 1) continue;
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
  const inShape = x.shape.slice();
  if (strides) return record('reshape', x.makeView(target, strides, x.offset), [x], (g) => [reshape(g, inShape)]);
  const c = contiguous(x);
  const v = reshape(c, target);
  c.dispose();
  return v;
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  x.buf('flatten');
  if (x.rank === 0) return reshape(x, [1]);
  const s = normDim('flatten', startDim, x.rank, x.shape);
  const e = normDim('flatten', endDim, x.rank, x.shape);
  if (s > e) throw new ShapeError(`flatten: startDim ${startDim} comes after endDim ${endDim} for ${fmtShape(x.shape)}`);
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function permute(x: Tensor, dims: number[]): Tensor {
  x.buf('permute');
  if (!Array.isArray(dims) || dims.length !== x.rank) {
    throw new ShapeError(`permute: dims ${JSON.stringify(dims)} must list each of the ${x.rank} dims of ${fmtShape(x.shape)} once`);
  }
  const norm = dims.map((d) => normDim('permute', d, x.rank, x.shape));
  if (new Set(norm).size !== norm.length) throw new ShapeError(`permute: dims ${JSON.stringify(dims)} repeat a dim`);
  const inverse = new Array<number>(norm.length);
  norm.forEach((d, i) => (inverse[d] = i));
  return record('permute', x.makeView(norm.map((d) => x.shape[d]), norm.map((d) => x.strides[d]), x.offset), [x], (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  x.buf('transpose');
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
  return record('unsqueeze', x.makeView(shape, strides, x.offset), [x], (g) => [squeeze(g, d)]);
}

export function squeeze(x: Tensor, dim?: number | number[]): Tensor {
  x.buf('squeeze');
  let dims: number[];
  if (dim === undefined) dims = x.shape.flatMap((s, i) => (s === 1 ? [i] : []));
  else dims = (Array.isArray(dim) ? dim : [dim]).map((d) => normDim('squeeze', d, x.rank, x.shape)).filter((d) => x.shape[d] === 1);
  const inShape = x.shape.slice();
  const v = x.makeView(x.shape.filter((_, i) => !dims.includes(i)), x.strides.filter((_, i) => !dims.includes(i)), x.offset);
  return record('squeeze', v, [x], (g) => [reshape(g, inShape)]);
}

export function expand(x: Tensor, shape: number[]): Tensor {
  x.buf('expand');
  if (!Array.isArray(shape)) throw new ShapeError(`expand: shape must be an array of sizes, got ${JSON.stringify(shape) ?? String(shape)}`);
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
  return record('expand', x.makeView(target, strides, x.offset), [x], (g) => [sumTo(g, inShape, 'expand.backward')]);
}

/** Elements start, start+step, ... < end along dim (a view). */
export function slice(x: Tensor, dim: number, start = 0, end?: number, step = 1): Tensor {
  x.buf('slice');
  const d = normDim('slice', dim, x.rank, x.shape);
  const size = x.shape[d];
  for (const [name, v] of [['start', start], ['end', end]] as const) {
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v))) throw new ValueError(`slice: ${name} must be an integer, got ${v}`);
  }
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 1) throw new ValueError(`slice: step must be a positive integer, got ${step}`);
  const norm = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, 0), size);
  const s = norm(start);
  const e = end === undefined ? size : norm(end);
  const len = Math.max(0, Math.ceil((e - s) / step));
  const shape = x.shape.slice();
  shape[d] = len;
  const strides = x.strides.slice();
  strides[d] = x.strides[d] * step;
  const inShape = x.shape.slice();
  return record('slice', x.makeView(shape, strides, x.offset + s * x.strides[d]), [x], (g) => {
    // The gradient of a slice: zeros, with g written into the sliced positions.
    const out = allocLike(g, inShape, g.dtype);
    fill('slice.backward', out, 0);
    const target = out.makeView(g.shape.slice(), out.strides.map((st, i) => (i === d ? st * step : st)), s * out.strides[d]);
    copy('slice.backward', target, g);
    target.dispose();
    return [out];
  });
}

export function select(x: Tensor, dim: number, index: number): Tensor {
  x.buf('select');
  const d = normDim('select', dim, x.rank, x.shape);
  const size = x.shape[d];
  if (typeof index !== 'number' || !Number.isInteger(index) || index < -size || index >= size) {
    throw new ShapeError(`select: index ${index} is out of range for dim ${d} of ${fmtShape(x.shape)}`);
  }
  const i = index < 0 ? index + size : index;
  const s = slice(x, d, i, i + 1);
  const out = squeeze(s, d);
  s.dispose();
  return out;
}

/** A view that shares storage and is off the tape. */
export function detach(x: Tensor): Tensor {
  x.buf('detach');
  return x.makeView(x.shape.slice(), x.strides.slice(), x.offset);
}
