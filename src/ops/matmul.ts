// Batched matmul with PyTorch's broadcasting and 1-D rules, linear, and their backward rules.
import { bumpTraceEpoch } from '../gpu/recorder.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { broadcastShapes, numel } from '../tensor/shape.js';
import { type MatmulPath, type MatmulPrecision, checkMatmul, matmulPath, matmul as launchMatmul } from '../launch/matmul.js';
import { cast } from '../launch/cast.js';
import { nativeF16 } from '../launch/common.js';
import { sumTo } from '../launch/reduce.js';
import { record } from '../autograd/node.js';
import type { Tensor } from './tensor.js';
import { reshape, squeeze, transpose, unsqueeze } from './views.js';
import { add, toDType } from './elementwise.js';
import { autocastRun } from './autocast.js';
import { tidy } from '../tensor/base.js';
import { sum } from './reduce.js';

let precision: MatmulPrecision = 'highest';

/**
 * As torch.set_float32_matmul_precision: 'highest' (the default) keeps f32 matmuls in f32 arithmetic; 'high' lets them
 * use the adapter's matrix units with each f32 input split into two f16 halves and three products (about f32's
 * accuracy, within f16's range); 'medium' with the inputs rounded to f16 (f32 sums). Where the adapter has no trusted
 * subgroup-matrix config the setting changes nothing. f16 matmuls use the matrix units wherever there are some.
 */
export function setMatmulPrecision(value: MatmulPrecision): void {
  bumpTraceEpoch();
  if (value !== 'highest' && value !== 'high' && value !== 'medium') {
    throw new ValueError(`setMatmulPrecision: expected 'highest', 'high' or 'medium', got ${typeof value === 'string' ? `'${value}'` : String(value)}`);
  }
  precision = value;
}

