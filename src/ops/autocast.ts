// Automatic mixed precision (torch.autocast): inside autocast(fn, { dtype: 'f16' }), ops on PyTorch's lower-precision
// list cast their float inputs to f16 and ops on its f32 list cast them to f32; everything else runs in the dtypes it
// is given (and f16 meeting f32 promotes to f32, as PyTorch's type promotion). Casts of leaf tensors that require
// grad (weights) to f16 are cached for the outermost enabled region, as PyTorch's weight cast cache: a weight used
// ten times is cast once. The casts are on the tape, so gradients reach f32 parameters as f32. Backward rules run
// with autocast off (autograd/backward.ts), in the dtypes their forward chose.
import { ValueError, checkOptions } from '../errors.js';
import { keep, tidy } from '../tensor/base.js';
import { type AutocastRegion, currentAutocast, isGradEnabled, withAutocast } from '../autograd/mode.js';
import type { Tensor } from './tensor.js';
import { cast } from '../launch/cast.js';
import { record } from '../autograd/node.js';

/** x.to(to) between floats, on the tape (the gradient is cast back); elementwise.ts's toDType uses it for floats. */
export function castFloat(x: Tensor, to: 'f16' | 'f32'): Tensor {
  if (x.dtype === to) return record('to', x.makeView(x.shape.slice(), x.strides.slice(), x.offset), [x], (g) => [g]);
  const from = x.dtype as 'f16' | 'f32';
  return record('to', cast(x, to, 'autocast'), [x], (g) => [cast(g, from, 'to.backward')]);
}

/**
 * Whether kiln's matmul takes f16 operands (it does: the matrix-unit path where the adapter has one, the scalar kernel
 * elsewhere, f32 sums). Set it false and autocast runs matmul, linear and bmm in f32 instead.
 */
const F16_MATMUL = true;

/** The ops autocast casts to f16 (PyTorch's lower-precision list, as far as kiln's kernels take f16). */
const LOWER = { matmul: F16_MATMUL, linear: F16_MATMUL, bmm: F16_MATMUL, scaledDotProductAttention: true, attentionWeights: true } as const;
/** The ops autocast runs in f32 (PyTorch's f32 list): reductions, softmax, normalisation, losses, sensitive maps. */
const FLOAT32 = [
  'softmax', 'logSoftmax', 'layerNorm', 'crossEntropy', 'mseLoss', 'binaryCrossEntropyWithLogits', 'sum', 'logsumexp', 'var', 'std',
  'exp', 'log', 'log1p', 'rsqrt', 'pow', 'softplus',
] as const;

export type AutocastOp = keyof typeof LOWER | (typeof FLOAT32)[number];

/** The dtype `op` runs in under autocast, as the lists above say (for docs and tests). */
export function autocastDType(op: AutocastOp): 'f16' | 'f32' {
  return op in LOWER ? (LOWER[op as keyof typeof LOWER] ? 'f16' : 'f32') : 'f32';
}

export interface AutocastOptions {
  /** The lower precision ('f16'; 'float16' and 'half' are accepted). Default 'f16'. */
  dtype?: 'f16' | 'float16' | 'half';
  /** false runs fn with autocast off (also inside an enabled region), as PyTorch's enabled=False. Default true. */
  enabled?: boolean;
}

/** The weight cast cache of the outermost enabled region, and how many enabled regions are open. */
let cache: Map<Tensor, Tensor> | null = null;
let depth = 0;

/** For tests: how many casts the current region's cache holds. */
export function autocastCacheSize(): number {
  return cache?.size ?? 0;
}

/**
 * Runs fn under automatic mixed precision and returns what it returns (synchronously: a fn that returns a Promise is
 * refused, as tidy does, since the region would end before its work). See docs/api.md for the op lists.
 */
export function autocast<T>(fn: () => T, options?: AutocastOptions): T {
  const name = 'autocast';
  if (typeof fn !== 'function') throw new ValueError(`${name}: expects a function, got ${String(fn)}`);
  const o = checkOptions(name, options, ['dtype', 'enabled']);
  const dtype = o.dtype ?? 'f16';
  if (dtype !== 'f16' && dtype !== 'float16' && dtype !== 'half') throw new ValueError(`${name}: dtype must be 'f16' (kiln's only lower precision), got ${JSON.stringify(dtype)}`);
  if (o.enabled !== undefined && typeof o.enabled !== 'boolean') throw new ValueError(`${name}: enabled must be true or false, got ${String(o.enabled)}`);
  const enabled = o.enabled ?? true;
  const region: AutocastRegion | null = enabled ? { dtype: 'f16' } : null;
  if (enabled && depth++ === 0) cache = new Map();
  let out: T;
  try {
    out = withAutocast(region, fn);
  } finally {
    if (enabled && --depth === 0) {
      for (const t of cache!.values()) t.dispose();
      cache = null;
    }
  }
  if (out instanceof Promise) {
    out.catch(() => undefined);
    throw new ValueError(`${name}: fn must be synchronous (it returned a Promise); await outside autocast, or run each synchronous step inside it`);
  }
  return out;
}

function castFor(t: Tensor, to: 'f16' | 'f32'): Tensor {
  // PyTorch caches the lower-precision casts of leaf tensors that require grad (weights), for the region.
  // A cast made with grad off would not carry gradients to later uses, so only grad-mode casts are cached.
  if (to !== 'f16' || !t.isLeaf || !t.requiresGrad || !cache || !isGradEnabled()) return castFloat(t, to);
  let c = cache.get(t);
  if (!c || c.isDisposed) {
    c = keep(castFloat(t, to));
    cache.set(t, c);
  }
  // A view on the tape (same-dtype to()), so each use's gradient reaches the cached cast and through it the weight.
  return castFloat(c, to);
}

/**
 * Under autocast, `run` on `inputs` with their float tensors cast to `op`'s autocast dtype, and the temporaries freed;
 * null when autocast is off or every float input has that dtype already (the op then runs as it is). Ops call it after
 * validating their arguments, so a bad call encodes no cast.
 */
export function autocastRun<T extends readonly (Tensor | null | undefined)[]>(op: AutocastOp, inputs: T, run: (...xs: T) => Tensor): Tensor | null {
  if (!currentAutocast()) return null;
  const to = autocastDType(op);
  const needs = (t: Tensor | null | undefined): t is Tensor => !!t && (t.dtype === 'f16' || t.dtype === 'f32') && t.dtype !== to;
  if (!inputs.some(needs)) return null;
  return tidy(() => run(...(inputs.map((t) => (needs(t) ? castFor(t, to) : t)) as unknown as T)));
}
