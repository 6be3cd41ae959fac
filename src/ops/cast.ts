// Float casts (f32 <-> f16) and the copies f16 views need (contiguous, clone). kernels/cast.wgsl.
import { fmtShape } from '../errors.js';
import { type DType, parseDType, f16Unsupported } from '../tensor/dtype.js';
import { type Tensor, empty } from '../tensor/tensor.js';
import { broadcastStrides } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { DTypeError } from '../errors.js';
import { pad8 } from './kernel_args.js';
import { record } from './record.js';

const WG = 256;

/** A contiguous copy of x in dtype `to` (f32 or f16), from any strides; no autograd. */
export function castRaw(x: Tensor, to: 'f32' | 'f16', fn = 'cast'): Tensor {
  x.buf(fn);
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new DTypeError(`${fn}: casts go between f32 and f16; tensor ${fmtShape(x.shape)} is ${x.dtype}`);
  const out = empty(x.shape.slice(), to);
  const n = x.size;
  if (n === 0) return out;
  const words = to === 'f16' ? Math.ceil(n / 2) : n;
  dispatch('cast.wgsl', 'main', {
    constants: { SRC_F16: x.dtype === 'f16' ? 1 : 0, DST_F16: to === 'f16' ? 1 : 0 },
    bindings: { src: x.buf(fn).buffer, dst: out.buf(fn).buffer },
    params: {
      n,
      rank: x.rank,
      s_off: x.offset,
      words,
      shape: pad8(x.shape),
      s_strides: pad8(broadcastStrides(x.shape, x.strides, x.shape)),
    },
    workgroups: grid1d(Math.ceil(words / WG)),
    label: `${fn}.${x.dtype}->${to}`,
  });
  return out;
}

/**
 * x in dtype `to`: f32 <-> f16 (round to nearest; the gradient is cast back), or x itself (a view) when it
 * already has that dtype. Other dtypes are not cast here.
 */
export function to(x: Tensor, dtype: DType | 'float32' | 'float16' | 'half', fn = 'to'): Tensor {
  const target = parseDType(fn, dtype);
  x.buf(fn);
  if (target === x.dtype) {
    const v = x.makeView(x.shape.slice(), x.strides.slice(), x.offset);
    return record(fn, v, [x], (g) => [g.makeView(g.shape, g.strides, g.offset)]);
  }
  if ((target !== 'f32' && target !== 'f16') || (x.dtype !== 'f32' && x.dtype !== 'f16')) {
    throw new DTypeError(`${fn}: kiln casts between f32 and f16 only; tensor ${fmtShape(x.shape)} is ${x.dtype}, asked for ${target}`);
  }
  const from = x.dtype;
  const out = castRaw(x, target, fn);
  return record(fn, out, [x], (g) => [castRaw(g, from, `${fn}.backward`)]);
}

export const half = (x: Tensor): Tensor => to(x, 'f16', 'half');
export const float = (x: Tensor): Tensor => to(x, 'f32', 'float');

/** A contiguous copy of an f16 tensor (the f16 side of contiguous() and clone()). */
export function copyF16(x: Tensor, fn: string): Tensor {
  if (x.dtype !== 'f16') throw f16Unsupported(fn);
  const out = castRaw(x, 'f16', fn);
  return record(fn, out, [x], (g) => [g.makeView(g.shape, g.strides, g.offset)]);
}
