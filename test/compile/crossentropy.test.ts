// The crossEntropy pass (src/compile/crossentropy.ts): a reduced cross-entropy's backward, with loss.backward()'s
// seed, computed by the forward's workgroups. The loss and the logits' gradient equal the unfused plan's and eager's
// bit for bit (NaN and -inf logits, ignored rows, label smoothing, more classes than a workgroup's threads, every row
// ignored); two dispatches fewer; cases the pass must leave alone (reduction 'none', a 'mean' over too many rows).
import { describe, expect, it } from 'vitest';
import { F, compile, memory, tensor, tidy, type Tensor } from '../../src/index.node';
import { resetStats, stats } from '../../src/gpu/queue';
import { MAX_ROWS_COUNTED } from '../../src/compile/crossentropy';

function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 31 - 1) * 4;
  });
}

function sameBits(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(want[i])) expect(Number.isNaN(got[i]), `${what}[${i}]: ${got[i]} vs NaN`).toBe(true);
    else expect(Object.is(got[i], want[i]), `${what}[${i}]: ${got[i]} vs ${want[i]}`).toBe(true);
  }
}

interface Case {
  name: string;
  N: number;
  C: number;
  options: Parameters<typeof F.crossEntropy>[2];
  targets: (i: number) => number;
  special?: (x: Float32Array, C: number) => void;
  /** Whether the pass applies (false: the fused plan issues as many dispatches as the unfused one). */
  fuses: boolean;
  sumAfter?: boolean;
}

async function run(c: Case): Promise<void> {
  const xv = values(c.N * c.C, c.N * 31 + c.C);
  c.special?.(xv, c.C);
  const x = tensor(xv, { shape: [c.N, c.C] });
  const t = tensor(Int32Array.from({ length: c.N }, (_, i) => c.targets(i)), { shape: [c.N] });
  const w = tensor(values(c.C, 7), { shape: [c.C], requiresGrad: true });
  const step = (xs: Tensor, ts: Tensor): Tensor[] =>
    tidy(() => {
      w.grad?.dispose();
      w.grad = null;
      let loss = F.crossEntropy(xs.mul(w), ts, c.options);
      if (c.sumAfter) loss = loss.sum();
      loss.backward();
      return [loss, w.grad!.clone()];
    });
  const eager = step(x, t);
  const want = await Promise.all(eager.map(async (r) => (await r.toArray()) as Float32Array));
  eager.forEach((r) => r.dispose());
  w.grad?.dispose();
  w.grad = null;
  const base = memory().buffers;
  const counts: number[] = [];
  // (Horizontal fusion off: the dispatch counts are this pass's alone.)
  for (const fuse of [{ crossEntropy: false, horizontal: false }, { horizontal: false }] as const) {
    const on = !('crossEntropy' in fuse);
    const compiled = compile(step, { fuse });
    for (let k = 0; k < 4; k++) {
      resetStats();
      const got = compiled(x, t);
      counts.push(stats.dispatches);
      const arrays = await Promise.all(got.map(async (r) => (await r.toArray()) as Float32Array));
      sameBits(arrays[0], want[0], `${c.name} fuse=${JSON.stringify(fuse)} call ${k} loss`);
      sameBits(arrays[1], want[1], `${c.name} fuse=${JSON.stringify(fuse)} call ${k} grad`);
      got.forEach((r) => r.dispose());
    }
    expect(compiled.fallbackReason).toBe(null);
    expect(compiled.stats.replays).toBe(2);
    const text = compiled.explain();
    if (on && c.fuses) expect(text, c.name).toContain('cross-entropy: 1 backward(s) computed');
    else expect(text, c.name).not.toContain('cross-entropy:');
    compiled.dispose();
  }
  const [plain, fused] = [counts[3], counts[7]];
  expect(fused, c.name).toBe(c.fuses ? plain - 2 : plain);
  w.grad?.dispose();
  w.grad = null;
  expect(memory().buffers, `${c.name}: buffers after the steps are disposed`).toBe(base);
  x.dispose();
  t.dispose();
  w.dispose();
}

describe('compile: cross-entropy forward and backward in one dispatch', () => {
  it("mean with ignored rows, NaN and -inf logits; sum with label smoothing over more classes than a workgroup's threads", async () => {
    await run({
      name: 'mean', N: 37, C: 67, options: {}, fuses: true,
      targets: (i) => (i % 5 === 2 ? -100 : (i * 13) % 67),
      special: (x, C) => {
        x[3 * C + 4] = NaN; // a NaN logit: its row's loss and gradient NaN, the mean NaN
        x[6 * C + 1] = -Infinity; // a -inf logit that is not the target: p = 0 there
      },
    });
    await run({ name: 'sum, smoothing', N: 5, C: 130, options: { reduction: 'sum', labelSmoothing: 0.1 }, fuses: true, targets: (i) => (i * 29) % 130 });
    await run({ name: 'mean, ignore 3', N: 11, C: 4, options: { ignoreIndex: 3, labelSmoothing: 0.25 }, fuses: true, targets: (i) => i % 4 });
  });

  it('every row ignored: the mean is NaN (0 / 0) and the gradient 0, as eager', async () => {
    await run({ name: 'all ignored', N: 9, C: 5, options: {}, fuses: true, targets: () => -100 });
  });

  it("left alone: reduction 'none' (its gradient is not a seed), and a mean over more rows than are counted per workgroup", async () => {
    await run({ name: 'none', N: 7, C: 9, options: { reduction: 'none' }, fuses: false, sumAfter: true, targets: (i) => i % 9 });
    await run({ name: 'too many rows', N: MAX_ROWS_COUNTED + 1, C: 3, options: {}, fuses: false, targets: (i) => i % 3 });
  });
});
