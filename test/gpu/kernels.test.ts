// Kernel loading and command batching: compile errors name the kernel file and line; a chain of ops is one submit.
import { afterEach, describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { deviceInfo } from '../../src/index.node';
import { KERNEL_SOURCES } from '../../src/gpu/kernel_sources';
import { dispatch, resolveIncludes } from '../../src/gpu/kernels';

const BROKEN = 'zz_broken_test.wgsl';
const INC = 'zz_include_test.wgsl';

afterEach(() => {
  delete KERNEL_SOURCES[BROKEN];
  delete KERNEL_SOURCES[INC];
});

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

describe('kernel compile errors', () => {
  it('compileKernel throws a DeviceError naming the file, line and offending source line', async () => {
    KERNEL_SOURCES[BROKEN] = brokenSource;
    let caught: unknown = null;
    try {
      await K.compileKernel(BROKEN);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(K.DeviceError);
    const msg = (caught as Error).message;
    expect(msg).toContain(`kernels/${BROKEN}:7:`);
    expect(msg).toContain('let b: u32 = a + 1u;');
  });

  it('a broken kernel used by a dispatch surfaces at the next readback, with its file and line', async () => {
    KERNEL_SOURCES[BROKEN] = brokenSource;
    const t = K.zeros([4]);
    let caught: unknown = null;
    try {
      dispatch(BROKEN, 'main', { bindings: { out: t.buf().buffer }, workgroups: [1] });
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
    const files = K.kernelFiles().filter((n) => !n.startsWith('zz_'));
    // Include-only files (no entry point) use names their includers declare: they compile as part of those.
    const entries = files.filter((f) => /@compute/.test(KERNEL_SOURCES[f]));
    expect(entries.length).toBeGreaterThan(8);
    for (const f of entries) {
      await K.compileKernel(f);
      const src = KERNEL_SOURCES[f];
      const tags: string[] = [];
      if (/^alias io_t = f32;/m.test(src) && info.features.includes('shader-f16')) tags.push('f16');
      const hasSgInclude = [...src.matchAll(/^\/\/!include\s+([\w.-]+)\.wgsl/gm)].some((m) => KERNEL_SOURCES[`${m[1]}_subgroups.wgsl`]);
      if (hasSgInclude && info.features.includes('subgroups')) tags.push('subgroups');
      for (const t of tags) await K.compileKernel(`${f}#${t}`);
      if (tags.length === 2) await K.compileKernel(`${f}#f16,subgroups`);
    }
  });

  it('resolveIncludes appends included files so the including file keeps its line numbers', () => {
    KERNEL_SOURCES[INC] = 'fn helper() -> f32 { return 1.0; }';
    const src = 'line1\n//!include zz_include_test.wgsl\nline3';
    const out = resolveIncludes('main_test.wgsl', { 'main_test.wgsl': src, [INC]: KERNEL_SOURCES[INC] });
    const lines = out.split('\n');
    expect(lines[0]).toBe('line1');
    expect(lines[2]).toBe('line3');
    expect(out).toContain('fn helper()');
    expect(() => resolveIncludes('nope.wgsl')).toThrow(/nope\.wgsl/);
    expect(() => resolveIncludes('m.wgsl', { 'm.wgsl': '//!include missing.wgsl' })).toThrow(/missing\.wgsl/);
  });
});

describe('command batching', () => {
  it('20 chained elementwise ops are many dispatches and one submit before a single toArray', async () => {
    const x = K.randn([257], { seed: 5 });
    await K.sync();
    K.resetGpuStats();
    const y = K.tidy(() => {
      let t = x;
      for (let i = 0; i < 20; i++) t = i % 2 ? K.mul(t, 0.5) : K.tanh(K.add(t, 0.1));
      return t;
    });
    expect(K.gpuStats.submits).toBe(0);
    expect(K.gpuStats.dispatches).toBeGreaterThanOrEqual(20);
    const values = await y.toArray();
    expect(K.gpuStats.submits).toBe(1);
    expect(K.gpuStats.readbacks).toBe(1);
    expect(values.every(Number.isFinite)).toBe(true);
    x.dispose();
    y.dispose();
  });

  it('backward encodes without submitting; reading the gradient is the sync', async () => {
    const w = K.randn([5, 5], { seed: 6, requiresGrad: true });
    await K.sync();
    K.resetGpuStats();
    const loss = K.tidy(() => K.sum(K.relu(K.matmul(w, w))));
    loss.backward();
    expect(K.gpuStats.submits).toBe(0);
    await w.grad!.toArray();
    expect(K.gpuStats.submits).toBe(1);
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
