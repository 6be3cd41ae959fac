// Dropout with a seeded counter-based (Philox) mask generated on the host and uploaded.
import { ValueError, checkOptions } from '../errors.js';
import { nextSeed, philox4x32, uniformFromU32 } from '../tensor/random.js';
import { regenerateLastUpload } from '../gpu/recorder.js';
import { record } from '../autograd/node.js';
import type { Tensor } from '../ops/tensor.js';
import { tensor } from '../ops/creation.js';
import { inF32, mul } from '../ops/elementwise.js';

export interface DropoutOptions {
  seed?: number;
  /** false makes dropout the identity (as PyTorch's F.dropout(training=False)). Default true. */
  training?: boolean;
}

/** Keep-mask scaled by 1/(1-p): element i is kept when philox(i, seed) >= p. */
export function dropoutMask(n: number, p: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  const w = new Uint32Array(4);
  const scale = 1 / (1 - p);
  for (let i = 0; i < n; i += 4) {
    philox4x32(i >>> 2, 0, 0, 0xd40f, seed >>> 0, 0x0d0d, w);
    for (let k = 0; k < 4 && i + k < n; k++) out[i + k] = uniformFromU32(w[k]) >= p ? scale : 0;
  }
  return out;
}

function identity(x: Tensor): Tensor {
  return record('dropout', x.makeView(x.shape.slice(), x.strides.slice(), x.offset), [x], (g) => [g]);
}

/** Zeroes each element with probability p and scales the rest by 1/(1-p). Returns a new tensor. */
export function dropout(x: Tensor, p = 0.5, options?: DropoutOptions): Tensor {
  options = checkOptions('dropout', options, ['seed', 'training']);
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new ValueError(`dropout: p must be in [0, 1], got ${p}`);
  if (options.seed !== undefined && (!Number.isInteger(options.seed) || options.seed < 0)) throw new ValueError(`dropout: seed must be a non-negative integer, got ${options.seed}`);
  x.buf('dropout');
  if (options.training === false || p === 0) return identity(x);
  const n = x.size;
  const seed = p === 1 ? 0 : (options.seed ?? nextSeed());
  const maskValues = p === 1 ? new Float32Array(n) : dropoutMask(n, p, seed);
  const mask = tensor(maskValues, { shape: x.shape.slice() });
  // A compiled step's replay makes the mask of the seed it draws in this one's place.
  if (p < 1) regenerateLastUpload(seed, (s) => dropoutMask(n, p, s));
  // f16: x * mask in f32, rounded once (the mask's 1/(1-p) is not rounded to f16 first).
  const y = x.dtype === 'f16' ? inF32('f16', [x], (w) => mul(w, mask)) : mul(x, mask);
  mask.dispose();
  return y;
}
