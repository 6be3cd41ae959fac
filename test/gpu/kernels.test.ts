// Kernel loading and command batching: kernels load from the modules the build reflects (no WGSL parser at run time);
// compile errors name the kernel file and line; a chain of ops is one submit.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { deviceInfo } from '../../src/index.node';
import { compileKernel, gpuStats, kernelFiles, kernelModule, resetGpuStats } from '../../src/experimental';
import { type KernelModule, dispatch, kernelCode, kernelVariant, pipeline } from '../../src/gpu/kernels';
import { KERNELS } from '../../src/launch/kernels/index';
import softmax from '../../src/launch/kernels/softmax';
// @ts-expect-error plain ESM without types
import { reflectKernel, stripComments } from '../../scripts/kernel_reflect.mjs';

/** A kernel module made the way the build makes them (wgsl_reflect), from sources given here. */
function testModule(file: string, sources: Record<string, string>, includes: KernelModule[] = []): KernelModule {
  const stripped = Object.fromEntries(Object.entries(sources).map(([f, t]) => [f, stripComments(t)]));
  const r = reflectKernel(file, stripped);
  return { ...r, includes };
}

const brokenSource = [
  '// A kernel with a type error on line 7.',
  '@group(0) @binding(0) var<storage, read_write> out: array<f32>;',
  '',
  '@compute @workgroup_size(1)',
  'fn main() {',
  '  let a: f32 = 1.0;',
  '  let b: u32 = a + 1u; // f32 + u32',
  '  out[0] = f32(b);',
  '}',
].join('\n');
const BROKEN = 'zz_broken_test.wgsl';

