// Losses: cross-entropy (a fused kernel with its own backward), mean squared error and binary
// cross-entropy with logits (stable form), each with PyTorch's reductions.
import { f16Unsupported } from '../tensor/dtype.js';
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { type Tensor, empty, tensor } from '../tensor/tensor.js';
import { numel } from '../tensor/shape.js';
import { withGradMode } from '../tensor/graph.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { dummy } from './kernel_args.js';
import { record } from './record.js';
import { contiguous, permute, reshape } from './views.js';
import { U, unaryRaw, div, eq, ne, toDType, abs, add, addScalar, exp, log1p, mul, mulScalar, neg, relu, sigmoid, sub, withTmp } from './elementwise.js';
import { mean, sum } from './reduce.js';
import { logSoftmax } from './nn_ops.js';
import { arange } from './creation.js';

export type Reduction = 'mean' | 'sum' | 'none';
const MODE: Record<Reduction, number> = { none: 0, sum: 1, mean: 2 };

function checkReduction(fn: string, r: unknown): Reduction {
  if (r === undefined) return 'mean';
  if (r !== 'mean' && r !== 'sum' && r !== 'none') throw new ValueError(`${fn}: reduction must be 'mean', 'sum' or 'none', got ${JSON.stringify(r)}`);
  return r;
}

/**
 * A fresh contiguous copy at offset 0 whose backward hands on a view of the gradient. (Works around
 * contiguous(), whose backward returns the incoming gradient object itself, which backward() then disposes.)
 */
function freshCopy(x: Tensor): Tensor {
  const out = unaryRaw('crossEntropy.copy', x, U.copy);
  return record('copy', out, [x], (g) => [g.makeView(g.shape.slice(), g.strides.slice(), g.offset)]);
}

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  labelSmoothing?: number;
  reduction?: Reduction;
  /** 'fused' (default): kernels/crossentropy.wgsl; 'reference': logSoftmax and elementwise ops, for comparison. */
  impl?: 'fused' | 'reference';
}

