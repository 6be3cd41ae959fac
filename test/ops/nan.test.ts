// NaN and infinities propagate as in PyTorch through every kernel that compares, takes a max or min, or clamps:
// elementwise relu/clamp/maximum/minimum/comparisons/sign, reductions (max, min, argmax, argmin), softmax and
// log-softmax, layer norm and cross-entropy, forward and backward, with NaN, +inf and -inf in every input position,
// against float64 references written with PyTorch's rules. (WGSL lets a compiler fold float comparisons, min and max
// as if NaN did not exist; lavapipe does, so these tests fail on a kernel that trusts them.)
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { type Ref, allClose, ref } from '../reference/core';
import * as R from '../reference/ops';

const SPECIALS = [NaN, Infinity, -Infinity];
// Finite values that exercise signs, zero and ties; every one exact in f32.
const FINITE = [0, 1, -2.5, 0.5, 3, -1];
const VALUES = [...SPECIALS, ...FINITE];

/** NaN matches NaN, infinities match exactly, finite values within the tolerance. */
function expectSame(got: ArrayLike<number>, want: ArrayLike<number>, label: string, atol = 1e-5, rtol = 1e-5): void {
  expect(got.length, `${label}: length`).toBe(want.length);
  const r = allClose(Array.from(got), Array.from(want), { atol, rtol, equalNan: true });
  if (!r.ok) {
    const bad: string[] = [];
    for (let i = 0; i < got.length && bad.length < 8; i++) {
      const one = allClose([got[i]], [want[i]], { atol, rtol, equalNan: true });
      if (!one.ok) bad.push(`[${i}] got ${got[i]}, want ${want[i]}`);
    }
    expect.fail(`${label}: ${r.message}; ${bad.join('; ')}`);
  }
}

/** C's pow, which PyTorch follows: 1 ** y = x ** 0 = 1 (NaN too), (-1) ** +-inf = 1. JS's ** gives NaN for those. */
function cPow(u: number, v: number): number {
  if (v === 0 || u === 1) return 1;
  if (u === -1 && (v === Infinity || v === -Infinity)) return 1;
  return u ** v;
}

async function values(t: K.Tensor): Promise<number[]> {
  return Array.from(await t.toArray());
}

/**
 * Rows of a [rows, C] input: a clean row of finite values, then for each special value and each column a copy of the
 * clean row with that one entry replaced, then rows that are all NaN, all +inf, all -inf, and NaN together with inf.
 */
function specialRows(C: number, seed: number): Ref {
  const base = Array.from({ length: C }, (_, i) => Math.fround(Math.sin(seed * 7.1 + i * 1.3) * 2));
  const rows: number[][] = [base];
  for (const s of SPECIALS) for (let c = 0; c < C; c++) rows.push(base.map((v, i) => (i === c ? s : v)));
  rows.push(base.map(() => NaN), base.map(() => Infinity), base.map(() => -Infinity));
  rows.push(base.map((v, i) => (i === 0 ? Infinity : i === C - 1 ? NaN : v)));
  return ref(rows.flat(), [rows.length, C]);
}

function fromRef(r: Ref, requiresGrad = false): K.Tensor {
  return K.tensor(Float32Array.from(r.data), { shape: [...r.shape], requiresGrad });
}

/** A fixed finite weight for sum(y * W), so the incoming gradient is W. */
function weights(shape: number[], seed: number): Ref {
  const n = shape.reduce((a, b) => a * b, 1);
  return ref(Array.from({ length: n }, (_, i) => Math.fround(Math.cos(seed + i * 0.7) + 0.25)), shape);
}

/** kiln's gradient of sum(fn(x) * W) with respect to each input. */
async function gradsOf(fn: (...xs: K.Tensor[]) => K.Tensor, inputs: Ref[], W: Ref): Promise<number[][]> {
  const xs = inputs.map((r) => fromRef(r, true));
  const w = fromRef(W);
  const loss = K.tidy(() => K.sum(K.mul(fn(...xs), w)));
  loss.backward();
  const out: number[][] = [];
  for (const x of xs) out.push(await values(x.grad!));
  for (const t of [...xs, w, loss]) t.dispose();
  return out;
}

