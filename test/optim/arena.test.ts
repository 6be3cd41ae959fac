// The parameter arena (src/optim/arena.ts): parameters, gradients and state in one storage each, so a step is one
// dispatch with no copies; the cases where a move would change what another tensor sees fall back to copies.
import { describe, expect, it } from 'vitest';
import { DTypeError, DisposedError, ShapeError, ValueError, full, memory, nn, optim, tensor, tidy, type Tensor } from '../../src/index.node';
import { resetStats, stats } from '../../src/gpu/queue';
import { arenaLimits } from '../../src/optim/arena';
import { expectThrows } from '../helpers';

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** 100 parameter tensors of assorted shapes (odd sizes, so offsets are not multiples of anything). */
function hundredParams(): Tensor[] {
  return Array.from({ length: 100 }, (_, i) => {
    const shape = i % 3 === 0 ? [(i % 7) + 1, (i % 5) + 2] : [(i % 11) + 1];
    return tensor(values(shape[0] * (shape[1] ?? 1), i + 1), { shape, requiresGrad: true });
  });
}

/** loss = sum_i sum(p_i * c_i): gradient c_i exactly. */
function backwardThrough(params: Tensor[], seed: number): void {
  tidy(() => {
    let loss: Tensor | null = null;
    params.forEach((p, i) => {
      const term = p.mul(tensor(values(p.size, seed * 1000 + i), { shape: p.shape.slice() })).sum();
      loss = loss ? loss.add(term) : term;
    });
    loss!.backward();
  });
}

async function read(params: Tensor[]): Promise<number[][]> {
  return Promise.all(params.map(async (p) => Array.from(await p.toArray())));
}