describe('kernel compile errors', () => {
  it('compileKernel throws a DeviceError naming the file, line and offending source line', async () => {
    const broken = testModule(BROKEN, { [BROKEN]: brokenSource });
    let caught: unknown = null;
    try {
      await compileKernel(broken);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(K.DeviceError);
    const msg = (caught as Error).message;
    expect(msg).toContain(`kernels/${BROKEN}:7:`);
    expect(msg).toContain('let b: u32 = a + 1u;');
  });

  it('an error in an included file names that file and its own line', async () => {
    const inc = testModule('zz_inc.wgsl', { 'zz_inc.wgsl': '// helper\n\nfn helper() -> f32 {\n  return 1u;\n}' });
    const main = testModule('zz_main.wgsl', {
      'zz_main.wgsl': '@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n//!include zz_inc.wgsl\n@compute @workgroup_size(1)\nfn main() { out[0] = helper(); }',
      'zz_inc.wgsl': 'fn helper() -> f32 {\n  return 1.0;\n}',
    }, [inc]);
    await expect(compileKernel(main)).rejects.toThrow(/kernels\/zz_inc\.wgsl:4:/);
  });

  it('a broken kernel used by a dispatch surfaces at the next readback, with its file and line', async () => {
    const broken = testModule(BROKEN, { [BROKEN]: brokenSource });
    const t = K.zeros([4]);
    let caught: unknown = null;
    try {
      dispatch(broken, 'main', { bindings: { out: t.buf().buffer }, workgroups: [1] });
      await t.toArray();
      await K.sync();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(K.DeviceError);
    expect((caught as Error).message).toContain(`kernels/${BROKEN}:7:`);
    t.dispose();
    // The device keeps working afterwards.
    const u = K.add(K.ones([3]), 1);
    expect(Array.from(await u.toArray())).toEqual([2, 2, 2]);
  });

  it('every shipped kernel compiles, with each generated variant the adapter can run', async () => {
    const info = deviceInfo();
    // Include-only files (no entry point) use names their includers declare: they compile as part of those.
    const entries = kernelFiles().filter((f) => Object.keys(KERNELS[f].entries).length > 0 || KERNELS[f].error);
    expect(entries.length).toBeGreaterThan(8);
    for (const f of entries) {
      const kernel = kernelModule(f);
      // A kernel that enables f16 itself (matmul_mma.wgsl: f16 tiles) compiles where the adapter has shader-f16.
      if (/^enable f16;/m.test(kernel.code) && !info.features.includes('shader-f16')) continue;
      await compileKernel(kernel);
      const tags: ('f16' | 'subgroups')[] = [];
      if (/^alias io_t = f32;/m.test(kernelCode(kernel)) && info.features.includes('shader-f16')) tags.push('f16');
      const hasSgInclude = (k: KernelModule): boolean => k.includes.some((m) => m.subgroups || hasSgInclude(m));
      if (hasSgInclude(kernel) && info.features.includes('subgroups')) tags.push('subgroups');
      for (const t of tags) await compileKernel(`${f}#${t}`);
      if (tags.length === 2) await compileKernel(kernelVariant(kernel, ['f16', 'subgroups']));
    }
  });
});

describe('kernel modules', () => {
  it('include resolution appends included files once, so the including file keeps its line numbers', () => {
    const helper = testModule('zz_helper.wgsl', { 'zz_helper.wgsl': '//!include zz_leaf.wgsl\nfn helper() -> f32 { return leaf(); }', 'zz_leaf.wgsl': 'fn leaf() -> f32 { return 1.0; }' }, [
      testModule('zz_leaf.wgsl', { 'zz_leaf.wgsl': 'fn leaf() -> f32 { return 1.0; }' }),
    ]);
    const main: KernelModule = { file: 'zz_main.wgsl', code: 'line1\n\n\n//!include zz_helper.wgsl\n\nline6\n//!include zz_helper.wgsl', includes: [helper], entries: {}, overrides: [], constants: {} };
    const out = kernelCode(main);
    const lines = out.split('\n');
    expect(lines[0]).toBe('line1');
    expect(lines[5]).toBe('line6');
    expect(out.match(/fn helper\(\)/g)).toHaveLength(1);
    expect(out.match(/fn leaf\(\)/g)).toHaveLength(1);
    const orphan: KernelModule = { ...main, file: 'zz_orphan.wgsl', includes: [] };
    expect(() => kernelCode(orphan)).toThrow(/zz_helper\.wgsl/);
  });

  it('variants transform the stored text: f16 aliases, subgroups siblings, directives on line 1', () => {
    const fwd = kernelModule('attention_forward.wgsl');
    const base = kernelCode(fwd);
    const f16 = kernelCode(kernelVariant(fwd, ['f16']));
    expect(f16.startsWith('enable f16; ')).toBe(true);
    expect(f16).toMatch(/^alias io_t = f16;/m);
    expect(f16.split('\n').length).toBe(base.split('\n').length);
    const sg = kernelCode(kernelModule('attention_forward.wgsl#subgroups'));
    expect(sg.startsWith('enable subgroups; ')).toBe(true);
    expect(sg).toContain('included from attention_rows_subgroups.wgsl');
    expect(base).not.toContain('attention_rows_subgroups.wgsl');
    expect(kernelVariant(fwd, ['subgroups', 'f16'])).toBe(kernelVariant(fwd, ['f16', 'subgroups']));
    expect(() => kernelCode(kernelVariant(softmax, ['f16']))).toThrow(/alias io_t/);
  });

  it('kernelModule (kiln/experimental) finds the module launchers import, and a pipeline is built once', () => {
    expect(kernelModule('softmax.wgsl')).toBe(softmax);
    expect(pipeline(kernelModule('softmax.wgsl'), 'forward').pipeline).toBe(pipeline(softmax, 'forward').pipeline);
    expect(() => pipeline(softmax, 'nope' as 'forward')).toThrow(/softmax\.wgsl has no compute entry point 'nope' \(has: forward, backward\)/);
    expect(() => pipeline(softmax, 'forward', { NOPE: 1 })).toThrow(/no override constant 'NOPE'/);
  });

  it('each module holds its file with comments blanked, line for line, and what wgsl_reflect finds in the original', () => {
    const dir = join(__dirname, '../../kernels');
    const files = readdirSync(dir).filter((f) => f.endsWith('.wgsl'));
    expect(files.sort()).toEqual(kernelFiles().sort());
    const original = Object.fromEntries(files.map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
    for (const f of files) {
      const m = KERNELS[f];
      expect(m.code.split('\n').length, f).toBe(original[f].split('\n').length);
      // Resolved, the file's own lines keep their numbers.
      const own = m.code.split('\n');
      const resolved = kernelCode(m).split('\n').slice(0, own.length);
      resolved.forEach((line, i) => expect(line.startsWith('// (included') ? own[i].startsWith('//!include') : line === own[i], `${f}:${i + 1}`).toBe(true));
      expect(m.code, f).not.toMatch(/\/\/(?!!include)|\/\*/);
      const r = reflectKernel(f, original);
      expect(JSON.parse(JSON.stringify(m.entries)), f).toEqual(r.entries);
      expect([...m.overrides], f).toEqual(r.overrides);
      expect(m.includes.map((i) => i.file), f).toEqual(r.includes);
    }
    expect(stripComments('a /* b /* nested */ c */ d // e\n  //!include x.wgsl  \n/* multi\nline */ f')).toBe('a d\n//!include x.wgsl\n\nf');
  });
});

describe('command batching', () => {
  it('20 chained elementwise ops are many dispatches and one submit before a single toArray', async () => {
    const x = K.randn([257], { seed: 5 });
    await K.sync();
    resetGpuStats();
    const y = K.tidy(() => {
      let t = x;
      for (let i = 0; i < 20; i++) t = i % 2 ? K.mul(t, 0.5) : K.tanh(K.add(t, 0.1));
      return t;
    });
    expect(gpuStats.submits).toBe(0);
    expect(gpuStats.dispatches).toBeGreaterThanOrEqual(20);
    const values = await y.toArray();
    expect(gpuStats.submits).toBe(1);
    expect(gpuStats.readbacks).toBe(1);
    expect(values.every(Number.isFinite)).toBe(true);
    x.dispose();
    y.dispose();
  });

  it('backward encodes without submitting; reading the gradient is the sync', async () => {
    const w = K.randn([5, 5], { seed: 6, requiresGrad: true });
    await K.sync();
    resetGpuStats();
    const loss = K.tidy(() => K.sum(K.relu(K.matmul(w, w))));
    loss.backward();
    expect(gpuStats.submits).toBe(0);
    await w.grad!.toArray();
    expect(gpuStats.submits).toBe(1);
    loss.dispose();
    w.dispose();
  });
});

describe('large dispatches', () => {
  it('more than 65535 workgroups split into a 2-D grid (one workgroup per row kernels)', async () => {
    const rows = 70000;
    const x = K.full([rows, 65], 1);
    const s = K.sum(x, 1); // per_group: one workgroup per output
    const v = await s.toArray();
    expect(v.length).toBe(rows);
    expect(v.every((e) => e === 65)).toBe(true);
    const sm = K.softmax(K.zeros([rows, 2]), 1);
    expect((await sm.toArray()).every((e) => e === 0.5)).toBe(true);
    for (const t of [x, s, sm]) t.dispose();
  });
});
