// F.flexAttention against the float64 reference (bench/lib/attention_reference.mjs with scoreMod / maskMod): forward,
// dq, dk, dv and the gradients of captured tensors, for the built-in mods and hand-written ones, with GQA, Nq != Nk,
// Dv != D, fully masked rows and NaN inputs; a block-masked run equals the unmasked one; bad mods fail before any work.
import { describe, expect, it } from 'vitest';
import { F, type Tensor, memory, tidy, tensor, ValueError, createBlockMask, attentionMods, attentionMods as M, nn, KVCache, KilnError } from '../../src/index.node';
import { type Expr, where } from '../../src/ops/expr';
import { type Ref, allClose } from '../reference/core';
import { type SdpaOptions, sdpa, sdpaBackward } from '../reference/attention';
import { fromRef, rnd } from '../helpers';
import { flexSource } from '../../src/attention/flex';
import { pipelineCount } from '../../src/gpu/kernels';
import { gpu } from '../../src/gpu/device';
import { setFlag } from '../../src/experimental';

type KilnOpts = NonNullable<Parameters<typeof F.flexAttention>[3]>;

interface FlexCase {
  q: Ref;
  k: Ref;
  v: Ref;
  kiln: (captures: Tensor[]) => KilnOpts;
  ref: SdpaOptions;
  /** Captured tensors (created with requiresGrad where `grads` gives their float64 gradient accumulator). */
  captures?: { ref: Ref; dtype?: 'f32' | 'i32'; grad?: (acc: Float64Array) => SdpaOptions['onScoreGrad'] }[];
  atol?: number;
  gradAtol?: number;
}

async function expectFlex(c: FlexCase): Promise<void> {
  const before = memory().buffers;
  const want = sdpa(c.q, c.k, c.v, c.ref);
  const dOr = rnd(want.out.shape, 4);
  const capAcc = (c.captures ?? []).map((cap) => new Float64Array(cap.ref.data.length));
  const hooks = (c.captures ?? []).map((cap, n) => cap.grad?.(capAcc[n])).filter((h) => h !== undefined);
  const wantG = sdpaBackward(c.q, c.k, c.v, dOr, {
    ...c.ref,
    onScoreGrad: hooks.length ? (b, h, i, j, ds, s) => { for (const f of hooks) f!(b, h, i, j, ds, s); } : undefined,
  });
  const q = fromRef(c.q, { requiresGrad: true }), k = fromRef(c.k, { requiresGrad: true }), v = fromRef(c.v, { requiresGrad: true });
  const caps = (c.captures ?? []).map((cap) => (cap.dtype === 'i32'
    ? tensor(Int32Array.from(cap.ref.data), { shape: [...cap.ref.shape], dtype: 'i32' })
    : fromRef(cap.ref, { requiresGrad: !!cap.grad })));
  const out = F.flexAttention(q, k, v, c.kiln(caps));
  const r = allClose(Array.from(await out.toArray()), want.out.data, { atol: c.atol ?? 2e-5, rtol: 1e-5, equalNan: true });
  expect(r.ok, `forward: ${r.message}`).toBe(true);
  const dO = fromRef(dOr);
  const loss = tidy(() => out.mul(dO).sum());
  loss.backward();
  for (const [name, t, w] of [['dq', q, wantG.dq], ['dk', k, wantG.dk], ['dv', v, wantG.dv]] as const) {
    const rr = allClose(Array.from(await t.grad!.toArray()), w.data, { atol: c.gradAtol ?? 1e-4, rtol: 1e-4, equalNan: true });
    expect(rr.ok, `${name}: ${rr.message}`).toBe(true);
  }
  for (let n = 0; n < caps.length; n++) {
    if (!c.captures![n].grad) continue;
    const rr = allClose(Array.from(await caps[n].grad!.toArray()), capAcc[n], { atol: c.gradAtol ?? 1e-4, rtol: 1e-4 });
    expect(rr.ok, `capture ${n} grad: ${rr.message}`).toBe(true);
  }
  for (const t of [q, k, v, out, dO, loss, ...caps]) t.dispose();
  expect(memory().buffers, 'leaked buffers').toBe(before);
}

const shape = (B: number, H: number, N: number, D: number) => [B, H, N, D];

