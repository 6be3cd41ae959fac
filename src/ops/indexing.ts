// gather, indexSelect, scatterAdd and cumsum: kernels that read their inputs in place, with device-side index checks
// (an out-of-range index is an IndexError at the next sync, never read through) and deterministic backward rules
// (the scatter sums each output element's contributions in index order; no float atomics). f16 inputs run through the
// f32 kernels between casts: exact for the copies, and the sums (scatterAdd, cumsum, the backward scatters) stay f32
// until one final rounding.
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { checkDType } from '../tensor/dtype.js';
import { allocLike } from '../tensor/base.js';
import { contiguousStrides, normDim } from '../tensor/shape.js';
import { copy, fill } from '../launch/elementwise.js';
import { cumsumDim, gatherDim, scatterAddDim } from '../launch/indexing.js';
import { record } from '../autograd/node.js';
import type { Tensor } from './tensor.js';
import { inF32 } from './elementwise.js';

function checkIndex(fn: string, index: Tensor): void {
  index.buf(fn);
  if (index.dtype !== 'i32') throw new DTypeError(`${fn}: index must be i32, got ${index.dtype}`);
}

function sameRank(fn: string, what: string, x: Tensor, index: Tensor): void {
  if (index.rank !== x.rank) throw new ShapeError(`${fn}: index ${fmtShape(index.shape)} and ${what} ${fmtShape(x.shape)} must have the same number of dims`);
}

/** out[i][j] = x[index[i][j]][j] (dim 0), as PyTorch's torch.gather: out has index's shape (index.shape[d] <= x.shape[d] off dim). */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  const fn = 'gather';
  x.buf(fn);
  checkIndex(fn, index);
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32', 'bool']);
  const d = normDim(fn, dim, Math.max(x.rank, 1), x.shape);
  sameRank(fn, 'input', x, index);
  for (let i = 0; i < x.rank; i++) {
    if (i !== d && index.shape[i] > x.shape[i]) throw new ShapeError(`${fn}: index ${fmtShape(index.shape)} is larger than input ${fmtShape(x.shape)} in dim ${i} (${index.shape[i]} > ${x.shape[i]})`);
  }
  // f16 through f32 (exact both ways, so the values are copied exactly; the backward's scatter sums in f32 and rounds once).
  if (x.dtype === 'f16') return inF32('f16', [x], (w) => gather(w, dim, index));
  if (x.rank === 0) return gather1(fn, x, index);
  const pos = contiguousStrides(index.shape);
  const inShape = x.shape.slice();
  const out = gatherDim(fn, x, d, index, pos, index.shape);
  return record(fn, out, [x], (g, [si]) => [scatterAddDim(`${fn}.backward`, null, inShape, d, si, g, pos, si.shape)], [index]);
}

/** A 0-d gather is x itself at index 0 (any other index is out of range): one element through the 1-d kernel. */
function gather1(fn: string, x: Tensor, index: Tensor): Tensor {
  const xv = x.makeView([1], [1], x.offset);
  const iv = index.makeView([1], [1], index.offset);
  try {
    const out = gatherDim(fn, xv, 0, iv, [1], [1]);
    const o = out.makeView([], [], out.offset);
    out.dispose();
    return record(fn, o, [x], (g) => [g]);
  } finally {
    xv.dispose();
    iv.dispose();
  }
}

/** The entries of x at `index` (1-D i32) along dim, as PyTorch's torch.index_select. Reads the index in place. */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  const fn = 'indexSelect';
  x.buf(fn);
  checkIndex(fn, index);
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32', 'bool']);
  if (index.rank > 1) throw new ShapeError(`${fn}: index must be 1-D, got ${fmtShape(index.shape)}`);
  if (x.rank === 0) throw new ShapeError(`${fn}: input must have at least 1 dim, got ${fmtShape(x.shape)}`);
  const d = normDim(fn, dim, x.rank, x.shape);
  if (x.dtype === 'f16') return inF32('f16', [x], (w) => indexSelect(w, dim, index));
  const R = index.size;
  const shape = x.shape.map((s, i) => (i === d ? R : s));
  const strides = shape.map((_, i) => (i === d && index.rank === 1 ? index.strides[0] : 0));
  const pos = shape.map((_, i) => (i === d ? 1 : 0));
  const inShape = x.shape.slice();
  const view = index.makeView(shape, strides, index.offset);
  try {
    const out = gatherDim(fn, x, d, view, pos, [R]);
    return record(fn, out, [x], (g, [sv]) => [scatterAddDim(`${fn}.backward`, null, inShape, d, sv, g, pos, [R])], [view]);
  } finally {
    view.dispose();
  }
}

