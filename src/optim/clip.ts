// Gradient clipping by global norm and by value (kernels/grad_norm.wgsl): two dispatches (norm) or one (value) for the
// gradients of one buffer.
import { DTypeError, ValueError } from '../errors.js';
import { type Storage, type TensorBase, keep, upload } from '../tensor/base.js';
import { Tensor } from '../ops/tensor.js';
import { empty, full } from '../ops/creation.js';
import { contiguousCopy } from '../launch/elementwise.js';
import { cast } from '../launch/cast.js';
import { type GradSegments, gradClampValue, gradNormPartialCount, gradNormScale, gradNormSumSquares } from '../launch/optimizer.js';
import { type Params, paramList } from './optimizer.js';
import { arenaSegmentTable } from './arena.js';

/** Makes g the gradient of p, as backward does (it outlives the tidy scope it was made in). */
function replaceGrad(p: Tensor, g: Tensor): void {
  p.grad?.dispose();
  g.isGradOfOutside = true;
  p.grad = keep(g);
}

/** The gradients of `params`, grouped by the buffer they live in, as grad_norm.wgsl's segment tables describe them. */
export interface GradGroups {
  segments: GradSegments[];
  /** Temporaries to dispose after the dispatches (f32 copies of f16 gradients, segment tables not owned by an arena). */
  temps: Tensor[];
  /** f16 gradients worked on in f32: [parameter, f32 copy], written back rounded once the dispatches are encoded. */
  halves: [Tensor, Tensor][];
}

/** Checks `params`' gradients (before any GPU work); null when none has a gradient. */
export function gradsOf(fn: string, params: Params): Tensor[] {
  const list = paramList(fn, params);
  const withGrad: Tensor[] = [];
  const seen = new Set<TensorBase>();
  for (const [i, p] of list.entries()) {
    if (!(p instanceof Tensor)) throw new ValueError(`${fn}: parameter ${i} is not a Tensor`);
    const g = p.grad;
    if (!g || g.isDisposed || seen.has(g)) continue;
    g.buf(fn);
    if (g.dtype !== 'f32' && g.dtype !== 'f16') throw new DTypeError(`${fn}: gradient of parameter ${i} is ${g.dtype}; gradients are f32 or f16`);
    seen.add(g);
    withGrad.push(p);
  }
  return withGrad;
}

/**
 * Groups the gradients of `withGrad` by buffer (an optimizer's gradient arena is one buffer, with its segment table
 * kept by the arena). A strided gradient is first replaced by a contiguous copy, an f16 one by an f32 copy.
 */
export function groupGrads(fn: string, withGrad: readonly Tensor[]): GradGroups {
  const temps: Tensor[] = [];
  const halves: [Tensor, Tensor][] = [];
  const groups = new Map<Storage, { grads: Tensor; segs: number[]; count: number }>();
  for (const p of withGrad) {
    let g = p.grad!;
    if (g.dtype === 'f16') {
      const f = cast(g, 'f32', fn);
      temps.push(f);
      halves.push([p, f]);
      g = f;
    } else if (!g.isContiguous) {
      replaceGrad(p, contiguousCopy(fn, g));
      g = p.grad!;
    }
    if (g.size === 0) continue;
    const s = g.storage!;
    let grp = groups.get(s);
    if (!grp) groups.set(s, (grp = { grads: g, segs: [], count: 0 }));
    grp.segs.push(g.offset, grp.count);
    grp.count += g.size;
  }
  const segments: GradSegments[] = [...groups.entries()].map(([storage, grp]) => {
    // An optimizer's gradient arena keeps its table, so a training loop uploads it once.
    let table = arenaSegmentTable(storage, grp.segs, fn);
    if (!table) {
      table = empty([grp.segs.length], 'i32', `${fn}.table`);
      temps.push(table);
      upload(table, new Int32Array(grp.segs), fn);
    }
    return { grads: grp.grads, table, numSegments: grp.segs.length / 2, count: grp.count };
  });
  return { segments, temps, halves };
}

/** Writes the f16 gradients back (rounded) and frees the temporaries. */
export function finishGroups(fn: string, g: GradGroups): void {
  for (const [p, f] of g.halves) replaceGrad(p, cast(f, 'f16', fn));
  for (const t of g.temps) t.dispose();
}

/**
 * Scales the gradients of `params` in place so that their joint 2-norm is at most maxNorm, as
 * torch.nn.utils.clip_grad_norm_: every gradient is multiplied by min(maxNorm / (norm + 1e-6), 1), so a NaN or
 * infinite gradient makes the norm NaN or infinite and shows in every gradient. Returns the total norm before clipping
 * as a 0-d tensor, so no readback is forced; `await norm.item()` to read it. Parameters without a gradient are left
 * out. Gradients that share one buffer (an optimizer's gradient arena) take two dispatches in all; otherwise it is two
 * per buffer. A strided gradient is first replaced by a contiguous copy, and an f16 one is clipped in f32 and
 * replaced by the result rounded to f16.
 */
export function clipGradNorm(params: Params, maxNorm: number): Tensor {
  const fn = 'clipGradNorm';
  if (typeof maxNorm !== 'number' || Number.isNaN(maxNorm) || !(maxNorm >= 0)) throw new ValueError(`${fn}: maxNorm must be >= 0, got ${maxNorm}`);
  const withGrad = gradsOf(fn, params);
  if (!withGrad.length) return full([], 0);

  // Every check is done; from here on GPU work is encoded.
  const groups = groupGrads(fn, withGrad);
  const { segments } = groups;
  if (!segments.length) {
    // Only empty gradients: the norm is 0 and nothing is scaled.
    finishGroups(fn, groups);
    return full([], 0);
  }
  const counts = segments.map((s) => gradNormPartialCount(s.count));
  const numPartials = counts.reduce((a, b) => a + b, 0);
  const norm = empty([], 'f32', fn);
  const partials = empty([numPartials], 'f32', `${fn}.partials`);
  groups.temps.push(partials);
  let base = 0;
  segments.forEach((seg, k) => {
    gradNormSumSquares(fn, seg, partials, base);
    base += counts[k];
  });
  for (const seg of segments) gradNormScale(fn, seg, partials, numPartials, maxNorm, norm);
  finishGroups(fn, groups);
  return norm;
}

/**
 * Clamps every gradient of `params` in place to [-clipValue, clipValue], as torch.nn.utils.clip_grad_value_: a NaN
 * stays NaN, infinities become +-clipValue. One dispatch for the gradients of one buffer (an optimizer's gradient
 * arena), else one per buffer; strided and f16 gradients are handled as clipGradNorm does. Parameters without a
 * gradient are left out.
 */
export function clipGradValue(params: Params, clipValue: number): void {
  const fn = 'clipGradValue';
  if (typeof clipValue !== 'number' || Number.isNaN(clipValue) || !(clipValue >= 0)) throw new ValueError(`${fn}: clipValue must be >= 0, got ${clipValue}`);
  const withGrad = gradsOf(fn, params);
  if (!withGrad.length) return;
  const groups = groupGrads(fn, withGrad);
  for (const seg of groups.segments) gradClampValue(fn, seg, clipValue);
  finishGroups(fn, groups);
}
