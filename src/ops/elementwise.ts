// Elementwise ops with PyTorch broadcasting, and their backward rules.
import { DTypeError, ValueError } from '../errors.js';
import { type DType, checkDType, parseDType, f16Unsupported } from '../tensor/dtype.js';
import { type Tensor, empty, tensor } from '../tensor/tensor.js';
import { broadcastShapes } from '../tensor/shape.js';
import { elementwise } from './kernel_args.js';
import { castRaw, copyF16, to as castTo } from './cast.js';
import { record } from './record.js';
import { sumToShape } from './views.js';

export const U = {
  copy: 0, neg: 1, exp: 2, log: 3, sqrt: 4, relu: 5, gelu: 6, tanh: 7, sigmoid: 8, pow: 9, abs: 10,
  addScalar: 11, mulScalar: 12, not: 13, rsqrt: 14, geluGrad: 15, sin: 16, cos: 17, clamp: 18, sign: 19,
  reciprocal: 20, scalarSub: 21, scalarDiv: 22, square: 23, floor: 24, log1p: 25, softplus: 26, scalarPow: 27,
} as const;
export const B = {
  add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6, eq: 7, ne: 8, lt: 9, le: 10, gt: 11, ge: 12,
  and: 13, or: 14, atan2: 15,
} as const;

export function unaryRaw(name: string, x: Tensor, op: number, scalar = 0, scalar2 = 0, outDType: DType = x.dtype): Tensor {
  x.buf(name);
  const out = empty(x.shape.slice(), outDType);
  elementwise('unary', name, out, { a: x }, op, scalar, scalar2);
  return out;
}

function floatUnary(name: string, x: Tensor, op: number, backward: (g: Tensor, x: Tensor, y: Tensor) => Tensor, saveOut = false, scalar = 0, scalar2 = 0): Tensor {
  checkDType(name, 'input', x.dtype, ['f32']);
  const y = unaryRaw(name, x, op, scalar, scalar2);
  return record(name, y, [x], (g, s) => [backward(g, s[0], saveOut ? s[1] : s[0])], saveOut ? [x, y] : [x]);
}

export const neg = (x: Tensor): Tensor => {
  checkDType('neg', 'input', x.dtype, ['f32', 'i32']);
  return record('neg', unaryRaw('neg', x, U.neg), [x], (g) => [neg(g)]);
};
export const exp = (x: Tensor): Tensor => floatUnary('exp', x, U.exp, (g, _x, y) => mul(g, y), true);
export const log = (x: Tensor): Tensor => floatUnary('log', x, U.log, (g, x) => div(g, x));
export const sqrt = (x: Tensor): Tensor => floatUnary('sqrt', x, U.sqrt, (g, _x, y) => withTmp(mulScalar(y, 2), (t) => div(g, t)), true);
export const rsqrt = (x: Tensor): Tensor =>
  floatUnary('rsqrt', x, U.rsqrt, (g, x, y) => withTmp(div(y, x), (t) => withTmp(mul(g, t), (u) => mulScalar(u, -0.5))), true);
export const relu = (x: Tensor): Tensor => floatUnary('relu', x, U.relu, (g, x) => withTmp(gtScalarF(x, 0), (m) => mul(g, m)));
export const gelu = (x: Tensor): Tensor => floatUnary('gelu', x, U.gelu, (g, x) => withTmp(unaryRaw('gelu.backward', x, U.geluGrad), (d) => mul(g, d)));
export const tanh = (x: Tensor): Tensor =>
  floatUnary('tanh', x, U.tanh, (g, _x, y) => withTmp(unaryRaw('tanh.backward', y, U.square), (y2) => withTmp(unaryRaw('tanh.backward', y2, U.scalarSub, 1), (d) => mul(g, d))), true);
export const sigmoid = (x: Tensor): Tensor =>
  floatUnary('sigmoid', x, U.sigmoid, (g, _x, y) => withTmp(unaryRaw('sigmoid.backward', y, U.scalarSub, 1), (om) => withTmp(mul(y, om), (d) => mul(g, d))), true);
