// defineOp: a fused bias + GELU (tanh) op from a user's WGSL kernel (the one docs/custom-ops.md shows): float64
// forward, gradcheck and finite differences, override specialisation, a profiler row under its name, no leak, and
// bad definitions or launches rejected with typed errors before any GPU work.
import { describe, expect, it } from 'vitest';
import { defineOp, gradcheck, tensor, memory, tidy, sync, ShapeError, ValueError, DeviceError, type Tensor, type OpContext } from '../../src/index.node';
import { startGpuTimer, hasTimestampQuery } from '../../src/experimental';
import { add as addRef, geluTanh as geluTanhRef } from '../reference/ops';
import { checkGradVsRef, expectThrows, fromRef, rnd } from '../helpers';

export const BIAS_GELU_WGSL = /* wgsl */ `
// bias_gelu: y = gelu_tanh(x + bias), the bias broadcast over rows, and the input gradient.
//   x, y, g, gx: [N, C] dense; bias: [C]. One thread per element, WG threads a workgroup (an override).
struct Params { n: u32, c: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> gx: array<f32>;

override WG: u32 = 64u;
const K: f32 = 0.7978845608028654; // sqrt(2 / pi)

fn gelu(z: f32) -> f32 {
  return 0.5 * z * (1.0 + tanh(K * (z + 0.044715 * z * z * z)));
}
fn gelu_grad(z: f32) -> f32 {
  let t = tanh(K * (z + 0.044715 * z * z * z));
  return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * K * (1.0 + 3.0 * 0.044715 * z * z);
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;
  if (i >= params.n) { return; }
  y[i] = gelu(x[i] + bias[i % params.c]);
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;
  if (i >= params.n) { return; }
  gx[i] = g[i] * gelu_grad(x[i] + bias[i % params.c]);
}
`;

function makeBiasGelu(wg = 64) {
  const sizes = (x: Tensor, bias: Tensor) => {
    const c = bias.shape[0];
    if (bias.rank !== 1 || x.shape[x.rank - 1] !== c) throw new ShapeError(`biasGelu: x [${x.shape}] must end in bias's ${c} features`);
    return { n: x.size, c };
  };
  return defineOp({
    name: 'biasGelu',
    kernel: BIAS_GELU_WGSL,
    entry: 'forward',
    forward(ctx: OpContext, x: Tensor, bias: Tensor) {
      const params = sizes(x, bias);
      ctx.saveForBackward(x, bias);
      return ctx.launch({ inputs: { x, bias }, outputs: { y: { shape: x.shape } }, params, constants: { WG: wg }, workgroups: Math.ceil(params.n / wg) }).y;
    },
    backward(ctx: OpContext, g: Tensor) {
      const [x, bias] = ctx.saved;
      const params = sizes(x, bias);
      const { gx } = ctx.launch({ entry: 'backward', inputs: { x, bias, g }, outputs: { gx: { shape: x.shape } }, params, constants: { WG: wg }, workgroups: Math.ceil(params.n / wg) });
      return [gx, gx.reshape([params.n / params.c, params.c]).sum(0)];
    },
  });
}

const refBiasGelu = (x: any, b: any) => geluTanhRef(addRef(x, b));

