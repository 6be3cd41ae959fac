// Small helpers that turn tensor views into kernel params.
import { DTYPE_CODE, f16Unsupported } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { broadcastStrides, contiguousStrides } from '../tensor/shape.js';
import { dispatch, dummyBuffer, grid1d } from '../gpu/kernels.js';
import type { PooledBuffer } from '../gpu/memory.js';

export function pad8(v: readonly number[]): number[] {
  const out = new Array<number>(8).fill(0);
  for (let i = 0; i < v.length; i++) out[i] = v[i];
  return out;
}

export function dtCode(t: Tensor, fn = 'kiln'): number {
  if (t.dtype === 'f16') throw f16Unsupported(fn);
  return DTYPE_CODE[t.dtype];
}

/** A small buffer bound where a kernel's binding is unused by the chosen variant (see kernels.dispatch). */
export function dummy(): GPUBuffer {
  return dummyBuffer(false);
}

/** The buffer a 32-bit-word kernel reads; f16 tensors (packed halves) are refused before any GPU work. */
export function bufOf(t: Tensor, fn: string): PooledBuffer {
  if (t.dtype === 'f16') throw f16Unsupported(fn);
  return t.buf(fn).buffer;
}

/**
 * Dispatches an elementwise entry of elementwise.wgsl producing `out` (any strides) from up to three
 * inputs broadcast to out's shape.
 */
export function elementwise(
  entry: 'unary' | 'binary' | 'select_where' | 'fill' | 'accumulate',
  fn: string,
  out: Tensor,
  inputs: { a?: Tensor; b?: Tensor; c?: Tensor },
  op = 0,
  scalar = 0,
  scalar2 = 0,
): void {
  const shape = out.shape;
  const n = out.size;
  if (n === 0) return;
  const strides = (t?: Tensor) => (t ? pad8(broadcastStrides(t.shape, t.strides, shape)) : pad8([]));
  const a = inputs.a, b = inputs.b, c = inputs.c;
  const WG = 256;
  dispatch('elementwise.wgsl', entry, {
    constants: { OP: op, A_DT: a ? dtCode(a, fn) : 0, OUT_DT: dtCode(out, fn) },
    bindings: {
      a: a ? bufOf(a, fn) : dummy(),
      b: b ? bufOf(b, fn) : dummy(),
      c: c ? bufOf(c, fn) : dummy(),
      out: bufOf(out, fn),
    },
    params: {
      n,
      rank: shape.length,
      a_off: a?.offset ?? 0,
      b_off: b?.offset ?? 0,
      c_off: c?.offset ?? 0,
      o_off: out.offset,
      scalar,
      scalar2,
      shape: pad8(shape),
      a_strides: strides(a),
      b_strides: strides(b),
      c_strides: strides(c),
      o_strides: pad8(out.strides.length ? out.strides : contiguousStrides(shape)),
    },
    workgroups: grid1d(Math.ceil(n / WG)),
    label: `${fn}`,
  });
}
