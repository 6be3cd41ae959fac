// Elementwise ops with PyTorch broadcasting, and their backward rules. Rules run in their own scope (autograd), so
// they compose ops freely without disposing temporaries.
import { DTypeError, ValueError } from '../errors.js';
import { type DType, checkDType, parseDType } from '../tensor/dtype.js';
import { allocLike, tidy, upload } from '../tensor/base.js';
import { isI32 } from '../tensor/host.js';
import { U, B, UNARY_GRAD, BINARY_GRAD, type UnaryOp, type BinaryOp, unary, binary, select, unaryBackward, binaryBackward } from '../launch/elementwise.js';
import { type AutocastOp, autocastRun, castFloat } from './autocast.js';
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

const FLOATS: readonly DType[] = ['f32', 'f16'];
/** The unary ops autocast runs in f32 (ops/autocast.ts). */
const AUTOCAST_F32 = new Set(['exp', 'log', 'log1p', 'rsqrt', 'pow', 'softplus']);
const isFloat = (d: DType) => d === 'f32' || d === 'f16';

/** The no-promotion rule for two tensors: same dtype, one of `allowed` (f16 and f32 meet through `promoteFloats`). */
function sameDType(fn: string, a: Tensor, b: Tensor, allowed: readonly DType[]): void {
  if (a.dtype !== b.dtype) {
    const conv = a.dtype === 'f32' || b.dtype === 'f32' ? `call .float() on the ${a.dtype === 'f32' ? 'second' : 'first'} operand (${a.dtype === 'f32' ? b.dtype : a.dtype})` : 'convert one with .to()';
    throw new DTypeError(`${fn}: dtypes ${a.dtype} and ${b.dtype} do not mix (kiln has no implicit promotion between floats and integers: ${conv})`);
  }
  checkDType(fn, 'input', a.dtype, allowed);
}

/**
 * f16 meeting f32: the result is f32, as PyTorch's type promotion, except that a 0-d tensor does not widen a tensor
 * with dims (f16 [N] + f32 [] is f16, as PyTorch's). The narrower operand is cast on the tape (its gradient comes
 * back in its own dtype). Anything else is returned as it is (sameDType then judges it).
 */
function promoteFloats(a: Tensor, b: Tensor): [Tensor, Tensor] {
  if (a.dtype === b.dtype || !isFloat(a.dtype) || !isFloat(b.dtype)) return [a, b];
  const aDims = a.rank > 0, bDims = b.rank > 0;
  const to: DType = aDims !== bDims ? (aDims ? a.dtype : b.dtype) : 'f32';
  return [a.dtype === to ? a : toDType(a, to), b.dtype === to ? b : toDType(b, to)];
}

/** The operands as sameDType should judge them: two floats count as one dtype (promoteFloats widens one). */
function promotable(a: Tensor, b: Tensor): [Tensor, Tensor] {
  return isFloat(a.dtype) && isFloat(b.dtype) ? [a, a] : [a, b];
}

/** A scalar meeting a tensor: an i32 tensor takes only i32 integers (never a silent truncation). */
function checkScalar(fn: string, x: Tensor, s: number): void {
  if (typeof s !== 'number') throw new ValueError(`${fn}: scalar must be a number, got ${String(s)}`);
  if (x.dtype === 'i32' && !isI32(s)) {
    throw new DTypeError(`${fn}: an i32 tensor meets only integer scalars in the i32 range, got ${s} (kiln has no implicit promotion; convert with x.to('f32'))`);
  }
}

// ---------------------------------------------------------------- unary float ops

/**
 * A unary float op and its backward: one dispatch (unary_backward) reading what UNARY_GRAD says the op needs, saved
 * here (x, y or both).
 */
