// Subgroup matrices: the probe's host check with fake configs, the configs read from Dawn's getter objects, the
// candidates matmul may use, the shim's two spellings, Node's Dawn flags, and the absence path on this adapter (lavapipe
// has no such feature: deviceInfo().subgroupMatrix is undefined and a probe fails cleanly, never trusting a config).
import { describe, expect, it } from 'vitest';
import { deviceInfo } from '../../src/index.node';
import { gpuDevice } from '../../src/experimental';
import { nodeFlags } from '../../src/gpu/platform_node';
import {
  SUBGROUP_MATRIX_FEATURE, type SubgroupMatrixConfig, checkTileProduct, matmulCandidates, probeInputs, probeKernel, probeSubgroupMatrix,
  readSubgroupMatrixConfigs, subgroupMatrixShim,
} from '../../src/gpu/subgroup_matrix';

const fake: SubgroupMatrixConfig = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 8, K: 32 };

function hostProduct(c: SubgroupMatrixConfig, a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(c.M * c.N);
  for (let i = 0; i < c.M; i++) for (let j = 0; j < c.N; j++) for (let k = 0; k < c.K; k++) out[i * c.N + j] += a[i * c.K + k] * b[k * c.N + j];
  return out;
}

describe('subgroup-matrix probe: host check', () => {
  it('accepts the right product of a non-square config and rejects wrong ones', () => {
    const { a, b } = probeInputs(fake);
    // Exact in binary16: multiples of 1/8 within [-1, 1].
    for (const v of [...a, ...b]) expect(Number.isInteger(v * 8) && Math.abs(v) <= 1).toBe(true);
    const good = hostProduct(fake, a, b);
    expect(checkTileProduct(fake, a, b, good)).toBeNull();
    // A transposed result (the columns-then-rows template order taken the other way), one wrong entry, a NaN, too few.
    const transposed = new Float32Array(good.length);
    for (let i = 0; i < fake.M; i++) for (let j = 0; j < fake.N; j++) transposed[j * fake.M + i] = good[i * fake.N + j];
    expect(checkTileProduct(fake, a, b, transposed)).toMatch(/not the host's product/);
    const off = good.slice();
    off[37] += 1 / 1024;
    expect(checkTileProduct(fake, a, b, off)).toMatch(/entry 37 \(row 4, column 5\)/);
    const nan = good.slice();
    nan[0] = NaN;
    expect(checkTileProduct(fake, a, b, nan)).toMatch(/entry 0/);
    expect(checkTileProduct(fake, a, b, good.subarray(0, 10))).toMatch(/returned 10 values/);
  });

  it('reads Dawn-style configs (prototype getters) and picks f16 -> f32 configs with sides of 8 or 16, largest first', () => {
    class Config {
      constructor(private readonly v: [string, string, number, number, number]) {}
      get componentType() { return this.v[0]; }
      get resultComponentType() { return this.v[1]; }
      get M() { return this.v[2]; }
      get N() { return this.v[3]; }
      get K() { return this.v[4]; }
    }
    const info = {
      subgroupMatrixConfigs: [
        new Config(['f16', 'f16', 16, 16, 16]), new Config(['f16', 'f32', 8, 8, 8]), new Config(['f16', 'f32', 16, 16, 16]),
        new Config(['i8', 'i32', 16, 16, 32]), new Config(['f16', 'f32', 16, 8, 16]), new Config(['f16', 'f32', 64, 8, 8]),
      ],
    };
    const configs = readSubgroupMatrixConfigs(info);
    expect(configs[1]).toEqual({ componentType: 'f16', resultComponentType: 'f32', M: 8, N: 8, K: 8 });
    expect(matmulCandidates(configs).map((c) => [c.M, c.N, c.K])).toEqual([[16, 16, 16], [16, 8, 16], [8, 8, 8]]);
    expect(readSubgroupMatrixConfigs({})).toEqual([]);
    expect(readSubgroupMatrixConfigs(null)).toEqual([]);
  });

  it('the shim spells load and store for both Dawn generations, and nothing else does', () => {
    const t = subgroupMatrixShim(fake, 'template-majorness', { left: 'ta', right: 'tb', result: 'tc' });
    expect(t).toContain('subgroupMatrixLoad<mm_left_t, row_major>(&ta, offset, stride)');
    expect(t).toContain('subgroupMatrixStore<row_major>(&tc, offset, value, stride)');
    expect(t).toContain('alias mm_left_t = subgroup_matrix_left<f16, 32, 16>;');
    expect(t).toContain('alias mm_result_t = subgroup_matrix_result<f32, 8, 16>;');
    const b = subgroupMatrixShim(fake, 'bool-majorness', { left: 'ta', right: 'tb', result: 'tc' });
    expect(b).toContain('subgroupMatrixLoad<mm_right_t>(&tb, offset, false, stride)');
    expect(b).toContain('subgroupMatrixStore(&tc, offset, value, false, stride)');
    const k = probeKernel(fake, 'bool-majorness', 32);
    expect(k.startsWith('enable f16; enable chromium_experimental_subgroup_matrix;')).toBe(true);
    expect(k).toContain('@workgroup_size(32)');
  });
});

describe('subgroup matrices on this adapter', () => {
  it('absence: no feature, deviceInfo().subgroupMatrix undefined, and a forced probe fails without trusting anything', async () => {
    const info = deviceInfo();
    const device = gpuDevice();
    if (device.features.has(SUBGROUP_MATRIX_FEATURE)) {
      // A GPU with matrix units: the probe ran at init and recorded what it found.
      expect(info.subgroupMatrix).toBeDefined();
      expect(info.subgroupMatrix!.matmul === null || info.subgroupMatrix!.spelling !== null).toBe(true);
      return;
    }
    expect(info.features).not.toContain(SUBGROUP_MATRIX_FEATURE);
    expect(info.subgroupMatrix).toBeUndefined();
    const r = await probeSubgroupMatrix(device, fake, 32);
    expect(r.spelling).toBeNull();
    expect(r.errors).toHaveLength(2);
    expect(r.errors[0]).toMatch(/^template-majorness: /);
  });

  it("Node's Dawn flags: kiln's toggles merged with the caller's, a disabled one not enabled", () => {
    expect(nodeFlags([])).toEqual(['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia', 'disable-dawn-features=timestamp_quantization']);
    expect(nodeFlags(['enable-dawn-features=foo,allow_unsafe_apis', 'disable-dawn-features=vulkan_enable_f16_on_nvidia', 'adapter=x'])).toEqual([
      'enable-dawn-features=allow_unsafe_apis,foo', 'disable-dawn-features=timestamp_quantization,vulkan_enable_f16_on_nvidia', 'adapter=x',
    ]);
  });
});
