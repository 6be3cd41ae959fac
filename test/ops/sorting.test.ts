// sort, argsort, topk and multinomial on the GPU: against a float64 stable sort (NaN largest), short rows (one
// workgroup, several rows per block) and long rows (the multi-pass path), gradients, and sampling statistics.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import { sortAlong } from '../reference/sorting';
import { type Ref, allClose, ref } from '../reference/core';
import { checkGradVsRef, expectThrows, fromRef, poison, rnd } from '../helpers';

async function same(t: K.Tensor, want: Ref, label: string): Promise<void> {
  expect(t.shape, `${label} shape`).toEqual(want.shape);
  const r = allClose(Array.from(await t.toArray()), want.data, { atol: 0, rtol: 0, equalNan: true });
  expect(r.ok, `${label} ${r.message}`).toBe(true);
}

/** Coarse values (ties) with NaN and infinities sprinkled in. */
function messy(shape: number[], seed: number): Ref {
  return R.map(rnd(shape, seed, -3, 3), (v) => {
    const q = Math.round(v * 4) / 4;
    if (Math.abs(v) > 2.9) return NaN;
    if (v > 2.7) return Infinity;
    if (v < -2.7) return -Infinity;
    return q;
  });
}

describe('sort', () => {
  it('along every dim, ascending and descending, stable, NaN largest', async () => {
    for (const [si, shape] of [[1], [7], [3, 5], [2, 13, 3], [5, 1, 31], [4, 300]].entries()) {
      const x = messy(shape, 10 + si);
      const xt = fromRef(x);
      for (let d = -1; d < shape.length; d++) {
        for (const descending of [false, true]) {
          poison([shape]);
          const { values, indices } = K.sort(xt, d, { descending });
          const want = sortAlong(x, d, descending);
          expect(indices.dtype).toBe('i32');
          await same(values, want.values, `values ${shape} dim ${d} desc ${descending}`);
          await same(indices, want.indices, `indices ${shape} dim ${d} desc ${descending}`);
          values.dispose();
          indices.dispose();
        }
      }
      xt.dispose();
    }
  });

  it('long rows take the multi-pass path (1025, 3000, 4097 elements), strided input, i32', async () => {
    for (const [si, shape] of [[2, 1025], [3000], [1, 4097]].entries()) {
      const x = messy(shape, 20 + si);
      const xt = fromRef(x);
      for (const descending of [false, true]) {
        const { values, indices } = xt.sort(-1, { descending });
        const want = sortAlong(x, -1, descending);
        await same(values, want.values, `long values ${shape} ${descending}`);
        await same(indices, want.indices, `long indices ${shape} ${descending}`);
      }
      xt.dispose();
    }
    const x = rnd([6, 9], 30);
    const xt = fromRef(x).transpose(0, 1);
    const xr = R.map(ref(Array.from({ length: 54 }, (_, i) => x.data[(i % 6) * 9 + Math.floor(i / 6)]), [9, 6]), (v) => v);
    await same(K.sort(xt, 0).values, sortAlong(xr, 0, false).values, 'transposed');
    const xi = K.tensor([[3, -1, 2 ** 31 - 1, -(2 ** 31), 0]], { dtype: 'i32' });
    const si = K.sort(xi, 1, { descending: true });
    expect(Array.from(await si.values.toArray())).toEqual([2 ** 31 - 1, 3, 0, -1, -(2 ** 31)]);
    expect(Array.from(await si.indices.toArray())).toEqual([2, 0, 4, 1, 3]);
    expect(Array.from(await K.argsort(xi).toArray())).toEqual([3, 1, 4, 0, 2]);
  });

  it('gradient flows back to where each value came from', async () => {
    await checkGradVsRef((x) => K.sort(x, 1).values, (x) => sortAlong(x, 1, false).values, [rnd([3, 7], 40)]);
    await checkGradVsRef((x) => K.sort(x, 0, { descending: true }).values, (x) => sortAlong(x, 0, true).values, [rnd([5, 2, 3], 41)]);
    // A long row (the multi-pass path) of distinct values 1/512 apart, shuffled, so no finite difference swaps two.
    const L = 1100;
    const perm = Array.from({ length: L }, (_, i) => i);
    for (let i = L - 1; i > 0; i--) {
      const j = (i * 7919 + 13) % (i + 1);
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    const long = ref(perm.map((v) => (v - L / 2) / 512), [1, L]);
    await checkGradVsRef((x) => K.sort(x, -1, { descending: true }).values, (x) => sortAlong(x, -1, true).values, [long], { eps: 1e-4 });
  });
});

describe('topk', () => {
  it('largest and smallest k along dims, short and long rows, NaN largest', async () => {
    for (const [si, shape] of [[7], [3, 5], [2, 13, 3], [2, 2000]].entries()) {
      const x = messy(shape, 50 + si);
      const xt = fromRef(x);
      for (let d = 0; d < shape.length; d++) {
        for (const k of [0, 1, 3, shape[d]].filter((v) => v <= shape[d])) {
          for (const largest of [true, false]) {
            const { values, indices } = K.topk(xt, k, d, { largest });
            const want = sortAlong(x, d, largest, k);
            await same(values, want.values, `topk values ${shape} d ${d} k ${k} ${largest}`);
            await same(indices, want.indices, `topk indices ${shape} d ${d} k ${k} ${largest}`);
          }
        }
      }
      xt.dispose();
    }
    // Long rows with k <= 256 keep per-block candidates (several rounds for 70,000): the same answer as a full sort.
    for (const [si, [shape, k]] of ([[[3, 5000], 256], [[1, 70000], 50], [[2, 1025], 1], [[1, 3000], 257]] as [number[], number][]).entries()) {
      const x = messy(shape, 70 + si);
      const xt = fromRef(x);
      for (const largest of [true, false]) {
        const { values, indices } = K.topk(xt, k, -1, { largest });
        const want = sortAlong(x, -1, largest, k);
        await same(values, want.values, `long topk values ${shape} k ${k} ${largest}`);
        await same(indices, want.indices, `long topk indices ${shape} k ${k} ${largest}`);
      }
      xt.dispose();
    }
    const t = K.tensor([1, NaN, 3, 2]);
    expect(Array.from(await t.topk(2).values.toArray())).toEqual([NaN, 3]);
    expect(Array.from(await t.topk(2).indices.toArray())).toEqual([1, 2]);
    expect(Array.from(await t.topk(2, 0, { largest: false }).indices.toArray())).toEqual([0, 3]);
  });

  it('gradients', async () => {
    await checkGradVsRef((x) => K.topk(x, 3).values, (x) => sortAlong(x, -1, true, 3).values, [rnd([4, 9], 60)]);
    await checkGradVsRef((x) => K.topk(x, 2, 0, { largest: false }).values, (x) => sortAlong(x, 0, false, 2).values, [rnd([5, 3], 61)]);
  });

  it('bad input before any work', () => {
    const x = K.tensor([[1, 2, 3]]);
    const b = K.tensor([true]);
    expectThrows(() => K.topk(x, 4), K.ValueError, 'k 4', 'size 3');
    expectThrows(() => K.topk(x, 1, 2), K.ShapeError, 'topk');
    expectThrows(() => K.topk(x, 1, -1, { largest: 1 } as never), K.ValueError, 'largest');
    expectThrows(() => K.sort(x, 0, { descendng: true } as never), K.ValueError, 'descendng');
    expectThrows(() => K.sort(b), K.DTypeError, 'sort', 'bool');
    x.dispose();
    b.dispose();
  });
});

describe('multinomial', () => {
  const weights = [0.1, 0, 2, 0.4, 1.5, 0, 3];
  const total = weights.reduce((a, b) => a + b, 0);

  it('with replacement: frequencies match the weights, reproducible from the seed, no readback needed', async () => {
    const p = K.tensor([weights, weights.slice().reverse()]);
    const n = 20000;
    const s = K.multinomial(p, n, { replacement: true, seed: 5 });
    expect(s.shape).toEqual([2, n]);
    expect(s.dtype).toBe('i32');
    const a = Array.from(await s.toArray());
    for (let r = 0; r < 2; r++) {
      const w = r === 0 ? weights : weights.slice().reverse();
      const counts = new Array(7).fill(0);
      for (let i = 0; i < n; i++) counts[a[r * n + i]]++;
      for (let c = 0; c < 7; c++) {
        const pc = w[c] / total;
        // 5 standard deviations of a binomial count.
        expect(Math.abs(counts[c] - n * pc), `row ${r} category ${c}`).toBeLessThanOrEqual(5 * Math.sqrt(n * pc * (1 - pc)) + 1e-9);
      }
    }
    const again = K.multinomial(p, n, { replacement: true, seed: 5 });
    expect(Array.from(await again.toArray())).toEqual(a);
    const other = K.multinomial(p, n, { replacement: true, seed: 6 });
    expect(Array.from(await other.toArray())).not.toEqual(a);
  });

  it('without replacement: distinct ids, zero weights last, first draw distributed as the weights', async () => {
    const rows = 4000;
    const p = K.tensor(Array.from({ length: rows }, () => weights));
    const s = K.multinomial(p, 5, { seed: 9 });
    const a = Array.from(await s.toArray());
    const first = new Array(7).fill(0);
    for (let r = 0; r < rows; r++) {
      const row = a.slice(r * 5, r * 5 + 5);
      expect(new Set(row).size).toBe(5);
      expect(row.includes(1) || row.includes(5)).toBe(false);
      first[row[0]]++;
    }
    for (let c = 0; c < 7; c++) {
      const pc = weights[c] / total;
      expect(Math.abs(first[c] - rows * pc), `category ${c}`).toBeLessThanOrEqual(5 * Math.sqrt(rows * pc * (1 - pc)) + 1e-9);
    }
    // All 7 from one row: the five positive ones, then -1 where PyTorch raises (not enough positive weights).
    const all = Array.from(await K.multinomial(K.tensor(weights), 7, { seed: 3 }).toArray());
    expect(new Set(all.slice(0, 5))).toEqual(new Set([0, 2, 3, 4, 6]));
    expect(all.slice(5)).toEqual([-1, -1]);
    const badRows = K.tensor([[1, -1, 1], [0, 0, 0], [NaN, 1, 1], [1, 2, 3]]);
    const nr = Array.from(await K.multinomial(badRows, 2, { seed: 8 }).toArray());
    expect(nr.slice(0, 6)).toEqual([-1, -1, -1, -1, -1, -1]);
    expect(new Set(nr.slice(6)).size).toBe(2);
  });

  it('a long row (vocab-sized) and a strided view, with and without replacement', async () => {
    const C = 5003;
    const w = new Float32Array(C);
    w[17] = 1;
    w[4999] = 3;
    const p = K.tensor(w);
    const a = Array.from(await K.multinomial(p, 400, { replacement: true, seed: 1 }).toArray());
    expect(a.every((v) => v === 17 || v === 4999)).toBe(true);
    expect(a.filter((v) => v === 4999).length).toBeGreaterThan(250);
    const b = Array.from(await p.multinomial(2, { seed: 2 }).toArray());
    expect(b.sort()).toEqual([17, 4999]);
    const m = K.tensor([[0, 5], [1, 0], [0, 2]]).transpose(0, 1); // [2, 3] with strides
    const c = Array.from(await K.multinomial(m, 3, { replacement: true, seed: 4 }).toArray());
    expect(c.slice(0, 3)).toEqual([1, 1, 1]);
    expect(c.slice(3).every((v) => v === 0 || v === 2)).toBe(true);
  });

  it('invalid rows give -1; bad arguments fail before any work', async () => {
    const bad = K.tensor([[1, -1], [0, 0], [NaN, 1], [1, 1]]);
    const s = Array.from(await K.multinomial(bad, 2, { replacement: true, seed: 1 }).toArray());
    expect(s.slice(0, 6)).toEqual([-1, -1, -1, -1, -1, -1]);
    expect(s.slice(6).every((v) => v === 0 || v === 1)).toBe(true);
    const p = K.tensor([1, 2, 3]);
    const pi = K.tensor([1, 2], { dtype: 'i32' });
    expectThrows(() => K.multinomial(p, 4), K.ValueError, '4 samples', '3 categories');
    expectThrows(() => K.multinomial(p, 0), K.ValueError, 'positive');
    expectThrows(() => K.multinomial(pi, 1), K.DTypeError, 'i32');
    expectThrows(() => K.multinomial(p, 1, { replace: true } as never), K.ValueError, 'replace');
    expectThrows(() => K.multinomial(p, 1, { seed: -2 }), K.ValueError, 'seed');
    p.dispose();
    pi.dispose();
    bad.dispose();
  });

  it('live memory returns to its baseline', async () => {
    const before = K.memory().buffers;
    K.tidy(() => {
      const x = K.randn([3, 2000], { seed: 1, requiresGrad: true });
      K.topk(x, 5).values.sum().backward();
      K.multinomial(K.softmax(x, -1), 3);
      K.multinomial(K.softmax(x, -1), 3, { replacement: true });
      x.dispose();
    });
    expect(K.memory().buffers).toBe(before);
  });
});