describe('elementwise NaN and infinities', () => {
  const x = ref(VALUES, [VALUES.length]);
  const unaries: [string, (t: K.Tensor) => K.Tensor, (v: number) => number, ((v: number) => number)?][] = [
    // [name, kiln, forward reference, derivative reference (PyTorch's backward rule)]
    ['relu', K.relu, (v) => (Number.isNaN(v) ? v : v > 0 ? v : 0), (v) => (v <= 0 ? 0 : 1)], // threshold_backward: NaN passes
    ['clamp(-0.5, 0.7)', (t) => K.clamp(t, -0.5, 0.7), (v) => Math.min(Math.max(v, -0.5), Math.fround(0.7)), (v) => (v >= -0.5 && v <= Math.fround(0.7) ? 1 : 0)],
    ['clamp(0)', (t) => K.clamp(t, 0), (v) => Math.max(v, 0), (v) => (v >= 0 ? 1 : 0)],
    ['clamp(-inf, 1)', (t) => K.clamp(t, -Infinity, 1), (v) => Math.min(v, 1), (v) => (v <= 1 ? 1 : 0)],
    ['abs', K.abs, Math.abs, (v) => (Number.isNaN(v) ? 0 : Math.sign(v))], // torch.sign(NaN) is 0
    ['neg', K.neg, (v) => -v, () => -1],
    ['tanh', K.tanh, Math.tanh],
    ['sigmoid', K.sigmoid, (v) => 1 / (1 + Math.exp(-v))],
    ['softplus', K.softplus, (v) => (v > 20 ? v : Math.log1p(Math.exp(v)))],
    ['log1p', K.log1p, Math.log1p],
    ['exp', K.exp, Math.exp],
    ['sqrt', K.sqrt, Math.sqrt],
    ['pow 2', (t) => K.pow(t, 2), (v) => cPow(v, 2)],
    ['pow 3', (t) => K.pow(t, 3), (v) => cPow(v, 3)],
    ['pow 0', (t) => K.pow(t, 0), (v) => cPow(v, 0)],
    ['pow -1', (t) => K.pow(t, -1), (v) => cPow(v, -1)],
    ['pow 1.5', (t) => K.pow(t, 1.5), (v) => cPow(v, 1.5)],
  ];
  for (const [name, kf, fwd, deriv] of unaries) {
    it(`${name}: forward${deriv ? ' and backward' : ''}`, async () => {
      const xt = fromRef(x);
      const y = kf(xt);
      expectSame(await values(y), x.data.map(fwd), name);
      y.dispose();
      xt.dispose();
      if (deriv) {
        const W = weights(x.shape, 3);
        const [g] = await gradsOf(kf, [x], W);
        expectSame(g, x.data.map((v, i) => deriv(v) * W.data[i]), `${name} backward`);
      }
    });
  }

  // Every pair of values, NaN and infinities included, in both operand positions.
  const a = ref(VALUES.flatMap((u) => VALUES.map(() => u)), [VALUES.length * VALUES.length]);
  const b = ref(VALUES.flatMap(() => VALUES), [VALUES.length * VALUES.length]);
  const binaries: [string, (p: K.Tensor, q: K.Tensor) => K.Tensor, (u: number, v: number) => number][] = [
    ['maximum', K.maximum, (u, v) => Math.max(u, v)],
    ['minimum', K.minimum, (u, v) => Math.min(u, v)],
    ['eq', K.eq, (u, v) => +(u === v)],
    ['ne', K.ne, (u, v) => +(u !== v)],
    ['lt', K.lt, (u, v) => +(u < v)],
    ['le', K.le, (u, v) => +(u <= v)],
    ['gt', K.gt, (u, v) => +(u > v)],
    ['ge', K.ge, (u, v) => +(u >= v)],
    ['pow', K.pow, cPow], // C's pow: NaN ** 0 = 1 ** NaN = 1; (-2) ** 3 = -8; (-2) ** 0.5 = NaN
  ];
  for (const [name, kf, fwd] of binaries) {
    it(`${name}: every pair of NaN, +-inf and finite values`, async () => {
      const at = fromRef(a), bt = fromRef(b);
      const y = kf(at, bt);
      const got = await values(y);
      expectSame(got, a.data.map((u, i) => fwd(u, b.data[i])), name);
      // The same operand twice (one buffer, one offset) must not be folded to x == x.
      const self = kf(at, at);
      expectSame(await values(self), a.data.map((u) => fwd(u, u)), `${name}(x, x)`);
      for (const t of [at, bt, y, self]) t.dispose();
    });
  }

  for (const [name, kf, winsA] of [
    ['maximum', K.maximum, (u: number, v: number) => u > v],
    ['minimum', K.minimum, (u: number, v: number) => u < v],
  ] as const) {
    it(`${name} backward: the winner gets the gradient, ties split it, NaN sends it to both (PyTorch)`, async () => {
      const W = weights(a.shape, 5);
      const [ga, gb] = await gradsOf(kf, [a, b], W);
      // PyTorch: grad_a = where(a == b, g / 2, g).masked_fill_(b wins, 0), and the same for b.
      const share = (u: number, v: number) => (u === v ? 0.5 : winsA(v, u) ? 0 : 1);
      expectSame(ga, a.data.map((u, i) => share(u, b.data[i]) * W.data[i]), `${name} grad a`);
      expectSame(gb, b.data.map((v, i) => share(v, a.data[i]) * W.data[i]), `${name} grad b`);
    });
  }

  it('NaN is truthy when cast to bool; logicalNot of it is false', async () => {
    const t = fromRef(x);
    const bools = t.to('bool');
    expect(await values(bools)).toEqual(VALUES.map((v) => (v !== 0 ? 1 : 0)));
    const not = K.logicalNot(bools);
    expect(await values(not)).toEqual(VALUES.map((v) => (v !== 0 ? 0 : 1)));
    for (const u of [t, bools, not]) u.dispose();
  });
});

