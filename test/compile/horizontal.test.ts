// Horizontal fusion (src/compile/horizontal.ts): independent neighbouring dispatches run as one generated kernel,
// `multi.<a>+<b>`. Every case compares the merged plan with the unmerged one (`fuse: { horizontal: false }`) and with
// eager bit for bit, on odd shapes with NaN and infinities among the inputs.
import { describe, expect, it } from 'vitest';
import { F, autocast, compile, defineOp, layerNorm, nn, optim, tensor, tidy, type OpContext, type Tensor } from '../../src/index.node';
import { resetStats, stats } from '../../src/gpu/queue';
import { values } from './values';

const t = (shape: number[], seed: number, special = true) => tensor(values(shape.reduce((a, b) => a * b, 1), seed, special), { shape });

/** Bit-for-bit (NaN payloads aside). */
function sameBits(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const a = got[i], b = want[i];
    if (!(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)))) expect(`${what}[${i}]: ${a}`).toBe(`${what}[${i}]: ${b}`);
  }
}

interface Run {
  merged: number;
  plain: number;
  explain: string;
}

/** fn eagerly, compiled without the horizontal pass and with it (4 calls each, so the plans replay): equal bits. */
async function check(name: string, fn: (...xs: Tensor[]) => Tensor[], inputs: Tensor[]): Promise<Run> {
  const want = await Promise.all(fn(...inputs).map(async (r) => {
    const v = Array.from(await r.toArray());
    r.dispose();
    return v;
  }));
  const counts: number[] = [];
  let explain = '';
  for (const horizontal of [false, true]) {
    const step = compile((...xs: Tensor[]) => tidy(() => fn(...xs)), { fuse: { horizontal } });
    for (let k = 0; k < 4; k++) {
      resetStats();
      const rs = step(...inputs) as Tensor[];
      counts[horizontal ? 1 : 0] = stats.dispatches;
      for (const [j, r] of rs.entries()) {
        sameBits(Array.from(await r.toArray()), want[j], `${name} horizontal=${horizontal} call ${k} output ${j}`);
        r.dispose();
      }
    }
    expect(step.fallbackReason).toBe(null);
    expect(step.stats.replays).toBe(2);
    if (horizontal) explain = step.explain({ wgsl: true });
    else expect(step.explain()).not.toContain('multi.');
    step.dispose();
  }
  return { plain: counts[0], merged: counts[1], explain };
}

// Every builtin a member can ask for, on a 3-D grid of 4 x 3 workgroups (12 threads: smaller than the merged
// workgroup and not dividing it), and arrayLength of a renamed binding. (The builtins are mixed in integers: a float
// expression such as a * b + c may be contracted to an fma differently once inlined elsewhere.)
const BUILTINS_WGSL = `
struct Params { n: u32, k: f32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

fn code(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, gid: vec3<u32>) -> f32 {
  return f32(wid.x + 10u * wid.y + 100u * wid.z + 1000u * (lid.x + 4u * lid.y + 12u * lid.z)
    + 100000u * (gid.x * 7u + gid.y * 13u + gid.z * 17u) + 1000000u * (nwg.x + 3u * nwg.y + 5u * nwg.z));
}

@compute @workgroup_size(4, 3, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  let i = g * 12u + li;
  if (i >= params.n) { return; }
  y[i] = x[i % arrayLength(&x)] * params.k;
  c[i] = code(wid, nwg, lid, gid) + f32(li);
}`;

// Workgroup memory and barriers (W x W threads, 8 x 8 or 4 x 4; a 2-D grid): each value minus its workgroup's mean.
const CENTER_WGSL = `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
override W: u32 = 8u;
var<workgroup> tile: array<f32, 64>;

@compute @workgroup_size(W, W, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let T = W * W;
  let g = wid.x + nwg.x * wid.y;
  let i = g * T + li;
  tile[li] = select(0.0, x[min(i, params.n - 1u)], i < params.n);
  workgroupBarrier();
  for (var s = T / 2u; s > 0u; s = s / 2u) {
    if (li < s) { tile[li] = tile[li] + tile[li + s]; }
    workgroupBarrier();
  }
  if (i < params.n) { y[i] = x[i] - tile[0] / f32(T); }
}`;

