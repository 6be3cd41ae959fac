// The matrix-unit attention forward (kernels/attention_mma.wgsl): its flag, tile policy and planner, installed into the
// attention plan by enableMatrixAttention. Node's init() installs it; a browser page installs it through
// kiln/experimental (browsers expose no subgroup matrices today), so the attention page imported by name carries none
// of its kernel text. Until installed, the plan keeps every call on the scalar kernels and says why.
import { DeviceError } from '../errors.js';
import type { KilnDevice } from '../gpu/device.js';
import { defineFlag, oneOf } from '../gpu/flags.js';
import { attentionBackwardMma, attentionForwardMma, type MatrixLaunch } from '../launch/attention_mma.js';
import { getMatmulPrecision } from '../ops/matmul.js';
import { type MatrixCall, foldGrid, installMatrixAttention } from './plan.js';
import type { AdapterCaps, TileConfig } from './tiles.js';

export const matrixBodyFlag = defineFlag<'auto' | 'portable' | 'off'>({
  name: 'attention.matrixBody',
  doc: "body of the matrix-unit attention kernels: 'auto' uses the subgroup-matrix builtins where init()'s probe trusted a config (else the scalar kernels); 'portable' forces the matrix path with its portable WGSL body (tests; needs shader-f16); 'off' keeps the scalar kernels (benchmarks)",
  accepts: "'auto' | 'portable' | 'off'",
  defaultDoc: "'auto'",
  parse: oneOf(['auto', 'portable', 'off'] as const),
  checkDevice(value, kd) {
    if (value === 'portable' && !kd.hasF16) throw new DeviceError("'portable' keeps f16 tiles and needs shader-f16, which this device lacks");
  },
});

/** The tile product shape of the matrix attention kernel's body, and the invocations of one of its warps. */
export interface MmaShape {
  M: number;
  N: number;
  K: number;
  lanes: number;
}

/** kernels/attention_mma_body.wgsl: 16 x 16 x 16 blocks over 32 invocations. */
export const PORTABLE_MMA: MmaShape = { M: 16, N: 16, K: 16, lanes: 32 };

/** Workgroup memory (bytes) of kernels/attention_mma.wgsl: its header's formula, each variable rounded up to 16. */
export function mmaTileBytes(c: { BLOCK_M: number; BLOCK_N: number; HEAD_DIM_MAX: number }): number {
  const r16 = (b: number) => Math.ceil(b / 16) * 16;
  const { BLOCK_M: M, BLOCK_N: N, HEAD_DIM_MAX: H } = c;
  return r16(2 * (M * H + M * N)) + r16(2 * N * H) + r16(4 * M * N) + r16(4 * M * H) + 3 * r16(4 * M) + r16(4 * M * Math.ceil(N / 32)) + 16;
}

/**
 * Tiles of the matrix attention kernel for a head dim, or why it cannot run: HEAD_DIM_MAX the power of two >= 16
 * holding max(D, Dv) (at most 256), BLOCK_M = WARPS * shape.M query rows and BLOCK_N keys, the first of (WARPS, BLOCK_N)
 * = (4, 64), (4, 32), (2, 64), (2, 32), (1, 64), (1, 32), (2, 16), (1, 16) whose workgroup memory and WARPS * lanes
 * invocations fit (larger tiles reuse each loaded row more often); a software adapter starts at (1, 32): its
 * invocations run one after another, and the tests' small shapes waste less of a 16-row tile.
 */
export function mmaTiles(headDim: number, shape: MmaShape, caps: AdapterCaps): { tiles: Required<Omit<TileConfig, 'PARTS'>> & { LANES: number } } | { reason: string } {
  const HEAD_DIM_MAX = [16, 32, 64, 128, 256].find((h) => h >= headDim && h % shape.K === 0 && h % shape.N === 0);
  if (HEAD_DIM_MAX === undefined) return { reason: `head dimension ${headDim} is over the matrix kernel's 256` };
  const maxThreads = Math.min(caps.maxInvocations, caps.maxWorkgroupSizeX);
  let pairs = [[4, 64], [4, 32], [2, 64], [2, 32], [1, 64], [1, 32], [2, 16], [1, 16]];
  if (caps.isSoftware) pairs = pairs.slice(5);
  for (const [warps, BLOCK_N] of pairs) {
    if (BLOCK_N % shape.N !== 0 || BLOCK_N % shape.K !== 0) continue;
    const c = { HEAD_DIM_MAX, BLOCK_M: warps * shape.M, BLOCK_N, THREADS: warps * shape.lanes, LANES: shape.lanes };
    if (c.THREADS > maxThreads || mmaTileBytes(c) > caps.workgroupStorage) continue;
    return { tiles: c };
  }
  return { reason: `head dimension ${headDim} does not fit the matrix kernel's tiles in this adapter's ${caps.workgroupStorage} bytes of workgroup memory` };
}

/**
 * The matrix-unit forward, or why the scalar kernel runs: the body is the subgroup-matrix builtins where init()'s probe
 * trusted an f16 config, the portable WGSL one where the flag attention.matrixBody = 'portable' forces it (CI); the
 * inputs are f16 (native), or f32 under setMatmulPrecision('medium') (rounded to f16; 'high' and 'highest' keep f32
 * accuracy on the scalar kernel); no score or mask mods (flexAttention's mods are compiled into the scalar kernels
 * only, for now); and the head dim fits the kernel's tiles.
 */
