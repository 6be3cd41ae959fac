// Launchers of the matmul kernels: batched out[..., M, N] = alpha * a[..., M, K] @ b[..., K, N] over strided operands
// (any strides, batch dims broadcast).
//   scalar (kernels/matmul.wgsl): f32 sums, 16 x 64 output tiles, 4 x 8 per thread; where B's rows are contiguous and
//     aligned (every offset and stride of B a multiple of 4 elements) it reads B as vec4 (`main_vec`). f32 operands, or
//     f16 ones read as f16 storage by its f16 variant (shader-f16; flag f16.kernels), the result f32.
//   matrix (kernels/matmul_mma.wgsl): f16 tile products, f32 sums; for f16 operands (ops/matmul.ts widens them to f32,
//     exactly, and rounds the result to f16 once) and for f32 ones under setMatmulPrecision('medium' | 'high'). Its matrix steps run on the subgroup-matrix builtins where init()'s probe
//     trusted a config, else (flag matmul.matrixBody = 'portable', for tests) on the portable body in ordinary WGSL.
import { DTypeError, DeviceError, ShapeError, fmtShape } from '../errors.js';
import { type TensorBase, allocLike } from '../tensor/base.js';
import { broadcastShapes, numel } from '../tensor/shape.js';
import { type KilnDevice, gpu } from '../gpu/device.js';
import { defineFlag, oneOf } from '../gpu/flags.js';
import { type KernelModule, dispatch, grid1d, kernelVariant } from '../gpu/kernels.js';
import { SUBGROUP_MATRIX_ENABLES, subgroupMatrixShim } from '../gpu/subgroup_matrix.js';
import { bufOf, dummy, rawBuf } from './common.js';
import kernel from './kernels/matmul.js';
import mmaKernel from './kernels/matmul_mma.js';
import mmaBodySgmatrix from './kernels/matmul_mma_body_sgmatrix.js';

export type MatmulPrecision = 'highest' | 'high' | 'medium';

export const matrixBodyFlag = defineFlag<'auto' | 'portable'>({
  name: 'matmul.matrixBody',
  doc: "body of the matrix-unit matmul: 'auto' uses the subgroup-matrix builtins where init()'s probe trusted a config (else no matrix path); 'portable' forces the matrix path with its portable WGSL body (tests; needs shader-f16)",
  accepts: "'auto' | 'portable'",
  defaultDoc: "'auto'",
  parse: oneOf(['auto', 'portable'] as const),
  checkDevice(value, kd) {
    if (value === 'portable' && !kd.hasF16) throw new DeviceError("setFlag('matmul.matrixBody', 'portable'): the portable matrix body keeps f16 tiles and needs shader-f16, which this device lacks");
  },
});

/** How one matmul runs: the scalar kernel, or the matrix kernel with a body and 1 (f16 inputs) or 3 (hi/lo) products. */
export type MatmulPath = { kind: 'scalar' } | { kind: 'matrix'; body: 'sgmatrix' | 'portable'; passes: 1 | 3 };

/**
 * The path for operands of `dtype` (f16: already widened to f32) under `precision`: f16 takes the matrix kernel with one
 * product wherever a body is available, else the scalar kernel (exact for f16 values); f32 takes the matrix kernel
 * only below 'highest' and where a body is available.
 */
export function matmulPath(dtype: string, precision: MatmulPrecision, kd: KilnDevice = gpu()): MatmulPath {
  const forced = matrixBodyFlag.get() === 'portable';
  if (!forced && !kd.subgroupMatrix) return { kind: 'scalar' };
  const body = forced ? 'portable' : 'sgmatrix';
  if (dtype === 'f16') return { kind: 'matrix', body, passes: 1 };
  if (precision === 'highest') return { kind: 'scalar' };
  return { kind: 'matrix', body, passes: precision === 'high' ? 3 : 1 };
}