// Each distinct mod compiles its own forward and backward pipelines: minutes on a loaded software adapter.
describe('flexAttention', { timeout: 600_000 }, () => {
  // On lavapipe the forward runs the rows kernel by default (kernels/attention_forward_rows.wgsl); these cases also run
  // with the tiled forward forced, so both compile and evaluate the mods.
  const bothForwardKernels = (name: string, body: () => Promise<void>) => {
    it(name, body);
    it(`${name} (forward kernel 'tiled')`, async () => {
      setFlag('attention.forwardKernel', 'tiled');
      try {
        await body();
      } finally {
        setFlag('attention.forwardKernel', undefined);
      }
    });
  };

  it('with no mods equals scaledDotProductAttention (forward and gradients)', async () => {
    const q = rnd(shape(1, 2, 37, 16), 1), k = rnd(shape(1, 2, 29, 16), 2), v = rnd(shape(1, 2, 29, 8), 3);
    await expectFlex({ q, k, v, kiln: () => ({}), ref: {} });
    const qt = fromRef(q), kt = fromRef(k), vt = fromRef(v);
    const a = await F.flexAttention(qt, kt, vt).toArray();
    const b = await F.scaledDotProductAttention(qt, kt, vt).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    for (const t of [qt, kt, vt]) t.dispose();
  });

  bothForwardKernels('soft-capping (tanh) with a causal maskMod, GQA, Nq != Nk, Dv != D', async () => {
    const cap = 2.5;
    await expectFlex({
      q: rnd(shape(2, 4, 45, 12), 5, -2, 2), k: rnd(shape(2, 2, 61, 12), 6, -2, 2), v: rnd(shape(2, 2, 61, 20), 7),
      kiln: () => ({
        scoreMod: (s: Expr) => s.div(cap).tanh().mul(cap),
        maskMod: (_b: Expr, _h: Expr, i: Expr, j: Expr) => j.le(i.add(16)),
      }),
      ref: {
        scoreMod: (s) => Math.tanh(s / cap) * cap,
        scoreModGrad: (s) => 1 - Math.tanh(s / cap) ** 2,
        maskMod: (_b, _h, i, j) => j <= i + 16,
      },
    });
  });

  it('hand-written mods: a polynomial of the score and indices, where, pow, maximum, abs, sigmoid, exp, log', async () => {
    const sm = (s: Expr, b: Expr, h: Expr, i: Expr, j: Expr) =>
      where(i.sub(j).abs().lt(5), s.mul(1.5).add(h.mul(0.25)), s.sub(i.sub(j).abs().add(1).log().mul(0.3)))
        .add(s.sigmoid().mul(0.2)).add(b.mul(0.1)).maximum(s.sub(2)).add(s.mul(0.1).pow(2)).add(s.neg().exp().mul(0.05));
    const ref = (s: number, b: number, h: number, i: number, j: number) => {
      const base = Math.abs(i - j) < 5 ? s * 1.5 + h * 0.25 : s - Math.log(Math.abs(i - j) + 1) * 0.3;
      return Math.max(base + 0.2 / (1 + Math.exp(-s)) + b * 0.1, s - 2) + (s * 0.1) ** 2 + Math.exp(-s) * 0.05;
    };
    const grad = (s: number, b: number, h: number, i: number, j: number) => {
      const e = 1e-6;
      return (ref(s + e, b, h, i, j) - ref(s - e, b, h, i, j)) / (2 * e);
    };
    await expectFlex({
      q: rnd(shape(2, 3, 33, 8), 11), k: rnd(shape(2, 3, 33, 8), 12), v: rnd(shape(2, 3, 33, 8), 13),
      kiln: () => ({ scoreMod: sm }),
      ref: { scoreMod: ref, scoreModGrad: grad },
      gradAtol: 2e-4,
    });
  });

  it('ALiBi over captured per-head slopes, whose gradient the backward accumulates', async () => {
    const H = 4;
    const slopes = { data: Float64Array.from({ length: H }, (_, h) => Math.fround(2 ** (-(h + 1)))), shape: [H] };
    await expectFlex({
      q: rnd(shape(1, H, 40, 16), 21), k: rnd(shape(1, H, 40, 16), 22), v: rnd(shape(1, H, 40, 16), 23),
      captures: [{ ref: slopes, grad: (acc) => (_b, h, i, j, ds) => { acc[h] += ds * (j - i); } }],
      kiln: ([sl]) => ({ scoreMod: (s, _b, h, i, j) => s.add(sl.at(h).mul(j.sub(i))) }),
      ref: { scoreMod: (s, _b, h, i, j) => s + slopes.data[h] * (j - i), scoreModGrad: () => 1 },
    });
  });

  it('a learned relative-position table (T5-style, clamped buckets) and a per-key context bias, with gradients', async () => {
    const H = 2, N = 37, R = 9;
    const table = rnd([H, 2 * R + 1], 31);
    const ctx = rnd([2, N], 32);
    const bucket = (i: number, j: number) => Math.max(-R, Math.min(R, j - i)) + R;
    await expectFlex({
      q: rnd(shape(2, H, N, 8), 33), k: rnd(shape(2, H, N, 8), 34), v: rnd(shape(2, H, N, 8), 35),
      captures: [
        { ref: table, grad: (acc) => (_b, h, i, j, ds) => { acc[h * (2 * R + 1) + bucket(i, j)] += ds; } },
        { ref: ctx, grad: (acc) => (b, _h, _i, j, ds) => { acc[b * N + j] += ds; } },
      ],
      kiln: ([tb, cx]) => ({
        scoreMod: (s, b, h, i, j) => s.add(tb.at(h, j.sub(i).clamp(-R, R).add(R))).add(cx.at(b, j)),
      }),
      ref: { scoreMod: (s, b, h, i, j) => s + table.data[h * (2 * R + 1) + bucket(i, j)] + ctx.data[b * N + j], scoreModGrad: () => 1 },
    });
  });

  it('slidingWindow with a query offset (the queries are the last 20 of 50 positions), GQA, Dv != D', async () => {
    const W = 12, Nq = 20, Nk = 50, off = Nk - Nq;
    await expectFlex({
      q: rnd(shape(2, 4, Nq, 12), 81, -2, 2), k: rnd(shape(2, 2, Nk, 12), 82, -2, 2), v: rnd(shape(2, 2, Nk, 20), 83),
      kiln: () => ({ maskMod: M.slidingWindow(W), queryOffset: off }),
      // qIdx is the absolute position i + off.
      ref: { maskMod: (_b, _h, i, j) => i + off - j >= 0 && i + off - j < W },
    });
  });

  it('prefixLM: every query sees the prefix, causally after it (Nq != Nk)', async () => {
    const P = 7;
    await expectFlex({
      q: rnd(shape(1, 3, 29, 8), 91), k: rnd(shape(1, 3, 33, 8), 92), v: rnd(shape(1, 3, 33, 8), 93),
      kiln: () => ({ maskMod: M.prefixLM(P) }),
      ref: { maskMod: (_b, _h, i, j) => j <= i || j < P },
    });
  });

  it('the built-ins (softCap, alibi, relativeBias chained; causal with an offset, slidingWindow, documentMask, prefixLM combined) with gradients', async () => {
    const H = 2, Nq = 24, Nk = 30, R = 4, off = Nk - Nq;
    const slopes = { data: Float64Array.from([0.5, 0.25]), shape: [H] };
    const table = rnd([H, 2 * R + 1], 71);
    const doc = Array.from({ length: Nk }, (_, j) => (j < 17 ? 0 : 1));
    const bucket = (i: number, j: number) => Math.max(-R, Math.min(R, j - i)) + R;
    const capRef = (s: number) => 3 * Math.tanh(s / 3);
    // mask: (causal(off) and slidingWindow(6, off)) or prefixLM(3), and documentMask (query i at position i + off)
    const maskRef = (i: number, j: number) => ((j <= i + off && i + off - j < 6) || (j <= i || j < 3)) && doc[Math.min(i + off, Nk - 1)] === doc[j];
    await expectFlex({
      q: rnd(shape(1, H, Nq, 8), 72, -2, 2), k: rnd(shape(1, H, Nk, 8), 73, -2, 2), v: rnd(shape(1, H, Nk, 8), 74),
      captures: [
        { ref: slopes, grad: (acc) => (_b, h, i, j, ds) => { acc[h] += ds * (j - i); } },
        { ref: table, grad: (acc) => (_b, h, i, j, ds) => { acc[h * (2 * R + 1) + bucket(i, j)] += ds; } },
        { ref: { data: Float64Array.from(doc), shape: [Nk] }, dtype: 'i32' },
      ],
      kiln: ([sl, tb, dc]) => ({
        scoreMod: M.chain(M.softCap(3), M.alibi(sl), M.relativeBias(tb, R)),
        maskMod: M.and(
          M.or(M.and(M.causal(off), M.slidingWindow(6, off)), M.prefixLM(3)),
          (_b, _h, i, j) => dc.at(i.add(off).minimum(Nk - 1)).eq(dc.at(j)),
        ),
      }),
      ref: {
        scoreMod: (s, _b, h, i, j) => capRef(s) + slopes.data[h] * (j - i) + table.data[h * (2 * R + 1) + bucket(i, j)],
        scoreModGrad: (s) => 1 - Math.tanh(s / 3) ** 2,
        maskMod: (_b, _h, i, j) => maskRef(i, j),
      },
    });
  });

  it('document masking over a captured i32 tensor, with fully masked rows (zeros, zero gradients)', async () => {
    const N = 30;
    const doc = Array.from({ length: N }, (_, i) => (i < 10 ? 0 : i < 22 ? 1 : 2));
    await expectFlex({
      q: rnd(shape(1, 2, N, 8), 41), k: rnd(shape(1, 2, N, 8), 42), v: rnd(shape(1, 2, N, 8), 43),
      captures: [{ ref: { data: Float64Array.from(doc), shape: [N] }, dtype: 'i32' }],
      // Query rows 25.. see nothing (an empty row).
      kiln: ([d]) => ({ maskMod: (_b, _h, i, j) => d.at(i).eq(d.at(j)).logicalAnd(i.lt(25)) }),
      ref: { maskMod: (_b, _h, i, j) => doc[i] === doc[j] && i < 25 },
    });
  });

  bothForwardKernels('NaN inputs propagate through a mod; only the mask makes a score inadmissible', async () => {
    const q = rnd(shape(1, 1, 20, 8), 51), k = rnd(shape(1, 1, 20, 8), 52), v = rnd(shape(1, 1, 20, 8), 53);
    (q.data as Float64Array)[3 * 8 + 2] = NaN;
    (k.data as Float64Array)[15 * 8 + 1] = NaN;
    await expectFlex({
      q, k, v,
      kiln: () => ({ scoreMod: (s) => s.tanh().mul(3), maskMod: (_b, _h, i, j) => j.le(i) }),
      ref: { scoreMod: (s) => Math.tanh(s) * 3, scoreModGrad: (s) => 3 * (1 - Math.tanh(s) ** 2), maskMod: (_b, _h, i, j) => j <= i },
    });
  });

  bothForwardKernels('a block-masked run equals the unmasked run with the same maskMod (forward and gradients)', async () => {
    const N = 300;
    const window = (_b: Expr, _h: Expr, i: Expr, j: Expr) => i.sub(j).abs().le(40);
    const qr = rnd(shape(1, 2, N, 16), 61), kr = rnd(shape(1, 2, N, 16), 62), vr = rnd(shape(1, 2, N, 16), 63);
    const run = async (useBlocks: boolean) => {
      const q = fromRef(qr, { requiresGrad: true }), k = fromRef(kr, { requiresGrad: true }), v = fromRef(vr, { requiresGrad: true });
      const bm = useBlocks ? createBlockMask(window, null, null, N, N, { blockSize: 64 }) : null;
      const out = F.flexAttention(q, k, v, { maskMod: window, ...(bm ? { blockMask: bm } : {}), scoreMod: (s) => s.mul(0.5) });
      tidy(() => out.sum()).backward();
      const res = [await out.toArray(), await q.grad!.toArray(), await k.grad!.toArray(), await v.grad!.toArray()].map((a) => Array.from(a));
      const stats = bm ? await bm.stats() : null;
      for (const t of [q, k, v, out]) t.dispose();
      bm?.dispose();
      return { res, stats };
    };
    const a = await run(false), b = await run(true);
    expect(b.stats!.visited).toBeLessThan(b.stats!.total);
    for (let n = 0; n < 4; n++) {
      const r = allClose(b.res[n], a.res[n], { atol: 1e-6, rtol: 1e-5 });
      expect(r.ok, `output ${n}: ${r.message}`).toBe(true);
    }
  });

  it('a computed out-of-range read raises an IndexError naming the read, and never reads past the tensor', async () => {
    const q = fromRef(rnd(shape(1, 1, 8, 4), 1));
    const tab = fromRef(rnd([5], 2));
    const out = F.flexAttention(q, q, q, { scoreMod: (s, _b, _h, _i, j) => s.add(tab.at(j)) });
    await expect(out.toArray()).rejects.toThrow(/scoreMod reads capture0\.at\(kvIdx\).*index \d+ at position \[0, 0\] is out of range for 5/);
    for (const t of [q, tab, out]) t.dispose();
  });

  it('kernels are keyed by the expressions\' structure: other constants or captured tensors share them', () => {
    const t1 = fromRef(rnd([4, 9], 1)), t2 = fromRef(rnd([2, 5], 2)), t3 = tensor(new Int32Array(3), { dtype: 'i32' });
    const mod = (t: Tensor, c: number) => (s: Expr, _b: Expr, h: Expr, i: Expr, j: Expr) => s.mul(c).add(t.at(h, j.sub(i).clamp(0, c)));
    const a = flexSource(mod(t1, 3), null), b = flexSource(mod(t2, 7), null);
    expect(a.key).toBe(b.key);
    expect(a.mods).not.toMatch(/\b7\b|\b3\.0/);
    // Another structure (an i32 capture, another op) is another key.
    expect(flexSource((s, _b, _h, i) => s.add(t3.at(i)), null).key).not.toBe(a.key);
    expect(flexSource((s) => s.mul(3).exp(), null).key).not.toBe(flexSource((s) => s.mul(3).log(), null).key);
    for (const t of [t1, t2, t3]) t.dispose();
  });

  it('a training loop compiles a mod structure once: forward, delta, dK/dV and dQ pipelines, then none', async () => {
    const H = 2, N = 16, R = 3;
    const q = fromRef(rnd(shape(1, H, N, 8), 101), { requiresGrad: true });
    const table = fromRef(rnd([H, 2 * R + 1], 102), { requiresGrad: true });
    const step = (mod: (t: Tensor, c: number) => KilnOpts['scoreMod'], c: number) => {
      const out = F.flexAttention(q, q, q, { scoreMod: mod(table, c) });
      tidy(() => out.sum()).backward();
      out.dispose();
      for (const t of [q, table]) { t.grad?.dispose(); t.grad = null; }
    };
    // A new closure each step, as a training loop that rebuilds its mods; other constants, same structure.
    const warm = (t: Tensor, c: number) => (s: Expr, _b: Expr, h: Expr, i: Expr, j: Expr) => s.mul(c).add(t.at(h, j.sub(i).clamp(-R, R).add(R)));
    const mod = (t: Tensor, c: number) => (s: Expr, _b: Expr, h: Expr, i: Expr, j: Expr) => s.sub(t.at(h, j.sub(i).clamp(-R, R).add(R)).mul(c));
    step(warm, 1); // compiles what every structure shares (the delta pass, the captured-gradient reduction, the loss)
    const before = pipelineCount();
    step(mod, 0.5);
    expect(pipelineCount() - before).toBe(4);
    const after = pipelineCount();
    for (const c of [0.25, 2, 3]) step(mod, c);
    expect(pipelineCount()).toBe(after);
    for (const t of [q, table]) t.dispose();
  });

  it('bad mods fail before any GPU work, naming the mod and the expression', () => {
    const q = fromRef(rnd(shape(1, 1, 8, 4), 1));
    const tab = fromRef(rnd([3], 2));
    const cases: [KilnOpts, RegExp][] = [
      [{ scoreMod: (s) => s.gt(0) as unknown as Expr }, /scoreMod must return the new score.*bool/],
      [{ maskMod: (_b, _h, i) => i.add(1) as unknown as Expr }, /maskMod must return a bool Expr/],
      [{ scoreMod: () => undefined as unknown as Expr }, /forget to return/],
      [{ scoreMod: (s) => s.add(tab.at(5)) }, /index 5 of dim 0 is out of range for size 3/],
      [{ scoreMod: (s, _b, _h, i) => s.add(tab.at(i.mul(0.5))) }, /index 0 is f32/],
      [{ scoreMod: (s) => s.logicalAnd(s.gt(0)) }, /logicalAnd.*bool operands/],
      [{ scoreMod: (s) => s.add('x' as unknown as number) }, /operand must be an Expr or a number/],
    ];
    // Unsupported operations, JS operators and Math on an Expr: ValueErrors naming the mod, the operation and the
    // expression (not JavaScript's TypeError).
    const loose = (s: Expr) => s as unknown as Record<string, (...a: unknown[]) => Expr>;
    cases.push(
      [{ scoreMod: (s) => loose(s.div(2).tanh()).softmax(-1) }, /flexAttention: scoreMod: tanh\(\(score \/ c0\)\)\.softmax\(\.\.\.\): 'softmax' is not an Expr operation; a mod may use add sub .* where\(cond, a, b\) and t\.at/],
      [{ maskMod: (_b, _h, i, j) => loose(i).greater(j) }, /flexAttention: maskMod: qIdx\.greater\(\.\.\.\): 'greater' is not an Expr operation/],
      [{ scoreMod: (s) => (s as unknown as number) * 2 as unknown as Expr }, /scoreMod: a JavaScript operator or Math function was applied to score; mods trace Expr methods/],
      [{ scoreMod: (s) => Math.tanh(s as unknown as number) as unknown as Expr }, /scoreMod: a JavaScript operator or Math function was applied to score/],
      [{ maskMod: (_b, _h, i, j) => ((i as unknown as number) < (j as unknown as number)) as unknown as Expr }, /maskMod: a JavaScript operator .* applied to qIdx/],
      [{ scoreMod: (s, _b, _h, i) => s.add(tab.at(i, 0)) }, /capture.*has 1 dims, so \.at\(\) takes 1 indices, got 2/],
      [{ scoreMod: (s) => s, queryOffset: -1 }, /queryOffset must be a non-negative integer/],
    );
    const before = memory();
    for (const [opts, re] of cases) {
      expect(() => F.flexAttention(q, q, q, opts)).toThrow(ValueError);
      expect(() => F.flexAttention(q, q, q, opts)).toThrow(re);
    }
    // createBlockMask validates its maskMod the same way.
    expect(() => createBlockMask((_b, _h, i) => loose(i).foo(), 1, 1, 8, 8)).toThrow(/createBlockMask: maskMod: qIdx\.foo\(\.\.\.\): 'foo' is not an Expr operation/);
    expect(() => createBlockMask((_b, _h, i) => i.add(1) as unknown as Expr, 1, 1, 8, 8)).toThrow(/createBlockMask: maskMod must return a bool Expr/);
    // Nothing was allocated or encoded.
    expect(memory().buffers).toBe(before.buffers);
    expect(memory().bytes).toBe(before.bytes);
    q.dispose();
    tab.dispose();
  });
});

