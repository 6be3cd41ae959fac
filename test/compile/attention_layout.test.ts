// The attention layout pass (src/compile/attention_layout.ts): the fused attention writes o where its layout copy put
// it, its backward reads dO where that copy read it, computes the delta rows itself and writes dq, dk, dv into their
// final places. Compiled with the pass equals compiled without it (fuse: { attentionLayout: false }) and eager, forward
// and backward (the q, k, v projections' gradients), on odd shapes (T odd, H * D not a power of two, grouped-query
// heads, cross-attention with Nq != Nk), causal and key-padding masks, a fully masked row and a fully masked batch,
// dropout with seeds, and NaN among the inputs; and it issues fewer dispatches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile, getRngState, memory, mul, nn, setRngState, tensor, tidy, type Tensor } from '../../src/index.node';
import { resetStats, stats } from '../../src/gpu/queue';
import { setFlag } from '../../src/experimental';
import { encoderStep } from './models';
import { values } from './values';

/** Equal within float rounding (1e-5 relative), NaN where the reference is NaN, the same infinities. */
function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const a = got[i], b = want[i];
    if (!Number.isFinite(b)) expect(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)), `${what}[${i}]: ${a} vs ${b}`).toBe(true);
    else expect(Math.abs(a - b), `${what}[${i}]: ${a} vs ${b}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b)));
  }
}

/** Bit-equal (NaN to NaN). */
function same(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const a = got[i], b = want[i];
    expect(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)), `${what}[${i}]: ${a} vs ${b}`).toBe(true);
  }
}

interface Case {
  name: string;
  E: number;
  H: number;
  kvHeads?: number;
  B: number;
  Nq: number;
  /** Cross-attention over a memory of Nk positions (self-attention when absent). */
  Nk?: number;
  causal: boolean;
  dropout: number;
  /** keep[b][j]: key j of batch b is real (a key-padding mask), or null. */
  keep: ((b: number, j: number) => boolean) | null;
  /** Flat index into x set to NaN, or -1. */
  nan: number;
  /** Copies the pass must remove per step: o, dO, gradients. */
  removed: string;
}

/** An attention step: the output times a fixed weight, summed, backward; returns the output and every gradient. */
function build(c: Case) {
  const mha = new nn.MultiheadAttention(c.E, c.H, { kvHeads: c.kvHeads, dropout: c.dropout, seed: 5 });
  const Nk = c.Nk ?? c.Nq;
  const xv = values(c.B * c.Nq * c.E, 11, false);
  if (c.nan >= 0) xv[c.nan] = NaN;
  const x = tensor(xv, { shape: [c.B, c.Nq, c.E], requiresGrad: true });
  const mem = c.Nk ? tensor(values(c.B * Nk * c.E, 12, false), { shape: [c.B, Nk, c.E], requiresGrad: true }) : null;
  const w = tensor(values(c.B * c.Nq * c.E, 13, false), { shape: [c.B, c.Nq, c.E] });
  const params = [...mha.parameters(), x, ...(mem ? [mem] : [])];
  const fn = (keyMask: Tensor | null) =>
    tidy(() => {
      for (const p of params) {
        p.grad?.dispose();
        p.grad = null;
      }
      const y = mem ? mha.forward(x, mem, mem, { keyMask, isCausal: c.causal }) : mha.forward(x, x, x, { keyMask, isCausal: c.causal });
      mul(y, w).sum().backward();
      // Copies of the gradients (the step's results; the parameters' own are freed by the next call).
      return [y.detach(), ...params.map((p) => mul(p.grad!, 1))];
    });
  const dispose = () => {
    for (const p of params) {
      p.grad?.dispose();
      p.grad = null;
    }
    for (const t of [x, w, mem]) t?.dispose();
  };
  return { fn, dispose };
}

async function run(c: Case): Promise<void> {
  const Nk = c.Nk ?? c.Nq;
  const keyMask = c.keep ? tensor(Uint8Array.from({ length: c.B * Nk }, (_, i) => (c.keep!(Math.floor(i / Nk), i % Nk) ? 1 : 0)), { shape: [c.B, Nk], dtype: 'bool' }) : null;
  const rng = getRngState();
  const eager = build(c);
  const off = build(c);
  const on = build(c);
  // Horizontal fusion off in both: the dispatch counts and explain() lines are the pass's own.
  const stepOff = compile(off.fn, { fuse: { attentionLayout: false, horizontal: false } });
  const stepOn = compile(on.fn, { fuse: { horizontal: false } });
  const before = memory().bytes;
  const counts = { eager: 0, off: 0, on: 0 };
  for (let k = 0; k < 5; k++) {
    const outs: Tensor[][] = [];
    for (const [name, f] of [['eager', eager.fn], ['off', stepOff], ['on', stepOn]] as const) {
      setRngState(rng);
      resetStats();
      outs.push(f(keyMask));
      counts[name] = stats.dispatches;
    }
    const [e, a, b] = await Promise.all(outs.map((list) => Promise.all(list.map(async (t) => Array.from(await t.toArray() as Float32Array)))));
    e.forEach((want, i) => {
      const what = `${c.name} call ${k} ${i === 0 ? 'output' : `gradient ${i - 1}`}`;
      close(b[i], want, `${what} (pass on vs eager)`);
      close(a[i], want, `${what} (pass off vs eager)`);
      // The rows' delta is summed as the delta pass sums it, and every value lands where the copies put it.
      same(b[i], a[i], `${what} (pass on vs off)`);
    });
    for (const list of outs) for (const t of list) t.dispose();
  }
  for (const s of [stepOff, stepOn]) {
    expect(s.fallbackReason, s.explain()).toBe(null);
    expect(s.stats.replays).toBe(3);
  }
  const plan = stepOn.explain();
  expect(plan).toContain(`attention layout: ${c.removed}`);
  expect(stepOff.explain()).not.toContain('attention layout:');
  // Per attention: the o and dO copies, the delta pass and the gradients' copies (fused into one dispatch each).
  expect(counts.on, plan).toBe(counts.off - 6);
  console.log(`${c.name}: eager ${counts.eager}, pass off ${counts.off}, pass on ${counts.on} dispatches\n${plan.split('\n').filter((l) => /attention/.test(l)).join('\n')}`);
  for (const s of [stepOff, stepOn]) s.dispose();
  for (const m of [eager, off, on]) m.dispose();
  keyMask?.dispose();
  expect(memory().bytes).toBeLessThanOrEqual(before);
}

describe('compile: attention layout pass', () => {
  // The pass rewrites the scalar kernels only: keep the matrix-unit ones out on adapters that have them.
  beforeAll(() => setFlag('attention.matrixBody', 'off'));
  afterAll(() => setFlag('attention.matrixBody', undefined));

  it('self-attention, causal, key padding (a fully masked row and batch), dropout 0.1, NaN at a padded position: H*D = 36, T = 7 (rows forward)', async () => {
    await run({
      name: 'self causal', E: 36, H: 3, B: 3, Nq: 7, causal: true, dropout: 0.1,
      // batch 1: key 0 padded (under causal its query row 0 sees no key); batch 2: every key padded.
      keep: (b, j) => (b === 0 ? true : b === 1 ? j !== 0 && j < 6 : false),
      nan: (1 * 7 + 6) * 36 + 5,
      removed: '8 layout copies removed (o written in place x1, dO read in place x1, gradient copies x6), 1 delta passes folded into dkdv / dq',
    });
  }, 300_000);

  it('grouped-query heads (6 query heads over 2 kv heads, head dim 6: the tiled forward), T = 9, key padding, no dropout', async () => {
    await run({
      name: 'gqa', E: 36, H: 6, kvHeads: 2, B: 2, Nq: 9, causal: false, dropout: 0,
      keep: (b, j) => j < 9 - 2 * b,
      nan: -1,
      removed: '8 layout copies removed (o written in place x1, dO read in place x1, gradient copies x6), 1 delta passes folded into dkdv / dq',
    });
  }, 300_000);

  it('cross-attention, Nq = 5 over Nk = 11, H*D = 20, dropout 0.2 with NaN in the queries', async () => {
    await run({
      name: 'cross', E: 20, H: 5, B: 2, Nq: 5, Nk: 11, causal: false, dropout: 0.2,
      keep: (b, j) => j !== 3 || b === 0,
      nan: 7,
      removed: '5 layout copies removed (o written in place x1, dO read in place x1, gradient copies x3), 1 delta passes folded into dkdv / dq',
    });
  }, 300_000);

  it('an encoder-layer training step (causal, key padding, dropout, AdamW): losses and parameters equal eager and the pass off for 6 steps', async () => {
    const B = 3, T = 7, E = 36, H = 3, V = 29;
    const model = () => encoderStep({ B, T, E, H, V, ff: 44, dropout: 0.1, clip: false });
    const rng = getRngState();
    const eager = model(), off = model(), on = model();
    const stepOff = compile(off.fn, { fuse: { attentionLayout: false } });
    const stepOn = compile(on.fn);
    const counts = { eager: 0, off: 0, on: 0 };
    for (let k = 0; k < 6; k++) {
      const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 5 + 3 * k) % V);
      const tokens = tensor(ids, { shape: [B, T] });
      const targets = tensor(Int32Array.from(ids, (_t, i) => ids[(i + 1) % ids.length]), { shape: [B * T] });
      const keyMask = tensor(Uint8Array.from({ length: B * T }, (_, i) => (i % T < T - ((Math.floor(i / T) + k) % 3) ? 1 : 0)), { shape: [B, T], dtype: 'bool' });
      const losses: number[] = [];
      for (const [name, f] of [['eager', eager.fn], ['off', stepOff], ['on', stepOn]] as const) {
        setRngState(rng);
        resetStats();
        const l = f(tokens, targets, keyMask);
        counts[name] = stats.dispatches;
        losses.push(await l.item());
        l.dispose();
      }
      expect(Math.abs(losses[2] - losses[0]), `step ${k}: ${losses[2]} vs eager ${losses[0]}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(losses[0])));
      expect(losses[2], `step ${k}: pass on vs off`).toBe(losses[1]);
      for (const t of [tokens, targets, keyMask]) t.dispose();
    }
    const read = (ps: Tensor[]) => Promise.all(ps.map(async (p) => Array.from(await p.toArray() as Float32Array)));
    const [pe, pf, pn] = await Promise.all([eager.params, off.params, on.params].map(read));
    pe.forEach((want, i) => {
      close(pn[i], want, `param ${i} (pass on vs eager)`);
      same(pn[i], pf[i], `param ${i} (pass on vs off)`);
    });
    expect(stepOn.explain()).toContain('attention layout: 16 layout copies removed (o written in place x2, dO read in place x2, gradient copies x12), 2 delta passes folded into dkdv / dq');
    // With every other pass on, horizontal fusion included.
    expect(counts.on).toBeLessThan(counts.off);
    console.log(`encoder step: eager ${counts.eager}, pass off ${counts.off}, pass on ${counts.on} dispatches`);
    stepOff.dispose();
    stepOn.dispose();
  }, 300_000);
});
