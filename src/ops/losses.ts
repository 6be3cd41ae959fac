// Losses: cross-entropy (a fused kernel with its own backward), mean squared error and binary cross-entropy with
// logits (stable form), each with PyTorch's reductions.
import { DTypeError, ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { checkDType } from '../tensor/dtype.js';
import { isI32 } from '../tensor/host.js';
import { numel } from '../tensor/shape.js';
import { type CeReduction, crossEntropyBackward, crossEntropyForward } from '../launch/crossentropy.js';
import { record } from '../autograd/node.js';
import { withGradMode } from '../autograd/mode.js';
import type { Tensor } from './tensor.js';
import { permute, reshape } from './views.js';
import { autocastRun } from './autocast.js';
import { abs, add, inF32, addScalar, div, eq, exp, log1p, mul, mulScalar, ne, neg, relu, sigmoid, sub, toDType } from './elementwise.js';
import { mean, sum } from './reduce.js';
import { logSoftmax } from './nn_ops.js';
import { arange } from './creation.js';
import { tidy } from '../tensor/base.js';

export type Reduction = CeReduction;

function checkReduction(fn: string, r: unknown): Reduction {
  if (r === undefined) return 'mean';
  if (r !== 'mean' && r !== 'sum' && r !== 'none') throw new ValueError(`${fn}: reduction must be 'mean', 'sum' or 'none', got ${JSON.stringify(r) ?? String(r)}`);
  return r;
}

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  labelSmoothing?: number;
  reduction?: Reduction;
  /** 'fused' (default): kernels/crossentropy.wgsl; 'reference': logSoftmax and elementwise ops, for comparison. */
  impl?: 'fused' | 'reference';
}

/**
 * Cross-entropy between class logits and i32 class targets, as torch.nn.functional.cross_entropy: logits [N, C] with
 * targets [N], or [N, C, d1, ...] with targets [N, d1, ...]. Ignored targets contribute nothing and are left out of
 * the mean.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options?: CrossEntropyOptions): Tensor {
  const fn = 'crossEntropy';
  const o = checkOptions(fn, options, ['ignoreIndex', 'labelSmoothing', 'reduction', 'impl']);
  logits.buf(fn);
  targets.buf(fn);
  const reduction = checkReduction(fn, o.reduction);
  const ignoreIndex = o.ignoreIndex ?? -100;
  const smoothing = o.labelSmoothing ?? 0;
  if (!isI32(ignoreIndex)) throw new ValueError(`${fn}: ignoreIndex must be an integer in the i32 range, got ${ignoreIndex}`);
  if (typeof smoothing !== 'number' || !(smoothing >= 0 && smoothing <= 1)) throw new ValueError(`${fn}: labelSmoothing must be in [0, 1], got ${smoothing}`);
  checkDType(fn, 'logits', logits.dtype, ['f32', 'f16']);
  if (targets.dtype !== 'i32') throw new DTypeError(`${fn}: targets must be i32 class indices, got ${targets.dtype}`);
  if (logits.rank < 2) throw new ShapeError(`${fn}: logits must be [N, C] or [N, C, ...], got ${fmtShape(logits.shape)}`);
  const expectT = [logits.shape[0], ...logits.shape.slice(2)];
  if (targets.rank !== expectT.length || targets.shape.some((d, i) => d !== expectT[i])) {
    throw new ShapeError(`${fn}: targets ${fmtShape(targets.shape)} do not match logits ${fmtShape(logits.shape)} (expected ${fmtShape(expectT)})`);
  }
  const impl = o.impl ?? 'fused';
  if (impl !== 'fused' && impl !== 'reference') throw new ValueError(`${fn}: impl must be 'fused' or 'reference', got ${JSON.stringify(impl)}`);
  // f16 logits: the loss in f32 (log-softmax and its sums), rounded once to f16 as PyTorch's half loss.
  const ac = autocastRun('crossEntropy', [logits], (l) => crossEntropy(l, targets, options));
  if (ac) return ac;
  if (logits.dtype === 'f16') return inF32('f16', [logits], (l) => crossEntropy(l, targets, options));
  if (impl === 'fused') return crossEntropyFused(logits, targets, { ignoreIndex, smoothing, reduction });
  if (logits.rank === 2) return crossEntropyReference(logits, targets, ignoreIndex, smoothing, reduction);
  // [N, C, d...] -> [N * d..., C] with the class dim last.
  const C = logits.shape[1];
  return tidy(() => {
    const order = [0, ...logits.shape.slice(2).map((_, i) => i + 2), 1];
    const flat = reshape(permute(logits, order), [numel(expectT), C]);
    const out = crossEntropyReference(flat, reshape(targets, [numel(expectT)]), ignoreIndex, smoothing, reduction);
    return reduction === 'none' ? reshape(out, expectT) : out;
  });
}

/** The fused kernels, reading logits [N, C, ...] and targets in place (the class dim stays dim 1). */
function crossEntropyFused(logits: Tensor, targets: Tensor, p: { ignoreIndex: number; smoothing: number; reduction: Reduction }): Tensor {
  const { rowLoss, lse, total } = crossEntropyForward(logits, targets, p);
  let out: Tensor;
  if (total) {
    rowLoss.dispose();
    out = total.makeView([], [], 0);
  } else out = rowLoss;
  // The kernel's gradient is [N, d..., C] (class dim last): a permuted view gives it the logits' layout.
  const order = logits.rank > 2 ? [0, logits.rank - 1, ...logits.shape.slice(2).map((_, i) => i + 1)] : null;
  const res = record('crossEntropy', out, [logits], (g, [sx, st, slse, stotal]) => {
    const dx = crossEntropyBackward(sx, st, slse, stotal ?? null, g, p);
    return [order ? permute(dx, order) : dx];
  }, [logits, targets, lse, ...(total ? [total] : [])]);
  total?.dispose();
  lse.dispose();
  return res;
}