export const abs = (x: Tensor): Tensor => floatUnary('abs', x, U.abs, (g, x) => withTmp(unaryRaw('abs.backward', x, U.sign), (s) => mul(g, s)));
export const sin = (x: Tensor): Tensor => floatUnary('sin', x, U.sin, (g, x) => withTmp(unaryRaw('sin.backward', x, U.cos), (c) => mul(g, c)));
export const cos = (x: Tensor): Tensor => floatUnary('cos', x, U.cos, (g, x) => withTmp(unaryRaw('cos.backward', x, U.sin), (s) => withTmp(mul(g, s), neg)));
export const softplus = (x: Tensor): Tensor => floatUnary('softplus', x, U.softplus, (g, x) => withTmp(unaryRaw('softplus.backward', x, U.sigmoid), (s) => mul(g, s)));
export const log1p = (x: Tensor): Tensor => floatUnary('log1p', x, U.log1p, (g, x) => withTmp(unaryRaw('log1p.backward', x, U.addScalar, 1), (d) => div(g, d)));
export function clamp(x: Tensor, min = -Infinity, max = Infinity): Tensor {
  if (Number.isNaN(min) || Number.isNaN(max)) throw new ValueError(`clamp: bounds must not be NaN (min ${min}, max ${max})`);
  return floatUnary('clamp', x, U.clamp, (g, x) => {
    const inside = unaryRaw('clamp.backward', x, U.clamp, min, max);
    const eqm = binaryRaw('clamp.backward', inside, x, B.eq, 'f32');
    inside.dispose();
    return withTmp(eqm, (m) => mul(g, m));
  }, false, min, max);
}

export function pow(x: Tensor, p: number | Tensor): Tensor {
  if (typeof p !== 'number') return binaryOp('pow', x, p, B.pow);
  if (!Number.isFinite(p)) throw new ValueError(`pow: exponent must be finite, got ${p}`);
  return floatUnary('pow', x, U.pow, (g, x) => withTmp(unaryRaw('pow.backward', x, U.pow, p - 1), (d) => withTmp(mulScalar(d, p), (d2) => mul(g, d2))), false, p);
}

export function mulScalar(x: Tensor, s: number): Tensor {
  checkDType('mul', 'input', x.dtype, ['f32', 'i32']);
  return record('mulScalar', unaryRaw('mul', x, U.mulScalar, s), [x], (g) => [mulScalar(g, s)]);
}
export function addScalar(x: Tensor, s: number): Tensor {
  checkDType('add', 'input', x.dtype, ['f32', 'i32']);
  return record('addScalar', unaryRaw('add', x, U.addScalar, s), [x], (g) => [g.makeView(g.shape, g.strides, g.offset)]);
}

/** Runs fn on a temporary and disposes the temporary afterwards. */
export function withTmp(t: Tensor, fn: (t: Tensor) => Tensor): Tensor {
  try {
    return fn(t);
  } finally {
    t.dispose();
  }
}

function gtScalarF(x: Tensor, s: number): Tensor {
  const c = tensor([s], { shape: [] });
  const out = binaryRaw('gt', x, c, B.gt, 'f32');
  c.dispose();
  return out;
}

export function binaryRaw(name: string, a: Tensor, b: Tensor, op: number, outDType: DType): Tensor {
  a.buf(name);
  b.buf(name);
  const shape = broadcastShapes(name, a.shape, b.shape);
  const out = empty(shape, outDType);
  elementwise('binary', name, out, { a, b }, op);
  return out;
}

function sameDType(name: string, a: Tensor, b: Tensor, allowed: DType[]): void {
  if (a.dtype === 'f16' || b.dtype === 'f16') throw f16Unsupported(name);
  if (a.dtype !== b.dtype) throw new DTypeError(`${name}: dtypes ${a.dtype} and ${b.dtype} do not mix (kiln has no implicit promotion; convert one with .to())`);
  checkDType(name, 'input', a.dtype, allowed);
}