describe('flexAttention through a KV cache', { timeout: 600_000 }, () => {
  // The mods see absolute query positions (queryOffset = the cache's length before the append), so a position-
  // dependent scoreMod and maskMod give the same rows whether the sequence is decoded whole, one position at a time,
  // or as a prefill and chunks.
  it('incremental decoding with a scoreMod and maskMod equals the full-sequence run, row for row', async () => {
    const E = 16, H = 4, N = 11, R = 3, W = 5;
    const m = new nn.MultiheadAttention(E, H, { kvHeads: 2, seed: 5 });
    m.eval();
    const table = fromRef(rnd([H, 2 * R + 1], 7));
    const mods = { scoreMod: M.relativeBias(table, R), maskMod: M.slidingWindow(W) };
    const x = fromRef(rnd([1, N, E], 8));
    const fullOut = m.forward(x, x, x, { ...mods, isCausal: true });
    const full = Array.from(await fullOut.toArray());
    fullOut.dispose();
    const before = memory().buffers;
    for (const chunks of [[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [4, 1, 3, 1, 2]]) {
      const cache = new KVCache(N);
      const rows: number[] = [];
      let t = 0;
      for (const n of chunks) {
        const y = tidy(() => {
          const xs = x.slice(1, t, t + n);
          return m.forward(xs, xs, xs, { ...mods, isCausal: true, cache });
        });
        rows.push(...(await y.toArray()));
        y.dispose();
        t += n;
      }
      expect(cache.length).toBe(N);
      for (let i = 0; i < N; i++) {
        const r = allClose(rows.slice(i * E, (i + 1) * E), full.slice(i * E, (i + 1) * E), { atol: 2e-5, rtol: 1e-4 });
        expect(r.ok, `chunks ${chunks.join(',')}: row ${i}: ${r.message}`).toBe(true);
      }
      cache.dispose();
    }
    expect(memory().buffers).toBe(before);
    // Without the offset (the mods at local query rows) a single decoded row differs: the test can see the bug.
    const qh = fromRef(rnd([1, H, 1, 4], 9)), kh = fromRef(rnd([1, 2, N, 4], 10));
    const at = async (queryOffset: number) => {
      const o = F.flexAttention(qh, kh, kh, { ...mods, queryOffset });
      const a = Array.from(await o.toArray());
      o.dispose();
      return a;
    };
    expect(await at(N - 1)).not.toEqual(await at(0));
    for (const t of [x, table, qh, kh]) t.dispose();
    m.dispose();
  });
});

describe('the captured-tensor limit', () => {
  it('more captures than the adapter binds is a DeviceError naming the count and the limit, before any work', () => {
    const limit = gpu().device.limits.maxStorageBuffersPerShaderStage - 13;
    // Each capture is one storage binding beside the kernels' 13: 3 on a 16-buffer adapter.
    if (limit + 1 > 64) return;
    const q = fromRef(rnd(shape(1, 1, 8, 4), 1));
    const caps = Array.from({ length: limit + 1 }, (_, n) => tensor([n, n + 1]));
    const before = memory();
    const scoreMod = (s: Expr) => caps.reduce((x, t) => x.add(t.at(1)), s);
    expect(() => F.flexAttention(q, q, q, { scoreMod })).toThrow(KilnError);
    expect(() => F.flexAttention(q, q, q, { scoreMod })).toThrow(new RegExp(`flexAttention: the mods capture ${limit + 1} tensors, over this adapter's limit of ${limit} captured tensors \\(maxStorageBuffersPerShaderStage ${limit + 13}, of which the attention kernels use 13\\); stack them into one tensor`));
    expect(memory().buffers).toBe(before.buffers);
    for (const t of [q, ...caps]) t.dispose();
  });
});

describe('Tensor.at outside a mod', () => {
  it('is a ValueError naming the tensor, before and after a mod has been traced', () => {
    const t = tensor([1, 2, 3]);
    expect(() => t.at(0)).toThrow(ValueError);
    expect(() => t.at(0)).toThrow(/at: a captured f32 tensor \[3\]\.at\(\.\.\.\) reads one element inside a scoreMod/);
    const mask = createBlockMask((_b, _h, i, j) => j.le(i), 1, 1, 4, 4);
    expect(() => t.at(1)).toThrow(ValueError);
    mask.dispose();
    t.dispose();
  });
});

describe('built-in mods', () => {
  // Each built-in traces to the same kernels (the cache key is the expression's structure; constants and captured
  // tensors are bound, not compiled in) as the hand-written mod that the float64 tests above run on the GPU.
  it('trace to the kernels of the hand-written mods checked against float64', () => {
    const slopes = tensor([0.5, 0.25]), table = tensor(new Float32Array(2 * 7), { shape: [2, 7] });
    const docs = tensor(Int32Array.from([0, 0, 1]), { dtype: 'i32' });
    const key = (s: Parameters<typeof flexSource>[0], m: Parameters<typeof flexSource>[1] = null) => flexSource(s, m).key;
    expect(key(attentionMods.softCap(5))).toBe(key((s) => s.div(2).tanh().mul(2)));
    expect(key(attentionMods.softCap(5))).not.toBe(key((s) => s.tanh().mul(2)));
    expect(key(null, attentionMods.causal(16))).toBe(key(null, (_b, _h, i, j) => j.le(i.add(3))));
    expect(key(attentionMods.alibi(slopes))).toBe(key((s, _b, h, i, j) => s.add(slopes.at(h).mul(j.sub(i)))));
    expect(key(attentionMods.relativeBias(table, 3))).toBe(key((s, _b, h, i, j) => s.add(table.at(h, j.sub(i).clamp(-3, 3).add(3)))));
    expect(key(null, attentionMods.documentMask(docs))).toBe(key(null, (_b, _h, i, j) => docs.at(i).eq(docs.at(j))));
    for (const t of [slopes, table, docs]) t.dispose();
  });
});
