// Gradient checking for user code: kiln's backward against central finite differences of kiln's own forward.
//
// Both sides run in f32 on the GPU, so this catches a wrong backward rule, not f32 rounding: the tolerances are f32-sized.
// The loss is sum(fn(...inputs) * W) with W fixed and random, so every output element's gradient matters (a plain sum
// would hide a backward rule that is wrong by a per-row constant, as softmax's would be). The finite differences
// accumulate that dot product on the host in float64, which keeps the f32 error to the forward's own rounding.
import { DTypeError, ValueError, checkOptions } from '../errors.js';
import { tidy } from '../tensor/base.js';
import { normals } from '../tensor/random.js';
import { noGrad } from '../autograd/mode.js';
import { backward } from '../autograd/backward.js';
import type { Tensor } from './tensor.js';
import { tensor } from './creation.js';
import { mul } from './elementwise.js';
import { sum } from './reduce.js';

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-3). */
  eps?: number;
  /** Absolute tolerance of |analytic - numeric| (default 1e-2). */
  atol?: number;
  /** Relative tolerance, times |numeric| (default 1e-2). */
  rtol?: number;
  /** Seed of the random output weights W (default 0). */
  seed?: number;
}

export interface GradcheckInputResult {
  /** Position of the input in the `inputs` array. */
  index: number;
  /** False for inputs that were not checked (not f32, or requiresGrad false while another input has it). */
  checked: boolean;
  ok: boolean;
  /** Largest |analytic - numeric| over the input's elements. */
  maxAbsError: number;
  /** Largest |analytic - numeric| / max(|numeric|, atol). */
  maxRelError: number;
  /** Flat index of the element that misses its tolerance by the most; -1 when none was checked. */
  worstIndex: number;
  analytic: Float64Array | null;
  numeric: Float64Array | null;
}

export interface GradcheckResult {
  ok: boolean;
  inputs: GradcheckInputResult[];
  /** Largest maxAbsError over the checked inputs. */
  maxAbsError: number;
  message: string;
}

/** How many perturbed forwards are read back together. */
const BATCH = 32;

/**
 * Checks the gradients of `fn` at `inputs`. Inputs with requiresGrad are checked (all f32 inputs when none has it);
 * others are passed through as constants. The caller's tensors and their `.grad` are not touched: fn runs on copies.
 * Asynchronous because it reads values back.
 */
