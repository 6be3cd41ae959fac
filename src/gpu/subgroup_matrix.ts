// Subgroup matrices (Dawn's experimental `chromium-experimental-subgroup-matrix`, Vulkan's VK_KHR_cooperative_matrix):
// the adapter's configs, the one WGSL shim that spells the builtins for the Dawn at hand, and the probe that checks one
// tile product against the host before kiln trusts a config (as the subgroup-order probe does for subgroups).
//
// The spelling changed across Dawn versions: earlier Dawns take the majorness as a bool argument,
//   subgroupMatrixLoad<T>(p, offset, col_major, stride), subgroupMatrixStore(p, offset, value, col_major, stride);
// later ones (the WGSL proposal since mid-2026) as a template enumerant, with stride and offset in elements of the array,
//   subgroupMatrixLoad<T, row_major>(p, offset, stride), subgroupMatrixStore<row_major>(p, offset, value, stride).
// Both are tried by the probe; the first that compiles and multiplies correctly is recorded and used by the kernels.

export const SUBGROUP_MATRIX_FEATURE = 'chromium-experimental-subgroup-matrix';

/** One shape the adapter's matrix units multiply: left M x K times right K x N into a result M x N. */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export type SubgroupMatrixSpelling = 'template-majorness' | 'bool-majorness';
export const SPELLINGS: readonly SubgroupMatrixSpelling[] = ['template-majorness', 'bool-majorness'];

/** What deviceInfo().subgroupMatrix reports where the device has the feature. */
export interface SubgroupMatrixInfo {
  /** Every config the adapter lists (GPUAdapterInfo.subgroupMatrixConfigs). */
  configs: SubgroupMatrixConfig[];
  /** The f16 x f16 -> f32 config kiln's matmul uses, once its probe passed; null when none passed. */
  matmul: SubgroupMatrixConfig | null;
  /** The builtins' spelling that compiled and passed the probe. */
  spelling: SubgroupMatrixSpelling | null;
  /** Why no config is used, when none is. */
  reason?: string;
}

/** The adapter's configs as plain objects (Dawn's are getters on a prototype, so JSON.stringify shows nothing). */
export function readSubgroupMatrixConfigs(info: unknown): SubgroupMatrixConfig[] {
  const list = (info as { subgroupMatrixConfigs?: Iterable<Record<string, unknown>> } | null)?.subgroupMatrixConfigs;
  if (!list) return [];
  const out: SubgroupMatrixConfig[] = [];
  for (const c of list) {
    out.push({ componentType: String(c.componentType), resultComponentType: String(c.resultComponentType), M: Number(c.M), N: Number(c.N), K: Number(c.K) });
  }
  return out;
}

/**
 * The configs kiln's matmul can use (f16 inputs, f32 results, sides of 8 or 16: its 2 x 2 blocks, hi and lo tiles and
 * two f32 result tiles then fit 16 KiB of workgroup memory), best first.
 */
export function matmulCandidates(configs: readonly SubgroupMatrixConfig[]): SubgroupMatrixConfig[] {
  const ok = (n: number) => n === 8 || n === 16;
  return configs
    .filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && ok(c.M) && ok(c.N) && ok(c.K))
    .sort((x, y) => y.M * y.N * y.K - x.M * x.N * x.K);
}

/**
 * The shim: WGSL that defines, for one config and spelling, what the matrix bodies use: the constants SM_M, SM_N, SM_K,
 * the types mm_left_t, mm_right_t, mm_result_t, and the spelled builtins as functions over named arrays (row-major,
 * offset and stride in elements): sm_load_left / sm_load_right read `arrays.left` / `arrays.right`, sm_store_result
 * writes `arrays.result`. Nothing else in kiln spells a subgroup-matrix load or store.
 */
export function subgroupMatrixShim(c: SubgroupMatrixConfig, spelling: SubgroupMatrixSpelling, arrays: { left: string; right: string; result: string }): string {
  const load = (t: string, arr: string) =>
    spelling === 'template-majorness' ? `subgroupMatrixLoad<${t}, row_major>(&${arr}, offset, stride)` : `subgroupMatrixLoad<${t}>(&${arr}, offset, false, stride)`;
  const store = (arr: string) =>
    spelling === 'template-majorness' ? `subgroupMatrixStore<row_major>(&${arr}, offset, value, stride)` : `subgroupMatrixStore(&${arr}, offset, value, false, stride)`;
  return [
    `const SM_M: u32 = ${c.M}u;`,
    `const SM_N: u32 = ${c.N}u;`,
    `const SM_K: u32 = ${c.K}u;`,
    // Template arguments are columns, then rows (as WGSL's matCxR): left is M rows x K columns.
    `alias mm_left_t = subgroup_matrix_left<f16, ${c.K}, ${c.M}>;`,
    `alias mm_right_t = subgroup_matrix_right<f16, ${c.N}, ${c.K}>;`,
    `alias mm_result_t = subgroup_matrix_result<f32, ${c.N}, ${c.M}>;`,
    `fn sm_load_left(offset: u32, stride: u32) -> mm_left_t { return ${load('mm_left_t', arrays.left)}; }`,
    `fn sm_load_right(offset: u32, stride: u32) -> mm_right_t { return ${load('mm_right_t', arrays.right)}; }`,
    `fn sm_store_result(offset: u32, value: mm_result_t, stride: u32) { ${store(arrays.result)}; }`,
  ].join('\n');
}

