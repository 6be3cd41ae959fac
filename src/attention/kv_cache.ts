// A key/value cache for incremental decoding: keys and values are appended into preallocated
// storage and read back as views (no copies), so step t attends over positions 0..t.
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { allocLike, keep } from '../tensor/base.js';
import { copy } from '../launch/elementwise.js';
import { withGradMode } from '../autograd/mode.js';
import type { Tensor } from '../ops/tensor.js';
import { slice } from '../ops/views.js';

/**
 * Keys and values of the positions decoded so far, for incremental decoding. Each step appends the new positions'
 * k and v and attends over every cached position. Causal attention through a cache is aligned at the bottom right:
 * the Nq new queries are the last Nq of the Nk cached positions, so query i sees keys j <= i + Nk - Nq. Call
 * F.scaledDotProductAttention with isCausal: 'lowerRight' (PyTorch's causal_lower_right) on what append returns;
 * nn.MultiheadAttention, nn.TransformerEncoderLayer and nn.TransformerDecoderLayer do so whenever a cache is given (isCausal: true),
 * whether the new positions come one at a time, in chunks, or after a prefill.
 */
export class KVCache {
  private k: Tensor | null = null;
  private v: Tensor | null = null;
  /** Positions filled so far. */
  length = 0;

  constructor(public readonly maxLength: number) {
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new ValueError(`KVCache: maxLength must be a positive integer, got ${maxLength}`);
  }

  /**
   * Appends k [B, H, T, D] and v [B, H, T, Dv] (T new positions) and returns views of every cached
   * position so far: [B, H, length, D] and [B, H, length, Dv]. The caller disposes the returned views.
   */
  append(k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    if (k.rank !== 4 || v.rank !== 4) throw new ShapeError(`KVCache.append: k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} must be [B, H, T, D]`);
    const [B, H, T, D] = k.shape;
    const Dv = v.shape[3];
    if (v.shape[0] !== B || v.shape[1] !== H || v.shape[2] !== T) throw new ShapeError(`KVCache.append: k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} disagree`);
    if (this.k && (this.k.shape[0] !== B || this.k.shape[1] !== H || this.k.shape[3] !== D || this.v!.shape[3] !== Dv)) {
      throw new ShapeError(`KVCache.append: k ${fmtShape(k.shape)} does not match the cache's [${B},${H},*,${D}] layout ${fmtShape(this.k.shape)}`);
    }
    if (this.k && (k.dtype !== this.k.dtype || v.dtype !== this.v!.dtype)) {
      throw new DTypeError(`KVCache.append: k ${k.dtype} and v ${v.dtype} differ from the cache's ${this.k.dtype} and ${this.v!.dtype}`);
    }
    if (this.length + T > this.maxLength) throw new ShapeError(`KVCache.append: ${this.length} + ${T} positions exceed maxLength ${this.maxLength}`);
    k.buf('KVCache.append');
    v.buf('KVCache.append');
    if (!this.k) {
      // The cache outlives the tidy() scope of the forward pass that first fills it.
      this.k = keep(allocLike(k, [B, H, this.maxLength, D], k.dtype));
      this.v = keep(allocLike(v, [B, H, this.maxLength, Dv], v.dtype));
    }
    return withGradMode(false, () => {
      for (const [src, dst] of [[k, this.k!], [v, this.v!]] as const) {
        const target = slice(dst, 2, this.length, this.length + T);
        copy('KVCache.append', target, src);
        target.dispose();
      }
      this.length += T;
      return { k: slice(this.k!, 2, 0, this.length), v: slice(this.v!, 2, 0, this.length) };
    });
  }

  reset(): void {
    this.length = 0;
  }

  dispose(): void {
    this.k?.dispose();
    this.v?.dispose();
    this.k = this.v = null;
    this.length = 0;
  }
}