/**
 * x plus src scattered along dim: out[index[i][j]][j] += src[i][j] (dim 0), as PyTorch's torch.scatter_add. Only the
 * part of src inside index's shape is used. Deterministic: repeated indices are summed in index order. Gradients:
 * x gets g; src gets g gathered by index (zero outside index's shape).
 */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  const fn = 'scatterAdd';
  x.buf(fn);
  src.buf(fn);
  checkIndex(fn, index);
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32']);
  if (src.dtype !== x.dtype) throw new DTypeError(`${fn}: src dtype ${src.dtype} differs from input dtype ${x.dtype}`);
  if (x.rank === 0) throw new ShapeError(`${fn}: input must have at least 1 dim, got ${fmtShape(x.shape)}`);
  const d = normDim(fn, dim, x.rank, x.shape);
  sameRank(fn, 'input', x, index);
  sameRank(fn, 'src', src, index);
  for (let i = 0; i < x.rank; i++) {
    if (index.shape[i] > src.shape[i]) throw new ShapeError(`${fn}: index ${fmtShape(index.shape)} is larger than src ${fmtShape(src.shape)} in dim ${i} (${index.shape[i]} > ${src.shape[i]})`);
    if (i !== d && index.shape[i] > x.shape[i]) throw new ShapeError(`${fn}: index ${fmtShape(index.shape)} is larger than input ${fmtShape(x.shape)} in dim ${i} (${index.shape[i]} > ${x.shape[i]})`);
  }
  // f16: the sums in f32 (x plus every contribution, in index order), rounded once.
  if (x.dtype === 'f16') return inF32('f16', [x, src], (w, s) => scatterAdd(w, dim, index, s));
  const pos = contiguousStrides(index.shape);
  const srcView = src.makeView(index.shape.slice(), src.strides.slice(), src.offset);
  const srcShape = src.shape.slice();
  try {
    const out = scatterAddDim(fn, x, x.shape, d, index, srcView, pos, index.shape);
    return record(fn, out, [x, src], (g, [si], needs) => {
      let gs: Tensor | null = null;
      if (needs[1]) {
        const picked = gatherDim(`${fn}.backward`, g, d, si, pos, si.shape);
        if (picked.shape.every((s, i) => s === srcShape[i])) gs = picked;
        else {
          gs = allocLike(g, srcShape, 'f32');
          fill(`${fn}.backward`, gs, 0);
          const part = gs.makeView(picked.shape.slice(), gs.strides.slice(), 0);
          copy(`${fn}.backward`, part, picked);
        }
      }
      return [needs[0] ? g : null, gs];
    }, [index]);
  } finally {
    srcView.dispose();
  }
}

/** Inclusive prefix sums along dim (PyTorch's torch.cumsum; integer and bool inputs give i32, f16 gives f16). NaN and inf propagate. */
export function cumsum(x: Tensor, dim: number): Tensor {
  const fn = 'cumsum';
  x.buf(fn);
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32', 'bool']);
  const d = x.rank === 0 ? normDim(fn, dim, 1) : normDim(fn, dim, x.rank, x.shape);
  // f16: the running sums in f32, each rounded once (never a rounded partial sum carried on).
  if (x.dtype === 'f16') return inF32('f16', [x], (w) => cumsum(w, dim));
  const out = cumsumDim(fn, x, d);
  return record(fn, out, [x], (g) => [cumsumDim(`${fn}.backward`, g, d, true)]);
}