/** The builtins kernel as an op returning one of its two outputs (both ops in one step: one module, two members). */
const builtinsOf = (name: string, which: 'y' | 'c') =>
  defineOp({
    name,
    kernel: BUILTINS_WGSL,
    forward(ctx: OpContext, x: Tensor) {
      const n = 3 * 2 * 2 * 12 - 5;
      return ctx.launch({ inputs: { x }, outputs: { y: { shape: [n] }, c: { shape: [n] } }, params: { n, k: 1.5 }, workgroups: [3, 2, 2] })[which];
    },
  });
const builtinsOp = builtinsOf('builtins3d', 'y');
const builtinsCode = builtinsOf('builtins3d.code', 'c');
const centerOf = (name: string, W: number, kernel = CENTER_WGSL) =>
  defineOp({
    name,
    kernel,
    forward(ctx: OpContext, x: Tensor) {
      return ctx.launch({ inputs: { x }, outputs: { y: { shape: x.shape } }, params: { n: x.size }, constants: { W }, workgroups: [2, Math.ceil(x.size / (2 * W * W)), 1] }).y;
    },
  });
const centerOp = centerOf('center2d', 8);
const center16 = centerOf('center16', 4);
// Another module whose workgroup array has the type of CENTER_WGSL's: merged, the two share one declaration.
const centerB = centerOf('centerB', 8, CENTER_WGSL.replace(/\btile\b/g, 'scratch'));