describe('defineOp: a fused bias + GELU op', () => {
  it('matches the float64 forward; its gradients match finite differences and gradcheck; odd shapes', async () => {
    const op = makeBiasGelu();
    for (const [shape, seed] of [[[3, 5], 1], [[2, 7, 13], 2], [[1, 1], 3], [[97, 3], 4]] as const) {
      const x = rnd(shape, seed, -3, 3), b = rnd([shape[shape.length - 1]], seed + 10);
      const xt = fromRef(x), bt = fromRef(b);
      const y = op(xt, bt);
      const got = Array.from(await y.toArray());
      const want = refBiasGelu(x, b).data;
      got.forEach((v, i) => expect(Math.abs(v - want[i]), `${shape} [${i}]`).toBeLessThan(2e-6 + 1e-5 * Math.abs(want[i])));
      for (const t of [y, xt, bt]) t.dispose();
      await checkGradVsRef((a, c) => op(a, c), refBiasGelu, [x, b], { label: `biasGelu ${shape}` });
    }
    const x = tensor([[0.5, -1, 2], [0.1, 0.2, -0.3]], { requiresGrad: true }), b = tensor([0.1, -0.2, 0.3], { requiresGrad: true });
    const r = await gradcheck((a: Tensor, c: Tensor) => op(a, c), [x, b]);
    expect(r.ok, JSON.stringify(r.inputs.map((i) => [i.maxAbsError, i.maxRelError]))).toBe(true);
    x.dispose();
    b.dispose();
  });

  it('override constants specialise the kernel (workgroup sizes 32 and 128 give the same values)', async () => {
    const x = fromRef(rnd([5, 37], 7, -2, 2)), b = fromRef(rnd([37], 8));
    const [a, c] = [makeBiasGelu(32)(x, b), makeBiasGelu(128)(x, b)];
    expect(Array.from(await a.toArray())).toEqual(Array.from(await c.toArray()));
    for (const t of [x, b, a, c]) t.dispose();
  });

  it('shows in the profiler under its name (forward) and name.entry (backward), and leaks nothing', async () => {
    const op = makeBiasGelu();
    const x = fromRef(rnd([4, 9], 5), { requiresGrad: true }), b = fromRef(rnd([9], 6), { requiresGrad: true });
    const base = memory().buffers;
    const timer = hasTimestampQuery() ? startGpuTimer() : null;
    const loss = tidy(() => op(x, b).mul(op(x, b)).sum());
    loss.backward();
    await loss.item();
    if (timer) {
      const t = await timer.stop();
      expect(t.byLabel['biasGelu']?.count).toBe(2);
      expect(t.byLabel['biasGelu.backward']?.count).toBe(2);
    }
    loss.dispose();
    x.grad!.dispose();
    b.grad!.dispose();
    x.grad = null;
    b.grad = null;
    expect(memory().buffers).toBe(base);
    // Without grad recording nothing is saved.
    const y = op(x.detach(), b.detach());
    y.dispose();
    expect(memory().buffers).toBe(base);
    for (const t of [x, b]) t.dispose();
  });

  it('bad definitions are ValueErrors naming the fault, before any GPU work', () => {
    const forward = (ctx: OpContext, x: Tensor) => x;
    const k = (body: string) => `@group(0) @binding(0) var<storage, read_write> y: array<f32>;\n${body}`;
    const main = '@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) { y[id.x] = 1.0; }';
    expectThrows(() => defineOp({ name: 'bad name!', kernel: k(main), forward }), ValueError, 'name');
    expectThrows(() => defineOp({ name: 'op', kernel: '', forward }), ValueError, 'WGSL source');
    expectThrows(() => defineOp({ name: 'op', kernel: k('fn helper() {}'), forward }), ValueError, 'no @compute entry point');
    expectThrows(() => defineOp({ name: 'op', kernel: k(main), entry: 'mian', forward }), ValueError, "no @compute entry point 'mian'", 'main');
    expectThrows(() => defineOp({ name: 'op', kernel: `@group(1) @binding(0) var<storage, read> y: array<f32>;\n${main}`, forward }), ValueError, '@group(1)');
    expectThrows(() => defineOp({ name: 'op', kernel: `struct P { v: vec4<f32> }\n@group(0) @binding(1) var<uniform> p: P;\n${k(main)}`, forward }), ValueError, 'vec4<f32>', 'u32, i32 and f32');
    expectThrows(() => defineOp({ name: 'op', kernel: k(main), forward: 3 as never }), ValueError, 'forward');
    expectThrows(() => defineOp({ name: 'op', kernel: k(main), forward, backwards: forward } as never), ValueError, "'backwards'", 'backward');
    expectThrows(() => defineOp({ name: 'op', kernel: k('@compute fn main() { y[0] = 1.0; }'), forward }), ValueError, 'workgroup_size');
  });

  it('bad calls and launches are typed errors before any GPU work, with nothing left behind', () => {
    const op = makeBiasGelu();
    const x = tensor([[1, 2, 3]], { requiresGrad: true }), b = tensor([1, 2]);
    expectThrows(() => op(x, b), ShapeError, 'bias');
    const plain = tensor([1, 2, 3]);
    const launchWith = (spec: object) =>
      defineOp({ name: 'probe', kernel: BIAS_GELU_WGSL, entry: 'forward', forward: (ctx, t) => ctx.launch(spec as never).y })(plain);
    const good = { inputs: { x: plain, bias: plain }, outputs: { y: { shape: [3] } }, params: { n: 3, c: 3 }, workgroups: 1 };
    expectThrows(() => launchWith({ ...good, inputs: { x: plain } }), ValueError, "'bias'", 'input or an output');
    expectThrows(() => launchWith({ ...good, params: { n: 3 } }), ValueError, "param 'c'");
    expectThrows(() => launchWith({ ...good, params: { n: 3, c: 3, d: 1 } }), ValueError, "field 'd'");
    expectThrows(() => launchWith({ ...good, constants: { WG2: 1 } }), ValueError, "'WG2'", 'WG');
    expectThrows(() => launchWith({ ...good, outputs: { y: { shape: [3] }, g: { shape: [3] } } }), ValueError, "'g'");
    expectThrows(() => launchWith({ ...good, workgroups: [1, 1, 1, 1] }), ValueError, 'workgroups');
    expectThrows(() => launchWith({ ...good, outputs: { y: { shape: [3], dtype: 'f16' } } }), Error, 'f16');
    // An op without backward refuses inputs that need a gradient.
    const noBackward = defineOp({ name: 'nb', kernel: BIAS_GELU_WGSL, entry: 'forward', forward: (ctx, t) => t });
    expectThrows(() => noBackward(x), ValueError, 'requires grad', 'no backward');
    for (const t of [x, b, plain]) t.dispose();
  });

  it('a kernel that does not compile is a DeviceError naming the op at the next sync', async () => {
    const broken = defineOp({
      name: 'broken',
      kernel: '@group(0) @binding(0) var<storage, read_write> y: array<f32>;\n@compute @workgroup_size(1) fn main() { y[0] = undefined_thing; }',
      forward: (ctx, x) => ctx.launch({ inputs: {}, outputs: { y: { shape: [1] } }, workgroups: 1 }).y,
    });
    const x = tensor([1]);
    const y = broken(x);
    await expect(sync()).rejects.toThrow(DeviceError);
    await expect(sync()).resolves.toBeUndefined();
    for (const t of [x, y]) t.dispose();
  });
});