/** PyTorch's amax/amin over the last dim, and argmax/argmin (first NaN wins; ties to the first index). */
function rowReduce(x: Ref, kind: 'max' | 'min' | 'argmax' | 'argmin'): number[] {
  const [rows, C] = x.shape;
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = x.data[r * C];
    let bi = 0;
    for (let c = 1; c < C && !Number.isNaN(best); c++) {
      const v = x.data[r * C + c];
      const better = Number.isNaN(v) || (kind === 'max' || kind === 'argmax' ? v > best : v < best);
      if (better) {
        best = v;
        bi = c;
      }
    }
    out.push(kind === 'max' || kind === 'min' ? best : bi);
  }
  return out;
}

describe('reductions with NaN and infinities', () => {
  // amax / amin reduce dims; max(x, dim).values (PyTorch's (values, indices) form) must agree with them.
  const red = {
    max: (t: K.Tensor, d: number) => K.amax(t, d),
    min: (t: K.Tensor, d: number) => K.amin(t, d),
    argmax: (t: K.Tensor, d: number) => K.argmax(t, d),
    argmin: (t: K.Tensor, d: number) => K.argmin(t, d),
  };
  // C = 7: one thread per output row; C = 100: a workgroup per row with a tree through workgroup memory.
  for (const C of [7, 100]) {
    const x = specialRows(C, C);
    for (const kind of ['max', 'min', 'argmax', 'argmin'] as const) {
      it(`${kind} over rows of ${C}, with NaN or +-inf at every position`, async () => {
        const t = fromRef(x);
        const y = red[kind](t, 1);
        const got = await values(y);
        expectSame(got, rowReduce(x, kind), `${kind} C=${C}`, 0, 0);
        if (kind === 'max' || kind === 'min') expectSame(await values(K[kind](t, 1).values), rowReduce(x, kind), `${kind}(x, 1).values C=${C}`, 0, 0);
        // Strided: the same reduction over dim 0 of the transpose.
        const tt = K.transpose(t, 0, 1);
        const y0 = red[kind](tt, 0);
        expectSame(await values(y0), rowReduce(x, kind), `${kind} C=${C} over dim 0 of a transpose`, 0, 0);
        for (const u of [t, y, tt, y0]) u.dispose();
      });
    }
  }

  it('max/min of the whole tensor: NaN anywhere wins, argmax is the first NaN', async () => {
    for (const pos of [0, 5, 63, 64, 99, 130]) {
      const data = Array.from({ length: 131 }, (_, i) => Math.fround(Math.sin(i)));
      data[pos] = NaN;
      data[(pos + 7) % 131] = NaN;
      data[(pos + 3) % 131] = Infinity;
      const t = K.tensor(data);
      const first = data.findIndex(Number.isNaN);
      expect(Number.isNaN(await K.max(t).item()), `max with NaN at ${pos}`).toBe(true);
      expect(Number.isNaN(await K.min(t).item()), `min with NaN at ${pos}`).toBe(true);
      expect(await K.argmax(t).item()).toBe(first);
      expect(await K.argmin(t).item()).toBe(first);
      t.dispose();
    }
    // Without NaN: infinities are ordinary extremes.
    const t = K.tensor([1, Infinity, -Infinity, 2, Infinity]);
    expect(await K.max(t).item()).toBe(Infinity);
    expect(await K.min(t).item()).toBe(-Infinity);
    expect(await K.argmax(t).item()).toBe(1);
    expect(await K.argmin(t).item()).toBe(2);
    t.dispose();
  });

  it('a long row (chunked two-pass reduction) keeps a NaN', async () => {
    const n = 65536 * 2;
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = Math.sin(i);
    data[100_003] = NaN;
    const t = K.tensor(data, { shape: [1, n] });
    expect(Number.isNaN((await values(K.max(t, 1).values))[0])).toBe(true);
    expect(Number.isNaN((await values(K.min(t, 1).values))[0])).toBe(true);
    expect((await values(K.max(t, 1).indices))[0]).toBe(100_003);
    expect((await values(K.argmax(t, 1)))[0]).toBe(100_003);
    t.dispose();
  });

  it('max/min backward: over a dim (amax) a NaN row gets NaN gradients; over everything the NaNs share it', async () => {
    const x = specialRows(5, 2);
    const W = weights([x.shape[0]], 7);
    for (const kind of ['max', 'min'] as const) {
      const [g] = await gradsOf((t) => red[kind](t, 1), [x], W);
      const y = rowReduce(x, kind);
      const [rows, C] = x.shape;
      const want: number[] = [];
      for (let r = 0; r < rows; r++) {
        // PyTorch's amax backward: (grad / count) * (x == y); count is 0 when y is NaN, so the row is NaN.
        const hits = Array.from({ length: C }, (_, c) => x.data[r * C + c] === y[r]);
        const count = hits.filter(Boolean).length;
        for (let c = 0; c < C; c++) want.push((W.data[r] / count) * +hits[c]);
      }
      expectSame(g, want, `${kind}(x, 1) backward`);
    }
    const v = ref([1, NaN, 3, NaN, -Infinity], [5]);
    const [g] = await gradsOf((t) => K.max(t), [v], ref([2], []));
    expectSame(g, [0, 1, 0, 1, 0], 'max() backward (evenly among the NaNs, as torch.max)');
  });
});