function expectClose(got: number[][], want: number[][], tol = 1e-6): void {
  got.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - want[i][j]), `param ${i}[${j}]: ${v} vs ${want[i][j]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i][j])))));
}

describe('parameter arena', () => {
  it('100 parameter tensors: a step is ONE dispatch with no copies or uploads, and matches the reference path', async () => {
    const base = memory().buffers;
    const fused = hundredParams();
    const ref = hundredParams();
    const opt = new optim.AdamW(fused, { lr: 0.01, weightDecay: 0.1 });
    const optRef = new optim.AdamW(ref, { lr: 0.01, weightDecay: 0.1, impl: 'reference' });
    // Parameters moved into one storage; their own buffers are gone.
    expect(new Set(fused.map((p) => p.storage)).size).toBe(1);
    for (let k = 1; k <= 3; k++) {
      for (const [o, ps] of [[opt, fused], [optRef, ref]] as const) {
        o.zeroGrad();
        backwardThrough(ps, k);
      }
      // Backward wrote every gradient into the gradient arena.
      expect(new Set(fused.map((p) => p.grad!.storage)).size).toBe(1);
      resetStats();
      opt.step();
      const s = { ...stats };
      if (k > 1) {
        // The first step uploads the step table; after that nothing but the dispatch.
        expect(s.dispatches, 'dispatches per step').toBe(1);
        expect(s.copies, 'buffer copies per step').toBe(0);
        expect(s.uploads, 'uploads per step').toBe(0);
      } else expect(s.dispatches).toBe(1);
      optRef.step();
      // f32 rounding differs between the fused kernel and the elementwise ops by a few ulps of the update.
      expectClose(await read(fused), await read(ref), 1e-5);
    }
    opt.zeroGrad();
    optRef.zeroGrad();
    opt.dispose();
    optRef.dispose();
    for (const p of [...fused, ...ref]) p.dispose();
    expect(memory().buffers).toBe(base);
  });

  it('parameter memory is held once: the arena replaces the parameters buffers', async () => {
    const params = hundredParams();
    const elems = params.reduce((a, p) => a + p.size, 0);
    const before = memory();
    const opt = new optim.SGD(params, { lr: 0.1 });
    const after = memory();
    // 100 parameter buffers became one arena, plus the gradient arena and the step table.
    expect(after.buffers).toBe(before.buffers - 100 + 3);
    expect(after.bytes - before.bytes).toBeLessThan(3 * 4 * (elems + 64 * 100));
    opt.dispose();
    for (const p of params) p.dispose();
  });

  it('modules keep working on their moved parameters (same objects, same values)', async () => {
    const model = new nn.Sequential(new nn.Linear(3, 5, { seed: 1 }), new nn.Tanh(), new nn.Linear(5, 2, { seed: 2 }));
    const x = tensor(values(12, 9), { shape: [4, 3] });
    const y0 = tidy(() => model.forward(x) as Tensor);
    const ps = model.parameters();
    const opt = new optim.SGD(model, { lr: 0.5 });
    expect(model.parameters()).toEqual(ps);
    const y1 = tidy(() => model.forward(x) as Tensor);
    expect(Array.from(await y1.toArray())).toEqual(Array.from(await y0.toArray()));
    const sd = model.stateDict();
    expect(Object.keys(sd)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    for (const t of [x, y0, y1]) t.dispose();
    opt.dispose();
    model.dispose();
  });

  it('gradient accumulation over two backwards sums in the arena; a hand-assigned gradient is copied in', async () => {
    const a = tensor([1, 2, 3], { requiresGrad: true });
    const b = tensor([4, 5], { requiresGrad: true });
    const opt = new optim.SGD([a, b], { lr: 1 });
    tidy(() => a.mul(tensor([1, 1, 1])).sum().backward());
    tidy(() => a.mul(tensor([0.5, 0, 2])).sum().backward());
    b.grad = tensor([10, 20]);
    opt.step();
    expect(Array.from(await a.toArray())).toEqual([-0.5, 1, 0]);
    expect(Array.from(await b.toArray())).toEqual([-6, -15]);
    // A strided gradient (a transposed view) is copied into the slot by a kernel.
    opt.zeroGrad();
    const m = tensor([[1, 2], [3, 4]], { requiresGrad: true });
    const opt2 = new optim.SGD([m], { lr: 1 });
    m.grad = tensor([[10, 20], [30, 40]]).transpose(0, 1);
    opt2.step();
    expect(Array.from(await m.toArray())).toEqual([-9, -28, -17, -36]);
    for (const t of [a, b, m]) t.dispose();
    opt.dispose();
    opt2.dispose();
  });

  it('a parameter in two optimizers: the first keeps it in its arena, the second copies; both updates apply', async () => {
    const p = tensor([1, 2], { requiresGrad: true });
    const q = tensor([3], { requiresGrad: true });
    const o1 = new optim.SGD([p], { lr: 1 });
    const o2 = new optim.SGD([p, q], { lr: 0.5 });
    tidy(() => p.add(q).sum().backward());
    o1.step(); // p = [0, 1]
    o2.step(); // p = [-0.5, 0.5], q = 3 - 0.5 * 2 (q is broadcast over p's two elements)
    expect(Array.from(await p.toArray())).toEqual([-0.5, 0.5]);
    expect(Array.from(await q.toArray())).toEqual([2]);
    // Once the first is disposed, the second moves the parameter into its arena at its next step.
    o1.dispose();
    const o2Arena = q.storage;
    o2.zeroGrad();
    tidy(() => p.add(q).sum().backward());
    o2.step(); // p = [-1, 0], q = 1
    expect(p.storage).toBe(o2Arena);
    expect(Array.from(await p.toArray())).toEqual([-1, 0]);
    o2.zeroGrad();
    tidy(() => p.add(q).sum().backward());
    resetStats();
    o2.step(); // p = [-1.5, -0.5], q = 0
    expect(stats.copies, 'no copies once the parameter moved in').toBe(0);
    expect(Array.from(await p.toArray())).toEqual([-1.5, -0.5]);
    expect(Array.from(await q.toArray())).toEqual([0]);
    // A new optimizer after both are disposed moves both parameters into its own arena.
    o2.dispose();
    const o3 = new optim.SGD([p, q], { lr: 1 });
    expect(p.storage).toBe(q.storage);
    o3.zeroGrad();
    tidy(() => p.add(q).sum().backward());
    resetStats();
    o3.step();
    expect(stats.copies).toBe(stats.uploads); // only the step table's staged upload
    expect(Array.from(await p.toArray())).toEqual([-2.5, -1.5]);
    expect(Array.from(await q.toArray())).toEqual([-2]);
    o3.dispose();
    p.dispose();
    q.dispose();
  });

  it('a parameter whose storage another tensor shares stays there, and the other tensor sees the updates', async () => {
    const w = tensor([1, 2, 3, 4], { requiresGrad: true });
    const detached = w.detach();
    const view = detached.reshape([2, 2]);
    const opt = new optim.SGD([w], { lr: 1 });
    expect(w.storage).toBe(view.storage);
    tidy(() => w.sum().backward());
    opt.step();
    expect(Array.from(await view.toArray())).toEqual([0, 1, 2, 3]);
    // Once the view is gone, the next step moves the parameter in.
    const shared = view.storage;
    view.dispose();
    detached.dispose();
    opt.zeroGrad();
    tidy(() => w.sum().backward());
    opt.step();
    expect(w.storage).not.toBe(shared);
    expect(Array.from(await w.toArray())).toEqual([-1, 0, 1, 2]);
    opt.dispose();
    w.dispose();
  });

  it('parameters skipped on some steps keep their own step counts (Adam bias correction) as the reference path', async () => {
    const mk = () => [tensor([0.5, -1], { requiresGrad: true }), tensor([2, 0.25, -0.75], { requiresGrad: true })];
    const fused = mk();
    const ref = mk();
    const o1 = new optim.Adam(fused, { lr: 0.1 });
    const o2 = new optim.Adam(ref, { lr: 0.1, impl: 'reference' });
    const pattern = [[true, false], [true, true], [false, true], [true, true]];
    for (const [k, on] of pattern.entries()) {
      for (const [o, ps] of [[o1, fused], [o2, ref]] as const) {
        o.zeroGrad();
        const used = ps.filter((_, i) => on[i]);
        backwardThrough(used, k + 1);
        o.step();
      }
      expect(o1.steps).toEqual(o2.steps);
      // A wrong step count would change the bias correction by 10% or more; rounding stays far below.
      expectClose(await read(fused), await read(ref), 5e-5);
    }
    expect(o1.steps).toEqual([3, 3]);
    const st = o1.state(1);
    expect(st.step).toBe(3);
    expect(st.m!.shape).toEqual([3]);
    st.m!.dispose();
    st.v!.dispose();
    o1.dispose();
    o2.dispose();
    for (const p of [...fused, ...ref]) p.dispose();
  });

  it('arenas split at the binding limit: one dispatch per arena, same results', async () => {
    const saved = arenaLimits.maxElements;
    arenaLimits.maxElements = 200;
    try {
      const fused = hundredParams();
      const ref = hundredParams();
      const o1 = new optim.SGD(fused, { lr: 0.1, momentum: 0.9, nesterov: true });
      const o2 = new optim.SGD(ref, { lr: 0.1, momentum: 0.9, nesterov: true, impl: 'reference' });
      const arenas = new Set(fused.map((p) => p.storage)).size;
      expect(arenas).toBeGreaterThan(3);
      for (let k = 1; k <= 2; k++) {
        for (const [o, ps] of [[o1, fused], [o2, ref]] as const) {
          o.zeroGrad();
          backwardThrough(ps, k);
        }
        resetStats();
        o1.step();
        expect(stats.dispatches).toBe(arenas);
        o2.step();
        expectClose(await read(fused), await read(ref));
      }
      o1.dispose();
      o2.dispose();
      for (const p of [...fused, ...ref]) p.dispose();
    } finally {
      arenaLimits.maxElements = saved;
    }
  });

  it('an optimizer made inside tidy() keeps its arenas; dispose() frees them and leaves the parameters readable', async () => {
    const base = memory().buffers;
    const p = tensor([1, 2, 3], { requiresGrad: true });
    const opt = tidy(() => new optim.Adam([p], { lr: 0.1 }));
    tidy(() => p.sum().backward());
    tidy(() => opt.step());
    const after1 = Array.from(await p.toArray());
    opt.zeroGrad();
    opt.dispose();
    expect(Array.from(await p.toArray())).toEqual(after1);
    expect(() => opt.step()).toThrow(DisposedError);
    p.dispose();
    expect(memory().buffers).toBe(base);
  });

  it('step() after a parameter was disposed is a DisposedError naming it, with no GPU work', () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const b = tensor([[1, 2, 3]], { requiresGrad: true });
    const opt = new optim.SGD([a, b], { lr: 1 });
    tidy(() => a.sum().backward());
    b.dispose();
    expectThrows(() => opt.step(), DisposedError, 'parameter 1 [1,3] was disposed');
    opt.dispose();
    a.dispose();
  });

  it('a gradient of the wrong shape or dtype is refused before any GPU work', () => {
    const a = tensor([1, 2], { requiresGrad: true });
    const opt = new optim.SGD([a], { lr: 1 });
    a.grad = tensor([1, 2, 3]);
    expectThrows(() => opt.step(), ShapeError, 'gradient [3] of parameter 0 does not match');
    // f16 gradients are taken (test/optim/grad_scaler.test.ts); integer ones are not.
    a.grad = tensor([1, 2], { dtype: 'i32' });
    expectThrows(() => opt.step(), DTypeError, 'is i32', 'f32 or f16');
    opt.dispose();
    a.dispose();
  });

  it('options are checked: an unknown key is a ValueError naming it, before anything is allocated', () => {
    const a = tensor([1], { requiresGrad: true });
    expectThrows(() => new optim.AdamW([a], { lR: 1 } as never), ValueError, "unknown option 'lR'", "did you mean 'lr'");
    expectThrows(() => new optim.SGD([a], { lr: 1, momentom: 0.9 } as never), ValueError, "'momentom'", "'momentum'");
    expectThrows(() => new optim.Adam([a], { amsgrad: true } as never), ValueError, "'amsgrad'");
    expectThrows(() => new optim.SGD([a], { lr: 1, nesterov: 1 } as never), ValueError, 'nesterov must be true or false');
    expectThrows(() => new optim.SGD([a], { lr: 1, impl: 'fast' } as never), ValueError, 'impl');
    expectThrows(() => new optim.SGD([a, 3] as never, { lr: 1 }), ValueError, 'parameter 1 is not a Tensor');
    const opt = new optim.SGD([a], { lr: 1 });
    expectThrows(() => new optim.WarmupCosineLR(opt, { warmupSteps: 2, totalStep: 6 } as never), ValueError, "'totalStep'");
    expectThrows(() => new optim.CosineAnnealingLR(opt, { tMax: 0 }), ValueError, 'tMax must be an integer >= 1');
    expectThrows(() => new optim.LinearWarmupLR(opt, { warmupSteps: 1.5 }), ValueError, 'warmupSteps');
    expectThrows(() => optim.clipGradNorm([a], -1), ValueError, 'maxNorm');
    opt.dispose();
    a.dispose();
  });

  it('grids past 65,535 workgroups: an arena of 2^24 + 300 elements updates its last elements', async () => {
    const n = 65_536 * 256 + 300;
    const p = full([n], 1, { requiresGrad: true });
    const opt = new optim.SGD([p], { lr: 0.5 });
    p.grad = full([n], 2);
    opt.step();
    const tail = p.slice(0, n - 5);
    expect(Array.from(await tail.toArray())).toEqual([0, 0, 0, 0, 0]);
    const head = p.slice(0, 0, 3);
    expect(Array.from(await head.toArray())).toEqual([0, 0, 0]);
    for (const t of [tail, head]) t.dispose();
    opt.dispose();
    p.dispose();
  });
});

describe('clipGradNorm', () => {
  it('gradients in one arena: two dispatches and no readback; the norm and the scaled gradients match float64', async () => {
    const params = hundredParams();
    const opt = new optim.SGD(params, { lr: 0.1 });
    backwardThrough(params, 5);
    const host = await Promise.all(params.map(async (p) => Array.from(await p.grad!.toArray())));
    let sq = 0;
    for (const g of host) for (const v of g) sq += v * v;
    const want = Math.sqrt(sq);
    resetStats();
    const norm = optim.clipGradNorm(params, 1);
    expect(stats.dispatches).toBe(2);
    expect(stats.readbacks).toBe(0);
    expect(norm.shape).toEqual([]);
    expect(await norm.item()).toBeCloseTo(want, 4);
    const coef = Math.min(1 / (want + 1e-6), 1);
    const got = await Promise.all(params.map(async (p) => Array.from(await p.grad!.toArray())));
    expectClose(got, host.map((g) => g.map((v) => v * coef)), 1e-5);
    // The arena keeps the segment table: clipping the same gradients again uploads and copies nothing.
    backwardThrough(params, 6);
    resetStats();
    optim.clipGradNorm(params, 1).dispose();
    expect({ dispatches: stats.dispatches, uploads: stats.uploads, copies: stats.copies }).toEqual({ dispatches: 2, uploads: 0, copies: 0 });
    norm.dispose();
    opt.dispose();
    for (const p of params) p.dispose();
  });

  it('gradients in separate buffers: two dispatches per buffer; f16 gradients are clipped too', async () => {
    const a = tensor([3, 0], { requiresGrad: true });
    const b = tensor([4], { requiresGrad: true });
    const c = tensor([0, 0], { dtype: 'f16', requiresGrad: true });
    a.grad = tensor([3, 0]);
    b.grad = tensor([4]);
    c.grad = tensor([0, 0], { dtype: 'f16' });
    resetStats();
    const norm = optim.clipGradNorm([a, b, c, a], 1);
    // a and b: 2 buffers x 2; c: cast to f32, 2, cast back.
    expect(stats.dispatches).toBe(8);
    expect(await norm.item()).toBeCloseTo(5, 5);
    expect(Array.from(await a.grad!.toArray()).map((v) => +v.toFixed(5))).toEqual([0.6, 0]);
    expect((await b.grad!.toArray())[0]).toBeCloseTo(0.8, 5);
    expect(c.grad!.dtype).toBe('f16');
    const n2 = optim.clipGradNorm([], 1);
    expect(await n2.item()).toBe(0);
    for (const t of [a, b, c, norm, n2]) t.dispose();
  });

  it('NaN in one arena gradient makes the norm and every gradient NaN (PyTorch), also through the optimizer', async () => {
    const p = tensor([1, 2, 3], { requiresGrad: true });
    const q = tensor([4], { requiresGrad: true });
    const opt = new optim.SGD([p, q], { lr: 1 });
    tidy(() => p.mul(tensor([NaN, 2, 2])).sum().add(q.sum()).backward());
    const norm = optim.clipGradNorm([p, q], 1);
    expect(Number.isNaN(await norm.item())).toBe(true);
    expect(Array.from(await p.grad!.toArray()).every(Number.isNaN)).toBe(true);
    expect(Number.isNaN((await q.grad!.toArray())[0])).toBe(true);
    opt.step();
    expect(Array.from(await p.toArray()).every(Number.isNaN)).toBe(true);
    norm.dispose();
    opt.dispose();
    p.dispose();
    q.dispose();
  });
});
