// triu / tril and maskedFill: compositions of where() with a mask built on the GPU from two small index vectors.
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { checkDType } from '../tensor/dtype.js';
import { allocLike, tidy, upload } from '../tensor/base.js';
import { isI32 } from '../tensor/host.js';
import { broadcastShapes, sameShape } from '../tensor/shape.js';
import { B, binary } from '../launch/elementwise.js';
import type { Tensor } from './tensor.js';
import { scalarLike, where } from './elementwise.js';

/** [rows, cols] bool: col - row >= diagonal (upper) or <= diagonal (lower). */
function triangleMask(x: Tensor, rows: number, cols: number, diagonal: number, upper: boolean): Tensor {
  const r = allocLike(x, [rows, 1], 'i32');
  upload(r, Int32Array.from({ length: rows }, (_, i) => i), 'triu');
  const c = allocLike(x, [cols], 'i32');
  upload(c, Int32Array.from({ length: cols }, (_, i) => i), 'triu');
  const diff = binary('triu', c, r, B.SUB, 'i32');
  return binary(upper ? 'triu' : 'tril', diff, scalarLike(x, diagonal, 'i32'), upper ? B.GE : B.LE, 'bool');
}

function triangle(fn: 'triu' | 'tril', x: Tensor, diagonal: number): Tensor {
  x.buf(fn);
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32', 'bool']);
  if (x.rank < 2) throw new ShapeError(`${fn}: input must have at least 2 dims, got ${fmtShape(x.shape)}`);
  if (typeof diagonal !== 'number' || !Number.isInteger(diagonal) || !isI32(diagonal)) throw new ValueError(`${fn}: diagonal must be an integer, got ${String(diagonal)}`);
  const [rows, cols] = x.shape.slice(-2);
  return tidy(() => {
    const mask = triangleMask(x, rows, cols, diagonal, fn === 'triu');
    return where(mask, x, scalarLike(x, 0, x.dtype));
  });
}

/** The upper triangle of the last two dims (col - row >= diagonal); the rest zero. Batched over leading dims. */
export const triu = (x: Tensor, diagonal = 0): Tensor => triangle('triu', x, diagonal);
/** The lower triangle of the last two dims (col - row <= diagonal); the rest zero. */
export const tril = (x: Tensor, diagonal = 0): Tensor => triangle('tril', x, diagonal);

/**
 * x with `value` where the bool `mask` (broadcastable to x's shape) is true. `value` is a number or a 0-d tensor of
 * x's dtype (which then receives the gradient of the filled places, as PyTorch's).
 */
export function maskedFill(x: Tensor, mask: Tensor, value: number | boolean | Tensor): Tensor {
  const fn = 'maskedFill';
  x.buf(fn);
  mask.buf(fn);
  if (mask.dtype !== 'bool') throw new DTypeError(`${fn}: mask must be bool, got ${mask.dtype}`);
  checkDType(fn, 'input', x.dtype, ['f32', 'f16', 'i32', 'bool']);
  const shape = broadcastShapes(fn, x.shape, mask.shape);
  if (!sameShape(shape, x.shape)) throw new ShapeError(`${fn}: mask ${fmtShape(mask.shape)} does not broadcast to input ${fmtShape(x.shape)}`);
  if (typeof value === 'number' || typeof value === 'boolean') {
    const v = Number(value);
    if (x.dtype === 'i32' && !isI32(v)) throw new DTypeError(`${fn}: an i32 tensor takes only integer values in the i32 range, got ${v}`);
    if (x.dtype === 'bool' && v !== 0 && v !== 1) throw new ValueError(`${fn}: a bool tensor takes true, false, 0 or 1, got ${v}`);
    return tidy(() => where(mask, scalarLike(x, v, x.dtype), x));
  }
  if (!value || typeof value !== 'object' || !('shape' in value)) throw new ValueError(`${fn}: value must be a number, a boolean or a 0-d tensor, got ${String(value)}`);
  value.buf(fn);
  if (value.rank !== 0) throw new ShapeError(`${fn}: a tensor value must be 0-d, got ${fmtShape(value.shape)}`);
  if (value.dtype !== x.dtype) throw new DTypeError(`${fn}: value dtype ${value.dtype} differs from input dtype ${x.dtype}`);
  return where(mask, value, x);
}
