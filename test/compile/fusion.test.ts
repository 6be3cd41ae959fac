// Elementwise fusion: every rule's fused kernel equals the unfused chain (replay-only) and eager, on odd shapes, with
// NaN and infinities among the inputs; the fused plan issues fewer dispatches.
import { describe, expect, it } from 'vitest';
import { compile, linear, tensor, tidy, type Tensor } from '../../src/index.node';
import { resetStats, stats } from '../../src/gpu/queue';
import { values } from './values';

function same(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const a = got[i], b = want[i];
    if (Number.isNaN(b) || !Number.isFinite(b)) expect(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)), `${what}[${i}]: ${a} vs ${b}`).toBe(true);
    else expect(Math.abs(a - b), `${what}[${i}]: ${a} vs ${b}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(b)));
  }
}

/** Runs fn eagerly, compiled without and with fusion (4 calls each, so the plans replay), and compares. */
async function check(name: string, fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[]): Promise<{ fused: number; plain: number; explain: string }> {
  const want = fn(...inputs);
  const wantValues = await want.toArray() as Float32Array;
  want.dispose();
  const counts: number[] = [];
  let explain = '';
  for (const fuse of [false, true]) {
    // tidy, as a training step does: intermediates that outlive the step are not the plan's to keep in registers.
    // (Horizontal fusion off: the explain() lines and counts are these passes' alone.)
    const step = compile((...xs: Tensor[]) => tidy(() => fn(...xs)), { fuse: fuse ? { horizontal: false } : false });
    for (let k = 0; k < 4; k++) {
      resetStats();
      const r = step(...inputs);
      counts[fuse ? 1 : 0] = stats.dispatches;
      same(await r.toArray() as Float32Array, wantValues, `${name} fuse=${fuse} call ${k}`);
      r.dispose();
    }
    expect(step.fallbackReason).toBe(null);
    expect(step.stats.replays).toBe(2);
    if (fuse) explain = step.explain({ wgsl: true });
    step.dispose();
  }
  return { plain: counts[0], fused: counts[1], explain };
}

describe('compile: elementwise fusion', () => {
  it('unary after binary, binary after unary, scalar ops, a chain of five: fused equals unfused and eager (NaN, inf)', async () => {
    const x = tensor(values(7 * 13, 1), { shape: [7, 13] });
    const y = tensor(values(7 * 13, 2), { shape: [7, 13] });
    const row = tensor(values(13, 3, false), { shape: [13] });
    const row7 = tensor(values(7, 11, false), { shape: [7] });
    const cases: [string, (...xs: Tensor[]) => Tensor, Tensor[], string][] = [
      ['add -> gelu', (a, b) => a.add(b).gelu(), [x, y], 'fused.add_gelu'],
      ['add(broadcast row) -> relu -> mul', (a, r, b) => a.add(r).relu().mul(b), [x, row, y], 'fused.add_relu_mul'],
      ['mul_scalar -> add_scalar -> tanh', (a) => a.mul(0.5).add(-1.25).tanh(), [x], 'fused.mul_scalar_add_scalar_tanh'],
      ['sub -> exp -> div -> sigmoid -> neg', (a, b) => a.sub(b).exp().div(b).sigmoid().neg(), [x, y], 'fused.sub_exp_div_sigmoid_neg'],
      // A reshape the broadcast operand's strides cannot follow ([13, 7] + a [7] row, read as [7, 13]): the row is
      // walked in its own shape, written into the kernel, and the chain fuses through the reshape.
      ['a broadcast row across a reshape', (a, r, b) => a.reshape([13, 7]).add(r).reshape([7, 13]).add(b).neg(), [x, row7, y], 'fused.add_add_neg'],
      ['transposed operand: add -> sqrt', (a, b) => a.transpose(0, 1).add(b.transpose(0, 1)).abs().sqrt(), [x, y], 'fused.add_abs_sqrt'],
    ];
    for (const [name, fn, inputs, kernel] of cases) {
      const r = await check(name, fn, inputs);
      expect(r.explain, name).toContain(kernel);
      expect(r.fused, name).toBeLessThan(r.plain);
      expect(r.explain).toContain('fn fused(');
    }
    for (const t of [x, y, row, row7]) t.dispose();
  });

  it('backward chains (unary_backward after binary) in a training-like step fuse and match', async () => {
    const x = tensor(values(5 * 11, 4), { shape: [5, 11] });
    const w = tensor(values(11, 5, false), { shape: [11] });
    const fn = (a: Tensor) => {
      const wl = w.detach();
      wl.requiresGrad = true;
      const loss = a.mul(wl).gelu().mul(a).sum();
      loss.backward();
      const g = wl.grad!;
      wl.grad = null;
      wl.dispose();
      loss.dispose();
      return g;
    };
    const r = await check('gelu backward', fn, [x]);
    expect(r.fused).toBeLessThan(r.plain);
    x.dispose();
    w.dispose();
  });

  it('a chain whose intermediate is returned (used outside the chain) is not fused past it', async () => {
    const x = tensor(values(3 * 5, 6), { shape: [3, 5] });
    const step = compile((a: Tensor) =>
      tidy(() => {
        const h = a.add(1);
        return [h, h.exp()];
      }),
    );
    for (let k = 0; k < 3; k++) {
      const [h, e] = step(x) as Tensor[];
      const hv = await h.toArray() as Float32Array;
      const xv = await x.toArray();
      same(hv, Float32Array.from(xv, (v) => v + 1), 'h');
      same(await e.toArray() as Float32Array, Float32Array.from(hv, Math.exp), 'exp(h)');
      h.dispose();
      e.dispose();
    }
    expect(step.explain()).not.toContain('fused.');
    step.dispose();
    x.dispose();
  });

  it('a reshape the chain cannot follow (a permuted read of the intermediate) is not fused, and is right', async () => {
    const a = tensor(values(15 * 7, 8), { shape: [15, 7] });
    const b = tensor(values(7, 9, false), { shape: [7] });
    const r = tensor(values(5 * 3 * 7, 10), { shape: [5, 3, 7] });
    const res = await check('permuted', (p, q, s) => p.add(q).reshape([3, 5, 7]).transpose(0, 1).add(s), [a, b, r]);
    expect(res.explain).not.toContain('fused.add_add');
    // The chain over a broadcast bias followed by a reshape to three dims fuses, with the bias re-strided.
    const res2 = await check('bias then reshape', (p, q, s) => p.add(q).reshape([5, 3, 7]).mul(s), [a, b, r]);
    expect(res2.explain).toContain('fused.add_mul');
    for (const t of [a, b, r]) t.dispose();
  });

  it('a copy of a permuted view, then an unrelated op, then a copy into a slice: fused past the op, the permuted view walked in its own shape', async () => {
    // g [3, 5, 7] permuted to [5, 3, 7], made contiguous (a reshape then needs it), and written into a slice of a
    // zero-filled [5, 2 * 21] buffer: the gradient of a slice of a reshaped permutation (the q, k, v split).
    const g = tensor(values(3 * 5 * 7, 12), { shape: [3, 5, 7] });
    const w = tensor(values(5 * 42, 13, false), { shape: [5, 42] });
    const fn = (a: Tensor) => {
      const wl = w.detach();
      wl.requiresGrad = true;
      const part = wl.slice(1, 21, 42).reshape([5, 3, 7]).transpose(0, 1);
      const loss = part.mul(a).sum();
      loss.backward();
      const grad = wl.grad!;
      wl.grad = null;
      wl.dispose();
      loss.dispose();
      return grad;
    };
    const r = await check('slice of a permutation, backward', fn, [g]);
    expect(r.explain).toContain('fused.copy_copy');
    expect(r.fused).toBeLessThan(r.plain);
    for (const t of [g, w]) t.dispose();
  });

  it('zero regions: the gradients of disjoint slices of one tensor are written into one buffer (fills and adds removed); overlapping slices are left alone', async () => {
    const x = tensor(values(7 * 3 * 11, 14), { shape: [7, 33] });
    const w = tensor(values(7 * 33, 15, false), { shape: [7, 33] });
    const grads = (ranges: [number, number][]) => (a: Tensor) => {
      const wl = w.detach();
      wl.requiresGrad = true;
      // The slices are of an intermediate (as of a packed projection's output), whose gradients the engine sums.
      const h = wl.mul(1.5);
      let loss: Tensor | null = null;
      for (const [k, [lo, hi]] of ranges.entries()) {
        const part = h.slice(1, lo, hi).mul(a.slice(1, lo, hi)).mul(k + 1).sum();
        loss = loss ? loss.add(part) : part;
      }
      loss!.backward();
      const grad = wl.grad!;
      wl.grad = null;
      wl.dispose();
      return grad;
    };
    // Three disjoint thirds (as q, k, v), NaN and infinities in x: two adds merged.
    const thirds = await check('three thirds', grads([[0, 11], [11, 22], [22, 33]]), [x]);
    expect(thirds.explain).toContain('zero regions: 2 adds');
    // The thirds cover the buffer: its fill goes too.
    expect(thirds.explain).toContain('1 more fills of buffers the regions cover');
    // Disjoint slices that leave a gap (zeros there), in reverse order.
    const gaps = await check('two slices with a gap', grads([[20, 33], [0, 9]]), [x]);
    expect(gaps.explain).toContain('zero regions: 1 adds');
    expect(gaps.explain).toContain('0 more fills');
    // Overlapping slices: the add stays.
    const overlap = await check('overlapping slices', grads([[0, 20], [15, 33]]), [x]);
    expect(overlap.explain).not.toContain('zero regions');
    for (const t of [x, w]) t.dispose();
  });

  it('matmul epilogues: a residual add, relu and gelu fold into the matmul; equal to the unfused chain and eager on odd shapes (NaN, inf)', async () => {
    // N = 67 (scalar loads of B, a ragged last column quad) and 68 (vec4 loads); M = 37 rows over three 16-row tiles.
    for (const N of [67, 68]) {
      const x = tensor(values(37 * 13, 16), { shape: [37, 13] });
      const w = tensor(values(N * 13, 17), { shape: [N, 13] });
      const b = tensor(values(N, 18), { shape: [N] });
      const r = tensor(values(37 * N, 19), { shape: [37, N] });
      const cases: [string, (...xs: Tensor[]) => Tensor, Tensor[], string][] = [
        ['linear -> + residual', (p, q, c, s) => linear(p, q, c).add(s), [x, w, b, r], 'linear+residual'],
        ['residual + linear (the product second)', (p, q, c, s) => s.add(linear(p, q, c)), [x, w, b, r], 'linear+residual'],
        ['matmul (no bias) -> + residual', (p, q, _c, s) => p.matmul(q.transpose(0, 1)).add(s), [x, w, b, r], 'matmul+residual'],
        ['linear -> relu', (p, q, c) => linear(p, q, c).relu(), [x, w, b], 'linear+relu'],
        ['linear -> gelu', (p, q, c) => linear(p, q, c).gelu(), [x, w, b], 'linear+gelu'],
      ];
      for (const [name, fn, inputs, kernel] of cases) {
        const res = await check(`${name}, N=${N}`, fn, inputs);
        expect(res.explain, name).toContain(kernel);
        expect(res.fused, name).toBeLessThan(res.plain);
      }
      // A residual read through a transpose is not contiguous: not folded, and right.
      const rt = tensor(values(37 * N, 20), { shape: [N, 37] });
      const strided = await check(`transposed residual, N=${N}`, (p, q, c, s) => linear(p, q, c).add(s.transpose(0, 1)), [x, w, b, rt]);
      expect(strided.explain).not.toContain('+residual');
      for (const t of [x, w, b, r, rt]) t.dispose();
    }
  });

  it('matmul epilogues in a training step: relu / gelu keep the pre-activation for their backward, whose gradient folds into the next matmul; gradients equal eager', async () => {
    const x = tensor(values(19 * 11, 21), { shape: [19, 11] });
    const w1 = tensor(values(23 * 11, 22, false), { shape: [23, 11] });
    const w2 = tensor(values(11 * 23, 23, false), { shape: [11, 23] });
    const mlp = (act: 'gelu' | 'relu') => (a: Tensor) => {
      const p1 = w1.detach();
      const p2 = w2.detach();
      p1.requiresGrad = true;
      p2.requiresGrad = true;
      // x + W2 gelu(W1 x): the first linear folds gelu, the second the residual, forward and backward.
      const h = linear(linear(a, p1, null)[act](), p2, null).add(a);
      const loss = h.mul(h).sum();
      loss.backward();
      const g = p1.grad!.add(0).sum().add(p2.grad!.sum()).reshape([1]);
      for (const p of [p1, p2]) {
        p.grad = null;
        p.dispose();
      }
      return g;
    };
    for (const act of ['gelu', 'relu'] as const) {
      const res = await check(`${act} MLP backward`, mlp(act), [x]);
      expect(res.explain).toContain(`+${act}\n`);
      expect(res.explain).toContain(`+${act}_grad`);
    }
    for (const t of [x, w1, w2]) t.dispose();
  });
});