describe('compile: horizontal fusion', () => {
  it('two independent matmuls and a sum become one dispatch; equal to unmerged and eager (NaN, inf)', async () => {
    const a = t([37, 13], 1), b = t([13, 67], 2), c = t([5, 19], 3), d = t([19, 68], 4), x = t([23, 11], 5);
    const r = await check('matmul+matmul+sum', (p, q, u, v, s) => [p.matmul(q), u.matmul(v), s.sum(0)], [a, b, c, d, x]);
    expect(r.explain).toContain('multi.matmul+matmul+sum');
    expect(r.explain).toContain('horizontal: 3 dispatches merged into 1');
    expect(r.explain).toContain('fn main(');
    expect(r.merged).toBe(r.plain - 2);
    for (const z of [a, b, c, d, x]) z.dispose();
  });

  it('members of different workgroup sizes (matmul 32, elementwise 256, a reduction) and a member with barriers and workgroup memory (layerNorm)', async () => {
    const a = t([29, 7], 6), b = t([7, 33], 7), x = t([3, 301], 8), y = t([17, 45], 9), w = t([45], 10, false), bias = t([45], 11, false);
    const sizes = await check('matmul+exp', (p, q, s) => [p.matmul(q), s.exp()], [a, b, x]);
    expect(sizes.explain).toMatch(/multi\.matmul\+\w+/);
    expect(sizes.merged).toBeLessThan(sizes.plain);
    const ln = await check('layerNorm+matmul', (s, p, q, g, h) => [layerNorm(s, 45, g, h), p.matmul(q)], [y, a, b, w, bias]);
    expect(ln.explain).toContain('multi.layerNorm+matmul');
    expect(ln.merged).toBeLessThan(ln.plain);
    // A member with barriers smaller than one without: the layerNorm pass's matmul (barriers) sets the size and each
    // of the elementwise op's 256-thread workgroups is split over several merged ones.
    const b31 = t([7, 31], 22), g31 = t([31], 20, false), h31 = t([31], 21, false);
    const split = await check('linear+layerNorm / exp', (p, q, s, g, h) => [layerNorm(p.matmul(q), 31, g, h), s.exp()], [a, b31, x, g31, h31]);
    expect(split.explain).toMatch(/multi\.\(matmul\+layerNorm\)\+exp/);
    expect(split.explain).toMatch(/let h_v = \(h_w - \d+u\) \* \d+u \+ h_lix;/);
    expect(split.merged).toBe(split.plain - 1);
    for (const z of [a, b, x, y, w, bias, b31, g31, h31]) z.dispose();
  });

  it('custom kernels on 2-D and 3-D grids with 2-D workgroups, every builtin, barriers and workgroup memory, next to a matmul', async () => {
    const x = t([301], 12), z = t([700], 13), a = t([9, 5], 14), b = t([5, 70], 15);
    // The same kernel twice (one module's members share what does not touch a binding), then the others.
    const r = await check('custom', (p, q, u, v) => [builtinsOp(p), builtinsCode(p), centerOp(q), u.matmul(v)], [x, z, a, b]);
    expect(r.explain).toContain('multi.builtins3d+builtins3d.code+center2d+matmul');
    expect(r.merged).toBe(r.plain - 3);
    // A member with barriers of 16 threads sets the merged size: the matmul's workgroups of 32 and a reduction's of
    // 64 are spread over several merged workgroups each.
    const s = await check('custom 16', (p, q, u, v) => [center16(q), u.matmul(v), p.sum(0), builtinsOp(p)], [x.reshape([7, 43]), z, a, b]);
    expect(s.explain).toMatch(/multi\.center16\+matmul\+sum/);
    expect(s.explain).toContain('@workgroup_size(16)');
    const shared = await check('workgroup memory shared', (p, q) => [centerOp(q), centerB(p)], [x, z]);
    expect(shared.explain).toContain('multi.center2d+centerB');
    expect(shared.explain.match(/var<workgroup>/g)?.length).toBe(1);
    for (const y of [x, z, a, b]) y.dispose();
  });

  it('a dependent pair is not merged; a read of a gradient and its in-place clamp (read-only vs writable) are not merged', async () => {
    const a = t([21, 9], 16), b = t([9, 14], 17);
    const dep = await check('dependent', (p, q) => [p.matmul(q).sum(0)], [a, b]);
    expect(dep.explain).not.toContain('multi.');
    const x = t([6, 10], 18), w = t([6, 10], 19, false);
    const clamp = await check('clamp', (s) => {
      const wl = w.detach();
      wl.requiresGrad = true;
      const loss = wl.mul(s).sum();
      loss.backward();
      const g = wl.grad!;
      const e = g.mul(2);
      optim.clipGradValue([wl], 0.5);
      const out = [e, g.add(0)];
      wl.grad = null;
      wl.dispose();
      return out;
    }, [x]);
    expect(clamp.explain).not.toMatch(/multi\.[^\n]*clip/);
    for (const y of [a, b, x, w]) y.dispose();
  });

  it('a training step (2 causal encoder layers, AdamW, clipping): merged equals unmerged bit for bit and eager to 1e-5 for 6 steps, with fewer dispatches', async () => {
    const B = 4, T = 16, E = 32, V = 67;
    const model = () => {
      const emb = new nn.Embedding(V, E, { seed: 1 });
      const layers = [0, 1].map((i) => new nn.TransformerEncoderLayer(E, 4, { dimFeedforward: 64, dropout: 0, isCausal: true, seed: 10 + 20 * i }));
      const head = new nn.Linear(E, V, { seed: 3 });
      const params = [...emb.parameters(), ...layers.flatMap((l) => l.parameters()), ...head.parameters()];
      const opt = new optim.AdamW(params, { lr: 3e-3 });
      const fn = (tokens: Tensor, targets: Tensor) =>
        tidy(() => {
          opt.zeroGrad();
          let h = emb.forward(tokens);
          for (const l of layers) h = l.forward(h);
          const loss = F.crossEntropy(head.forward(h).reshape([B * T, V]), targets);
          loss.backward();
          optim.clipGradNorm(params, 1).dispose();
          opt.step();
          return loss;
        });
      return { params, fn };
    };
    const eager = model();
    const plain = model();
    const merged = model();
    const steps = { plain: compile(plain.fn, { fuse: { horizontal: false } }), merged: compile(merged.fn) };
    const counts = { plain: 0, merged: 0 };
    for (let k = 0; k < 6; k++) {
      const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3 * k) % V);
      const tokens = tensor(ids, { shape: [B, T] });
      const targets = tensor(Int32Array.from(ids, (_t, i) => ids[(i + 1) % ids.length]), { shape: [B * T] });
      const le = eager.fn(tokens, targets);
      resetStats();
      const lp = steps.plain(tokens, targets);
      counts.plain = stats.dispatches;
      resetStats();
      const lm = steps.merged(tokens, targets);
      counts.merged = stats.dispatches;
      const [ve, vp, vm] = [await le.item(), await lp.item(), await lm.item()];
      expect(Object.is(vm, vp), `step ${k}: merged ${vm} vs unmerged ${vp}`).toBe(true);
      expect(Math.abs(vm - ve), `step ${k}: ${vm} vs eager ${ve}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(ve)));
      for (const z of [le, lp, lm, tokens, targets]) z.dispose();
    }
    expect(steps.merged.fallbackReason).toBe(null);
    const explain = steps.merged.explain();
    expect(explain).toMatch(/horizontal: \d+ dispatches merged into \d+/);
    expect(explain).toContain('multi.matmul+sum');
    expect(counts.merged).toBeLessThan(counts.plain);
    const [pp, pm, pe] = await Promise.all([plain.params, merged.params, eager.params].map((ps) => Promise.all(ps.map(async (p) => Array.from(await p.toArray())))));
    pm.forEach((row, i) => sameBits(row, pp[i], `param ${i}`));
    pe.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(pm[i][j] - v), `param ${i}[${j}]`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(v)))));
    console.log(`horizontal: training step ${counts.plain} -> ${counts.merged} dispatches\n${explain}`);
    steps.plain.dispose();
    steps.merged.dispose();
  });
  it('other kernel families: a conv net step (conv2d, conv1d, batchNorm, pooling, Adam): merged equals unmerged bit for bit, 4 steps', async () => {
    const make = () => {
      const conv = new nn.Conv2d(3, 5, 3, { padding: 1, seed: 4 });
      const bn = new nn.BatchNorm2d(5);
      const pool = new nn.MaxPool2d(2);
      const head = new nn.Linear(5 * 4 * 4, 7, { seed: 5 });
      const conv1 = new nn.Conv1d(3, 4, 3, { seed: 6 });
      const params = [...conv.parameters(), ...bn.parameters(), ...head.parameters(), ...conv1.parameters()];
      const opt = new optim.Adam(params, { lr: 1e-2 });
      return {
        params,
        fn: (x: Tensor, y: Tensor) =>
          tidy(() => {
            opt.zeroGrad();
            const h = pool.forward(bn.forward(conv.forward(x)).relu()).reshape([3, 5 * 4 * 4]);
            const side = conv1.forward(x.reshape([3, 3, 64])).mean();
            const loss = F.crossEntropy(head.forward(h), y).add(side.mul(0.1));
            loss.backward();
            opt.step();
            return loss;
          }),
      };
    };
    await sameSteps('conv net', make, t([3, 3, 8, 8], 22), tensor(Int32Array.from([1, 6, 3]), { shape: [3] }));
  });

  it('other kernel families: an autocast (f16) MLP step: merged equals unmerged bit for bit, 4 steps', async () => {
    const make = () => {
      const l1 = new nn.Linear(24, 40, { seed: 7 });
      const l2 = new nn.Linear(40, 9, { seed: 8 });
      const params = [...l1.parameters(), ...l2.parameters()];
      const opt = new optim.AdamW(params, { lr: 1e-2 });
      return {
        params,
        fn: (x: Tensor, y: Tensor) =>
          tidy(() => {
            opt.zeroGrad();
            const loss = autocast(() => F.crossEntropy(l2.forward(l1.forward(x).gelu()), y).float());
            loss.backward();
            opt.step();
            return loss;
          }),
      };
    };
    await sameSteps('autocast mlp', make, t([11, 24], 23, false), tensor(Int32Array.from({ length: 11 }, (_, i) => (i * 5) % 9), { shape: [11] }));
  });
});

/** A training step compiled with and without the horizontal pass: losses and parameters equal bit for bit. */
async function sameSteps(name: string, make: () => { params: Tensor[]; fn: (x: Tensor, y: Tensor) => Tensor }, x: Tensor, y: Tensor): Promise<void> {
  const plain = make();
  const merged = make();
  const steps = { plain: compile(plain.fn, { fuse: { horizontal: false } }), merged: compile(merged.fn) };
  for (let k = 0; k < 4; k++) {
    const lp = steps.plain(x, y);
    const lm = steps.merged(x, y);
    sameBits([await lm.item()], [await lp.item()], `${name} step ${k} loss`);
    lp.dispose();
    lm.dispose();
  }
  expect(steps.merged.fallbackReason, name).toBe(null);
  expect(steps.merged.explain(), name).toContain('horizontal:');
  const [pp, pm] = await Promise.all([plain.params, merged.params].map((ps) => Promise.all(ps.map(async (p) => Array.from(await p.toArray())))));
  pm.forEach((row, i) => sameBits(row, pp[i], `${name} param ${i}`));
  steps.plain.dispose();
  steps.merged.dispose();
  x.dispose();
  y.dispose();
}
