// What the NaN handling and the device-side index checks cost, measured on this adapter in one run. Each case runs
// with the kernels as they are and with a variant that leaves the feature out, alternating trials, and reports the
// ratio of median CPU times (the process's, which includes lavapipe's shader threads):
//   NaN handling: the same kernel files with numerics.wgsl swapped for a version that trusts the compiler (is_nan is
//   false, max_nan is max, ...), so the difference is exactly the bit tests and selects;
//   index checks: gather.wgsl and crossentropy.wgsl with a no-op report_index_error and without the kiln_errors
//   binding, so dispatch() binds no flag and no sync copies it.
// On demand only (it takes many minutes on a software adapter):
//   KILN_COSTS=1 npx vitest run test/gpu/costs.test.ts
import { describe, expect, it, vi } from 'vitest';
import * as K from '../../src/index.node';
import { deviceInfo, F, nn, optim, tensor } from '../../src/index.node';
import * as kernels from '../../src/gpu/kernels';
import type { KernelModule } from '../../src/gpu/kernels';
import { kernelModule } from '../../src/experimental';

// The launchers import their kernel modules and call dispatch(); a spy on dispatch hands it the variant of a module
// while one is swapped in (each module object has its own pipelines, so trials can alternate).
const swapped = new Map<string, KernelModule>();
const realDispatch = kernels.dispatch;
vi.spyOn(kernels, 'dispatch').mockImplementation(((kernel: KernelModule | string, entry: string, spec: kernels.DispatchSpec) =>
  realDispatch(swapped.get(typeof kernel === 'string' ? kernel : kernel.file) ?? kernel, entry, spec)) as typeof kernels.dispatch);
const original = (file: string) => kernelModule(file);

const RUN = process.env.KILN_COSTS === '1';
const TRIALS = Number(process.env.KILN_COSTS_TRIALS ?? 15);
const TIMEOUT = 3_600_000;


const TRUSTING_NUMERICS = `
var<private> num_nan_bits: u32 = 0x7fc00000u;
fn is_nan(x: f32) -> bool { return false; }
fn is_inf(x: f32) -> bool { return false; }
fn is_neg_inf(x: f32) -> bool { return bitcast<u32>(x) == 0xff800000u; }
fn nan_f32() -> f32 { return bitcast<f32>(num_nan_bits); }
fn inf_f32() -> f32 { return bitcast<f32>(num_nan_bits ^ 0x00400000u); }
fn neg_inf_f32() -> f32 { return bitcast<f32>(num_nan_bits ^ 0x80400000u); }
fn max_nan(a: f32, b: f32) -> f32 { return max(a, b); }
fn min_nan(a: f32, b: f32) -> f32 { return min(a, b); }
fn clamp_nan(x: f32, lo: f32, hi: f32) -> f32 { return min(max(x, lo), hi); }
fn f_eq(a: f32, b: f32) -> bool { return a == b; }
fn f_ne(a: f32, b: f32) -> bool { return a != b; }
fn f_lt(a: f32, b: f32) -> bool { return a < b; }
fn f_le(a: f32, b: f32) -> bool { return a <= b; }
fn truthy(x: f32) -> bool { return x != 0.0; }
`;
const NO_CHECKS = `
const CHECK_ROWS: u32 = 1u;
const CHECK_CLASSES: u32 = 2u;
fn report_index_error(kind: u32, check_id: u32, position: u32, value: i32, limit: u32) {}
`;

/** `mod` with its include `name` replaced by a module holding `code`, and (optionally) a binding dropped. */
function variant(mod: KernelModule, name: string, code: string, dropBinding?: string): KernelModule {
  const inc = mod.includes.find((m) => m.file === name);
  if (!inc) throw new Error(`${mod.file} does not include ${name}`);
  const fake = { ...inc, code } as KernelModule;
  const entries = Object.fromEntries(
    Object.entries(mod.entries).map(([e, info]) => [e, { ...info, bindings: info.bindings.filter((b) => b.name !== dropBinding) }]),
  );
  return { ...mod, includes: mod.includes.map((m) => (m === inc ? fake : m)), entries } as KernelModule;
}