function floatUnary(fn: string, x: Tensor, op: UnaryOp, scalar = 0, scalar2 = 0): Tensor {
  checkDType(fn, 'input', x.dtype, FLOATS);
  if (AUTOCAST_F32.has(fn)) {
    const ac = autocastRun(fn as AutocastOp, [x], (w) => floatUnary(fn, w, op, scalar, scalar2));
    if (ac) return ac;
  }
  const y = unary(fn, x, U[op], scalar, scalar2);
  const reads = UNARY_GRAD[op];
  if (reads === null) return y;
  const save = reads === 'x' ? [x] : reads === 'y' ? [y] : reads === 'xy' ? [x, y] : [];
  return record(fn, y, [x], (g, saved) => {
    const sx = reads === 'x' || reads === 'xy' ? saved[0] : null;
    const sy = reads === 'y' ? saved[0] : reads === 'xy' ? saved[1] : null;
    return [unaryBackward(`${fn}.backward`, op, g, sx, sy, scalar, scalar2)];
  }, save);
}

export const exp = (x: Tensor): Tensor => floatUnary('exp', x, 'EXP');
export const log = (x: Tensor): Tensor => floatUnary('log', x, 'LOG');
export const sqrt = (x: Tensor): Tensor => floatUnary('sqrt', x, 'SQRT');
export const rsqrt = (x: Tensor): Tensor => floatUnary('rsqrt', x, 'RSQRT');
export const relu = (x: Tensor): Tensor => floatUnary('relu', x, 'RELU');
export const gelu = (x: Tensor): Tensor => floatUnary('gelu', x, 'GELU');
export const tanh = (x: Tensor): Tensor => floatUnary('tanh', x, 'TANH');
export const sigmoid = (x: Tensor): Tensor => floatUnary('sigmoid', x, 'SIGMOID');
export const abs = (x: Tensor): Tensor => floatUnary('abs', x, 'ABS');
export const sin = (x: Tensor): Tensor => floatUnary('sin', x, 'SIN');
export const cos = (x: Tensor): Tensor => floatUnary('cos', x, 'COS');
export const softplus = (x: Tensor): Tensor => floatUnary('softplus', x, 'SOFTPLUS');
export const log1p = (x: Tensor): Tensor => floatUnary('log1p', x, 'LOG1P');
/** x * sigmoid(x) (SiLU, swish); silu(-Infinity) = 0 and silu(Infinity) = Infinity, the limits. */
export const silu = (x: Tensor): Tensor => floatUnary('silu', x, 'SILU');
/** The error function (|error| < 1.2e-7). */
export const erf = (x: Tensor): Tensor => floatUnary('erf', x, 'ERF');

export function clamp(x: Tensor, min = -Infinity, max = Infinity): Tensor {
  if (typeof min !== 'number' || typeof max !== 'number' || Number.isNaN(min) || Number.isNaN(max)) {
    throw new ValueError(`clamp: bounds must be numbers, not NaN (min ${min}, max ${max})`);
  }
  return floatUnary('clamp', x, 'CLAMP', min, max);
}

export function pow(x: Tensor, p: number | Tensor): Tensor {
  checkOperand('pow', p);
  if (typeof p !== 'number') return binaryOp('pow', x, p, 'POW');
  if (!Number.isFinite(p)) throw new ValueError(`pow: exponent must be finite, got ${p}`);
  return floatUnary('pow', x, 'POW', p);
}

export function neg(x: Tensor): Tensor {
  checkDType('neg', 'input', x.dtype, ['f32', 'f16', 'i32']);
  return record('neg', unary('neg', x, U.NEG), [x], (g) => [unaryBackward('neg.backward', 'NEG', g, null, null)]);
}

// ---------------------------------------------------------------- scalars

export function mulScalar(x: Tensor, s: number): Tensor {
  checkDType('mul', 'input', x.dtype, ['f32', 'f16', 'i32']);
  checkScalar('mul', x, s);
  const y = x.dtype === 'i32' ? binary('mul', x, scalarLike(x, s, 'i32'), B.MUL, 'i32') : unary('mul', x, U.MUL_SCALAR, s);
  return record('mul', y, [x], (g) => [unaryBackward('mul.backward', 'MUL_SCALAR', g, null, null, s)]);
}