function binaryOp(name: string, a: Tensor, b: Tensor, op: number): Tensor {
  sameDType(name, a, b, op === B.div || op === B.pow ? ['f32'] : ['f32', 'i32']);
  const out = binaryRaw(name, a, b, op, a.dtype);
  if (a.dtype !== 'f32') return out;
  const aShape = a.shape.slice(), bShape = b.shape.slice();
  const reduce = (g: Tensor | null, shape: number[]) => (g ? withTmp(g, (t) => sumToShape(t, shape)) : null);
  switch (op) {
    case B.add:
      return record(name, out, [a, b], (g, _s, needs) => [needs[0] ? sumToShape(g, aShape) : null, needs[1] ? sumToShape(g, bShape) : null]);
    case B.sub:
      return record(name, out, [a, b], (g, _s, needs) => [needs[0] ? sumToShape(g, aShape) : null, needs[1] ? reduce(neg(g), bShape) : null]);
    case B.mul:
      return record(name, out, [a, b], (g, [sa, sb], needs) => [needs[0] ? reduce(mul(g, sb), aShape) : null, needs[1] ? reduce(mul(g, sa), bShape) : null], [a, b]);
    case B.div:
      return record(name, out, [a, b], (g, [sa, sb], needs) => [
        needs[0] ? reduce(div(g, sb), aShape) : null,
        // d(a/b)/db = -a / b^2
        needs[1] ? reduce(withTmp(mul(g, sa), (ga) => withTmp(mul(sb, sb), (b2) => withTmp(div(ga, b2), neg))), bShape) : null,
      ], [a, b]);
    case B.pow:
      return record(name, out, [a, b], (g, [sa, sb, y], needs) => [
        needs[0] ? reduce(withTmp(addScalar(sb, -1), (bm1) => withTmp(pow(sa, bm1), (p) => withTmp(mul(p, sb), (d) => mul(g, d)))), aShape) : null,
        needs[1] ? reduce(withTmp(log(sa), (la) => withTmp(mul(la, y), (d) => mul(g, d))), bShape) : null,
      ], [a, b, out]);
    case B.maximum:
    case B.minimum:
      return record(name, out, [a, b], (g, [sa, sb], needs) => {
        // Ties split the gradient evenly between a and b, as PyTorch does: weight of a = [a wins] + 0.5 [a == b].
        const wins = binaryRaw(name, sa, sb, op === B.maximum ? B.gt : B.lt, 'f32');
        const ties = binaryRaw(name, sa, sb, B.eq, 'f32');
        const halfTies = unaryRaw(name, ties, U.mulScalar, 0.5);
        ties.dispose();
        const pickA = binaryRaw(name, wins, halfTies, B.add, 'f32');
        wins.dispose();
        halfTies.dispose();
        const ga = needs[0] ? reduce(mul(g, pickA), aShape) : null;
        const gb = needs[1] ? reduce(withTmp(unaryRaw(name, pickA, U.scalarSub, 1), (m) => mul(g, m)), bShape) : null;
        pickA.dispose();
        return [ga, gb];
      }, [a, b]);
    default:
      return out;
  }
}

function scalarOr(name: string, x: Tensor, y: Tensor | number): Tensor | null {
  if (typeof y === 'number') return null;
  if (!y || typeof y !== 'object' || !('shape' in y)) throw new ValueError(`${name}: second operand must be a Tensor or a number`);
  return y;
}

export function add(a: Tensor, b: Tensor | number): Tensor {
  const t = scalarOr('add', a, b);
  return t ? binaryOp('add', a, t, B.add) : addScalar(a, b as number);
}
export function sub(a: Tensor, b: Tensor | number): Tensor {
  const t = scalarOr('sub', a, b);
  return t ? binaryOp('sub', a, t, B.sub) : addScalar(a, -(b as number));
}
export function mul(a: Tensor, b: Tensor | number): Tensor {
  const t = scalarOr('mul', a, b);
  return t ? binaryOp('mul', a, t, B.mul) : mulScalar(a, b as number);
}
export function div(a: Tensor, b: Tensor | number): Tensor {
  const t = scalarOr('div', a, b);
  if (t) return binaryOp('div', a, t, B.div);
  checkDType('div', 'input', a.dtype, ['f32']);
  return mulScalar(a, 1 / (b as number));
}
export const maximum = (a: Tensor, b: Tensor): Tensor => binaryOp('maximum', a, b, B.maximum);
export const minimum = (a: Tensor, b: Tensor): Tensor => binaryOp('minimum', a, b, B.minimum);

