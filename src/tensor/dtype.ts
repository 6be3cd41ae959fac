import { DTypeError } from '../errors.js';

export type DType = 'f32' | 'f16' | 'i32' | 'bool';
export const DTYPES: readonly DType[] = ['f32', 'f16', 'i32', 'bool'];
export function bytesPerElement(d: DType): number {
  // bool is stored as one u32 per element so kernels can index it directly; f16 is packed two to a u32.
  return d === 'f16' ? 2 : 4;
}
/** What f16 tensors can do; every other op rejects them with a DTypeError that says so. */
export const F16_OPS = 'every op of the API but user kernels (defineOp), gradcheck and optimizer parameters';
export function f16Unsupported(fn: string): DTypeError {
  return new DTypeError(`${fn}: f16 tensors are not supported here (f16 supports ${F16_OPS}); cast with x.to('f32') first`);
}
export function checkDType(fn: string, arg: string, d: DType, allowed: readonly DType[]): void {
  // "f16 is not supported here" only where f32 is: an op that takes neither (logicalAnd takes bool) says what it takes.
  if (d === 'f16' && !allowed.includes(d) && allowed.includes('f32')) throw f16Unsupported(fn);
  if (!allowed.includes(d)) throw new DTypeError(`${fn}: ${arg} has dtype ${d}; expected ${allowed.join(' or ')}`);
}
export function parseDType(fn: string, d: unknown): DType {
  if (d === undefined) return 'f32';
  if (d === 'float32') return 'f32';
  if (d === 'int32') return 'i32';
  if (d === 'float16' || d === 'half') return 'f16';
  if (typeof d === 'string' && (DTYPES as readonly string[]).includes(d)) return d as DType;
  throw new DTypeError(`${fn}: unknown dtype ${JSON.stringify(d)} (kiln has ${DTYPES.join(', ')})`);
}