export function addScalar(x: Tensor, s: number): Tensor {
  checkDType('add', 'input', x.dtype, ['f32', 'f16', 'i32']);
  checkScalar('add', x, s);
  const y = x.dtype === 'i32' ? binary('add', x, scalarLike(x, s, 'i32'), B.ADD, 'i32') : unary('add', x, U.ADD_SCALAR, s);
  return record('add', y, [x], (g) => [g]);
}

// ---------------------------------------------------------------- binary ops

/**
 * A binary op with broadcasting. Float ops with a gradient (BINARY_GRAD) get one backward dispatch for both operands
 * (binary_backward), each then summed back to its operand's shape where it was broadcast; add passes g on as it is.
 */
function binaryOp(fn: string, a0: Tensor, b0: Tensor, op: BinaryOp): Tensor {
  sameDType(fn, ...promotable(a0, b0), op === 'DIV' || op === 'POW' ? FLOATS : ['f32', 'f16', 'i32']);
  const [a, b] = promoteFloats(a0, b0);
  const out = binary(fn, a, b, B[op], a.dtype);
  if (!isFloat(a.dtype) || !BINARY_GRAD[op]) return out;
  const aShape = a.shape.slice(), bShape = b.shape.slice();
  if (op === 'ADD') return record(fn, out, [a, b], (g, _s, needs) => [needs[0] ? sumTo(g, aShape, fn) : null, needs[1] ? sumTo(g, bShape, fn) : null]);
  return record(fn, out, [a, b], (g, [sa, sb], needs) => {
    const [ga, gb] = binaryBackward(`${fn}.backward`, op, g, sa, sb, needs);
    return [ga && sumTo(ga, aShape, fn), gb && sumTo(gb, bShape, fn)];
  }, [a, b]);
}

export function add(a: Tensor, b: Tensor | number): Tensor {
  checkOperand('add', b);
  return typeof b === 'number' ? addScalar(a, b) : binaryOp('add', a, b, 'ADD');
}
export function sub(a: Tensor, b: Tensor | number): Tensor {
  checkOperand('sub', b);
  if (typeof b !== 'number') return binaryOp('sub', a, b, 'SUB');
  checkDType('sub', 'input', a.dtype, ['f32', 'f16', 'i32']);
  checkScalar('sub', a, b);
  return addScalar(a, -b);
}
export function mul(a: Tensor, b: Tensor | number): Tensor {
  checkOperand('mul', b);
  return typeof b === 'number' ? mulScalar(a, b) : binaryOp('mul', a, b, 'MUL');
}
export function div(a: Tensor, b: Tensor | number): Tensor {
  checkOperand('div', b);
  if (typeof b !== 'number') return binaryOp('div', a, b, 'DIV');
  checkDType('div', 'input', a.dtype, FLOATS);
  return mulScalar(a, 1 / b);
}
export function maximum(a: Tensor, b: Tensor): Tensor {
  checkOperand('maximum', b);
  return binaryOp('maximum', a, b, 'MAX');
}
export function minimum(a: Tensor, b: Tensor): Tensor {
  checkOperand('minimum', b);
  return binaryOp('minimum', a, b, 'MIN');
}

// ---------------------------------------------------------------- comparisons and logic (no gradients)

function compare(fn: string, a: Tensor, b: Tensor | number, op: number): Tensor {
  checkOperand(fn, b);
  if (typeof b !== 'number') {
    sameDType(fn, ...promotable(a, b), ['f32', 'f16', 'i32', 'bool']);
    return binary(fn, ...promoteFloats(a, b), op, 'bool');
  }
  checkDType(fn, 'input', a.dtype, ['f32', 'f16', 'i32', 'bool']);
  // A comparison with a number is exact: integer tensors against a fractional number (x.lt(2.5)) compare as f32,
  // as PyTorch promotes the scalar; booleans compare as 0 / 1.
  // f16 compares as f32 against the exact number (PyTorch compares f16 against the scalar rounded to f16, which
  // differs only for numbers between two f16 values).
  const asF32 = isFloat(a.dtype) || !isI32(b);
  const x = a.dtype === 'bool' || (asF32 && a.dtype !== 'f32') ? unary(fn, a, U.COPY, 0, 0, asF32 ? 'f32' : 'i32') : a;
  return binary(fn, x, scalarLike(a, b, x.dtype), op, 'bool');
}
export const eq = (a: Tensor, b: Tensor | number): Tensor => compare('eq', a, b, B.EQ);
export const ne = (a: Tensor, b: Tensor | number): Tensor => compare('ne', a, b, B.NE);
export const lt = (a: Tensor, b: Tensor | number): Tensor => compare('lt', a, b, B.LT);
export const le = (a: Tensor, b: Tensor | number): Tensor => compare('le', a, b, B.LE);
export const gt = (a: Tensor, b: Tensor | number): Tensor => compare('gt', a, b, B.GT);
export const ge = (a: Tensor, b: Tensor | number): Tensor => compare('ge', a, b, B.GE);

