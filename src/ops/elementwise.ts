// Elementwise ops with PyTorch broadcasting, and their backward rules. Rules run in their own scope (autograd), so
// they compose ops freely without disposing temporaries.
import { DTypeError, ValueError } from '../errors.js';
import { type DType, checkDType, f16Unsupported, parseDType } from '../tensor/dtype.js';
import { allocLike, upload } from '../tensor/base.js';
import { isI32 } from '../tensor/host.js';
import { U, B, unary, binary, select } from '../launch/elementwise.js';
import { cast } from '../launch/cast.js';
import { sumTo } from '../launch/reduce.js';
import { record } from '../autograd/node.js';
import type { Tensor } from './tensor.js';

export { U, B };

/** A 0-d tensor holding `value` in `dtype`, of x's class (uploaded: exact for every i32). */
export function scalarLike(x: Tensor, value: number, dtype: DType): Tensor {
  const t = allocLike(x, [], dtype);
  upload(t, [value], 'scalar');
  return t;
}

function checkOperand(fn: string, y: unknown): void {
  if (typeof y === 'number') return;
  if (!y || typeof y !== 'object' || !('shape' in y) || !('dtype' in y)) throw new ValueError(`${fn}: second operand must be a Tensor or a number, got ${typeof y === 'string' ? JSON.stringify(y) : String(y)}`);
}

/** The no-promotion rule for two tensors: same dtype, one of `allowed`. */
function sameDType(fn: string, a: Tensor, b: Tensor, allowed: readonly DType[]): void {
  if (a.dtype === 'f16' || b.dtype === 'f16') throw f16Unsupported(fn);
  if (a.dtype !== b.dtype) throw new DTypeError(`${fn}: dtypes ${a.dtype} and ${b.dtype} do not mix (kiln has no implicit promotion; convert one with .to())`);
  checkDType(fn, 'input', a.dtype, allowed);
}

/** A scalar meeting a tensor: an i32 tensor takes only i32 integers (never a silent truncation). */
function checkScalar(fn: string, x: Tensor, s: number): void {
  if (typeof s !== 'number') throw new ValueError(`${fn}: scalar must be a number, got ${String(s)}`);
  if (x.dtype === 'i32' && !isI32(s)) {
    throw new DTypeError(`${fn}: an i32 tensor meets only integer scalars in the i32 range, got ${s} (kiln has no implicit promotion; convert with x.to('f32'))`);
  }
}

// ---------------------------------------------------------------- unary float ops

/** A float unary op with its backward rule of (g, x, y). */
function floatUnary(fn: string, x: Tensor, op: number, rule: (g: Tensor, x: Tensor, y: Tensor) => Tensor, scalar = 0, scalar2 = 0): Tensor {
  checkDType(fn, 'input', x.dtype, ['f32']);
  const y = unary(fn, x, op, scalar, scalar2);
  return record(fn, y, [x], (g, [sx, sy]) => [rule(g, sx, sy)], [x, y]);
}

export const exp = (x: Tensor): Tensor => floatUnary('exp', x, U.exp, (g, _x, y) => mul(g, y));
export const log = (x: Tensor): Tensor => floatUnary('log', x, U.log, (g, x) => div(g, x));
export const sqrt = (x: Tensor): Tensor => floatUnary('sqrt', x, U.sqrt, (g, _x, y) => div(g, mulScalar(y, 2)));
export const rsqrt = (x: Tensor): Tensor => floatUnary('rsqrt', x, U.rsqrt, (g, x, y) => mulScalar(mul(g, div(y, x)), -0.5));
export const relu = (x: Tensor): Tensor => floatUnary('relu', x, U.relu, (g, x) => mul(g, unary('relu.backward', x, U.reluGrad)));
export const gelu = (x: Tensor): Tensor => floatUnary('gelu', x, U.gelu, (g, x) => mul(g, unary('gelu.backward', x, U.geluGrad)));
export const tanh = (x: Tensor): Tensor => floatUnary('tanh', x, U.tanh, (g, _x, y) => mul(g, unary('tanh.backward', unary('tanh.backward', y, U.square), U.scalarSub, 1)));
export const sigmoid = (x: Tensor): Tensor => floatUnary('sigmoid', x, U.sigmoid, (g, _x, y) => mul(g, mul(y, unary('sigmoid.backward', y, U.scalarSub, 1))));
export const abs = (x: Tensor): Tensor => floatUnary('abs', x, U.abs, (g, x) => mul(g, unary('abs.backward', x, U.sign)));
export const sin = (x: Tensor): Tensor => floatUnary('sin', x, U.sin, (g, x) => mul(g, unary('sin.backward', x, U.cos)));
export const cos = (x: Tensor): Tensor => floatUnary('cos', x, U.cos, (g, x) => neg(mul(g, unary('cos.backward', x, U.sin))));
export const softplus = (x: Tensor): Tensor => floatUnary('softplus', x, U.softplus, (g, x) => mul(g, unary('softplus.backward', x, U.sigmoid)));
export const log1p = (x: Tensor): Tensor => floatUnary('log1p', x, U.log1p, (g, x) => div(g, unary('log1p.backward', x, U.addScalar, 1)));

