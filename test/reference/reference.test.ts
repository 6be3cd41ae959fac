// Checks the float64 references themselves: hand-computed values (high-precision constants come from mpmath),
// agreement between independently written paths (the loop-based attention vs a composition of ops), and
// analytic attention gradients vs finite differences. If these fail, every GPU test built on them is meaningless.

import { describe, expect, it } from 'vitest';
import {
  type Ref,
  allClose,
  broadcastShapes,
  broadcastTo,
  maxAbsDiff,
  numel,
  permute,
  randArr,
  randn,
  reduceToShape,
  ref,
  rng,
  stridesOf,
  transpose,
} from './core';
import {
  add,
  argmax,
  binaryCrossEntropyWithLogits,
  concat,
  crossEntropy,
  embedding,
  erf,
  erfc,
  eq,
  exp,
  gelu,
  geluScalar,
  gt,
  layerNorm,
  linear,
  logSoftmax,
  logSumExp,
  matmul,
  max,
  maximum,
  mean,
  mseLoss,
  mul,
  pow,
  relu,
  sigmoid,
  softmax,
  sum,
  tanh,
  where,
} from './ops';
import { additiveAttention, sdpa, sdpaBackward, type SdpaOptions } from './attention';
import { checkGrad, numericGrad } from './gradcheck';

function expectClose(actual: ArrayLike<number> | Ref, expected: ArrayLike<number> | Ref, atol = 1e-12, rtol = 1e-12): void {
  const r = allClose(actual, expected, { atol, rtol });
  expect(r.ok, r.message).toBe(true);
}

describe('core', () => {
  it('broadcasts shapes as PyTorch and names the shapes when it cannot', () => {
    expect(broadcastShapes([2, 1, 3], [4, 3])).toEqual([2, 4, 3]);
    expect(broadcastShapes([], [5])).toEqual([5]);
    expect(broadcastShapes([1], [0])).toEqual([0]);
    expect(broadcastShapes([3, 1], [1, 4], [2, 1, 1])).toEqual([2, 3, 4]);
    expect(() => broadcastShapes([2, 3], [3, 2])).toThrow(/\[2,3\].*\[3,2\]/);
  });

  it('broadcastTo and reduceToShape are adjoint', () => {
    const x = ref([1, 2, 3], [3, 1]);
    const b = broadcastTo(x, [2, 3, 4]);
    expect(b.shape).toEqual([2, 3, 4]);
    expect(Array.from(b.data.subarray(0, 8))).toEqual([1, 1, 1, 1, 2, 2, 2, 2]);
    // Summing a broadcast of ones back counts how many times each element was read.
    const ones = ref(new Array(24).fill(1), [2, 3, 4]);
    const r = reduceToShape(ones, [3, 1]);
    expect(r.shape).toEqual([3, 1]);
    expect(Array.from(r.data)).toEqual([8, 8, 8]);
    expect(Array.from(reduceToShape(ones, []).data)).toEqual([24]);
    expect(() => broadcastTo(ref([1, 2], [2]), [3])).toThrow();
  });

  it('permutes and transposes', () => {
    const x = ref([0, 1, 2, 3, 4, 5], [2, 3]);
    const t = transpose(x, 0, 1);
    expect(t.shape).toEqual([3, 2]);
    expect(Array.from(t.data)).toEqual([0, 3, 1, 4, 2, 5]);
    const y = randArr([2, 3, 4], 1);
    const p = permute(y, [2, 0, 1]);
    expect(p.shape).toEqual([4, 2, 3]);
    const ps = stridesOf(p.shape);
    const ys = stridesOf(y.shape);
    for (let a = 0; a < 2; a++)
      for (let b = 0; b < 3; b++)
        for (let c = 0; c < 4; c++) expect(p.data[c * ps[0] + a * ps[1] + b * ps[2]]).toBe(y.data[a * ys[0] + b * ys[1] + c * ys[2]]);
    expect(transpose(y, -1, 0).shape).toEqual([4, 3, 2]);
  });

  it('has a reproducible generator with plausible moments', () => {
    expect(Array.from(randn([5], 42).data)).toEqual(Array.from(randn([5], 42).data));
    expect(Array.from(randn([5], 42).data)).not.toEqual(Array.from(randn([5], 43).data));
    const r = rng(7);
    let s = 0;
    let s2 = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const z = r.normal();
      s += z;
      s2 += z * z;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.05);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.05);
    const u = randArr([1000], 3, 2, 5);
    expect(Math.min(...u.data)).toBeGreaterThanOrEqual(2);
    expect(Math.max(...u.data)).toBeLessThan(5);
  });

  it('allClose reports the worst element', () => {
    const r = allClose([1, 2, 3.5, 4], [1, 2, 3, 4.1], { atol: 0.2, rtol: 0 });
    expect(r.ok).toBe(false);
    expect(r.worstIndex).toBe(2);
    expect(r.worstActual).toBe(3.5);
    expect(r.worstExpected).toBe(3);
    expect(r.message).toMatch(/index 2/);
    expect(allClose([1, Infinity, -Infinity], [1, Infinity, -Infinity], { atol: 0, rtol: 0 }).ok).toBe(true);
    expect(allClose([NaN], [NaN], { atol: 1, rtol: 1 }).ok).toBe(false);
    expect(allClose([NaN], [NaN], { atol: 1, rtol: 1, equalNan: true }).ok).toBe(true);
    expect(allClose([1, 2], [1], { atol: 1, rtol: 1 }).ok).toBe(false);
    expect(maxAbsDiff([1, 2, 3], [1, 2.5, 2])).toBe(1);
    expect(maxAbsDiff([NaN], [0])).toBeNaN();
  });
});