function planMatrix(fn: string, kd: KilnDevice, caps: AdapterCaps, s: MatrixCall): { matrix: MatrixLaunch } | { why: string } {
  if (matrixBodyFlag.get() === 'off') return { why: "attention.matrixBody is 'off'" };
  const forced = matrixBodyFlag.get() === 'portable';
  if (!forced && !kd.subgroupMatrix) return { why: kd.info.subgroupMatrix?.reason ?? 'the adapter has no subgroup-matrix config kiln trusts' };
  if (s.dtype === 'f32' && getMatmulPrecision() !== 'medium') return { why: `f32 inputs with matmul precision '${getMatmulPrecision()}' (the matrix path takes f16 inputs, or f32 ones under 'medium')` };
  if (s.mods) return { why: 'score and mask mods run on the scalar kernels' };
  const sm = kd.subgroupMatrix;
  const shape = forced || !sm ? PORTABLE_MMA : { M: sm.config.M, N: sm.config.N, K: sm.config.K, lanes: sm.lanes };
  const t = mmaTiles(Math.max(s.D, s.Dv), shape, caps);
  if ('reason' in t) return { why: t.reason };
  const maxWg = kd.device.limits.maxComputeWorkgroupsPerDimension;
  const grid = foldGrid(fn, 'the forward', Math.ceil(s.Nq / t.tiles.BLOCK_M) * s.Bt * s.Hq, maxWg);
  let backward: MatrixLaunch['backward'] = null;
  if (s.needsBackward) {
    const dkdv = mmaBackwardTiles('dkdv', t.tiles.HEAD_DIM_MAX, shape, caps);
    const dq = mmaBackwardTiles('dq', t.tiles.HEAD_DIM_MAX, shape, caps);
    // Where the matrix backward's tiles do not fit (HEAD_DIM_MAX 128 and more on 32 KiB), the scalar backward runs.
    if (dkdv && dq) {
      backward = {
        dkdv: { constants: dkdv, grid: foldGrid(fn, 'the dK/dV pass', Math.ceil(s.Nk / dkdv.BLOCK_N) * s.Bt * s.Hk, maxWg) },
        dq: { constants: dq, grid: foldGrid(fn, 'the dQ pass', Math.ceil(s.Nq / dq.BLOCK_M) * s.Bt * s.Hq, maxWg) },
      };
    }
  }
  return { matrix: { body: forced || !sm ? 'portable' : 'sgmatrix', io: s.dtype, constants: t.tiles, grid, backward } };
}

/**
 * Workgroup memory (bytes) of a pass of kernels/attention_mma_backward.wgsl: its header's formula, each variable
 * rounded up to 16.
 */
export function mmaBackwardBytes(kind: 'dkdv' | 'dq', c: { BLOCK_M: number; BLOCK_N: number; HEAD_DIM_MAX: number }): number {
  const r16 = (b: number) => Math.ceil(b / 16) * 16;
  const { BLOCK_M: M, BLOCK_N: N, HEAD_DIM_MAX: H } = c;
  const shared = r16(2 * (2 * M * H + 3 * H * N + 2 * M * N)) + r16(8 * M * N) + r16(4 * M * Math.ceil(N / 32)) + 2 * r16(4 * M) + 16;
  return shared + (kind === 'dkdv' ? 2 * r16(4 * N * H) : r16(4 * M * H));
}

/**
 * Tiles of a matrix backward pass: the first (BLOCK_M, BLOCK_N) of 64x64, 64x32, 32x64, 32x32, 32x16, 16x32, 16x16
 * (multiples of the body's block sides) whose workgroup memory fits, with 4 warps (1 on a software adapter, whose
 * invocations run one after another), or null.
 */
function mmaBackwardTiles(kind: 'dkdv' | 'dq', HEAD_DIM_MAX: number, shape: MmaShape, caps: AdapterCaps): Record<string, number> | null {
  const maxThreads = Math.min(caps.maxInvocations, caps.maxWorkgroupSizeX);
  const warps = caps.isSoftware ? 1 : Math.max(1, Math.min(4, Math.floor(maxThreads / shape.lanes)));
  const fits = (n: number) => n % shape.M === 0 && n % shape.N === 0 && n % shape.K === 0;
  for (const [BLOCK_M, BLOCK_N] of [[64, 64], [64, 32], [32, 64], [32, 32], [32, 16], [16, 32], [16, 16]]) {
    if (!fits(BLOCK_M) || !fits(BLOCK_N)) continue;
    const c = { HEAD_DIM_MAX, BLOCK_M, BLOCK_N, THREADS: warps * shape.lanes, LANES: shape.lanes };
    if (mmaBackwardBytes(kind, c) <= caps.workgroupStorage) return c;
  }
  return null;
}

/** Lets the attention plan choose the matrix-unit forward (where the adapter or the flag allows it). */
export function enableMatrixAttention(): void {
  installMatrixAttention({ plan: planMatrix, forward: attentionForwardMma, backward: attentionBackwardMma });
}
