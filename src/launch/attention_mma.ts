// Launcher of the matrix-unit attention forward (kernels/attention_mma.wgsl), as src/attention/plan.ts planned it: the
// body (the subgroup-matrix builtins with the probed config's shim, or the portable WGSL body), the storage type of
// q, k, v and o (f32 or f16), the tile constants and the folded grid. Decides nothing.
import type { TensorBase } from '../tensor/base.js';
import { type KilnDevice, gpu } from '../gpu/device.js';
import { type KernelModule, dispatch } from '../gpu/kernels.js';
import { SUBGROUP_MATRIX_ENABLES, subgroupMatrixShim } from '../gpu/subgroup_matrix.js';
import { dummy, rawBuf } from './common.js';
import mmaKernel from './kernels/attention_mma.js';
import mmaBodySgmatrix from './kernels/attention_mma_body_sgmatrix.js';

export type MatrixBody = 'sgmatrix' | 'portable';

/** One planned matrix-kernel launch. */
export interface MatrixLaunch {
  readonly body: MatrixBody;
  /** Storage type of q, k, v and o. */
  readonly io: 'f32' | 'f16';
  readonly constants: Readonly<Record<string, number>>;
  readonly grid: readonly [number, number, number];
}

// Modules built once per (body, io, config, spelling): the io_t alias set, and for the builtins' body the include
// swapped and the shim appended (WGSL types take the config's sizes, which an override cannot express).
const modules = new Map<string, KernelModule>();

function mmaModule(body: MatrixBody, io: 'f32' | 'f16', kd: KilnDevice): KernelModule {
  const sm = body === 'sgmatrix' ? kd.subgroupMatrix! : null;
  const key = `${io},${sm ? `${sm.config.M}x${sm.config.N}x${sm.config.K},${sm.spelling}` : 'portable'}`;
  let module = modules.get(key);
  if (!module) {
    let code = io === 'f16' ? mmaKernel.code.replace(/^alias io_t = f32;/m, 'alias io_t = f16;') : mmaKernel.code;
    let includes = mmaKernel.includes;
    if (sm) {
      code = code.replace(/^\/\/!include attention_mma_body\.wgsl$/m, `//!include ${mmaBodySgmatrix.file}`);
      const shim = subgroupMatrixShim(sm.config, sm.spelling, { left: 'tile_a', right: 'tile_b', result: 'tile_c' });
      includes = [...includes.filter((m) => m.file !== 'attention_mma_body.wgsl'), { ...mmaBodySgmatrix, code: `${mmaBodySgmatrix.code}\n${shim}\n` }];
      // Directives on line 1, so compile errors keep the file's line numbers.
      code = `${SUBGROUP_MATRIX_ENABLES} ${code}`;
    }
    module = { ...mmaKernel, file: `${mmaKernel.file}#${key}`, code, includes };
    modules.set(key, module);
  }
  return module;
}

/** The forward on matrix units: o [Bt, Hq, Nq, Dv] and lse [Bt, Hq, Nq], as attentionForward (same params). */
export function attentionForwardMma(
  fn: string,
  launch: MatrixLaunch,
  params: Record<string, number>,
  t: { q: TensorBase; k: TensorBase; v: TensorBase; mask: TensorBase | null; o: TensorBase; lse: TensorBase },
): void {
  dispatch(mmaModule(launch.body, launch.io, gpu()), 'main', {
    constants: launch.constants,
    bindings: {
      q: rawBuf(t.q, fn), k: rawBuf(t.k, fn), v: rawBuf(t.v, fn),
      mask: t.mask ? rawBuf(t.mask, fn) : dummy(),
      o: rawBuf(t.o, fn), lse: rawBuf(t.lse, fn),
    },
    params,
    workgroups: launch.grid,
    label: `attention.forward.mma.${launch.body}${launch.io === 'f16' ? '.f16' : ''}`,
  });
}