describe('ops: elementwise and special functions', () => {
  it('erf and erfc match high-precision values to 1e-12', () => {
    const cases: [number, number, number][] = [
      // x, erf(x), erfc(x)  (mpmath, 30 digits)
      [0.1, 0.1124629160182848922, 0.8875370839817151078],
      [0.5, 0.52049987781304653768, 0.47950012218695346232],
      [1, 0.84270079294971486934, 0.15729920705028513066],
      [-1, -0.84270079294971486934, 1.8427007929497148693],
      [1.5, 0.96610514647531072707, 0.033894853524689272933],
      [2, 0.99532226501895273416, 0.0046777349810472658379],
      [2.5, 0.99959304798255504106, 0.00040695201744495893956],
      [3, 0.99997790950300141456, 0.000022090496998585441373],
      [4, 0.99999998458274209972, 1.5417257900280018852e-8],
      [-3.5, -0.99999925690162765859, 1.9999992569016276586],
      [6, 0.99999999999999997848, 2.1519736712498913117e-17],
    ];
    for (const [x, e, c] of cases) {
      expect(Math.abs(erf(x) - e), `erf(${x})`).toBeLessThan(1e-12 * Math.max(1, Math.abs(e)));
      // erfc is checked relatively: its point is accuracy where it is tiny.
      expect(Math.abs(erfc(x) - c) / c, `erfc(${x})`).toBeLessThan(1e-12);
    }
    expect(erf(0)).toBe(0);
    expect(erf(Infinity)).toBe(1);
    expect(erf(-Infinity)).toBe(-1);
    expect(erf(NaN)).toBeNaN();
  });

  it('gelu is the exact erf form', () => {
    expect(Math.abs(geluScalar(1) - 0.8413447460685429)).toBeLessThan(1e-15);
    const cases: [number, number][] = [
      [-1, -0.15865525393145705141],
      [3, 2.9959503059051097164],
      [-3, -0.00404969409489028358],
      [0.5, 0.34573123063700655182],
      [-10, -7.619853024160526066e-23], // needs erfc: 1 + erf(-10/sqrt 2) would round to 0
    ];
    for (const [x, g] of cases) expect(Math.abs(geluScalar(x) - g) / Math.abs(g), `gelu(${x})`).toBeLessThan(1e-12);
    expectClose(gelu(ref([0, 1], [2])), [0, 0.8413447460685429], 1e-15, 0);
  });

  it('unary ops are stable and keep NaN where PyTorch does', () => {
    expectClose(sigmoid(ref([0, 1000, -1000, 2], [4])), [0.5, 1, 0, 1 / (1 + Math.exp(-2))], 1e-15, 0);
    expect(Array.from(relu(ref([-1, 0, 2], [3])).data)).toEqual([0, 0, 2]);
    expect(relu(ref([NaN], [1])).data[0]).toBeNaN();
    expectClose(tanh(ref([0.5], [1])), [Math.tanh(0.5)]);
    expectClose(exp(ref([1], [1])), [Math.E]);
  });

  it('binary ops broadcast', () => {
    const a = ref([1, 2, 3], [3, 1]);
    const b = ref([10, 20], [2]);
    const s = add(a, b);
    expect(s.shape).toEqual([3, 2]);
    expect(Array.from(s.data)).toEqual([11, 21, 12, 22, 13, 23]);
    expect(Array.from(mul(a, 2).data)).toEqual([2, 4, 6]);
    expect(Array.from(pow(ref([2, 3], [2]), ref([3], [1])).data)).toEqual([8, 27]);
    expect(maximum(ref([1, NaN], [2]), 0).data[1]).toBeNaN();
    expect(Array.from(gt(ref([1, 2, 3], [3]), 2).data)).toEqual([0, 0, 1]);
    expect(Array.from(eq(ref([1, 2, 3], [3]), ref([1, 0, 3], [3])).data)).toEqual([1, 0, 1]);
    const w = where(ref([1, 0], [2, 1]), ref([1, 2, 3], [3]), -1);
    expect(w.shape).toEqual([2, 3]);
    expect(Array.from(w.data)).toEqual([1, 2, 3, -1, -1, -1]);
    expect(() => add(ref([1, 2], [2]), ref([1, 2, 3], [3]))).toThrow(/\[2\].*\[3\]/);
  });
});

