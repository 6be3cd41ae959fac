// Transitional re-exports (removed when the last importer migrates): launchers live in ../launch/.
import type { TensorBase } from '../tensor/base.js';
import { accumulate, fill, unaryInto } from '../launch/elementwise.js';
export { pad8, dtCode, bufOf } from '../launch/common.js';
import { dummy as dummyOf } from '../launch/common.js';

export function dummy(): GPUBuffer {
  return dummyOf(false);
}

/** @deprecated transitional: the entries of elementwise.wgsl that old call sites used. */
export function elementwise(entry: 'unary' | 'fill' | 'accumulate', fn: string, out: TensorBase, inputs: { a?: TensorBase }, op = 0, scalar = 0, scalar2 = 0): void {
  if (entry === 'fill') fill(fn, out, scalar);
  else if (entry === 'accumulate') accumulate(fn, out, inputs.a!);
  else unaryInto(fn, out, inputs.a!, op, scalar, scalar2);
}