/** The directives a kernel using the shim starts with (its f16 tiles also need `enable f16;`). */
export const SUBGROUP_MATRIX_ENABLES = 'enable chromium_experimental_subgroup_matrix; diagnostic(off, subgroup_matrix_uniformity);';

/** Inputs of the probe's tile product: small multiples of 1/8, exact in f16, with exact f32 products and sums. */
export function probeInputs(c: SubgroupMatrixConfig): { a: Float32Array; b: Float32Array } {
  const a = new Float32Array(c.M * c.K), b = new Float32Array(c.K * c.N);
  for (let i = 0; i < a.length; i++) a[i] = (((i * 7 + 3) % 17) - 8) / 8;
  for (let i = 0; i < b.length; i++) b[i] = (((i * 5 + 1) % 13) - 6) / 8;
  return { a, b };
}

/** Checks a result tile (row-major M x N) against the host product of the probe's inputs; returns null or why not. */
export function checkTileProduct(c: SubgroupMatrixConfig, a: ArrayLike<number>, b: ArrayLike<number>, got: ArrayLike<number>): string | null {
  if (got.length < c.M * c.N) return `the probe returned ${got.length} values, expected ${c.M * c.N}`;
  let worst = 0, at = -1;
  for (let i = 0; i < c.M; i++) {
    for (let j = 0; j < c.N; j++) {
      let s = 0;
      for (let k = 0; k < c.K; k++) s += a[i * c.K + k] * b[k * c.N + j];
      const d = Math.abs(got[i * c.N + j] - s);
      if (Number.isNaN(d)) return `entry ${i * c.N + j} (row ${i}, column ${j}) is NaN`;
      if (d > worst) (worst = d), (at = i * c.N + j);
    }
  }
  // The inputs make every product and partial sum exact in f32: any error is a wrong product, not rounding.
  if (worst > 1e-6) return `entry ${at} (row ${Math.floor(at / c.N)}, column ${at % c.N}) is ${got[at]}, not the host's product`;
  return null;
}

/** The probe kernel: one subgroup-sized workgroup loads A and B from storage, multiplies once, stores the result. */
export function probeKernel(c: SubgroupMatrixConfig, spelling: SubgroupMatrixSpelling, lanes: number): string {
  return `enable f16; ${SUBGROUP_MATRIX_ENABLES}
@group(0) @binding(0) var<storage, read_write> pa: array<f16, ${c.M * c.K}>;
@group(0) @binding(1) var<storage, read_write> pb: array<f16, ${c.K * c.N}>;
@group(0) @binding(2) var<storage, read_write> pc: array<f32, ${c.M * c.N}>;
${subgroupMatrixShim(c, spelling, { left: 'pa', right: 'pb', result: 'pc' })}
@compute @workgroup_size(${lanes})
fn main() {
  let l = sm_load_left(0u, SM_K);
  let r = sm_load_right(0u, SM_N);
  let acc = subgroupMatrixMultiplyAccumulate(l, r, mm_result_t());
  sm_store_result(0u, acc, SM_N);
}`;
}

function toF16Bits(v: number): number {
  // The probe's inputs are small multiples of 1/8: exact in binary16.
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const man = (x >>> 13) & 0x3ff;
  if ((x & 0x7fffffff) === 0) return sign;
  return sign | (exp << 10) | man;
}

/**
 * Runs the probe for one config with each spelling in turn; returns the first spelling whose product is right, or the
 * reasons each failed. Raw WebGPU (the kernel loader sits above this file).
 */
export async function probeSubgroupMatrix(device: GPUDevice, c: SubgroupMatrixConfig, lanes: number): Promise<{ spelling: SubgroupMatrixSpelling | null; errors: string[] }> {
  const { a, b } = probeInputs(c);
  const errors: string[] = [];
  const bytes = (n: number, size: number) => Math.ceil((n * size) / 16) * 16;
  const upload = (vals: Float32Array) => {
    const words = new Uint16Array(bytes(vals.length, 2) / 2);
    for (let i = 0; i < vals.length; i++) words[i] = toF16Bits(vals[i]);
    const buf = device.createBuffer({ size: words.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(buf, 0, words);
    return buf;
  };
  for (const spelling of SPELLINGS) {
    const bufs: GPUBuffer[] = [];
    try {
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ code: probeKernel(c, spelling, lanes), label: `kiln subgroup-matrix probe (${spelling})` });
      const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } }).catch((e: unknown) => e as Error);
      const scopeError = await device.popErrorScope();
      if (pipeline instanceof Error || scopeError) {
        errors.push(`${spelling}: ${(scopeError?.message ?? (pipeline as Error).message).split('\n')[0]}`);
        continue;
      }
      const pa = upload(a), pb = upload(b);
      const size = bytes(c.M * c.N, 4);
      const pc = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
      const read = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      bufs.push(pa, pb, pc, read);
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [pa, pb, pc].map((buffer, binding) => ({ binding, resource: { buffer } })) }));
      pass.dispatchWorkgroups(1);
      pass.end();
      enc.copyBufferToBuffer(pc, 0, read, 0, size);
      device.queue.submit([enc.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      const got = new Float32Array(read.getMappedRange().slice(0));
      read.unmap();
      const why = checkTileProduct(c, a, b, got);
      if (!why) return { spelling, errors };
      errors.push(`${spelling}: ${why}`);
    } catch (e) {
      errors.push(`${spelling}: ${(e as Error).message}`);
    } finally {
      for (const buf of bufs) buf.destroy();
    }
  }
  return { spelling: null, errors };
}