const trusting = (...files: string[]) => Object.fromEntries(files.map((f) => [f, variant(original(f), 'numerics.wgsl', TRUSTING_NUMERICS)]));
const unchecked = (...files: string[]) => Object.fromEntries(files.map((f) => [f, variant(original(f), 'index_check.wgsl', NO_CHECKS, 'kiln_errors')]));

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Median CPU ms per call of `step` with the kernels as they are and with the variants `old` in their place, alternating
 * trials so that drift (other work on the machine) hits both alike.
 */
async function compare(name: string, old: Record<string, KernelModule>, reps: number, step: () => Promise<void> | void): Promise<{ name: string; now: number; before: number; ratio: number }> {
  const files = Object.keys(old);
  const use = (variants: boolean) => {
    for (const f of files) if (variants) swapped.set(f, old[f]); else swapped.delete(f);
  };
  // CPU time of the whole process (lavapipe runs the shaders on this process's threads): unlike wall time it does not
  // grow when other work shares the machine's cores.
  const run = async (): Promise<number> => {
    await step(); // warm: pipelines compiled, pool filled
    await K.sync();
    const c0 = process.cpuUsage();
    for (let i = 0; i < reps; i++) await step();
    await K.sync();
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000 / reps;
  };
  const now: number[] = [];
  const before: number[] = [];
  try {
    for (let t = 0; t < TRIALS; t++) {
      use(false);
      now.push(await run());
      use(true);
      before.push(await run());
    }
  } finally {
    use(false);
  }
  const r = { name, now: median(now), before: median(before), ratio: median(now) / median(before) };
  console.log(
    `${name.padEnd(58)} with ${r.now.toFixed(2)} ms  without ${r.before.toFixed(2)} ms  ratio ${r.ratio.toFixed(3)}` +
      `  (fastest trials: ${(Math.min(...now) / Math.min(...before)).toFixed(3)})`,
  );
  return r;
}