/** float64 softmax / log-softmax over the last dim; kiln's all -inf row gives zeros / -inf (PyTorch: NaN). */
function softmaxRef(x: Ref, log: boolean): number[] {
  const [rows, C] = x.shape;
  const y = (log ? R.logSoftmax : R.softmax)(x, 1);
  const out = Array.from(y.data);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.data.slice(r * C, (r + 1) * C));
    if (row.every((v) => v === -Infinity)) for (let c = 0; c < C; c++) out[r * C + c] = log ? -Infinity : 0;
  }
  return out;
}

describe('softmax and logSoftmax with NaN and infinities', () => {
  for (const C of [5, 70]) {
    for (const log of [false, true]) {
      const name = log ? 'logSoftmax' : 'softmax';
      it(`${name} over rows of ${C}: a NaN (or +inf) anywhere makes the row NaN; an all -inf row stays finite`, async () => {
        const x = specialRows(C, 3 + C);
        const xt = fromRef(x);
        const y = (log ? K.logSoftmax : K.softmax)(xt, 1);
        const want = softmaxRef(x, log);
        expectSame(await values(y), want, name);
        // Over dim 0 of the transpose (the kernel's strided rows).
        const tt = K.transpose(xt, 0, 1);
        const y0 = (log ? K.logSoftmax : K.softmax)(tt, 0);
        const t0 = K.transpose(y0, 0, 1);
        expectSame(await values(K.contiguous(t0)), want, `${name} over dim 0`);
        for (const u of [xt, y, tt, y0, t0]) u.dispose();
        // Backward: softmax dx = y (g - sum(g y)); log-softmax dx = g - exp(y) sum(g).
        const W = weights(x.shape, 11);
        const [g] = await gradsOf((t) => (log ? K.logSoftmax : K.softmax)(t, 1), [x], W);
        const [rows] = x.shape;
        const wantG: number[] = [];
        for (let r = 0; r < rows; r++) {
          const yr = want.slice(r * C, (r + 1) * C);
          const gr = Array.from(W.data.slice(r * C, (r + 1) * C));
          if (log) {
            const s = gr.reduce((p, q) => p + q, 0);
            for (let c = 0; c < C; c++) wantG.push(gr[c] - (yr[c] === -Infinity ? 0 : Math.exp(yr[c])) * s);
          } else {
            const s = yr.reduce((p, q, c) => p + q * gr[c], 0);
            for (let c = 0; c < C; c++) wantG.push(yr[c] * (gr[c] - s));
          }
        }
        expectSame(g, wantG, `${name} backward`);
      });
    }
  }
});

