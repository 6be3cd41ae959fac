// The Tensor users hold: TensorBase (storage, view, lifecycle, readback) with the op methods, as PyTorch's tensor
// methods in camelCase. Every tensor kiln makes is one (see TensorBase.allocLike and ./creation.ts).
import type { DType } from '../tensor/dtype.js';
import { TensorBase } from '../tensor/base.js';
import { type BackwardOptions, backward } from '../autograd/backward.js';
import * as E from './elementwise.js';
import * as R from './reduce.js';
import * as V from './views.js';
import { bmm, matmul } from './matmul.js';
import { logSoftmax, softmax } from './nn_ops.js';
import * as S from './shape_ops.js';
import { maskedFill, tril, triu } from './masking.js';
import * as So from './sorting.js';
import * as Ix from './indexing.js';
import type { Expr } from './expr.js';
import { ValueError } from '../errors.js';

/** Set by ops/expr.ts when a flexAttention mod is traced: `Tensor.at` reads through it, so a page that never traces
 *  a mod does not carry the tracer. */
export const captureReader: { read: ((t: Tensor, indices: readonly (Expr | number)[]) => Expr) | null } = { read: null };

export class Tensor extends TensorBase {
  add(y: Tensor | number): Tensor { return E.add(this, y); }
  sub(y: Tensor | number): Tensor { return E.sub(this, y); }
  mul(y: Tensor | number): Tensor { return E.mul(this, y); }
  div(y: Tensor | number): Tensor { return E.div(this, y); }
  pow(p: number | Tensor): Tensor { return E.pow(this, p); }
  neg(): Tensor { return E.neg(this); }
  exp(): Tensor { return E.exp(this); }
  log(): Tensor { return E.log(this); }
  sqrt(): Tensor { return E.sqrt(this); }
  rsqrt(): Tensor { return E.rsqrt(this); }
  abs(): Tensor { return E.abs(this); }
  relu(): Tensor { return E.relu(this); }
  gelu(): Tensor { return E.gelu(this); }
  tanh(): Tensor { return E.tanh(this); }
  sigmoid(): Tensor { return E.sigmoid(this); }
  clamp(min?: number, max?: number): Tensor { return E.clamp(this, min, max); }
  maximum(y: Tensor): Tensor { return E.maximum(this, y); }
  minimum(y: Tensor): Tensor { return E.minimum(this, y); }
  eq(y: Tensor | number): Tensor { return E.eq(this, y); }
  ne(y: Tensor | number): Tensor { return E.ne(this, y); }
  lt(y: Tensor | number): Tensor { return E.lt(this, y); }
  le(y: Tensor | number): Tensor { return E.le(this, y); }
  gt(y: Tensor | number): Tensor { return E.gt(this, y); }
  ge(y: Tensor | number): Tensor { return E.ge(this, y); }
  logicalNot(): Tensor { return E.logicalNot(this); }
  logicalAnd(y: Tensor): Tensor { return E.logicalAnd(this, y); }
  logicalOr(y: Tensor): Tensor { return E.logicalOr(this, y); }
  sin(): Tensor { return E.sin(this); }
  cos(): Tensor { return E.cos(this); }
  log1p(): Tensor { return E.log1p(this); }
  erf(): Tensor { return E.erf(this); }
  all(dim?: number | number[] | null, keepdim?: boolean): Tensor { return R.all(this, dim, keepdim); }
  any(dim?: number | number[] | null, keepdim?: boolean): Tensor { return R.any(this, dim, keepdim); }
  var(dim?: number | number[] | null | R.VarOptions, options?: R.VarOptions): Tensor { return R.var(this, dim, options); }
  std(dim?: number | number[] | null | R.VarOptions, options?: R.VarOptions): Tensor { return R.std(this, dim, options); }
  logsumexp(dim: number | number[], keepdim?: boolean): Tensor { return R.logsumexp(this, dim, keepdim); }
  triu(diagonal?: number): Tensor { return triu(this, diagonal); }
  tril(diagonal?: number): Tensor { return tril(this, diagonal); }
  maskedFill(mask: Tensor, value: number | boolean | Tensor): Tensor { return maskedFill(this, mask, value); }
  split(sizeOrSizes: number | number[], dim?: number): Tensor[] { return S.split(this, sizeOrSizes, dim); }
  chunk(chunks: number, dim?: number): Tensor[] { return S.chunk(this, chunks, dim); }
  flip(dims: number | number[]): Tensor { return S.flip(this, dims); }
  repeat(...times: (number | number[])[]): Tensor { return S.repeat(this, ...times); }
  bmm(y: Tensor): Tensor { return bmm(this, y); }
  sort(dim?: number, options?: So.SortOptions): So.SortResult { return So.sort(this, dim, options); }
  argsort(dim?: number, options?: So.SortOptions): Tensor { return So.argsort(this, dim, options); }
  topk(k: number, dim?: number, options?: So.TopkOptions): So.SortResult { return So.topk(this, k, dim, options); }
  multinomial(n: number, options?: So.MultinomialOptions): Tensor { return So.multinomial(this, n, options); }
  gather(dim: number, index: Tensor): Tensor { return Ix.gather(this, dim, index); }
  indexSelect(dim: number, index: Tensor): Tensor { return Ix.indexSelect(this, dim, index); }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return Ix.scatterAdd(this, dim, index, src); }
  cumsum(dim: number): Tensor { return Ix.cumsum(this, dim); }
  /** this where cond is true, else other (PyTorch's x.where(cond, y)). */
  where(cond: Tensor, other: Tensor): Tensor { return E.where(cond, this, other); }
  /** One element, read inside a flexAttention / createBlockMask mod (indices: Exprs or numbers): a captured read. */
  at(...indices: (Expr | number)[]): Expr {
    if (!captureReader.read) {
      throw new ValueError(`at: a captured ${this.dtype} tensor [${this.shape.join(',')}].at(...) reads one element inside a scoreMod / maskMod of F.flexAttention or createBlockMask; outside a mod, use select / indexing ops`);
    }
    return captureReader.read(this, indices);
  }
  matmul(y: Tensor): Tensor { return matmul(this, y); }
  sum(dim?: number | number[] | null, keepdim?: boolean): Tensor { return R.sum(this, dim, keepdim); }
  mean(dim?: number | number[] | null, keepdim?: boolean): Tensor { return R.mean(this, dim, keepdim); }
  /** max() of every element, or max(dim, keepdim?) → { values, indices } as PyTorch's. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): R.MaxResult;
  max(dim?: number | null, keepdim?: boolean): Tensor | R.MaxResult { return R.max(this, dim, keepdim); }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): R.MaxResult;
  min(dim?: number | null, keepdim?: boolean): Tensor | R.MaxResult { return R.min(this, dim, keepdim); }
  amax(dim?: number | number[] | null, keepdim?: boolean): Tensor { return R.amax(this, dim, keepdim); }
  amin(dim?: number | number[] | null, keepdim?: boolean): Tensor { return R.amin(this, dim, keepdim); }
  argmax(dim?: number | null, keepdim?: boolean): Tensor { return R.argmax(this, dim, keepdim); }
  argmin(dim?: number | null, keepdim?: boolean): Tensor { return R.argmin(this, dim, keepdim); }
  softmax(dim: number): Tensor { return softmax(this, dim); }
  logSoftmax(dim: number): Tensor { return logSoftmax(this, dim); }
  reshape(shape: number[]): Tensor { return V.reshape(this, shape); }
  view(shape: number[]): Tensor { return V.reshape(this, shape); }
  flatten(startDim?: number, endDim?: number): Tensor { return V.flatten(this, startDim, endDim); }
  transpose(d0?: number, d1?: number): Tensor { return V.transpose(this, d0, d1); }
  permute(dims: number[]): Tensor { return V.permute(this, dims); }
  unsqueeze(dim: number): Tensor { return V.unsqueeze(this, dim); }
  squeeze(dim?: number | number[]): Tensor { return V.squeeze(this, dim); }
  expand(shape: number[]): Tensor { return V.expand(this, shape); }
  slice(dim: number, start?: number, end?: number, step?: number): Tensor { return V.slice(this, dim, start, end, step); }
  select(dim: number, index: number): Tensor { return V.select(this, dim, index); }
  contiguous(): Tensor { return V.contiguous(this); }
  detach(): Tensor { return V.detach(this); }
  clone(): Tensor { return E.clone(this); }
  /** f32 <-> f16 casts keep the gradient (cast back); other conversions do not. */
  to(dtype: DType | 'float32' | 'float16' | 'int32' | 'half'): Tensor { return E.toDType(this, dtype); }
  /** x.to('f16') */
  half(): Tensor { return E.toDType(this, 'f16'); }
  /** x.to('f32') */
  float(): Tensor { return E.toDType(this, 'f32'); }
  /** Reverse-mode autograd from this tensor: gradients accumulate into `.grad` of the leaves. Synchronous. */
  backward(gradient?: Tensor | null, options?: BackwardOptions): void { backward(this, gradient, options); }
}