function compare(name: string, a: Tensor, b: Tensor | number, op: number): Tensor {
  if (typeof b === 'number' && a.dtype !== 'f32' && !Number.isInteger(b)) {
    // An integer tensor against a fractional number (x.lt(2.5)): compare as f32, as PyTorch promotes the scalar.
    a.buf(name);
    return withTmp(unaryRaw(name, a, U.copy, 0, 0, 'f32'), (af) => compare(name, af, b, op));
  }
  const t = typeof b === 'number' ? tensor([b], { shape: [], dtype: a.dtype === 'bool' ? 'i32' : a.dtype }) : b;
  try {
    if (typeof b === 'number' && a.dtype === 'bool') {
      const ai = unaryRaw(name, a, U.copy, 0, 0, 'i32');
      return withTmp(ai, (x) => binaryRaw(name, x, t, op, 'bool'));
    }
    sameDType(name, a, t, ['f32', 'i32', 'bool']);
    return binaryRaw(name, a, t, op, 'bool');
  } finally {
    if (t !== b) t.dispose();
  }
}
export const eq = (a: Tensor, b: Tensor | number): Tensor => compare('eq', a, b, B.eq);
export const ne = (a: Tensor, b: Tensor | number): Tensor => compare('ne', a, b, B.ne);
export const lt = (a: Tensor, b: Tensor | number): Tensor => compare('lt', a, b, B.lt);
export const le = (a: Tensor, b: Tensor | number): Tensor => compare('le', a, b, B.le);
export const gt = (a: Tensor, b: Tensor | number): Tensor => compare('gt', a, b, B.gt);
export const ge = (a: Tensor, b: Tensor | number): Tensor => compare('ge', a, b, B.ge);
export function logicalAnd(a: Tensor, b: Tensor): Tensor {
  sameDType('logicalAnd', a, b, ['bool']);
  return binaryRaw('logicalAnd', a, b, B.and, 'bool');
}
export function logicalOr(a: Tensor, b: Tensor): Tensor {
  sameDType('logicalOr', a, b, ['bool']);
  return binaryRaw('logicalOr', a, b, B.or, 'bool');
}
export function logicalNot(a: Tensor): Tensor {
  checkDType('logicalNot', 'input', a.dtype, ['bool']);
  return unaryRaw('logicalNot', a, U.not, 0, 0, 'bool');
}

/** cond ? a : b, broadcasting all three. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  checkDType('where', 'cond', cond.dtype, ['bool']);
  sameDType('where', a, b, ['f32', 'i32', 'bool']);
  cond.buf('where');
  a.buf('where');
  b.buf('where');
  const shape = broadcastShapes('where', cond.shape, a.shape, b.shape);
  const out = empty(shape, a.dtype);
  elementwise('select_where', 'where', out, { a, b, c: cond });
  const aShape = a.shape.slice(), bShape = b.shape.slice();
  return record('where', out, [a, b], (g, [c], needs) => {
    const zero = tensor([0], { shape: [] });
    const ga = needs[0] ? withTmp(where(c, g, zero), (t) => sumToShape(t, aShape)) : null;
    const gb = needs[1] ? withTmp(where(c, zero, g), (t) => sumToShape(t, bShape)) : null;
    zero.dispose();
    return [ga, gb];
  }, [cond]);
}

/** Converts to another dtype (f32 -> i32 truncates toward zero; bool is x != 0). */
export function toDType(x: Tensor, dtypeIn: DType | 'float32' | 'float16' | 'int32' | 'half'): Tensor {
  const dtype = parseDType('to', dtypeIn);
  x.buf('to');
  if ((x.dtype === 'f16' || dtype === 'f16') && dtype !== x.dtype) {
    if ((x.dtype === 'f32' || x.dtype === 'f16') && (dtype === 'f32' || dtype === 'f16')) return castTo(x, dtype, 'to');
    // Integers and booleans go through f32 on the way.
    if (x.dtype === 'f16') return withTmp(castRaw(x, 'f32', 'to'), (f) => toDType(f, dtype));
    return withTmp(toDType(x, 'f32'), (f) => castRaw(f, 'f16', 'to'));
  }
  if (dtype === x.dtype) {
    // Same dtype: a view that stays on the tape (as PyTorch's x.to(x.dtype) returns x itself).
    const v = x.makeView(x.shape.slice(), x.strides.slice(), x.offset);
    return record('to', v, [x], (g) => [g.makeView(g.shape, g.strides, g.offset)]);
  }
  if (x.dtype === 'bool' && dtype !== 'bool') return unaryRaw('to', x, U.copy, 0, 0, dtype === 'f32' ? 'f32' : 'i32');
  if (dtype === 'bool') {
    const zero = tensor([0], { shape: [], dtype: x.dtype });
    const out = binaryRaw('to', x, zero, B.ne, 'bool');
    zero.dispose();
    return out;
  }
  return unaryRaw('to', x, U.copy, 0, 0, dtype);
}

/** A copy with its own storage. */
export function clone(x: Tensor): Tensor {
  if (x.dtype === 'f16') return copyF16(x, 'clone');
  const out = unaryRaw('clone', x, U.copy);
  return record('clone', out, [x], (g) => [g.makeView(g.shape, g.strides, g.offset)]);
}