export function clamp(x: Tensor, min = -Infinity, max = Infinity): Tensor {
  if (typeof min !== 'number' || typeof max !== 'number' || Number.isNaN(min) || Number.isNaN(max)) {
    throw new ValueError(`clamp: bounds must be numbers, not NaN (min ${min}, max ${max})`);
  }
  // The gradient flows where min <= x <= max (PyTorch's clamp).
  return floatUnary('clamp', x, U.clamp, (g, x) => mul(g, binary('clamp.backward', unary('clamp.backward', x, U.clamp, min, max), x, B.eq, 'f32')), min, max);
}

export function pow(x: Tensor, p: number | Tensor): Tensor {
  checkOperand('pow', p);
  if (typeof p !== 'number') return binaryOp('pow', x, p, B.pow);
  if (!Number.isFinite(p)) throw new ValueError(`pow: exponent must be finite, got ${p}`);
  return floatUnary('pow', x, U.pow, (g, x) => mul(g, mulScalar(unary('pow.backward', x, U.pow, p - 1), p)), p);
}

export function neg(x: Tensor): Tensor {
  checkDType('neg', 'input', x.dtype, ['f32', 'i32']);
  return record('neg', unary('neg', x, U.neg), [x], (g) => [neg(g)]);
}

// ---------------------------------------------------------------- scalars

export function mulScalar(x: Tensor, s: number): Tensor {
  checkDType('mul', 'input', x.dtype, ['f32', 'i32']);
  checkScalar('mul', x, s);
  const y = x.dtype === 'i32' ? binary('mul', x, scalarLike(x, s, 'i32'), B.mul, 'i32') : unary('mul', x, U.mulScalar, s);
  return record('mul', y, [x], (g) => [mulScalar(g, s)]);
}

export function addScalar(x: Tensor, s: number): Tensor {
  checkDType('add', 'input', x.dtype, ['f32', 'i32']);
  checkScalar('add', x, s);
  const y = x.dtype === 'i32' ? binary('add', x, scalarLike(x, s, 'i32'), B.add, 'i32') : unary('add', x, U.addScalar, s);
  return record('add', y, [x], (g) => [g]);
}

// ---------------------------------------------------------------- binary ops

