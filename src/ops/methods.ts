// Installs the op functions as Tensor methods (x.add(y), x.matmul(y), ...).
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import * as E from './elementwise.js';
import * as R from './reduce.js';
import * as V from './views.js';
import { matmul } from './matmul.js';
import { softmax, logSoftmax } from './nn_ops.js';

declare module '../tensor/tensor' {
  interface Tensor {
    add(y: Tensor | number): Tensor;
    sub(y: Tensor | number): Tensor;
    mul(y: Tensor | number): Tensor;
    div(y: Tensor | number): Tensor;
    pow(p: number | Tensor): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    abs(): Tensor;
    relu(): Tensor;
    gelu(): Tensor;
    tanh(): Tensor;
    sigmoid(): Tensor;
    clamp(min?: number, max?: number): Tensor;
    maximum(y: Tensor): Tensor;
    minimum(y: Tensor): Tensor;
    eq(y: Tensor | number): Tensor;
    ne(y: Tensor | number): Tensor;
    lt(y: Tensor | number): Tensor;
    le(y: Tensor | number): Tensor;
    gt(y: Tensor | number): Tensor;
    ge(y: Tensor | number): Tensor;
    logicalNot(): Tensor;
    where(cond: Tensor, other: Tensor): Tensor;
    matmul(y: Tensor): Tensor;
    sum(dim?: number | number[], keepdim?: boolean): Tensor;
    mean(dim?: number | number[], keepdim?: boolean): Tensor;
    max(dim?: number | number[], keepdim?: boolean): Tensor;
    min(dim?: number | number[], keepdim?: boolean): Tensor;
    argmax(dim?: number, keepdim?: boolean): Tensor;
    argmin(dim?: number, keepdim?: boolean): Tensor;
    softmax(dim: number): Tensor;
    logSoftmax(dim: number): Tensor;
    reshape(shape: number[]): Tensor;
    view(shape: number[]): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    transpose(d0?: number, d1?: number): Tensor;
    permute(dims: number[]): Tensor;
    unsqueeze(dim: number): Tensor;
    squeeze(dim?: number | number[]): Tensor;
    expand(shape: number[]): Tensor;
    slice(dim: number, start?: number, end?: number, step?: number): Tensor;
    select(dim: number, index: number): Tensor;
    contiguous(): Tensor;
    detach(): Tensor;
    clone(): Tensor;
    /** f32 <-> f16 casts keep the gradient (cast back); other conversions do not. */
    to(dtype: DType | 'float32' | 'float16' | 'int32' | 'half'): Tensor;
    /** x.to('f16') */
    half(): Tensor;
    /** x.to('f32') */
    float(): Tensor;
    backward(gradient?: Tensor, options?: { retainGraph?: boolean }): void;
  }
}

const P = Tensor.prototype as unknown as Record<string, unknown>;
const origView = Tensor.prototype.view;
Object.assign(P, {
  add(this: Tensor, y: Tensor | number) { return E.add(this, y); },
  sub(this: Tensor, y: Tensor | number) { return E.sub(this, y); },
  mul(this: Tensor, y: Tensor | number) { return E.mul(this, y); },
  div(this: Tensor, y: Tensor | number) { return E.div(this, y); },
  pow(this: Tensor, p: number | Tensor) { return E.pow(this, p); },
  neg(this: Tensor) { return E.neg(this); },
  exp(this: Tensor) { return E.exp(this); },
  log(this: Tensor) { return E.log(this); },
  sqrt(this: Tensor) { return E.sqrt(this); },
  rsqrt(this: Tensor) { return E.rsqrt(this); },
  abs(this: Tensor) { return E.abs(this); },
  relu(this: Tensor) { return E.relu(this); },
  gelu(this: Tensor) { return E.gelu(this); },
  tanh(this: Tensor) { return E.tanh(this); },
  sigmoid(this: Tensor) { return E.sigmoid(this); },
  clamp(this: Tensor, lo?: number, hi?: number) { return E.clamp(this, lo, hi); },
  maximum(this: Tensor, y: Tensor) { return E.maximum(this, y); },
  minimum(this: Tensor, y: Tensor) { return E.minimum(this, y); },
  eq(this: Tensor, y: Tensor | number) { return E.eq(this, y); },
  ne(this: Tensor, y: Tensor | number) { return E.ne(this, y); },
  lt(this: Tensor, y: Tensor | number) { return E.lt(this, y); },
  le(this: Tensor, y: Tensor | number) { return E.le(this, y); },
  gt(this: Tensor, y: Tensor | number) { return E.gt(this, y); },
  ge(this: Tensor, y: Tensor | number) { return E.ge(this, y); },
  logicalNot(this: Tensor) { return E.logicalNot(this); },
  where(this: Tensor, cond: Tensor, other: Tensor) { return E.where(cond, this, other); },
  matmul(this: Tensor, y: Tensor) { return matmul(this, y); },
  sum(this: Tensor, dim?: number | number[], keepdim?: boolean) { return R.sum(this, dim, keepdim); },
  mean(this: Tensor, dim?: number | number[], keepdim?: boolean) { return R.mean(this, dim, keepdim); },
  max(this: Tensor, dim?: number | number[], keepdim?: boolean) { return R.max(this, dim, keepdim); },
  min(this: Tensor, dim?: number | number[], keepdim?: boolean) { return R.min(this, dim, keepdim); },
  argmax(this: Tensor, dim?: number, keepdim?: boolean) { return R.argmax(this, dim, keepdim); },
  argmin(this: Tensor, dim?: number, keepdim?: boolean) { return R.argmin(this, dim, keepdim); },
  softmax(this: Tensor, dim: number) { return softmax(this, dim); },
  logSoftmax(this: Tensor, dim: number) { return logSoftmax(this, dim); },
  reshape(this: Tensor, shape: number[]) { return V.reshape(this, shape); },
  flatten(this: Tensor, s?: number, e?: number) { return V.flatten(this, s, e); },
  transpose(this: Tensor, d0?: number, d1?: number) { return V.transpose(this, d0, d1); },
  permute(this: Tensor, dims: number[]) { return V.permute(this, dims); },
  unsqueeze(this: Tensor, dim: number) { return V.unsqueeze(this, dim); },
  squeeze(this: Tensor, dim?: number | number[]) { return V.squeeze(this, dim); },
  expand(this: Tensor, shape: number[]) { return V.expand(this, shape); },
  slice(this: Tensor, dim: number, start?: number, end?: number, step?: number) { return V.slice(this, dim, start, end, step); },
  select(this: Tensor, dim: number, index: number) { return V.select(this, dim, index); },
  contiguous(this: Tensor) { return V.contiguous(this); },
  detach(this: Tensor) { return V.detach(this); },
  clone(this: Tensor) { return E.clone(this); },
  to(this: Tensor, dtype: DType) { return E.toDType(this, dtype); },
  half(this: Tensor) { return E.toDType(this, 'f16'); },
  float(this: Tensor) { return E.toDType(this, 'f32'); },
});
P.view = function (this: Tensor, shape: number[]) {
  return V.reshape(this, shape);
};
