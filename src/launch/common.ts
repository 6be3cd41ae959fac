// What every launcher shares: turning tensor views into kernel params, and placeholder buffers for unused bindings.
import { f16Unsupported } from '../tensor/dtype.js';
import type { TensorBase } from '../tensor/base.js';
import { gpu } from '../gpu/device.js';
import { defineFlag, oneOf } from '../gpu/flags.js';
import { dummyBuffer } from '../gpu/kernels.js';
import type { PooledBuffer } from '../gpu/memory.js';
import dtypes from './kernels/dtypes.js';

/**
 * How the elementwise and matmul kernels take f16 tensors: 'native' reads and writes f16 storage (enable f16; needs
 * shader-f16) where every float operand is f16, 'packed' reads the packed pairs of 32-bit words (any adapter).
 */
export const f16KernelsFlag = defineFlag<'native' | 'packed'>({
  name: 'f16.kernels',
  doc: 'how elementwise ops and matmul read f16: as f16 storage (needs shader-f16) or packed pairs',
  accepts: "'native' | 'packed'",
  defaultDoc: "'native' with shader-f16",
  parse: oneOf(['native', 'packed'] as const),
});

/** Whether the f16 kernels read f16 storage (the flag, else wherever the adapter has shader-f16; a forced 'native'
 * without it fails at the launch, naming shader-f16). */
export const nativeF16 = (): boolean => (f16KernelsFlag.get() ?? (gpu().hasF16 ? 'native' : 0)) === 'native';

/** The dtype codes of kernels/dtypes.wgsl (DT_*), read from the kernel at build time. */
const DTYPE_CODE = { f32: dtypes.constants.DT_F32, i32: dtypes.constants.DT_I32, bool: dtypes.constants.DT_BOOL, f16: dtypes.constants.DT_F16 } as const;

/** Up to 8 dims padded with zeros, as the kernels' `array<vec4<u32>, 2>` shape and stride params. */
export function pad8(v: readonly number[]): number[] {
  const out = new Array<number>(8).fill(0);
  for (let i = 0; i < v.length; i++) out[i] = v[i];
  return out;
}

/**
 * The dtype code a kernel reads (DT_F32, DT_I32, DT_BOOL; DT_F16 only where `f16` says the kernel reads packed halves
 * through dtypes.wgsl); otherwise f16 is refused before any GPU work.
 */
export function dtCode(t: TensorBase, fn = 'kiln', f16 = false): number {
  if (t.dtype === 'f16' && !f16) throw f16Unsupported(fn);
  return DTYPE_CODE[t.dtype];
}

/** A small buffer bound where the chosen variant does not use a binding (see gpu/kernels.ts). */
export function dummy(writable = false, slot = 0): GPUBuffer {
  return dummyBuffer(writable, slot);
}

/** The buffer a 32-bit-word kernel reads; f16 tensors (packed halves) are refused before any GPU work. */
export function bufOf(t: TensorBase, fn: string): PooledBuffer {
  if (t.dtype === 'f16') throw f16Unsupported(fn);
  return t.buf(fn).buffer;
}

/** The buffer of any tensor (f16 included), for kernels that read its packed words themselves. */
export function rawBuf(t: TensorBase, fn: string): PooledBuffer {
  return t.buf(fn).buffer;
}

/**
 * The one stride that walks dims `shape` / `strides` in row-major order as a single run (size-1 dims ignored), or
 * null when they do not form one (a permuted or gapped view). An empty or all-ones shape walks with stride 1.
 */
export function runStride(shape: readonly number[], strides: readonly number[]): number | null {
  let stride: number | null = null;
  let expect = 0;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] === 1) continue;
    if (stride === null) stride = strides[i];
    else if (strides[i] !== expect) return null;
    expect = strides[i] * shape[i];
  }
  return stride ?? 1;
}
