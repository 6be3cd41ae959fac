// f16 test helpers: inputs rounded to binary16 (so kiln and the float64 reference see the same numbers), and the
// tolerance every f16 result is held to: one binary16 rounding of the float64 answer (a nearest value: WGSL lets the
// rounding pick either neighbour, so one ulp of the answer rather than half of one), plus the f32 arithmetic's own
// error (atol + rtol * |answer|, the op's f32 tolerance), which may move the f32 value across a rounding boundary.
import { expect } from 'vitest';
import { type Tensor, tensor } from '../../src/index.node';
import { type Ref, numel } from '../reference/core';
import { halfUlp, nearestHalf } from '../reference/half';
import { rnd } from '../helpers';

/** A reference input with values on binary16 (uniform in [lo, hi), rounded). */
export function rndHalf(shape: readonly number[], seed: number, lo = -1, hi = 1): Ref {
  const r = rnd(shape, seed, lo, hi);
  for (let i = 0; i < r.data.length; i++) r.data[i] = nearestHalf(r.data[i]);
  return r;
}

/** A kiln f16 tensor of a reference's values (which are binary16 already). */
export function halfOf(r: Ref, requiresGrad = false): Tensor {
  return tensor(Float32Array.from(r.data), { shape: [...r.shape], dtype: 'f16', requiresGrad });
}

/** Rounds a reference's values to binary16 (what an f16 result of the exact answer is). */
export function roundHalf(r: Ref): Ref {
  return { data: r.data.map(nearestHalf), shape: r.shape };
}

/**
 * Asserts t is f16 of want's shape and every element within one f16 rounding of the float64 answer, plus the f32
 * arithmetic's error (atol + rtol * |want|). NaN where want is NaN; an infinite answer, or one past f16's range
 * (|want| >= 65520, which rounds to infinity), must come back as that infinity.
 */
export async function expectHalfClose(t: Tensor, want: Ref, atol = 0, rtol = 0, label = ''): Promise<void> {
  expect(t.dtype, `${label} dtype`).toBe('f16');
  expect(t.shape, `${label} shape`).toEqual(want.shape);
  const got = await t.toArray();
  expect(got.length).toBe(numel(want.shape));
  let worst = '';
  for (let i = 0; i < got.length; i++) {
    const w = want.data[i];
    const g = got[i];
    if (Number.isNaN(w)) {
      if (!Number.isNaN(g)) worst ||= `[${i}] got ${g}, want NaN`;
      continue;
    }
    const err = atol + rtol * Math.abs(w);
    if (!Number.isFinite(nearestHalf(w)) && Math.abs(w) - err >= 65520) {
      if (g !== nearestHalf(w)) worst ||= `[${i}] got ${g}, want ${nearestHalf(w)} (f16 overflow of ${w})`;
      continue;
    }
    const tol = halfUlp(Math.min(Math.abs(w) + err, 65504)) + err;
    if (!(Math.abs(g - w) <= tol)) worst ||= `[${i}] got ${g}, want ${w} (tolerance ${tol})`;
  }
  expect(worst, `${label} ${worst}`).toBe('');
}