export function logicalAnd(a: Tensor, b: Tensor): Tensor {
  sameDType('logicalAnd', a, b, ['bool']);
  return binary('logicalAnd', a, b, B.AND, 'bool');
}
export function logicalOr(a: Tensor, b: Tensor): Tensor {
  sameDType('logicalOr', a, b, ['bool']);
  return binary('logicalOr', a, b, B.OR, 'bool');
}
export function logicalNot(a: Tensor): Tensor {
  checkDType('logicalNot', 'input', a.dtype, ['bool']);
  return unary('logicalNot', a, U.NOT, 0, 0, 'bool');
}

/** cond ? a : b, broadcasting all three. */
export function where(cond: Tensor, a0: Tensor, b0: Tensor): Tensor {
  checkDType('where', 'cond', cond.dtype, ['bool']);
  sameDType('where', ...promotable(a0, b0), ['f32', 'f16', 'i32', 'bool']);
  const [a, b] = promoteFloats(a0, b0);
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
  // Same dtype: a view that stays on the tape (as PyTorch's x.to(x.dtype) returns x itself); f32 <-> f16 keep the
  // gradient (cast back).
  if (isFloat(x.dtype) && isFloat(dtype)) return castFloat(x, dtype as 'f32' | 'f16');
  if (dtype === x.dtype) return record('to', x.makeView(x.shape.slice(), x.strides.slice(), x.offset), [x], (g) => [g]);
  // Integers and booleans to and from f16: through f32 values in the kernel (bool is x != 0, NaN true).
  if (x.dtype === 'f16' || dtype === 'f16') return unary('to', x, U.COPY, 0, 0, dtype);
  if (dtype === 'bool') return binary('to', x, scalarLike(x, 0, x.dtype), B.NE, 'bool');
  if (x.dtype === 'f32' && dtype === 'i32') {
    // Truncation toward zero of a value outside the i32 range (or NaN) is undefined in WGSL: PyTorch's is too, so
    // it is checked nowhere here; the values are what the GPU gives.
    return unary('to', x, U.COPY, 0, 0, 'i32');
  }
  return unary('to', x, U.COPY, 0, 0, dtype);
}

/**
 * f on f32 copies of the f16 inputs (the others as they are), its result rounded once to `to`: for ops whose kernels
 * compute in f32 from f32 storage (softmax, layerNorm, the losses) and for compositions whose intermediate values
 * (a variance's centred squares, logsumexp's exponentials) must not be rounded to f16 on the way. The casts are on the
 * tape, so gradients come back to each input in its own dtype. Callers validate first: the casts are GPU work.
 */
export function inF32<T extends readonly (Tensor | null | undefined)[]>(to: DType, inputs: T, f: (...wide: T) => Tensor): Tensor {
  return tidy(() => {
    const wide = inputs.map((t) => (t && t.dtype === 'f16' ? toDType(t, 'f32') : t)) as unknown as T;
    const y = f(...wide);
    return y.dtype === to ? y : toDType(y, to);
  });
}

/** A copy with its own storage, on the tape. */
export function clone(x: Tensor): Tensor {
  x.buf('clone');
  const out = unary('clone', x, U.COPY);
  return record('clone', out, [x], (g) => [g]);
}