describe.runIf(RUN)('costs (one run, ratios on this adapter)', () => {
  it('NaN handling: elementwise, reductions, softmax, layerNorm, crossEntropy', async () => {
    const info = deviceInfo();
    console.log(`adapter: ${info.vendor} ${info.architecture} ${info.device} ${info.description}`.trim());
    const x = K.randn([512, 512], { seed: 1 });
    const y = K.randn([512, 512], { seed: 2 });
    const tall = K.randn([16384, 16], { seed: 3 });
    const targets = tensor(Int32Array.from({ length: 512 }, (_, i) => i % 500), { shape: [512] });
    const old = trusting;
    const ew = old('elementwise.wgsl');
    // The variants are what run while swapped in: without the bit tests lavapipe drops the NaN.
    const probe = tensor([1, NaN, 3]);
    const red0 = old('reduce.wgsl');
    expect(Number.isNaN(await K.max(probe).item())).toBe(true);
    swapped.set('reduce.wgsl', red0['reduce.wgsl']);
    console.log(`max([1, NaN, 3]) with the trusting numerics: ${await K.max(probe).item()}`);
    swapped.clear();
    probe.dispose();
    const rows: Awaited<ReturnType<typeof compare>>[] = [];
    const one = (f: () => K.Tensor) => () => f().dispose();
    rows.push(await compare('relu [512,512]', ew, 5, one(() => K.relu(x))));
    rows.push(await compare('clamp [512,512]', ew, 5, one(() => K.clamp(x, -0.5, 0.5))));
    rows.push(await compare('maximum [512,512]', ew, 5, one(() => K.maximum(x, y))));
    rows.push(await compare('lt [512,512]', ew, 5, one(() => K.lt(x, y))));
    rows.push(await compare('add [512,512] (untouched op, same kernel file)', ew, 5, one(() => K.add(x, y))));
    const red = old('reduce.wgsl');
    rows.push(await compare('max over rows [512,512] (workgroup per row)', red, 5, one(() => K.max(x, 1))));
    rows.push(await compare('argmax over rows [16384,16] (thread per row)', red, 5, one(() => K.argmax(tall, 1))));
    rows.push(await compare('sum over rows [512,512] (untouched op)', red, 5, one(() => K.sum(x, 1))));
    rows.push(await compare('softmax [512,512]', old('softmax.wgsl'), 5, one(() => K.softmax(x, 1))));
    rows.push(await compare('layerNorm [512,512]', old('layernorm.wgsl'), 5, one(() => K.layerNorm(x, [512]))));
    rows.push(await compare('crossEntropy [512,512] forward', old('crossentropy.wgsl'), 5, one(() => F.crossEntropy(x, targets))));
    for (const t of [x, y, tall, targets]) t.dispose();
    expect(rows.every((r) => r.ratio > 0)).toBe(true);
  }, TIMEOUT);

  it('index checks: embedding and crossEntropy forward/backward, and a training step', async () => {
    const old = unchecked('gather.wgsl', 'crossentropy.wgsl');
    // The variant is what runs while swapped in: a bad id raises nothing then.
    const table = K.randn([3, 2], { seed: 9 });
    const bad = tensor([0, 5], { dtype: 'i32' });
    await expect(F.embedding(bad, table).toArray()).rejects.toBeInstanceOf(K.IndexError);
    swapped.set('gather.wgsl', old['gather.wgsl']);
    await F.embedding(bad, table).toArray();
    swapped.clear();
    table.dispose();
    bad.dispose();
    const V = 1000, E = 128;
    const weight = K.randn([V, E], { seed: 4, requiresGrad: true });
    const ids = tensor(Int32Array.from({ length: 32 * 64 }, (_, i) => (i * 7919) % V), { shape: [32, 64] });
    const logits = K.randn([1024, V], { seed: 5, requiresGrad: true });
    const targets = tensor(Int32Array.from({ length: 1024 }, (_, i) => (i * 31) % V), { shape: [1024] });
    await compare('embedding forward [32,64] from [1000,128]', old, 5, () => F.embedding(ids, weight).dispose());
    await compare('embedding forward + backward', old, 3, () => {
      K.tidy(() => F.embedding(ids, weight).sum()).backward();
      weight.grad?.dispose();
      weight.grad = null;
    });
    await compare('crossEntropy forward [1024,1000]', old, 3, () => F.crossEntropy(logits, targets).dispose());
    await compare('crossEntropy forward + backward', old, 3, () => {
      K.tidy(() => F.crossEntropy(logits, targets)).backward();
      logits.grad?.dispose();
      logits.grad = null;
    });
    for (const t of [weight, ids, logits, targets]) t.dispose();

    // A training step of a small token model: embedding, two linear layers, cross-entropy, backward, AdamW, and the
    // loss read back every step (the sync that also reads the index-error words).
    const emb = new nn.Embedding(256, 64);
    const l1 = new nn.Linear(64, 128);
    const l2 = new nn.Linear(128, 256);
    const params = [...emb.parameters(), ...l1.parameters(), ...l2.parameters()];
    const opt = new optim.AdamW(params, { lr: 1e-3 });
    const tokens = tensor(Int32Array.from({ length: 16 * 32 }, (_, i) => (i * 13) % 256), { shape: [16, 32] });
    const next = tensor(Int32Array.from({ length: 16 * 32 }, (_, i) => (i * 13 + 1) % 256), { shape: [16 * 32] });
    await compare('training step (embedding, 2 linear, CE, AdamW, read loss)', old, 3, async () => {
      opt.zeroGrad();
      const loss = K.tidy(() => {
        const h = K.relu(l1.forward(emb.forward(tokens)));
        return F.crossEntropy(K.reshape(l2.forward(h), [16 * 32, 256]), next);
      });
      loss.backward();
      opt.step();
      await loss.item();
      loss.dispose();
    });
    tokens.dispose();
    next.dispose();
  }, TIMEOUT);
});