describe('layerNorm with NaN and infinities', () => {
  it('a NaN or infinity in a row makes the row NaN; in weight or bias, that column', async () => {
    const C = 6;
    const x = specialRows(C, 4);
    const w = ref([1.5, -0.5, 2, 1, 0.25, -1], [C]);
    const b = ref([0.1, 0.2, -0.3, 0, 0.5, -0.25], [C]);
    const xt = fromRef(x), wt = fromRef(w), bt = fromRef(b);
    const y = K.layerNorm(xt, [C], wt, bt);
    expectSame(await values(y), R.layerNorm(x, [C], w, b).data, 'layerNorm', 1e-4, 1e-4);
    y.dispose();
    for (const s of SPECIALS) {
      for (let c = 0; c < C; c++) {
        const w2 = ref(w.data.map((v, i) => (i === c ? s : v)), [C]);
        const b2 = ref(b.data.map((v, i) => (i === c ? s : v)), [C]);
        const clean = ref(x.data.slice(0, C), [1, C]);
        const ct = fromRef(clean), w2t = fromRef(w2), b2t = fromRef(b2);
        const y1 = K.layerNorm(ct, [C], w2t, bt);
        const y2 = K.layerNorm(ct, [C], wt, b2t);
        expectSame(await values(y1), R.layerNorm(clean, [C], w2, b).data, `weight[${c}] = ${s}`, 1e-4, 1e-4);
        expectSame(await values(y2), R.layerNorm(clean, [C], w, b2).data, `bias[${c}] = ${s}`, 1e-4, 1e-4);
        for (const u of [ct, w2t, b2t, y1, y2]) u.dispose();
      }
    }
    for (const u of [xt, wt, bt]) u.dispose();
  });

  it('backward: a NaN row gives NaN dx in that row and NaN weight gradients; the bias gradient stays finite', async () => {
    const C = 4;
    const rows = [[0.5, -1, 2, 0.25], [1, NaN, 0, 2], [3, -2, 1, 0.5], [Infinity, 0, 1, 2]];
    const x = ref(rows.flat(), [4, C]);
    const w = ref([1.5, -0.5, 2, 1], [C]);
    const b = ref([0.1, 0.2, -0.3, 0], [C]);
    const W = weights(x.shape, 13);
    const [gx, gw, gb] = await gradsOf((p, q, r) => K.layerNorm(p, [C], q, r), [x, w, b], W);
    const eps = 1e-5;
    const wantX: number[] = [];
    const wantW = new Array(C).fill(0);
    const wantB = new Array(C).fill(0);
    for (let r = 0; r < 4; r++) {
      const xr = rows[r];
      const mu = xr.reduce((p, q) => p + q, 0) / C;
      const v = xr.reduce((p, q) => p + (q - mu) ** 2, 0) / C;
      const rstd = 1 / Math.sqrt(v + eps);
      const xhat = xr.map((q) => (q - mu) * rstd);
      const gr = Array.from(W.data.slice(r * C, (r + 1) * C));
      const gwr = gr.map((q, c) => q * w.data[c]);
      const m1 = gwr.reduce((p, q) => p + q, 0) / C;
      const m2 = gwr.reduce((p, q, c) => p + q * xhat[c], 0) / C;
      for (let c = 0; c < C; c++) {
        wantX.push(rstd * (gwr[c] - m1 - xhat[c] * m2));
        wantW[c] += gr[c] * xhat[c];
        wantB[c] += gr[c];
      }
    }
    expectSame(gx, wantX, 'layerNorm dx', 1e-4, 1e-4);
    expectSame(gw, wantW, 'layerNorm dweight', 1e-4, 1e-4);
    expectSame(gb, wantB, 'layerNorm dbias', 1e-4, 1e-4);
    expect(gw.every(Number.isNaN)).toBe(true);
    expect(gb.every(Number.isFinite)).toBe(true);
  });
});