/** The same loss from simpler ops (logSoftmax, a one-hot from eq, sums); autograd derives its backward. */
function crossEntropyReference(logits: Tensor, targets: Tensor, ignoreIndex: number, smoothing: number, reduction: Reduction): Tensor {
  const [N, C] = logits.shape;
  return tidy(() => {
    const logp = logSoftmax(logits, 1);
    const onehot = toDType(eq(reshape(targets, [N, 1]), arange(0, C, 1, { dtype: 'i32' })), 'f32');
    const valid = toDType(ne(targets, ignoreIndex), 'f32');
    let row = mulScalar(sum(mul(onehot, logp), 1), -(1 - smoothing));
    if (smoothing > 0) row = add(row, mulScalar(sum(logp, 1), -smoothing / C));
    const losses = mul(row, valid);
    if (reduction === 'none') return losses;
    return reduction === 'sum' ? sum(losses) : div(sum(losses), sum(valid));
  });
}

function reduce(losses: Tensor, reduction: Reduction): Tensor {
  if (reduction === 'none') return losses;
  const out = reduction === 'sum' ? sum(losses) : mean(losses);
  losses.dispose();
  return out;
}

/** Mean squared error (input - target)^2 with PyTorch's broadcasting and reductions. */
export function mseLoss(input: Tensor, target: Tensor, options?: { reduction?: Reduction } | Reduction): Tensor {
  const fn = 'mseLoss';
  const o = typeof options === 'string' ? { reduction: options } : checkOptions(fn, options, ['reduction']);
  const reduction = checkReduction(fn, o.reduction);
  checkDType(fn, 'input', input.dtype, ['f32', 'f16']);
  checkDType(fn, 'target', target.dtype, ['f32', 'f16']);
  input.buf(fn);
  target.buf(fn);
  const ac = autocastRun('mseLoss', [input, target], (a, b) => mseLoss(a, b, { reduction }));
  if (ac) return ac;
  if (input.dtype === 'f16' || target.dtype === 'f16') {
    return inF32(input.dtype === target.dtype ? 'f16' : 'f32', [input, target], (a, b) => mseLoss(a, b, { reduction }));
  }
  return reduce(tidy(() => {
    const d = sub(input, target);
    return mul(d, d);
  }), reduction);
}

export interface BceWithLogitsOptions {
  reduction?: Reduction;
  /** Per-element weight, broadcast against the loss. */
  weight?: Tensor;
  /** Weight of the positive term, broadcast along the trailing (class) dim. */
  posWeight?: Tensor | number;
}

/**
 * Binary cross-entropy on logits in the stable form
 *   loss = w * ((1 - y) x + lw (log1p(exp(-|x|)) + max(-x, 0))),  lw = 1 + (posWeight - 1) y,
 * with its gradient d/dx = w (lw sigmoid(x) - posWeight y) written directly (no kink at x = 0).
 */