describe('ops: reductions', () => {
  const x = ref([1, 5, 3, 5, 2, 0], [2, 3]);

  it('sum, mean, max over dim lists with keepdim', () => {
    expect(Array.from(sum(x).data)).toEqual([16]);
    expect(sum(x).shape).toEqual([]);
    expect(Array.from(sum(x, 0).data)).toEqual([6, 7, 3]);
    const k = sum(x, [1], true);
    expect(k.shape).toEqual([2, 1]);
    expect(Array.from(k.data)).toEqual([9, 7]);
    expect(Array.from(sum(x, [-1, 0]).data)).toEqual([16]);
    expectClose(mean(x, 1), [3, 7 / 3]);
    expect(Array.from(max(x, 1).data)).toEqual([5, 5]);
    expect(max(x, 0, true).shape).toEqual([1, 3]);
    expect(max(ref([1, NaN, 3], [3])).data[0]).toBeNaN();
    expect(() => sum(x, 2)).toThrow();
  });

  it('argmax returns the first index of the maximum', () => {
    expect(Array.from(argmax(x, 1).data)).toEqual([1, 0]);
    expect(Array.from(argmax(x, 0).data)).toEqual([1, 0, 0]);
    expect(Array.from(argmax(x).data)).toEqual([1]); // flattened
    expect(argmax(x, 1, true).shape).toEqual([2, 1]);
    expect(Array.from(argmax(ref([1, NaN, 7, NaN], [4])).data)).toEqual([1]);
  });
});

