import { DTypeError } from '../errors';

export type DType = 'f32' | 'i32' | 'bool';
export const DTYPES: readonly DType[] = ['f32', 'i32', 'bool'];
/** The code kernels receive through their dtype override constants. */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, i32: 1, bool: 2 };
export function bytesPerElement(_d: DType): number {
  return 4; // bool is stored as one u32 per element so kernels can index it directly
}
export type TypedArrayFor<D extends DType> = D extends 'f32' ? Float32Array : D extends 'i32' ? Int32Array : Uint8Array;
export function isFloat(d: DType): boolean {
  return d === 'f32';
}
export function checkDType(fn: string, arg: string, d: DType, allowed: readonly DType[]): void {
  if (!allowed.includes(d)) throw new DTypeError(`${fn}: ${arg} has dtype ${d}; expected ${allowed.join(' or ')}`);
}
export function parseDType(fn: string, d: unknown): DType {
  if (d === undefined) return 'f32';
  if (d === 'float32') return 'f32';
  if (d === 'int32') return 'i32';
  if (typeof d === 'string' && (DTYPES as readonly string[]).includes(d)) return d as DType;
  if (d === 'f16') throw new DTypeError(`${fn}: dtype f16 is not supported yet for tensors (the attention kernels' f16 path is internal)`);
  throw new DTypeError(`${fn}: unknown dtype ${JSON.stringify(d)} (kiln has ${DTYPES.join(', ')})`);
}