function binaryOp(fn: string, a: Tensor, b: Tensor, op: number): Tensor {
  sameDType(fn, a, b, op === B.div || op === B.pow ? ['f32'] : ['f32', 'i32']);
  const out = binary(fn, a, b, op, a.dtype);
  if (a.dtype !== 'f32') return out;
  const aShape = a.shape.slice(), bShape = b.shape.slice();
  const to = (g: Tensor | null, shape: number[]): Tensor | null => (g ? sumTo(g, shape, `${fn}.backward`) : null);
  switch (op) {
    case B.add:
      return record(fn, out, [a, b], (g, _s, needs) => [needs[0] ? to(g, aShape) : null, needs[1] ? to(g, bShape) : null]);
    case B.sub:
      return record(fn, out, [a, b], (g, _s, needs) => [needs[0] ? to(g, aShape) : null, needs[1] ? to(neg(g), bShape) : null]);
    case B.mul:
      return record(fn, out, [a, b], (g, [sa, sb], needs) => [needs[0] ? to(mul(g, sb), aShape) : null, needs[1] ? to(mul(g, sa), bShape) : null], [a, b]);
    case B.div:
      return record(fn, out, [a, b], (g, [sa, sb], needs) => [
        needs[0] ? to(div(g, sb), aShape) : null,
        // d(a/b)/db = -a / b^2
        needs[1] ? to(neg(div(mul(g, sa), mul(sb, sb))), bShape) : null,
      ], [a, b]);
    case B.pow:
      return record(fn, out, [a, b], (g, [sa, sb, y], needs) => [
        needs[0] ? to(mul(g, mul(pow(sa, addScalar(sb, -1)), sb)), aShape) : null,
        needs[1] ? to(mul(g, mul(log(sa), y)), bShape) : null,
      ], [a, b, out]);
    case B.maximum:
    case B.minimum:
      return record(fn, out, [a, b], (g, [sa, sb], needs) => {
        // As PyTorch: the winner gets the gradient, a tie splits it evenly, and where either is NaN both get it.
        const pick = op === B.maximum ? B.pickMax : B.pickMin;
        return [needs[0] ? to(mul(g, binary(fn, sa, sb, pick, 'f32')), aShape) : null, needs[1] ? to(mul(g, binary(fn, sb, sa, pick, 'f32')), bShape) : null];
      }, [a, b]);
    default:
      return out;
  }
}

export function add(a: Tensor, b: Tensor | number): Tensor {
  checkOperand('add', b);
  return typeof b === 'number' ? addScalar(a, b) : binaryOp('add', a, b, B.add);
}
export function sub(a: Tensor, b: Tensor | number): Tensor {
  checkOperand('sub', b);
  if (typeof b !== 'number') return binaryOp('sub', a, b, B.sub);
  checkDType('sub', 'input', a.dtype, ['f32', 'i32']);
  checkScalar('sub', a, b);
  return addScalar(a, -b);
}
export function mul(a: Tensor, b: Tensor | number): Tensor {
  checkOperand('mul', b);
  return typeof b === 'number' ? mulScalar(a, b) : binaryOp('mul', a, b, B.mul);
}
export function div(a: Tensor, b: Tensor | number): Tensor {
  checkOperand('div', b);
  if (typeof b !== 'number') return binaryOp('div', a, b, B.div);
  checkDType('div', 'input', a.dtype, ['f32']);
  return mulScalar(a, 1 / b);
}
export function maximum(a: Tensor, b: Tensor): Tensor {
  checkOperand('maximum', b);
  return binaryOp('maximum', a, b, B.maximum);
}
export function minimum(a: Tensor, b: Tensor): Tensor {
  checkOperand('minimum', b);
  return binaryOp('minimum', a, b, B.minimum);
}

// ---------------------------------------------------------------- comparisons and logic (no gradients)

function compare(fn: string, a: Tensor, b: Tensor | number, op: number): Tensor {
  checkOperand(fn, b);
  if (typeof b !== 'number') {
    sameDType(fn, a, b, ['f32', 'i32', 'bool']);
    return binary(fn, a, b, op, 'bool');
  }
  checkDType(fn, 'input', a.dtype, ['f32', 'i32', 'bool']);
  // A comparison with a number is exact: integer tensors against a fractional number (x.lt(2.5)) compare as f32,
  // as PyTorch promotes the scalar; booleans compare as 0 / 1.
  const asF32 = a.dtype === 'f32' || !isI32(b);
  const x = a.dtype === 'bool' || (asF32 && a.dtype !== 'f32') ? unary(fn, a, U.copy, 0, 0, asF32 ? 'f32' : 'i32') : a;
  return binary(fn, x, scalarLike(a, b, x.dtype), op, 'bool');
}
export const eq = (a: Tensor, b: Tensor | number): Tensor => compare('eq', a, b, B.eq);
export const ne = (a: Tensor, b: Tensor | number): Tensor => compare('ne', a, b, B.ne);
export const lt = (a: Tensor, b: Tensor | number): Tensor => compare('lt', a, b, B.lt);
export const le = (a: Tensor, b: Tensor | number): Tensor => compare('le', a, b, B.le);
export const gt = (a: Tensor, b: Tensor | number): Tensor => compare('gt', a, b, B.gt);
export const ge = (a: Tensor, b: Tensor | number): Tensor => compare('ge', a, b, B.ge);