/** Output tile of one workgroup: kernels/matmul.wgsl's TM x TN, or matmul_mma.wgsl's 2 SM_M x 2 SM_N. */
function tileOf(path: MatmulPath, kd: KilnDevice): [number, number] {
  if (path.kind === 'scalar') return [16, 64];
  if (path.body === 'portable') return [32, 32];
  const c = kd.subgroupMatrix!.config;
  return [2 * c.M, 2 * c.N];
}

/** Checks that a @ b (2-D or more each) can launch on this adapter by `path`, before anything is allocated. */
export function checkMatmul(fn: string, a: TensorBase, b: TensorBase, path: MatmulPath = { kind: 'scalar' }): void {
  if (a.dtype !== b.dtype) throw new DTypeError(`${fn}: operands must share a dtype, got ${a.dtype} and ${b.dtype}`);
  const batch = broadcastShapes(fn, a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (batch.length > 4) throw new ShapeError(`${fn}: at most 4 batch dims are supported, got ${fmtShape(batch)}`);
  const count = numel(batch);
  const kd = gpu();
  const lim = kd.device.limits.maxComputeWorkgroupsPerDimension;
  const M = a.shape[a.rank - 2], N = b.shape[b.rank - 1];
  // The kernels find their tile and batch entry from the linear workgroup id, so the count folds into a 2-D grid.
  const [tm, tn] = tileOf(path, kd);
  const tiles = Math.ceil(N / tn) * Math.ceil(M / tm) * count;
  if (tiles > lim * lim) throw new DeviceError(`${fn}: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} needs ${tiles} workgroups, over this adapter's ${lim} x ${lim}`);
}

// Matrix kernel modules, built once per (body, config, spelling): the directives, and for the builtins' body the
// include swapped and the probed config's shim appended (WGSL types take the config's sizes, which an override cannot
// express).
const mmaModules = new Map<string, KernelModule>();
function mmaModule(body: 'sgmatrix' | 'portable', kd: KilnDevice): { module: KernelModule; lanes: number } {
  const sm = body === 'sgmatrix' ? kd.subgroupMatrix! : null;
  const key = sm ? `${sm.config.M}x${sm.config.N}x${sm.config.K},${sm.spelling}` : 'portable';
  let module = mmaModules.get(key);
  if (!module) {
    let code = mmaKernel.code;
    let includes = mmaKernel.includes;
    if (sm) {
      code = code.replace(/^\/\/!include matmul_mma_body\.wgsl$/m, `//!include ${mmaBodySgmatrix.file}`);
      const shim = subgroupMatrixShim(sm.config, sm.spelling, { left: 'tile_a', right: 'tile_b', result: 'tile_c' });
      includes = [...includes.filter((m) => m.file !== 'matmul_mma_body.wgsl'), { ...mmaBodySgmatrix, code: `${mmaBodySgmatrix.code}\n${shim}\n` }];
    }
    // Directives on line 1, so compile errors keep the file's line numbers (the file enables f16 itself).
    module = sm ? { ...mmaKernel, file: `${mmaKernel.file}#${key}`, code: `${SUBGROUP_MATRIX_ENABLES} ${code}`, includes } : mmaKernel;
    mmaModules.set(key, module);
  }
  return { module, lanes: sm ? kd.subgroupMatrix!.lanes : 32 };
}

/**
 * out (f32) = alpha * a @ b for operands of rank >= 2 (validated by checkMatmul with the same path): f32, or f16 on
 * the scalar path (read natively by matmul.wgsl's f16 variant; needs shader-f16).
 */
export function matmul<T extends TensorBase>(fn: string, a: T, b: TensorBase, alpha = 1, path: MatmulPath = { kind: 'scalar' }, bias: TensorBase | null = null): T {
  if (bias && (path.kind !== 'scalar' || bias.dtype !== 'f32' || bias.rank !== 1 || bias.shape[0] !== b.shape[b.rank - 1] || (bias.size > 1 && bias.strides[0] !== 1))) {
    throw new Error(`kiln: ${fn}: the bias epilogue takes a contiguous f32 [N] bias on the scalar kernel`);
  }
  checkMatmul(fn, a, b, path);
  const M = a.shape[a.rank - 2], K = a.shape[a.rank - 1], N = b.shape[b.rank - 1];
  const batch = broadcastShapes(fn, a.shape.slice(0, -2), b.shape.slice(0, -2));
  const count = numel(batch);
  // f16 operands (the scalar path only; ops/matmul.ts decides) are read by the kernel's f16 variant as f16 storage.
  const half = a.dtype === 'f16';
  const ab = half ? rawBuf(a, fn) : bufOf(a, fn), bb = half ? rawBuf(b, fn) : bufOf(b, fn);
  const out = allocLike(a, [...batch, M, N], 'f32');
  if (count === 0 || M === 0 || N === 0) return out;
  const bs = (t: TensorBase): number[] => {
    const lead = t.shape.slice(0, -2), ls = t.strides.slice(0, -2);
    const off = batch.length - lead.length;
    return batch.map((_, i) => (i < off || lead[i - off] === 1 ? 0 : ls[i - off]));
  };
  const pad4 = (v: number[]) => [...Array(4 - v.length).fill(0), ...v];
  const common = {
    M, N, K,
    batch_rank: 4,
    a_sm: a.strides[a.rank - 2], a_sk: a.strides[a.rank - 1],
    alpha,
    batch_shape: [...Array(4 - batch.length).fill(1), ...batch],
    a_bs: pad4(bs(a)),
  };
  if (path.kind === 'matrix') {
    const kd = gpu();
    const { module, lanes } = mmaModule(path.body, kd);
    const [tm, tn] = tileOf(path, kd);
    dispatch(module, 'main', {
      bindings: { a: ab, b: bb, out: bufOf(out, fn) },
      params: { ...common, a_off: a.offset, b_off: b.offset, b_sk: b.strides[b.rank - 2], b_sn: b.strides[b.rank - 1], passes: path.passes, bias_off: 0, res_off: 0, b_bs: pad4(bs(b)) },
      constants: { LANES: lanes },
      workgroups: grid1d(Math.ceil(N / tn) * Math.ceil(M / tm) * count),
      label: fn,
    });
    return out;
  }
  const bBatch = bs(b);
  const b_sk = b.strides[b.rank - 2], b_sn = b.strides[b.rank - 1];
  // vec4 reads of B: N a multiple of 4, its rows contiguous, and every row start 16-byte aligned.
  const vec = N % 4 === 0 && b_sn === 1 && (K === 1 || b_sk % 4 === 0) && b.offset % 4 === 0 && bBatch.every((s) => s % 4 === 0);
  const q = vec ? 4 : 1;
  const biasBuf = bias ? bufOf(bias, fn) : dummy();
  dispatch(half ? kernelVariant(kernel, ['f16']) : kernel, vec ? 'main_vec' : 'main', {
    constants: bias ? { HAS_BIAS: 1 } : undefined,
    // The residual and out_act bindings serve the epilogues a compiled step folds in (src/compile/epilogue.ts).
    bindings: { ...(vec ? { a: ab, b4: bb } : { a: ab, b: bb }), out: bufOf(out, fn), bias: biasBuf, residual: dummy(), out_act: dummy(true) },
    params: { ...common, a_off: a.offset, b_off: b.offset / q, b_sk: K === 1 ? 0 : b_sk / q, b_sn, passes: 1, bias_off: bias ? bias.offset : 0, res_off: 0, b_bs: pad4(bBatch.map((s) => s / q)) },
    workgroups: grid1d(Math.ceil(N / 64) * Math.ceil(M / 16) * count), // tileOf(scalar)
    label: fn,
  });
  return out;
}
