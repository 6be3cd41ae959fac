// Host data in and out: nested arrays and typed arrays become the bytes a dtype stores, checked first, so that bad
// data fails before any buffer exists; raw words read back become the typed array a dtype reads as.
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import type { DType } from './dtype.js';
import { toHalfBits } from './half.js';

export type NestedArray = number | boolean | NestedArray[];
export type HostData = NestedArray | ArrayLike<number> | Float32Array | Float64Array | Int32Array | Uint8Array;

const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

/** Typed arrays kiln reads without being told a dtype, and the dtype each one means. */
const TYPED_DEFAULT: [new (...a: never[]) => ArrayBufferView, DType | null][] = [
  [Float32Array, 'f32'],
  [Float64Array, 'f32'],
  [Int32Array, 'i32'],
  [Int16Array, 'i32'],
  [Int8Array, 'i32'],
  [Uint16Array, 'i32'],
  // A Uint8Array is bytes, booleans or small integers: kiln has no u8 dtype, so it must be told which.
  [Uint8Array, null],
  [Uint8ClampedArray, null],
  [Uint32Array, null],
];

function typedName(v: ArrayBufferView): string {
  return v.constructor?.name ?? 'a typed array';
}

/** The dtype host data means when no dtype is given, or a DTypeError for a typed array kiln does not know. */
export function hostDType(fn: string, data: unknown): DType {
  if (ArrayBuffer.isView(data)) {
    for (const [ctor, dt] of TYPED_DEFAULT) {
      if (data instanceof ctor) {
        if (dt) return dt;
        throw new DTypeError(`${fn}: a ${typedName(data)} has no kiln dtype of its own; pass { dtype: 'bool' | 'i32' | 'f32' }`);
      }
    }
    throw new DTypeError(`${fn}: kiln does not read a ${typedName(data)} (use Float32Array, Float64Array, Int32Array or a nested array)`);
  }
  let leaf: unknown = data;
  while (Array.isArray(leaf) && leaf.length) leaf = leaf[0];
  return typeof leaf === 'boolean' ? 'bool' : 'f32';
}

/** Rejects typed arrays whose elements are not numbers (BigInt64Array, ...), whatever the dtype asked for. */
export function checkTypedData(fn: string, data: ArrayBufferView): void {
  if (typeof BigInt64Array !== 'undefined' && (data instanceof BigInt64Array || data instanceof BigUint64Array)) {
    throw new DTypeError(`${fn}: kiln does not read a ${typedName(data)} (64-bit integers); convert to Int32Array or Float64Array`);
  }
  if (data instanceof DataView) throw new DTypeError(`${fn}: a DataView is not tensor data; pass a typed array`);
}

/** The shape of nested arrays (the first element's path; raggedness is checked by flattenNested). */
export function nestedShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  return shape;
}

/** Nested arrays flattened in row-major order, checked to be rectangular and to hold numbers or booleans. */
export function flattenNested(fn: string, data: NestedArray, shape: readonly number[]): number[] {
  const out: number[] = [];
  const walk = (v: NestedArray, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw new ShapeError(`${fn}: data is ragged: element ${path || '[]'} is an array, expected a number`);
      if (typeof v === 'boolean') out.push(v ? 1 : 0);
      else if (typeof v === 'number') out.push(v);
      else throw new ValueError(`${fn}: data element ${path || '[]'} is ${describe(v)}, not a number`);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new ShapeError(`${fn}: data is ragged: ${path || 'the top level'} has ${Array.isArray(v) ? v.length : 'a scalar'} entries, expected ${shape[depth]} (shape ${fmtShape(shape)})`);
    }
    for (let i = 0; i < v.length; i++) walk(v[i], depth + 1, `${path}[${i}]`);
  };
  walk(data, 0, '');
  return out;
}

function describe(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n (a BigInt)`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

/**
 * Host values as the words a dtype stores: f32 as float bits (rounded), f16 as binary16 halves, i32 as integers
 * (a non-integer or a value outside the i32 range is a ValueError naming it, never a wrap), bool as one u32 0/1.
 */
export function hostBytes(fn: string, dtype: DType, values: ArrayLike<number>, n: number): ArrayBufferView {
  if (dtype === 'f32') return values instanceof Float32Array ? values : Float32Array.from({ length: n }, (_, i) => values[i]);
  if (dtype === 'f16') return toHalfBits(values, n);
  if (dtype === 'i32') {
    if (values instanceof Int32Array) return values;
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new ValueError(`${fn}: i32 data element ${i} is ${describe(v)}, not an integer`);
      if (v < I32_MIN || v > I32_MAX) throw new ValueError(`${fn}: i32 data element ${i} is ${v}, outside the i32 range [-2^31, 2^31 - 1]`);
      a[i] = v;
    }
    return a;
  }
  const b = new Uint32Array(n);
  for (let i = 0; i < n; i++) b[i] = values[i] ? 1 : 0;
  return b;
}

/** Whether a number is an integer in the i32 range (for scalars meeting i32 tensors, and integer options). */
export function isI32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= I32_MIN && v <= I32_MAX;
}

/** The typed array a dtype reads back as, over n raw 32-bit words (bool: 0/1 bytes). */
export function wordsToTyped(dtype: DType, raw: ArrayBuffer, n: number): Float32Array | Int32Array | Uint8Array {
  if (dtype === 'f32') return new Float32Array(raw, 0, n);
  if (dtype === 'i32') return new Int32Array(raw, 0, n);
  const u = new Uint32Array(raw, 0, n);
  return Uint8Array.from(u, (v) => (v ? 1 : 0));
}

export function emptyTyped(dtype: DType): Float32Array | Int32Array | Uint8Array {
  return dtype === 'i32' ? new Int32Array(0) : dtype === 'bool' ? new Uint8Array(0) : new Float32Array(0);
}