export function logicalAnd(a: Tensor, b: Tensor): Tensor {
  sameDType('logicalAnd', a, b, ['bool']);
  return binary('logicalAnd', a, b, B.and, 'bool');
}
export function logicalOr(a: Tensor, b: Tensor): Tensor {
  sameDType('logicalOr', a, b, ['bool']);
  return binary('logicalOr', a, b, B.or, 'bool');
}
export function logicalNot(a: Tensor): Tensor {
  checkDType('logicalNot', 'input', a.dtype, ['bool']);
  return unary('logicalNot', a, U.not, 0, 0, 'bool');
}

/** cond ? a : b, broadcasting all three. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  checkDType('where', 'cond', cond.dtype, ['bool']);
  sameDType('where', a, b, ['f32', 'i32', 'bool']);
  const out = select('where', cond, a, b);
  const aShape = a.shape.slice(), bShape = b.shape.slice();
  return record('where', out, [a, b], (g, [c], needs) => {
    const zero = scalarLike(g, 0, g.dtype);
    return [needs[0] ? sumTo(select('where.backward', c, g, zero), aShape) : null, needs[1] ? sumTo(select('where.backward', c, zero, g), bShape) : null];
  }, [cond]);
}

// ---------------------------------------------------------------- dtype conversion and copies

/** x in another dtype: f32 <-> f16 keep the gradient (cast back); f32 -> i32 truncates toward zero; bool is x != 0. */
export function toDType(x: Tensor, dtypeIn: DType | 'float32' | 'float16' | 'int32' | 'half'): Tensor {
  const dtype = parseDType('to', dtypeIn);
  x.buf('to');
  if (dtype === x.dtype) {
    // Same dtype: a view that stays on the tape (as PyTorch's x.to(x.dtype) returns x itself).
    return record('to', x.makeView(x.shape.slice(), x.strides.slice(), x.offset), [x], (g) => [g]);
  }
  const floats = (d: DType) => d === 'f32' || d === 'f16';
  if (floats(x.dtype) && floats(dtype)) {
    const from = x.dtype as 'f32' | 'f16';
    return record('to', cast(x, dtype as 'f32' | 'f16', 'to'), [x], (g) => [cast(g, from, 'to.backward')]);
  }
  // Integers and booleans meet f16 through f32.
  if (x.dtype === 'f16') return toDType(cast(x, 'f32', 'to'), dtype);
  if (dtype === 'f16') return cast(unary('to', x, U.copy, 0, 0, 'f32'), 'f16', 'to');
  if (dtype === 'bool') return binary('to', x, scalarLike(x, 0, x.dtype), B.ne, 'bool');
  if (x.dtype === 'f32' && dtype === 'i32') {
    // Truncation toward zero of a value outside the i32 range (or NaN) is undefined in WGSL: PyTorch's is too, so
    // it is checked nowhere here; the values are what the GPU gives.
    return unary('to', x, U.copy, 0, 0, 'i32');
  }
  return unary('to', x, U.copy, 0, 0, dtype);
}

/** A copy with its own storage, on the tape. */
export function clone(x: Tensor): Tensor {
  x.buf('clone');
  const out = x.dtype === 'f16' ? cast(x, 'f16', 'clone') : unary('clone', x, U.copy);
  return record('clone', out, [x], (g) => [g]);
}

// ---- transitional: the names the attention and nn code used before the launch layer; removed once they migrate.
/** @deprecated transitional */
export function withTmp(t: Tensor, fn: (t: Tensor) => Tensor): Tensor {
  try {
    return fn(t);
  } finally {
    t.dispose();
  }
}
/** @deprecated transitional */
export const unaryRaw = (fn: string, x: Tensor, op: number, scalar = 0, scalar2 = 0, outDType: DType = x.dtype): Tensor => unary(fn, x, op, scalar, scalar2, outDType);
/** @deprecated transitional */
export const binaryRaw = (fn: string, a: Tensor, b: Tensor, op: number, outDType: DType): Tensor => binary(fn, a, b, op, outDType);
