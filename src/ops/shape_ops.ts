// Shape ops built from views: split and chunk (views of x), flip (one strided copy) and repeat (one expand + copy).
import { ShapeError, ValueError, fmtShape } from '../errors.js';
import { allocLike } from '../tensor/base.js';
import { normDim, numel } from '../tensor/shape.js';
import { copy, fill } from '../launch/elementwise.js';
import { checkDType } from '../tensor/dtype.js';
import { record } from '../autograd/node.js';
import type { Tensor } from './tensor.js';
import { contiguous, expand, reshape, slice } from './views.js';
import { inF32 } from './elementwise.js';

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/**
 * Views of x along `dim`: pieces of `size` elements (the last may be shorter), or of the listed sizes, which must add
 * up to the dim's length (PyTorch's torch.split). Each piece is a view on the tape.
 */
export function split(x: Tensor, sizeOrSizes: number | number[], dim = 0): Tensor[] {
  const fn = 'split';
  x.buf(fn);
  const d = normDim(fn, dim, x.rank, x.shape);
  const L = x.shape[d];
  let sizes: number[];
  if (Array.isArray(sizeOrSizes)) {
    if (!sizeOrSizes.every(isCount)) throw new ValueError(`${fn}: sizes ${JSON.stringify(sizeOrSizes)} must be non-negative integers`);
    const total = sizeOrSizes.reduce((a, b) => a + b, 0);
    if (total !== L) throw new ShapeError(`${fn}: sizes ${JSON.stringify(sizeOrSizes)} add up to ${total}, but dim ${d} of ${fmtShape(x.shape)} has ${L}`);
    sizes = sizeOrSizes.slice();
  } else {
    if (!isCount(sizeOrSizes) || (sizeOrSizes === 0 && L > 0)) throw new ValueError(`${fn}: size must be a positive integer, got ${String(sizeOrSizes)}`);
    sizes = [];
    for (let s = 0; s < L; s += sizeOrSizes) sizes.push(Math.min(sizeOrSizes, L - s));
    if (L === 0) sizes.push(0);
  }
  const out: Tensor[] = [];
  let start = 0;
  for (const s of sizes) {
    out.push(slice(x, d, start, start + s));
    start += s;
  }
  return out;
}

/** x cut into `chunks` views of ceil(len / chunks) elements along `dim` (fewer when the length runs out, as PyTorch). */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  const fn = 'chunk';
  x.buf(fn);
  if (!isCount(chunks) || chunks === 0) throw new ValueError(`${fn}: chunks must be a positive integer, got ${String(chunks)}`);
  const d = normDim(fn, dim, x.rank, x.shape);
  const L = x.shape[d];
  if (L === 0) return Array.from({ length: chunks }, () => slice(x, d, 0, 0));
  return split(x, Math.ceil(L / chunks), d);
}

/** x with the order of the elements along `dims` reversed: a copy, as PyTorch's (kiln has no negative-stride views). */
export function flip(x: Tensor, dims: number | number[]): Tensor {
  const fn = 'flip';
  x.buf(fn);
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32', 'bool']);
  const list = Array.isArray(dims) ? dims : [dims];
  if (!list.every((v) => typeof v === 'number')) throw new ValueError(`${fn}: dims must be a dim or an array of dims, got ${JSON.stringify(dims)}`);
  const norm = list.map((v) => normDim(fn, v, x.rank, x.shape));
  if (new Set(norm).size !== norm.length) throw new ShapeError(`${fn}: dims ${JSON.stringify(dims)} repeat a dim of ${fmtShape(x.shape)}`);
  // f16 through f32 (exact both ways): the negative-stride copy below works on whole 32-bit words, and a packed half's
  // word index cannot be taken from a wrapped offset.
  if (x.dtype === 'f16') return inF32('f16', [x], (w) => flip(w, dims));
  let offset = x.offset;
  const strides = x.strides.slice();
  for (const d of norm) {
    if (x.shape[d] > 1) offset += (x.shape[d] - 1) * x.strides[d];
    strides[d] = -x.strides[d];
  }
  // A negative-stride view exists only here, for the copy (the elementwise kernel's u32 offsets wrap to the right
  // element); it never reaches another launcher.
  const view = x.makeView(x.shape.slice(), strides, offset);
  const out = allocLike(x, x.shape.slice(), x.dtype);
  try {
    copy(fn, out, view);
  } finally {
    view.dispose();
  }
  return record(fn, out, [x], (g) => [flip(g, norm)]);
}

/** x tiled `times[i]` times along each dim (PyTorch's Tensor.repeat); more times than dims adds leading dims. */
export function repeat(x: Tensor, ...timesIn: (number | number[])[]): Tensor {
  const fn = 'repeat';
  x.buf(fn);
  const times = timesIn.length === 1 && Array.isArray(timesIn[0]) ? timesIn[0] : (timesIn as number[]);
  if (!times.every(isCount)) throw new ValueError(`${fn}: times ${JSON.stringify(timesIn)} must be non-negative integers`);
  if (times.length < x.rank) throw new ShapeError(`${fn}: ${times.length} repeat counts for ${fmtShape(x.shape)}, need at least ${x.rank}`);
  const shape = [...new Array<number>(times.length - x.rank).fill(1), ...x.shape];
  const outShape = shape.map((s, i) => s * times[i]);
  // [1, s0, 1, s1, ...] expanded to [t0, s0, t1, s1, ...], then one copy; expand's backward sums the tiles.
  const inter = shape.flatMap((s) => [1, s]);
  const tiled = shape.flatMap((s, i) => [times[i], s]);
  if (numel(outShape) === 0) {
    const inShape = x.shape.slice();
    return record(fn, allocLike(x, outShape, x.dtype), [x], (g) => {
      const z = allocLike(g, inShape, g.dtype);
      fill(`${fn}.backward`, z, 0);
      return [z];
    });
  }
  const a = reshape(x, inter);
  const b = expand(a, tiled);
  const c = contiguous(b);
  const out = reshape(c, outShape);
  a.dispose();
  b.dispose();
  c.dispose();
  return out;
}