/**
 * Cross-entropy between class logits and i32 class targets, as torch.nn.functional.cross_entropy:
 * logits [N, C] with targets [N], or [N, C, d1, ...] with targets [N, d1, ...]. Ignored targets
 * contribute nothing and are left out of the mean. A target outside [0, C) that is not ignoreIndex
 * gives a NaN loss (the GPU cannot throw).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const fn = 'crossEntropy';
  logits.buf(fn);
  targets.buf(fn);
  const reduction = checkReduction(fn, options.reduction);
  const ignoreIndex = options.ignoreIndex ?? -100;
  const smoothing = options.labelSmoothing ?? 0;
  if (!Number.isInteger(ignoreIndex)) throw new ValueError(`${fn}: ignoreIndex must be an integer, got ${ignoreIndex}`);
  if (typeof smoothing !== 'number' || !(smoothing >= 0 && smoothing <= 1)) throw new ValueError(`${fn}: labelSmoothing must be in [0, 1], got ${smoothing}`);
  if (logits.dtype === 'f16') throw f16Unsupported(fn);
  if (logits.dtype !== 'f32') throw new DTypeError(`${fn}: logits must be f32, got ${logits.dtype}`);
  if (targets.dtype !== 'i32') throw new DTypeError(`${fn}: targets must be i32 class indices, got ${targets.dtype}`);
  if (logits.rank < 2) throw new ShapeError(`${fn}: logits must be [N, C] or [N, C, ...], got ${fmtShape(logits.shape)}`);
  const expectT = [logits.shape[0], ...logits.shape.slice(2)];
  if (targets.rank !== expectT.length || targets.shape.some((d, i) => d !== expectT[i])) {
    throw new ShapeError(`${fn}: targets ${fmtShape(targets.shape)} do not match logits ${fmtShape(logits.shape)} (expected ${fmtShape(expectT)})`);
  }
  const impl = options.impl ?? 'fused';
  if (impl !== 'fused' && impl !== 'reference') throw new ValueError(`${fn}: impl must be 'fused' or 'reference', got ${JSON.stringify(impl)}`);
  const ce2d = impl === 'fused' ? crossEntropy2d : crossEntropyReference;
  if (logits.rank === 2) return ce2d(logits, targets, ignoreIndex, smoothing, reduction);
  // [N, C, d...] -> [N * d..., C] with the class dim last.
  const C = logits.shape[1];
  const order = [0, ...logits.shape.slice(2).map((_, i) => i + 2), 1];
  const moved = permute(logits, order);
  const flat = withTmp(withTmp(moved, freshCopy), (t) => reshape(t, [numel(expectT), C]));
  const tc = targets.isContiguous ? targets : unaryRaw('crossEntropy.copy', targets, U.copy);
  const tflat = reshape(tc, [numel(expectT)]);
  if (tc !== targets) tc.dispose();
  const out = ce2d(flat, tflat, ignoreIndex, smoothing, reduction);
  flat.dispose();
  tflat.dispose();
  return reduction === 'none' ? withTmp(out, (t) => reshape(t, expectT)) : out;
}

function crossEntropy2d(logits: Tensor, targets: Tensor, ignoreIndex: number, smoothing: number, reduction: Reduction): Tensor {
  const [N, C] = logits.shape;
  const x = logits.isContiguous && logits.offset === 0 ? logits : freshCopy(logits);
  const t = targets.isContiguous && targets.offset === 0 ? targets : unaryRaw('crossEntropy.copy', targets, U.copy);
  const rowLoss = empty([N], 'f32');
  const lse = empty([N], 'f32');
  const mode = MODE[reduction];
  const params = { N, C, ignore_index: ignoreIndex, mode, smoothing, pad0: 0, pad1: 0, pad2: 0 };
  if (N > 0 && C > 0) {
    dispatch('crossentropy.wgsl', 'forward', {
      bindings: { logits: x.buf('crossEntropy').buffer, targets: t.buf('crossEntropy').buffer, row_loss: rowLoss.buf('crossEntropy').buffer, lse: lse.buf('crossEntropy').buffer },
      params,
      workgroups: grid1d(N),
      label: 'crossEntropy',
    });
  }
  let out: Tensor;
  let total: Tensor | null = null;
  if (reduction === 'none') out = rowLoss;
  else {
    total = empty([2], 'f32');
    dispatch('crossentropy.wgsl', 'reduce', {
      bindings: { losses_in: rowLoss.buf('crossEntropy').buffer, targets: t.buf('crossEntropy').buffer, total: total.buf('crossEntropy').buffer },
      params,
      workgroups: [1, 1, 1],
      label: 'crossEntropy.reduce',
    });
    rowLoss.dispose();
    out = total.makeView([], [], 0);
  }
  const save = [x, t, lse, ...(total ? [total] : [])];
  const res = record('crossEntropy', out, [x], (g, [sx, st, slse, stotal]) => {
    const gc = g.isContiguous ? g : contiguous(g);
    const dx = empty([N, C], 'f32');
    if (N * C > 0) {
      dispatch('crossentropy.wgsl', 'backward', {
        bindings: {
          logits: sx.buf('crossEntropy').buffer,
          targets: st.buf('crossEntropy').buffer,
          lse_in: slse.buf('crossEntropy').buffer,
          dy: gc.buf('crossEntropy').buffer,
          scale: stotal ? stotal.buf('crossEntropy').buffer : dummy(),
          dx: dx.buf('crossEntropy').buffer,
        },
        params: { ...params, pad0: gc.offset },
        workgroups: grid1d(Math.ceil((N * C) / 256)),
        label: 'crossEntropy.backward',
      });
    }
    if (gc !== g) gc.dispose();
    return [dx];
  }, save);
  if (total) total.dispose();
  lse.dispose();
  if (t !== targets) t.dispose();
  // The recorded op is on x; when x is a contiguous copy, route the gradient through it.
  if (x !== logits) x.dispose();
  return res;
}

/** The same loss from simpler ops (logSoftmax, a one-hot from eq, sums); autograd derives its backward. */
function crossEntropyReference(logits: Tensor, targets: Tensor, ignoreIndex: number, smoothing: number, reduction: Reduction): Tensor {
  const [N, C] = logits.shape;
  const own: Tensor[] = [];
  const t = <T extends Tensor>(x: T): T => (own.push(x), x);
  const logp = t(logSoftmax(logits, 1));
  const classes = t(arange(0, C, 1, { dtype: 'i32' }));
  const tcol = t(reshape(targets, [N, 1]));
  const onehot = t(toDType(t(eq(tcol, classes)), 'f32'));
  const valid = t(toDType(t(ne(targets, ignoreIndex)), 'f32'));
  const picked = t(sum(t(mul(onehot, logp)), 1));
  let row = t(mulScalar(picked, -(1 - smoothing)));
  if (smoothing > 0) row = t(add(row, t(mulScalar(t(sum(logp, 1)), -smoothing / C))));
  const losses = mul(row, valid);
  let out: Tensor;
  if (reduction === 'none') out = losses;
  else {
    const total = t(losses);
    out = reduction === 'sum' ? sum(total) : div(t(sum(total)), t(sum(valid)));
  }
  for (const x of own) x.dispose();
  return out;
}

function reduce(fn: string, losses: Tensor, reduction: Reduction): Tensor {
  if (reduction === 'none') return losses;
  return withTmp(losses, (l) => (reduction === 'sum' ? sum(l) : mean(l)));
}

