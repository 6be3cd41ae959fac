// Finite-difference gradients in float64, the ground truth for every backward rule (CPU reference or GPU).

import { type AllCloseResult, allClose } from './core';

/**
 * d f / d inputs[k][i] by central differences, (f(x + eps) - f(x - eps)) / (2 eps), for every element of every input.
 *
 * Central rather than forward differences: the truncation error is O(eps^2) instead of O(eps), so with eps = 1e-6 in
 * float64 the result is good to ~1e-9 relative for smooth f (rounding contributes ~1e-16 / eps ~ 1e-10 of |f|).
 * `f` receives copies of the inputs with one element perturbed; the caller's arrays are never modified. Keep f
 * smooth near the point: a kink (relu at 0, max with ties) inside [x - eps, x + eps] gives a meaningless number.
 */
export function numericGrad(
  f: (inputs: Float64Array[]) => number,
  inputs: readonly (Float64Array | ArrayLike<number>)[],
  eps = 1e-6,
): Float64Array[] {
  const work = inputs.map((x) => Float64Array.from(x));
  const grads = work.map((x) => new Float64Array(x.length));
  for (let k = 0; k < work.length; k++) {
    const x = work[k];
    for (let i = 0; i < x.length; i++) {
      const saved = x[i];
      // A non-finite element (a -Infinity mask entry) has no neighbourhood to difference over; its gradient stays 0.
      if (!Number.isFinite(saved)) continue;
      x[i] = saved + eps;
      const plus = f(work);
      x[i] = saved - eps;
      const minus = f(work);
      x[i] = saved;
      grads[k][i] = (plus - minus) / (2 * eps);
    }
  }
  return grads;
}

export interface GradCheckResult {
  ok: boolean;
  /** One allClose result per input, in order. */
  perInput: AllCloseResult[];
  message: string;
}

/**
 * Compares analytic gradients with numeric ones input by input (allClose: |a - n| <= atol + rtol |n|).
 * The message names the first failing input and its worst element.
 */
export function checkGrad(
  analytic: readonly ArrayLike<number>[],
  numeric: readonly ArrayLike<number>[],
  { atol, rtol }: { atol: number; rtol: number },
): GradCheckResult {
  if (analytic.length !== numeric.length) {
    return {
      ok: false,
      perInput: [],
      message: `checkGrad: ${analytic.length} analytic gradients but ${numeric.length} numeric ones`,
    };
  }
  const perInput = analytic.map((a, k) => allClose(a, numeric[k], { atol, rtol }));
  const failing = perInput.findIndex((r) => !r.ok);
  const ok = failing < 0;
  const message = ok
    ? `checkGrad: ${analytic.length} gradients agree (atol=${atol}, rtol=${rtol})`
    : `checkGrad: gradient of input ${failing} disagrees with finite differences: ${perInput[failing].message}`;
  return { ok, perInput, message };
}