describe('ops: matmul', () => {
  it('multiplies a 2x3 by a 3x2', () => {
    const a = ref([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = ref([7, 8, 9, 10, 11, 12], [3, 2]);
    const c = matmul(a, b);
    expect(c.shape).toEqual([2, 2]);
    // [1*7+2*9+3*11, 1*8+2*10+3*12; 4*7+5*9+6*11, 4*8+5*10+6*12]
    expect(Array.from(c.data)).toEqual([58, 64, 139, 154]);
  });

  it('follows torch.matmul for 1-D operands and broadcast batches', () => {
    const v3 = ref([1, 2, 3], [3]);
    expect(matmul(v3, v3).shape).toEqual([]);
    expect(Array.from(matmul(v3, v3).data)).toEqual([14]);
    const m = ref([1, 0, 1, 0, 1, 1], [3, 2]);
    expect(matmul(v3, m).shape).toEqual([2]);
    expect(Array.from(matmul(v3, m).data)).toEqual([6, 3]); // [1+2+3, 3]
    const mt = ref([1, 0, 1, 0, 1, 1], [2, 3]);
    expect(matmul(mt, v3).shape).toEqual([2]);
    expect(Array.from(matmul(mt, v3).data)).toEqual([4, 5]);

    const a = randn([2, 1, 3, 4], 1);
    const b = randn([5, 4, 2], 2);
    const c = matmul(a, b);
    expect(c.shape).toEqual([2, 5, 3, 2]);
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 5; j++)
        for (let m2 = 0; m2 < 3; m2++)
          for (let n = 0; n < 2; n++) {
            let acc = 0;
            for (let k = 0; k < 4; k++) acc += a.data[i * 12 + m2 * 4 + k] * b.data[j * 8 + k * 2 + n];
            expect(c.data[((i * 5 + j) * 3 + m2) * 2 + n]).toBeCloseTo(acc, 12);
          }
    const batchedVec = matmul(randn([2, 3, 4], 3), randn([4], 4));
    expect(batchedVec.shape).toEqual([2, 3]);
    expect(() => matmul(randn([2, 3], 1), randn([4, 2], 1))).toThrow(/inner dimension \(3 vs 4\)/);
  });

  it('linear is x W^T + b', () => {
    const x = ref([1, 2], [1, 2]);
    const w = ref([1, 0, 0, 1, 1, 1], [3, 2]);
    expect(Array.from(linear(x, w, ref([0.5, 0, -1], [3])).data)).toEqual([1.5, 2, 2]);
  });
});

describe('ops: softmax family and layerNorm', () => {
  it('softmax of known rows', () => {
    const s = softmax(ref([1, 2, 3, 0, 0, 0, 1000, 1000, -Infinity], [3, 3]), -1);
    // e^k / (e + e^2 + e^3), k = 1, 2, 3
    expectClose(s.data.subarray(0, 3), [0.090030573170380457998, 0.24472847105479765247, 0.66524095577482188953], 1e-15, 0);
    expectClose(s.data.subarray(3, 6), [1 / 3, 1 / 3, 1 / 3], 1e-15, 0);
    expectClose(s.data.subarray(6, 9), [0.5, 0.5, 0], 1e-15, 0);
    // Over dim 0 of a [2, 2]: columns are normalised.
    expectClose(softmax(ref([0, 1, 0, 1], [2, 2]), 0), [0.5, 0.5, 0.5, 0.5]);
    // torch.softmax of an all -Infinity row is NaN; attention handles that case itself.
    expect(softmax(ref([-Infinity, -Infinity], [2]), 0).data[0]).toBeNaN();
  });

  it('logSoftmax and logSumExp agree with the log of softmax', () => {
    const x = randn([3, 5], 9);
    expectClose(logSoftmax(x, 1), softmax(x, 1).data.map(Math.log), 1e-14, 1e-14);
    const lse = logSumExp(x, 1, true);
    expect(lse.shape).toEqual([3, 1]);
    expectClose(add(logSoftmax(x, 1), lse), x, 1e-14, 1e-14);
    expect(logSumExp(ref([-Infinity, -Infinity], [2]), 0).data[0]).toBe(-Infinity);
  });

  it('layerNorm of a known row', () => {
    // mean 2.5, biased variance 1.25, y = (x - 2.5) / sqrt(1.25 + 1e-5)
    const y = layerNorm(ref([1, 2, 3, 4], [1, 4]), [4]);
    expectClose(y, [-1.3416354199689269826, -0.44721180665630899419, 0.44721180665630899419, 1.3416354199689269826], 1e-15, 0);
    const w = ref([1, 2, 1, 1], [4]);
    const b = ref([0, 0, 0, 10], [4]);
    const yw = layerNorm(ref([1, 2, 3, 4], [4]), 4, w, b, 0);
    expectClose(yw, [-3 / Math.sqrt(5), -2 / Math.sqrt(5), 1 / Math.sqrt(5), 10 + 3 / Math.sqrt(5)], 1e-15, 0);
    // Over two trailing dims the whole [2, 2] block is one group.
    expectClose(layerNorm(ref([1, 2, 3, 4], [2, 2]), [2, 2]), y.data, 1e-15, 0);
    expect(() => layerNorm(ref([1, 2, 3, 4], [2, 2]), [4])).toThrow(/trailing/);
  });
});

describe('ops: indexing and joining', () => {
  it('embedding gathers rows', () => {
    const w = ref([0, 1, 10, 11, 20, 21], [3, 2]);
    const e = embedding(w, ref([2, 0, 2, 1], [2, 2]));
    expect(e.shape).toEqual([2, 2, 2]);
    expect(Array.from(e.data)).toEqual([20, 21, 0, 1, 20, 21, 10, 11]);
    expect(embedding(w, [1]).shape).toEqual([1, 2]);
    expect(() => embedding(w, [3])).toThrow(/out of range/);
  });

  it('concat joins along a dim', () => {
    const a = ref([1, 2, 3, 4], [2, 2]);
    const b = ref([5, 6], [2, 1]);
    const c = concat([a, b], 1);
    expect(c.shape).toEqual([2, 3]);
    expect(Array.from(c.data)).toEqual([1, 2, 5, 3, 4, 6]);
    const d = concat([a, ref([7, 8], [1, 2])], 0);
    expect(Array.from(d.data)).toEqual([1, 2, 3, 4, 7, 8]);
    expect(() => concat([a, b], 0)).toThrow();
  });
});

describe('ops: losses', () => {
  // Rows: log-sum-exp = 3.4076059644443803045, 2.0986122886681096914 (= log 3 + 1), 5.0133859017214489022.
  const logits = ref([1, 2, 3, 1, 1, 1, 0, 0, 5], [3, 3]);
  const targets = [2, -100, 0];

  it('crossEntropy ignores targets and averages over the rest', () => {
    // row 0: lse - 3; row 2: lse - 0; mean over the 2 non-ignored rows.
    const m = crossEntropy(logits, targets);
    expect(m.shape).toEqual([]);
    expect(m.data[0]).toBeCloseTo(2.7104959330829146034, 14);
    const none = crossEntropy(logits, targets, { reduction: 'none' });
    expectClose(none, [3.4076059644443803045 - 3, 0, 5.0133859017214489022], 1e-14, 0);
    // ignoreIndex is a value, not only -100.
    expectClose(crossEntropy(logits, [2, 1, 0], { ignoreIndex: 1, reduction: 'sum' }), [3.4076059644443803045 - 3 + 5.0133859017214489022], 1e-14, 0);
  });

  it('crossEntropy with label smoothing matches PyTorch', () => {
    // loss_n = 0.9 * (lse - x_t) + 0.1/3 * sum_c (lse - x_c)
    // row 0: 0.9 * 0.40760596444438030448 + 0.1 * (lse - 2) = 0.50760596444438030448
    // row 2: 0.9 * 5.0133859017214489022 + 0.1 * (lse - 5/3) = 4.8467192350547822356
    const opts = { labelSmoothing: 0.1 } as const;
    expectClose(crossEntropy(logits, targets, { ...opts, reduction: 'none' }), [0.50760596444438030448, 0, 4.8467192350547822356], 1e-14, 0);
    expectClose(crossEntropy(logits, targets, { ...opts, reduction: 'sum' }), [5.3543251994991625401], 1e-14, 0);
    // 'mean' divides both terms by the 2 non-ignored rows, not by N = 3.
    expectClose(crossEntropy(logits, targets, opts), [2.67716259974958127], 1e-14, 0);
    expect(crossEntropy(logits, [-100, -100, -100]).data[0]).toBeNaN();
    expect(() => crossEntropy(logits, [3, 0, 0])).toThrow(/out of range/);
  });

  it('mseLoss and binaryCrossEntropyWithLogits', () => {
    expectClose(mseLoss(ref([1, 2, 3], [3]), ref([1, 0, 0], [3])), [13 / 3]);
    expectClose(mseLoss(ref([1, 2, 3], [3]), ref([1, 0, 0], [3]), 'sum'), [13]);
    const x = ref([0, 2, -3, 1000, -1000], [5]);
    const y = ref([1, 0, 0.3, 1, 1], [5]);
    const naive = (xv: number, yv: number): number => {
      const s = 1 / (1 + Math.exp(-xv));
      return -(yv * Math.log(s) + (1 - yv) * Math.log(1 - s));
    };
    const l = binaryCrossEntropyWithLogits(x, y, { reduction: 'none' });
    expectClose(l.data.subarray(0, 3), [naive(0, 1), naive(2, 0), naive(-3, 0.3)], 1e-14, 1e-14);
    // Where the naive form overflows to Infinity/NaN the stable one gives the limits: 0 and 1000.
    expectClose(l.data.subarray(3), [0, 1000], 1e-12, 0);
    const pw = binaryCrossEntropyWithLogits(ref([0.5], [1]), ref([1], [1]), { posWeight: 3 });
    expectClose(pw, [3 * Math.log1p(Math.exp(-0.5))], 1e-15, 0);
  });
});

describe('gradcheck', () => {
  it('central differences recover a known gradient', () => {
    const x = Float64Array.from([0.3, -1.2, 2]);
    const y = Float64Array.from([1.5, 0.5, -0.7]);
    const f = ([a, b]: Float64Array[]): number => a.reduce((acc, v, i) => acc + v * v * v * b[i], 0);
    const [gx, gy] = numericGrad(f, [x, y]);
    const r = checkGrad([gx, gy], [x.map((v, i) => 3 * v * v * y[i]), x.map((v) => v ** 3)], { atol: 1e-8, rtol: 1e-8 });
    expect(r.ok, r.message).toBe(true);
    expect(Array.from(x)).toEqual([0.3, -1.2, 2]); // inputs untouched
    const bad = checkGrad([gx], [gx.map((v) => v + 1e-3)], { atol: 1e-6, rtol: 0 });
    expect(bad.ok).toBe(false);
    expect(bad.message).toMatch(/input 0/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------------------------

/** The same attention written as a composition of ops.ts, with GQA done by repeating k/v heads. */
function composedAttention(
  q: Ref,
  k: Ref,
  v: Ref,
  { scale, isCausal = false, boolMask, floatMask, multipliers }: SdpaOptions & { multipliers?: Ref },
): Ref {
  const D = q.shape[q.shape.length - 1];
  const Nq = q.shape[q.shape.length - 2];
  const Nk = k.shape[k.shape.length - 2];
  let s = mul(matmul(q, transpose(k, -1, -2)), scale ?? 1 / Math.sqrt(D));
  if (floatMask) s = add(s, floatMask);
  const allowed: number[] = [];
  for (let i = 0; i < Nq; i++) for (let j = 0; j < Nk; j++) allowed.push(isCausal && j > i ? 0 : 1);
  let keep: Ref = ref(allowed, [Nq, Nk]);
  if (boolMask) keep = mul(keep, boolMask);
  s = where(keep, s, -Infinity);
  let p = softmax(s, -1);
  p = where(eq(p, p), p, 0); // fully masked rows: softmax gives NaN, attention gives 0
  if (multipliers) p = mul(p, multipliers);
  return matmul(p, v);
}

function repeatHeads(x: Ref, g: number): Ref {
  // [B, Hk, N, D] -> [B, Hk*g, N, D] with head h of the result = head floor(h/g) of x (repeat_interleave).
  const [B, Hk, N, D] = x.shape;
  const out = new Float64Array(B * Hk * g * N * D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hk * g; h++)
      out.set(x.data.subarray(((b * Hk + Math.floor(h / g)) * N) * D, ((b * Hk + Math.floor(h / g)) * N + N) * D), ((b * Hk * g + h) * N) * D);
  return { data: out, shape: [B, Hk * g, N, D] };
}

/** sdpaBackward against central differences of sum(out * W) for every input, including the float mask. */
function checkSdpaGradients(q: Ref, k: Ref, v: Ref, opts: SdpaOptions, seed: number): void {
  const fwd = sdpa(q, k, v, opts);
  const W = randn(fwd.out.shape, seed);
  const grads = sdpaBackward(q, k, v, W, opts);
  const inputs = [q.data, k.data, v.data];
  if (opts.floatMask) inputs.push(opts.floatMask.data);
  const f = ([qd, kd, vd, md]: Float64Array[]): number => {
    const o = sdpa({ data: qd, shape: q.shape }, { data: kd, shape: k.shape }, { data: vd, shape: v.shape }, {
      ...opts,
      floatMask: opts.floatMask ? { data: md, shape: opts.floatMask.shape } : undefined,
    }).out;
    let acc = 0;
    for (let i = 0; i < o.data.length; i++) acc += o.data[i] * W.data[i];
    return acc;
  };
  const numeric = numericGrad(f, inputs);
  const analytic: ArrayLike<number>[] = [grads.dq.data, grads.dk.data, grads.dv.data];
  if (opts.floatMask) {
    expect(grads.dFloatMask).not.toBeNull();
    expect(grads.dFloatMask!.shape).toEqual(opts.floatMask.shape);
    analytic.push(grads.dFloatMask!.data);
  } else {
    expect(grads.dFloatMask).toBeNull();
  }
  expect(grads.dq.shape).toEqual(q.shape);
  expect(grads.dk.shape).toEqual(k.shape);
  expect(grads.dv.shape).toEqual(v.shape);
  for (const g of analytic) for (const val of Array.from(g)) expect(Number.isFinite(val)).toBe(true);
  const r = checkGrad(analytic, numeric, { atol: 1e-8, rtol: 1e-6 });
  expect(r.ok, r.message).toBe(true);
}

describe('attention: sdpa forward', () => {
  it('with one key the output is that value', () => {
    const q = randn([2, 3, 5, 4], 1);
    const k = randn([2, 3, 1, 4], 2);
    const v = randn([2, 3, 1, 6], 3);
    const { out, probs, lse } = sdpa(q, k, v);
    expect(out.shape).toEqual([2, 3, 5, 6]);
    for (let bh = 0; bh < 6; bh++)
      for (let i = 0; i < 5; i++) expectClose(out.data.subarray((bh * 5 + i) * 6, (bh * 5 + i + 1) * 6), v.data.subarray(bh * 6, bh * 6 + 6), 1e-15, 0);
    expect(Array.from(probs.data).every((p) => p === 1)).toBe(true);
    // lse of a single key is its own scaled score.
    let dot = 0;
    for (let d = 0; d < 4; d++) dot += q.data[d] * k.data[d];
    expect(lse.data[0]).toBeCloseTo(dot / 2, 14);
  });

  it('causal row 0 equals v[0], also with Nq != Nk (top-left aligned)', () => {
    for (const [Nq, Nk] of [[4, 4], [3, 6], [6, 3]]) {
      const q = randn([2, Nq, 3], 10);
      const k = randn([2, Nk, 3], 11);
      const v = randn([2, Nk, 5], 12);
      const { out, probs } = sdpa(q, k, v, { isCausal: true });
      for (let b = 0; b < 2; b++) expectClose(out.data.subarray(b * Nq * 5, b * Nq * 5 + 5), v.data.subarray(b * Nk * 5, b * Nk * 5 + 5), 1e-15, 0);
      for (let b = 0; b < 2; b++)
        for (let i = 0; i < Nq; i++)
          for (let j = 0; j < Nk; j++) if (j > i) expect(probs.data[(b * Nq + i) * Nk + j]).toBe(0);
      expectClose(out, composedAttention(q, k, v, { isCausal: true }), 1e-13, 1e-13);
    }
  });

  it('a fully masked row gives zeros and lse -Infinity, never NaN', () => {
    const q = randn([1, 2, 3, 4], 20);
    const k = randn([1, 2, 5, 4], 21);
    const v = randn([1, 2, 5, 4], 22);
    const boolMask = ref([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1], [3, 5]); // query row 1 sees nothing
    const floatMask = full2d(3, 5, 0);
    for (let j = 0; j < 5; j++) floatMask.data[2 * 5 + j] = -Infinity; // query row 2 sees nothing
    const { out, lse, probs } = sdpa(q, k, v, { boolMask, floatMask });
    for (let h = 0; h < 2; h++) {
      for (const i of [1, 2]) {
        expect(Array.from(out.data.subarray((h * 3 + i) * 4, (h * 3 + i + 1) * 4))).toEqual([0, 0, 0, 0]);
        expect(lse.data[h * 3 + i]).toBe(-Infinity);
        expect(Array.from(probs.data.subarray((h * 3 + i) * 5, (h * 3 + i + 1) * 5))).toEqual([0, 0, 0, 0, 0]);
      }
      expect(Number.isFinite(lse.data[h * 3])).toBe(true);
    }
    expectClose(out, composedAttention(q, k, v, { boolMask, floatMask }), 1e-13, 1e-13);
    const g = sdpaBackward(q, k, v, randn(out.shape, 23), { boolMask, floatMask });
    for (const t of [g.dq, g.dk, g.dv, g.dFloatMask!]) expect(Array.from(t.data).every(Number.isFinite)).toBe(true);
    // Rows with no key contribute no gradient to their queries or their mask entries.
    for (let h = 0; h < 2; h++) for (const i of [1, 2]) expect(Array.from(g.dq.data.subarray((h * 3 + i) * 4, (h * 3 + i + 1) * 4))).toEqual([0, 0, 0, 0]);
    expect(Array.from(g.dFloatMask!.data.subarray(5, 15)).every((x) => x === 0)).toBe(true);
  });

  it('agrees with a composition of ops for masks, scale, broadcasting and grouped-query heads', () => {
    const q = randn([2, 4, 5, 3], 30);
    const k = randn([2, 2, 7, 3], 31);
    const v = randn([2, 2, 7, 6], 32);
    const floatMask = randn([2, 1, 1, 7], 33);
    const boolMask = ref(Array.from({ length: 35 }, (_, t) => (t % 4 === 3 ? 0 : 1)), [5, 7]);
    const opts = { floatMask, boolMask, scale: 0.7, isCausal: true };
    const got = sdpa(q, k, v, opts);
    expect(got.out.shape).toEqual([2, 4, 5, 6]);
    const want = composedAttention(q, repeatHeads(k, 2), repeatHeads(v, 2), opts);
    expectClose(got.out, want, 1e-13, 1e-13);
    // probs rows sum to 1 (none is fully masked here) and lse is consistent with them.
    for (let r = 0; r < 2 * 4 * 5; r++) {
      let s = 0;
      for (let j = 0; j < 7; j++) s += got.probs.data[r * 7 + j];
      expect(s).toBeCloseTo(1, 13);
    }
    // 3-D inputs with a broadcast batch.
    const q3 = randn([3, 4, 2], 34);
    const k3 = randn([1, 6, 2], 35);
    const v3 = randn([1, 6, 2], 36);
    expectClose(sdpa(q3, k3, v3).out, composedAttention(q3, k3, v3, {}), 1e-13, 1e-13);
  });

  it('applies dropout multipliers to the probabilities', () => {
    const q = randn([2, 3, 4, 2], 40);
    const k = randn([2, 3, 5, 2], 41);
    const v = randn([2, 3, 5, 3], 42);
    const dropoutMask = (b: number, h: number, i: number, j: number): number => ((b * 7 + h * 5 + i * 3 + j) % 3 === 0 ? 0 : 1.5);
    const m = ref(
      Array.from({ length: 2 * 3 * 4 * 5 }, (_, t) => {
        const j = t % 5;
        const i = Math.floor(t / 5) % 4;
        const h = Math.floor(t / 20) % 3;
        const b = Math.floor(t / 60);
        return dropoutMask(b, h, i, j);
      }),
      [2, 3, 4, 5],
    );
    expectClose(sdpa(q, k, v, { dropoutMask }).out, composedAttention(q, k, v, { multipliers: m }), 1e-13, 1e-13);
  });

  it('rejects mismatched shapes with the shapes in the message', () => {
    expect(() => sdpa(randn([2, 4, 3], 1), randn([2, 4, 5], 1), randn([2, 4, 5], 1))).toThrow(/head dimension \(3 vs 5\)/);
    expect(() => sdpa(randn([2, 4, 3], 1), randn([2, 4, 3], 1), randn([2, 5, 3], 1))).toThrow(/number of keys/);
    expect(() => sdpa(randn([1, 3, 4, 2], 1), randn([1, 2, 4, 2], 1), randn([1, 2, 4, 2], 1))).toThrow(/do not broadcast/);
  });
});

function full2d(rows: number, cols: number, value: number): Ref {
  return ref(new Array(rows * cols).fill(value), [rows, cols]);
}

describe('attention: sdpaBackward against finite differences', () => {
  it('plain 4-D with a full float mask', () => {
    checkSdpaGradients(randn([2, 2, 3, 4], 50), randn([2, 2, 5, 4], 51), randn([2, 2, 5, 3], 52), { floatMask: randn([2, 2, 3, 5], 53) }, 54);
  });

  it('grouped-query heads with a broadcast [Nq, Nk] float mask and causal masking', () => {
    checkSdpaGradients(
      randn([1, 4, 5, 3], 60),
      randn([1, 2, 4, 3], 61),
      randn([1, 2, 4, 2], 62),
      { floatMask: randn([5, 4], 63), isCausal: true, scale: 0.9 },
      64,
    );
  });

  it('grouped-query heads with a per-batch key-padding float mask [B, 1, 1, Nk]', () => {
    const floatMask = randn([2, 1, 1, 6], 73);
    floatMask.data[5] = -Infinity; // batch 0 cannot see key 5
    checkSdpaGradients(randn([2, 6, 3, 2], 70), randn([2, 3, 6, 2], 71), randn([2, 3, 6, 4], 72), { floatMask }, 74);
  });

  it('3-D broadcast batch, bool mask with a fully masked row, Nq != Nk', () => {
    const boolMask = ref([1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1], [4, 5]); // row 1 sees nothing
    checkSdpaGradients(
      randn([3, 4, 3], 80),
      randn([1, 5, 3], 81),
      randn([1, 5, 2], 82),
      { boolMask, floatMask: randn([3, 1, 5], 83) },
      84,
    );
  });

  it('with dropout multipliers and no float mask', () => {
    const dropoutMask = (b: number, h: number, i: number, j: number): number => ((b + 2 * h + 3 * i + 5 * j) % 4 === 0 ? 0 : 4 / 3);
    checkSdpaGradients(randn([2, 2, 4, 3], 90), randn([2, 2, 4, 3], 91), randn([2, 2, 4, 3], 92), { dropoutMask }, 93);
  });

  it('reduces dk/dv over query heads and dFloatMask over broadcast dims', () => {
    // With GQA the kv gradient is the sum of what the repeated heads would receive.
    const q = randn([1, 4, 3, 2], 100);
    const k = randn([1, 2, 3, 2], 101);
    const v = randn([1, 2, 3, 2], 102);
    const floatMask = randn([3, 3], 103);
    const dO = randn([1, 4, 3, 2], 104);
    const g = sdpaBackward(q, k, v, dO, { floatMask });
    const full = sdpaBackward(q, repeatHeads(k, 2), repeatHeads(v, 2), dO, { floatMask: broadcastTo(floatMask, [1, 4, 3, 3]) });
    const fold = (x: Ref): number[] => {
      const out = new Array(12).fill(0);
      for (let h = 0; h < 4; h++) for (let t = 0; t < 6; t++) out[Math.floor(h / 2) * 6 + t] += x.data[h * 6 + t];
      return out;
    };
    expectClose(g.dk, fold(full.dk), 1e-14, 1e-13);
    expectClose(g.dv, fold(full.dv), 1e-14, 1e-13);
    expectClose(g.dq, full.dq, 1e-14, 1e-13);
    expectClose(g.dFloatMask!, reduceToShape(full.dFloatMask!, [3, 3]), 1e-14, 1e-13);
  });
});

describe('attention: additive (Bahdanau)', () => {
  it('matches its definition written with ops', () => {
    const A = 4;
    const query = randn([2, 3, 5], 110);
    const keys = randn([2, 6, 7], 111);
    const values = randn([2, 6, 2], 112);
    const wq = randn([A, 5], 113);
    const wk = randn([A, 7], 114);
    const vv = randn([A], 115);
    const { out, weights } = additiveAttention(query, keys, values, { wq, wk, v: vv });
    expect(out.shape).toEqual([2, 3, 2]);
    // [B, Nq, 1, A] + [B, 1, Nk, A] -> tanh -> @ v -> [B, Nq, Nk]
    const qp = linear(query, wq);
    const kp = linear(keys, wk);
    const hidden = tanh(add({ data: qp.data, shape: [2, 3, 1, A] }, { data: kp.data, shape: [2, 1, 6, A] }));
    const scores = matmul(hidden, vv);
    const p = softmax(scores, -1);
    expectClose(weights, p, 1e-14, 1e-13);
    expectClose(out, matmul(p, values), 1e-14, 1e-13);
  });

  it('with one key returns its value and a fully masked row gives zeros', () => {
    const A = 3;
    const params = { wq: randn([A, 2], 1), wk: randn([A, 2], 2), v: randn([A], 3) };
    const values = ref([4, -5, 6], [1, 3]);
    expectClose(additiveAttention(randn([2, 2], 4), randn([1, 2], 5), values, params).out, [4, -5, 6, 4, -5, 6], 1e-15, 0);
    const mask = ref([1, 0, 0, 0], [2, 2]);
    const r = additiveAttention(randn([2, 2], 6), randn([2, 2], 7), ref([1, 2, 3, 4], [2, 2]), { ...params, mask });
    expectClose(r.out, [1, 2, 0, 0], 1e-15, 0);
    expect(Array.from(r.weights.data)).toEqual([1, 0, 0, 0]);
  });
});

it('numel of a 0-d shape is 1 and of an empty one 0', () => {
  expect(numel([])).toBe(1);
  expect(numel([2, 0, 3])).toBe(0);
});