/** Mean squared error (input - target)^2 with PyTorch's broadcasting and reductions. */
export function mseLoss(input: Tensor, target: Tensor, options: { reduction?: Reduction } | Reduction = {}): Tensor {
  const reduction = checkReduction('mseLoss', typeof options === 'string' ? options : options.reduction);
  if (input.dtype === 'f16' || target.dtype === 'f16') throw f16Unsupported('mseLoss');
  if (input.dtype !== 'f32' || target.dtype !== 'f32') throw new DTypeError(`mseLoss: input and target must be f32, got ${input.dtype} and ${target.dtype}`);
  const d = sub(input, target);
  const sq = mul(d, d);
  d.dispose();
  return reduce('mseLoss', sq, reduction);
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
export function binaryCrossEntropyWithLogits(logits: Tensor, targets: Tensor, options: BceWithLogitsOptions = {}): Tensor {
  const fn = 'binaryCrossEntropyWithLogits';
  const reduction = checkReduction(fn, options.reduction);
  if (logits.dtype === 'f16' || targets.dtype === 'f16') throw f16Unsupported(fn);
  if (logits.dtype !== 'f32' || targets.dtype !== 'f32') throw new DTypeError(`${fn}: logits and targets must be f32, got ${logits.dtype} and ${targets.dtype}`);
  if (logits.rank !== targets.rank || logits.shape.some((d, i) => d !== targets.shape[i])) {
    throw new ShapeError(`${fn}: targets ${fmtShape(targets.shape)} must have the shape of logits ${fmtShape(logits.shape)}`);
  }
  const weight = options.weight ?? null;
  const pwOwned = typeof options.posWeight === 'number' ? tensor([options.posWeight]) : null;
  const pw = pwOwned ?? (options.posWeight as Tensor | undefined) ?? null;
  const losses = withGradMode(false, () => {
    // lw = 1 + (pw - 1) y
    const lw = pw ? withTmp(addScalar(pw, -1), (p1) => withTmp(mul(p1, targets), (t) => addScalar(t, 1))) : null;
    const soft = withTmp(withTmp(withTmp(abs(logits), neg), exp), log1p);
    const negPart = withTmp(neg(logits), relu);
    const inner = withTmp(add(soft, negPart), (s) => (lw ? mul(s, lw) : s.makeView(s.shape, s.strides, s.offset)));
    soft.dispose();
    negPart.dispose();
    const oneMinusY = withTmp(mulScalar(targets, -1), (t) => addScalar(t, 1));
    const first = withTmp(oneMinusY, (o) => mul(o, logits));
    let l = withTmp(inner, (i) => add(first, i));
    first.dispose();
    if (weight) l = withTmp(l, (v) => mul(v, weight));
    if (lw) lw.dispose();
    return l;
  });
  const hasW = weight !== null;
  const out = record(fn, losses, [logits, targets], (g, saved, needs) => {
    const [x, y] = saved;
    const w = hasW ? saved[2] : null;
    const p = pw ? saved[hasW ? 3 : 2] : null;
    const gw = w ? mul(g, w) : g.makeView(g.shape, g.strides, g.offset);
    let dx: Tensor | null = null;
    let dy: Tensor | null = null;
    if (needs[0]) {
      const sig = sigmoid(x);
      let d: Tensor;
      if (p) {
        const lw = withTmp(addScalar(p, -1), (p1) => withTmp(mul(p1, y), (t) => addScalar(t, 1)));
        const a = mul(lw, sig);
        const b = mul(p, y);
        d = sub(a, b);
        for (const t of [lw, a, b]) t.dispose();
      } else d = sub(sig, y);
      sig.dispose();
      dx = withTmp(d, (v) => mul(v, gw));
    }
    if (needs[1]) {
      // d/dy = -x w (+ pos-weight term (pw - 1)(log1p(exp(-|x|)) + max(-x, 0)))
      let d = neg(x);
      if (p) {
        const soft = withTmp(withTmp(withTmp(abs(x), neg), exp), log1p);
        const negPart = withTmp(neg(x), relu);
        const s = withTmp(soft, (t) => add(t, negPart));
        negPart.dispose();
        const term = withTmp(s, (t) => withTmp(addScalar(p, -1), (p1) => mul(t, p1)));
        d = withTmp(d, (v) => add(v, term));
        term.dispose();
      }
      dy = withTmp(d, (v) => mul(v, gw));
    }
    gw.dispose();
    return [dx, dy];
  }, [logits, targets, ...(weight ? [weight] : []), ...(pw ? [pw] : [])]);
  if (pwOwned) pwOwned.dispose();
  return reduce(fn, out, reduction);
}