export function getMatmulPrecision(): MatmulPrecision {
  return precision;
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  a.buf('matmul');
  b.buf('matmul');
  if (a.rank === 0 || b.rank === 0) throw new ShapeError(`matmul: operands must have at least 1 dim, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const K1 = a.shape[a.rank - 1];
  const K2 = b.rank === 1 ? b.shape[0] : b.shape[b.rank - 2];
  if (K1 !== K2) throw new ShapeError(`matmul: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}: inner dimensions differ (${K1} vs ${K2})`);
  const ac = autocastRun('matmul', [a, b], matmul);
  if (ac) return ac;
  const float = (d: string) => d === 'f32' || d === 'f16';
  if (!float(a.dtype) || !float(b.dtype) || a.dtype !== b.dtype) {
    throw new DTypeError(`matmul: needs two f32 or two f16 operands, got ${a.dtype} and ${b.dtype}`);
  }
  // f16 on the scalar kernel where the adapter has shader-f16: read as f16 storage, f32 sums, rounded to f16 once
  // (matmulAs). Elsewhere widened to f32 (exactly), multiplied on the matrix path (or the scalar kernel), rounded back
  // to f16 once; the casts carry the gradients.
  if (a.dtype === 'f16' && matmulPath('f16', precision).kind === 'scalar' && nativeF16()) return matmulAs(a, b, 'f16');
  if (a.dtype === 'f16') return tidy(() => toDType(matmulAs(toDType(a, 'f32'), toDType(b, 'f32'), 'f16'), 'f16'));
  return matmulAs(a, b, 'f32');
}

function matmulAs(a: Tensor, b: Tensor, dtype: 'f32' | 'f16'): Tensor {
  const path = matmulPath(dtype, precision);
  // 1-D operands: promote, multiply, then drop the added dim (as PyTorch).
  const a2 = a.rank === 1 ? unsqueeze(a, 0) : a;
  const b2 = b.rank === 1 ? unsqueeze(b, 1) : b;
  try {
    checkMatmul('matmul', a2, b2, path);
    const aShape = a2.shape.slice(), bShape = b2.shape.slice();
    let out = record('matmul', productOf(a2, b2, path), [a2, b2], (g, [sa, sb], needs) => [
      needs[0] ? productSumTo(g, transpose(sb, -1, -2), aShape) : null,
      needs[1] ? productSumTo(transpose(sa, -1, -2), g, bShape) : null,
    ], [a2, b2]);
    if (a.rank === 1) out = squeezeOwned(out, -2);
    if (b.rank === 1) out = squeezeOwned(out, -1);
    return out;
  } finally {
    if (a2 !== a) a2.dispose();
    if (b2 !== b) b2.dispose();
  }
}

/**
 * x @ y summed over the batch dims that `shape` (an operand's) broadcast, for the backward. An f16 product that must
 * be summed is computed in f32 and rounded once after the sum (summing f16-rounded batch products would round twice).
 */
function productSumTo(x: Tensor, y: Tensor, shape: readonly number[]): Tensor {
  const batch = broadcastShapes('matmul.backward', x.shape.slice(0, -2), y.shape.slice(0, -2));
  const reduces = batch.length !== shape.length - 2 || batch.some((s, i) => s !== shape[i]);
  if (x.dtype === 'f16' && reduces) return tidy(() => toDType(sumTo(matmul(toDType(x, 'f32'), toDType(y, 'f32')), shape, 'matmul.backward'), 'f16'));
  return sumTo(matmul(x, y), shape, 'matmul.backward');
}

/** The launched product in the operands' dtype: f16 operands (read natively) give f32 sums, rounded to f16 once. */
function productOf(a: Tensor, b: Tensor, path: MatmulPath): Tensor {
  const y = launchMatmul('matmul', a, b, 1, path);
  if (a.dtype !== 'f16') return y;
  const h = cast(y, 'f16', 'matmul');
  y.dispose();
  return h;
}

function squeezeOwned(t: Tensor, dim: number): Tensor {
  const s = squeeze(t, dim);
  t.dispose();
  return s;
}

/** x @ w^T + b, with w [out, in] as PyTorch's Linear stores it. */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  x.buf('linear');
  w.buf('linear');
  if (w.rank !== 2) throw new ShapeError(`linear: weight must be [out, in], got ${fmtShape(w.shape)}`);
  if (x.rank === 0 || x.shape[x.rank - 1] !== w.shape[1]) {
    throw new ShapeError(`linear: input ${fmtShape(x.shape)} has ${x.rank ? x.shape[x.rank - 1] : 0} features but weight ${fmtShape(w.shape)} expects ${w.shape[1]}`);
  }
  if (b && (b.buf('linear'), b.rank !== 1 || b.shape[0] !== w.shape[0])) throw new ShapeError(`linear: bias ${fmtShape(b.shape)} must be [${w.shape[0]}]`);
  const ac = autocastRun('linear', [x, w, b], (xc, wc, bc) => linear(xc!, wc!, bc));
  if (ac) return ac;
  if (x.rank > 2) {
    // Fold the leading dims into rows: one [rows, in] @ [in, out] product instead of a batched matmul of many short
    // matrices that fill few tiles, and a weight gradient that is one product over all rows.
    const lead = x.shape.slice(0, -1);
    const x2 = reshape(x, [numel(lead), x.shape[x.rank - 1]]);
    const y2 = linear(x2, w, b);
    x2.dispose();
    const y = reshape(y2, [...lead, w.shape[0]]);
    y2.dispose();
    return y;
  }
  const path = matmulPath('f32', precision);
  if (x.dtype === 'f32' && w.dtype === 'f32' && (!b || b.dtype === 'f32') && path.kind === 'scalar') return linearF32(x, w, b ?? null);
  const wt = transpose(w, 0, 1);
  const y = matmul(x, wt);
  wt.dispose();
  if (!b) return y;
  const out = add(y, b);
  y.dispose();
  return out;
}

/**
 * linear of 2-D f32 x on the scalar kernel as one node (PyTorch's addmm): forward one dispatch, the bias added in the
 * matmul's epilogue; backward dx = g @ w, dw = g^T @ x (read transposed, written [out, in] contiguous, so it lands in
 * an optimizer's gradient slot with a buffer copy) and db = the column sums of g.
 */
function linearF32(x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const wt = w.makeView([w.shape[1], w.shape[0]], [w.strides[1], w.strides[0]], w.offset);
  const path = { kind: 'scalar' } as const;
  try {
    checkMatmul('linear', x, wt, path);
    // The epilogue reads a contiguous bias; a strided one (a view) is added after the product.
    const inEpilogue = !b || b.size <= 1 || b.strides[0] === 1;
    const y = launchMatmul('linear', x, wt, 1, path, inEpilogue ? b : null);
    const inputs = b && inEpilogue ? [x, w, b] : [x, w];
    const out = record('linear', y, inputs, (g, [sx, sw], needs) => [
      needs[0] ? matmul(g, sw) : null,
      needs[1] ? tidy(() => matmul(transpose(g, 0, 1), sx)) : null,
      needs[2] ? sum(g, 0) : null,
    ], [x, w]);
    if (inEpilogue || !b) return out;
    const biased = add(out, b);
    out.dispose();
    return biased;
  } finally {
    wt.dispose();
  }
}

/** Batched matrix product of a [B, n, m] and b [B, m, p] (no broadcasting, as PyTorch's bmm). */
export function bmm(a: Tensor, b: Tensor): Tensor {
  a.buf('bmm');
  b.buf('bmm');
  if (a.rank !== 3 || b.rank !== 3) throw new ShapeError(`bmm: operands must be 3-D, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  if (a.shape[0] !== b.shape[0]) throw new ShapeError(`bmm: batch sizes differ: ${fmtShape(a.shape)} and ${fmtShape(b.shape)} (${a.shape[0]} vs ${b.shape[0]})`);
  return matmul(a, b);
}