export async function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: Tensor[],
  options?: GradcheckOptions,
): Promise<GradcheckResult> {
  if (typeof fn !== 'function') throw new ValueError('gradcheck: fn must be a function');
  if (!Array.isArray(inputs) || inputs.length === 0) throw new ValueError('gradcheck: inputs must be a non-empty array of tensors');
  const { eps = 1e-3, atol = 1e-2, rtol = 1e-2, seed = 0 } = checkOptions('gradcheck', options, ['eps', 'atol', 'rtol', 'seed']);
  if (!(eps > 0) || !(atol >= 0) || !(rtol >= 0)) throw new ValueError(`gradcheck: eps ${eps} must be > 0, atol ${atol} and rtol ${rtol} >= 0`);
  for (const [i, t] of inputs.entries()) t.buf(`gradcheck: input ${i}`);

  const anyRequires = inputs.some((t) => t.requiresGrad);
  // An f16 input that asks for a check (or the only float inputs being f16) is refused; f16 constants pass through.
  const half = inputs.findIndex((t) => t.dtype === 'f16' && (anyRequires ? t.requiresGrad : !inputs.some((u) => u.dtype === 'f32')));
  if (half >= 0) {
    throw new DTypeError(`gradcheck: input ${half} is f16; finite differences need f32 (an f16 step of eps ${eps} moves x by a rounded amount and f16's 11 significant bits swamp the difference), so check fn on x.float() and compare f16 gradients against those`);
  }
  const checked = inputs.map((t) => t.dtype === 'f32' && (anyRequires ? t.requiresGrad : true));
  if (!checked.some(Boolean)) throw new ValueError('gradcheck: no f32 input to check');
  const values = await Promise.all(inputs.map((t, i) => (checked[i] ? t.toArray() : null)));
  const host = values.map((v) => (v ? Float32Array.from(v) : null));

  /** Fresh copies of the inputs (perturbed ones from `override`), for one evaluation of fn. */
  const makeArgs = (override: Map<number, Float32Array>, requiresGrad: boolean): Tensor[] =>
    inputs.map((t, i) => {
      if (!checked[i]) return t;
      return tensor(override.get(i) ?? host[i]!, { shape: t.shape.slice(), requiresGrad });
    });
  const disposeArgs = (args: Tensor[]): void => args.forEach((a, i) => checked[i] && a.dispose());

  // Analytic: backward of sum(y * W).
  const args = makeArgs(new Map(), true);
  let outShape: number[] = [];
  let W: Float32Array = new Float32Array(0);
  const analytic: (Float64Array | null)[] = inputs.map(() => null);
  try {
    const loss = tidy(() => {
      const y = fn(...args);
      if (!y || typeof y !== 'object' || !('shape' in y)) throw new ValueError('gradcheck: fn must return a Tensor');
      if (y.dtype !== 'f32') throw new ValueError(`gradcheck: fn must return an f32 tensor, got ${y.dtype}`);
      if (!y.requiresGrad) throw new ValueError('gradcheck: fn\'s output does not depend on any checked input');
      outShape = y.shape.slice();
      W = normals(y.size, seed, 7);
      const w = tensor(W, { shape: outShape });
      return sum(mul(y, w));
    });
    backward(loss);
    loss.dispose();
    for (let i = 0; i < inputs.length; i++) {
      if (!checked[i]) continue;
      const g = args[i].grad;
      analytic[i] = g ? Float64Array.from(await g.toArray()) : new Float64Array(inputs[i].size);
    }
  } finally {
    disposeArgs(args);
  }

  const evaluate = async (overrides: Map<number, Float32Array>[]): Promise<number[]> => {
    const ys = noGrad(() =>
      overrides.map((o) => {
        const a = makeArgs(o, false);
        try {
          const y = tidy(() => fn(...a));
          return y;
        } finally {
          disposeArgs(a);
        }
      }),
    );
    try {
      const outs = await Promise.all(ys.map((y) => y.toArray()));
      return outs.map((o) => {
        let acc = 0;
        for (let k = 0; k < o.length; k++) acc += o[k] * W[k];
        return acc;
      });
    } finally {
      ys.forEach((y) => y.dispose());
    }
  };

  const results: GradcheckInputResult[] = [];
  for (let i = 0; i < inputs.length; i++) {
    if (!checked[i]) {
      results.push({ index: i, checked: false, ok: true, maxAbsError: 0, maxRelError: 0, worstIndex: -1, analytic: null, numeric: null });
      continue;
    }
    const base = host[i]!;
    const numeric = new Float64Array(base.length);
    for (let start = 0; start < base.length; start += BATCH) {
      const end = Math.min(base.length, start + BATCH);
      const overrides: Map<number, Float32Array>[] = [];
      const steps: number[] = [];
      for (let j = start; j < end; j++) {
        const plus = Float32Array.from(base);
        const minus = Float32Array.from(base);
        plus[j] = base[j] + eps;
        minus[j] = base[j] - eps;
        // The step actually taken, after f32 rounding of x +- eps.
        steps.push(plus[j] - minus[j]);
        overrides.push(new Map([[i, plus]]), new Map([[i, minus]]));
      }
      const f = await evaluate(overrides);
      for (let j = start; j < end; j++) {
        const k = j - start;
        numeric[j] = (f[2 * k] - f[2 * k + 1]) / steps[k];
      }
    }
    const a = analytic[i]!;
    let maxAbs = 0;
    let maxRel = 0;
    let worst = -1;
    let worstExcess = -Infinity;
    let ok = true;
    for (let j = 0; j < a.length; j++) {
      const diff = Math.abs(a[j] - numeric[j]);
      const bad = !(diff <= atol + rtol * Math.abs(numeric[j])); // NaN fails
      if (bad) ok = false;
      const d = Number.isNaN(diff) ? Infinity : diff;
      if (d > maxAbs) maxAbs = d;
      const rel = d / Math.max(Math.abs(numeric[j]), atol || Number.MIN_VALUE);
      if (rel > maxRel) maxRel = rel;
      const excess = d - (atol + rtol * Math.abs(numeric[j]));
      if (excess > worstExcess) {
        worstExcess = excess;
        worst = j;
      }
    }
    results.push({ index: i, checked: true, ok, maxAbsError: maxAbs, maxRelError: maxRel, worstIndex: worst, analytic: a, numeric });
  }
  const failing = results.find((r) => !r.ok);
  const maxAbsError = Math.max(0, ...results.map((r) => r.maxAbsError));
  const message = failing
    ? `gradcheck: gradient of input ${failing.index} [${inputs[failing.index].shape.join(',')}] disagrees with finite differences: ` +
      `worst at element ${failing.worstIndex}: analytic ${failing.analytic![failing.worstIndex]}, numeric ${failing.numeric![failing.worstIndex]} ` +
      `(max |diff| ${failing.maxAbsError}, atol ${atol}, rtol ${rtol}, eps ${eps})`
    : `gradcheck: ${results.filter((r) => r.checked).length} input(s) agree (max |diff| ${maxAbsError}, atol ${atol}, rtol ${rtol}, eps ${eps})`;
  return { ok: !failing, inputs: results, maxAbsError, message };
}