describe('crossEntropy with NaN and infinities', () => {
  /** PyTorch's cross_entropy per row (no smoothing): lse - x[t]; its gradient softmax - onehot. */
  function ceRef(x: Ref, t: number[]): { loss: number[]; grad: number[] } {
    const [N, C] = x.shape;
    const lsm = R.logSoftmax(x, 1).data;
    const loss: number[] = [];
    const grad: number[] = [];
    for (let n = 0; n < N; n++) {
      loss.push(-lsm[n * C + t[n]]);
      for (let c = 0; c < C; c++) grad.push(Math.exp(lsm[n * C + c]) - +(c === t[n]));
    }
    return { loss, grad };
  }

  it('a NaN or +inf logit makes its row NaN (loss and gradient); -inf is an ordinary logit', async () => {
    const C = 5;
    const x = specialRows(C, 6);
    const N = x.shape[0];
    const targets = Array.from({ length: N }, (_, n) => (n * 3) % C);
    const tt = K.tensor(new Int32Array(targets), { shape: [N] });
    const want = ceRef(x, targets);
    const xt = fromRef(x, true);
    const l = K.F.crossEntropy(xt, tt, { reduction: 'none' });
    expectSame(await values(l), want.loss, 'crossEntropy none', 1e-5, 1e-5);
    const W = weights([N], 17);
    const Wt = fromRef(W);
    const s = K.sum(K.mul(l, Wt));
    s.backward();
    expectSame(await values(xt.grad!), want.grad.map((g, i) => g * W.data[Math.floor(i / C)]), 'crossEntropy backward', 1e-5, 1e-5);
    // Reduced: any NaN row makes the mean NaN; its gradient scale stays 1 / N.
    const xt2 = fromRef(x, true);
    const m = K.F.crossEntropy(xt2, tt);
    expect(Number.isNaN(await m.item())).toBe(true);
    m.backward();
    expectSame(await values(xt2.grad!), want.grad.map((g) => g / N), 'crossEntropy mean backward', 1e-5, 1e-5);
    for (const u of [tt, xt, l, Wt, s, xt2, m]) u.dispose();
  });

  it('rows without NaN give the finite loss, -inf logits included', async () => {
    const x = ref([0, -Infinity, 1, 2, -Infinity, -Infinity, 0.5, 1, 3], [3, 3]);
    const t = [0, 0, 2];
    const tt = K.tensor(new Int32Array(t), { shape: [3] });
    const xt = fromRef(x);
    const l = K.F.crossEntropy(xt, tt, { reduction: 'none' });
    expectSame(await values(l), ceRef(x, t).loss, 'crossEntropy with -inf logits', 1e-5, 1e-5);
    const sm = K.F.crossEntropy(xt, tt, { reduction: 'none', labelSmoothing: 0.1 });
    expectSame(await values(sm), R.crossEntropy(x, t, { labelSmoothing: 0.1, reduction: 'none' }).data, 'smoothed', 1e-5, 1e-5);
    for (const u of [tt, xt, l, sm]) u.dispose();
  });
});