export function binaryCrossEntropyWithLogits(logits: Tensor, targets: Tensor, options?: BceWithLogitsOptions): Tensor {
  const fn = 'binaryCrossEntropyWithLogits';
  const o = checkOptions(fn, options, ['reduction', 'weight', 'posWeight']);
  const reduction = checkReduction(fn, o.reduction);
  checkDType(fn, 'logits', logits.dtype, ['f32', 'f16']);
  checkDType(fn, 'targets', targets.dtype, ['f32', 'f16']);
  if (logits.rank !== targets.rank || logits.shape.some((d, i) => d !== targets.shape[i])) {
    throw new ShapeError(`${fn}: targets ${fmtShape(targets.shape)} must have the shape of logits ${fmtShape(logits.shape)}`);
  }
  const weight = o.weight ?? null;
  if (weight) checkDType(fn, 'weight', weight.buf(fn).dtype, ['f32', 'f16']);
  if (o.posWeight !== undefined && typeof o.posWeight !== 'number') checkDType(fn, 'posWeight', o.posWeight.buf(fn).dtype, ['f32', 'f16']);
  if (typeof o.posWeight === 'number' && !Number.isFinite(o.posWeight)) throw new ValueError(`${fn}: posWeight must be finite, got ${o.posWeight}`);
  logits.buf(fn);
  targets.buf(fn);
  const tensorPw = typeof o.posWeight === 'number' ? undefined : o.posWeight;
  // The same loss on cast operands (autocast's f32, or f32 for f16 operands).
  const again = (x: Tensor | null | undefined, y: Tensor | null | undefined, w: Tensor | null | undefined, pwt: Tensor | null | undefined): Tensor =>
    binaryCrossEntropyWithLogits(x!, y!, { reduction, ...(w ? { weight: w } : {}), ...(o.posWeight !== undefined ? { posWeight: pwt ?? (o.posWeight as number) } : {}) });
  const ac = autocastRun('binaryCrossEntropyWithLogits', [logits, targets, weight, tensorPw], again);
  if (ac) return ac;
  if ([logits, targets, weight, tensorPw].some((t) => t?.dtype === 'f16')) {
    // In f32, rounded once to the promoted dtype (f16 only when every operand is).
    const to = [logits, targets, weight, tensorPw].every((t) => !t || t.dtype === 'f16') ? 'f16' : 'f32';
    return inF32(to, [logits, targets, weight, tensorPw], again);
  }
  const pw = o.posWeight ?? null;
  // lw = 1 + (pw - 1) y
  const lwOf = (y: Tensor): Tensor | null => (pw === null ? null : typeof pw === 'number' ? addScalar(mulScalar(y, pw - 1), 1) : addScalar(mul(addScalar(pw, -1), y), 1));
  const softTerm = (x: Tensor): Tensor => add(log1p(exp(neg(abs(x)))), relu(neg(x)));
  const losses = withGradMode(false, () =>
    tidy(() => {
      const lw = lwOf(targets);
      const inner = lw ? mul(softTerm(logits), lw) : softTerm(logits);
      const l = add(mul(addScalar(neg(targets), 1), logits), inner);
      return weight ? mul(l, weight) : l;
    }),
  );
  const pwT = pw !== null && typeof pw !== 'number' ? pw : null;
  const out = record(fn, losses, [logits, targets], (g, saved, needs) => {
    const [x, y] = saved;
    const w = weight ? saved[2] : null;
    const gw = w ? mul(g, w) : g;
    const lw = pw === null ? null : typeof pw === 'number' ? addScalar(mulScalar(y, pw - 1), 1) : addScalar(mul(addScalar(saved[w ? 3 : 2], -1), y), 1);
    const pwy = pw === null ? y : typeof pw === 'number' ? mulScalar(y, pw) : mul(saved[w ? 3 : 2], y);
    const dx = needs[0] ? mul(sub(lw ? mul(lw, sigmoid(x)) : sigmoid(x), pwy), gw) : null;
    // d/dy = -x w (+ pos-weight term (pw - 1)(log1p(exp(-|x|)) + max(-x, 0)))
    let dyv: Tensor | null = null;
    if (needs[1]) {
      let d = neg(x);
      if (pw !== null) d = add(d, typeof pw === 'number' ? mulScalar(softTerm(x), pw - 1) : mul(softTerm(x), addScalar(saved[w ? 3 : 2], -1)));
      dyv = mul(d, gw);
    }
    return [dx, dyv];
  }, [logits, targets, ...(weight ? [weight] : []), ...(pwT ? [pwT] : [])]);
  return reduce(out, reduction);
}
