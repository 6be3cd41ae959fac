// Launcher of kernels/cast.wgsl: float casts (f32 <-> f16) and strided copies of f16 tensors.
import { DTypeError, fmtShape } from '../errors.js';
import { type TensorBase, allocLike } from '../tensor/base.js';
import { broadcastStrides } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { pad8, rawBuf } from './common.js';
import kernel from './kernels/cast.js';

const WG = 256;

/** A contiguous copy of x in dtype `to` (f32 or f16), from any strides; no autograd. */
export function cast<T extends TensorBase>(x: T, to: 'f32' | 'f16', fn = 'cast'): T {
  if (x.dtype !== 'f32' && x.dtype !== 'f16') throw new DTypeError(`${fn}: casts go between f32 and f16; tensor ${fmtShape(x.shape)} is ${x.dtype}`);
  const src = rawBuf(x, fn);
  const out = allocLike(x, x.shape.slice(), to);
  const n = x.size;
  if (n === 0) return out;
  const words = to === 'f16' ? Math.ceil(n / 2) : n;
  dispatch(kernel, 'main', {
    constants: { SRC_F16: x.dtype === 'f16' ? 1 : 0, DST_F16: to === 'f16' ? 1 : 0 },
    bindings: { src, dst: rawBuf(out, fn) },
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
