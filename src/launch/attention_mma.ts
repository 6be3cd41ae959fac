// Launchers of the matrix-unit attention forward and backward (kernels/attention_mma.wgsl,
// kernels/attention_mma_backward.wgsl; the backward's delta pass is attention_backward.wgsl's), as planned: the
// body (the subgroup-matrix builtins with the probed config's shim, or the portable WGSL body), the storage type of
// q, k, v and o (f32 or f16), the tile constants and the folded grid. Decides nothing.
import type { ParamValues } from '../gpu/recorder.js';
import type { TensorBase } from '../tensor/base.js';
import { type KilnDevice, gpu } from '../gpu/device.js';
import { type KernelModule, type KernelVariant, dispatch, kernelVariant } from '../gpu/kernels.js';
import { SUBGROUP_MATRIX_ENABLES, subgroupMatrixShim } from '../gpu/subgroup_matrix.js';
import { dummy, rawBuf } from './common.js';
import mmaKernel from './kernels/attention_mma.js';
import mmaBackwardKernel from './kernels/attention_mma_backward.js';
import mmaBodySgmatrix from './kernels/attention_mma_body_sgmatrix.js';
import backwardKernel from './kernels/attention_backward.js';

export type MatrixBody = 'sgmatrix' | 'portable';

/** One planned matrix-kernel launch. */
export interface MatrixLaunch {
  readonly body: MatrixBody;
  /** Storage type of q, k, v and o. */
  readonly io: 'f32' | 'f16';
  readonly constants: Readonly<Record<string, number>>;
  readonly grid: readonly [number, number, number];
  /** The backward's passes on matrix units (null: the scalar backward runs). */
  readonly backward: {
    readonly dkdv: { readonly constants: Readonly<Record<string, number>>; readonly grid: readonly [number, number, number] };
    readonly dq: { readonly constants: Readonly<Record<string, number>>; readonly grid: readonly [number, number, number] };
  } | null;
}

// Modules built once per (body, io, config, spelling): the io_t alias set, and for the builtins' body the include
// swapped and the shim appended (WGSL types take the config's sizes, which an override cannot express).
const modules = new Map<string, KernelModule>();

function mmaModule(kernel: KernelModule, body: MatrixBody, io: 'f32' | 'f16', kd: KilnDevice): KernelModule {
  const sm = body === 'sgmatrix' ? kd.subgroupMatrix! : null;
  const key = `${kernel.file},${io},${sm ? `${sm.config.M}x${sm.config.N}x${sm.config.K},${sm.spelling}` : 'portable'}`;
  let module = modules.get(key);
  if (!module) {
    let code = io === 'f16' ? kernel.code.replace(/^alias io_t = f32;/m, 'alias io_t = f16;') : kernel.code;
    let includes = kernel.includes;
    if (sm) {
      code = code.replace(/^\/\/!include attention_mma_body\.wgsl$/m, `//!include ${mmaBodySgmatrix.file}`);
      // The forward's operands are tile_a (left) and tile_b (right); the backward keeps both sides in tile_h.
      const fwd = kernel === mmaKernel;
      const shim = subgroupMatrixShim(sm.config, sm.spelling, { left: fwd ? 'tile_a' : 'tile_h', right: fwd ? 'tile_b' : 'tile_h', result: 'tile_c' });
      includes = [...includes.filter((m) => m.file !== 'attention_mma_body.wgsl'), { ...mmaBodySgmatrix, code: `${mmaBodySgmatrix.code}\n${shim}\n` }];
      // Directives on line 1, so compile errors keep the file's line numbers.
      code = `${SUBGROUP_MATRIX_ENABLES} ${code}`;
    }
    module = { ...kernel, file: `${kernel.file}#${key}`, code, includes };
    modules.set(key, module);
  }
  return module;
}

/** The forward on matrix units: o [Bt, Hq, Nq, Dv] and lse [Bt, Hq, Nq], as attentionForward (same params). */
export function attentionForwardMma(
  fn: string,
  launch: MatrixLaunch,
  params: ParamValues,
  t: { q: TensorBase; k: TensorBase; v: TensorBase; mask: TensorBase | null; o: TensorBase; lse: TensorBase },
): void {
  dispatch(mmaModule(mmaKernel, launch.body, launch.io, gpu()), 'main', {
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

/** The backward on matrix units: delta, then dK / dV and dQ (and dmask), as attentionBackward (same params). */
export function attentionBackwardMma(
  fn: string,
  launch: MatrixLaunch,
  deltaGrid: readonly [number, number, number],
  params: ParamValues,
  t: {
    q: TensorBase; k: TensorBase; v: TensorBase; mask: TensorBase | null; o: TensorBase; dout: TensorBase; lse: TensorBase;
    delta: TensorBase; dq: TensorBase; dk: TensorBase; dv: TensorBase; dmask: TensorBase | null;
  },
): void {
  const bw = launch.backward!;
  const bindings = {
    q: rawBuf(t.q, fn), k: rawBuf(t.k, fn), v: rawBuf(t.v, fn),
    mask: t.mask ? rawBuf(t.mask, fn) : dummy(),
    o: rawBuf(t.o, fn), dout: rawBuf(t.dout, fn), lse: rawBuf(t.lse, fn),
    delta: rawBuf(t.delta, fn), dq: rawBuf(t.dq, fn), dk: rawBuf(t.dk, fn), dv: rawBuf(t.dv, fn),
    dmask: t.dmask ? rawBuf(t.dmask, fn) : dummy(true),
  };
  const tags: KernelVariant[] = launch.io === 'f16' ? ['f16'] : [];
  const sfx = `.mma.${launch.body}${launch.io === 'f16' ? '.f16' : ''}`;
  dispatch(kernelVariant(backwardKernel, tags), 'delta_main', { bindings, params, workgroups: deltaGrid, label: `attention.backward.delta${launch.io === 'f16' ? '.f16' : ''}` });
  const module = mmaModule(mmaBackwardKernel, launch.body, launch.io, gpu());
  dispatch(module, 'dkdv', { constants: bw.dkdv.constants, bindings, params, workgroups: bw.dkdv.grid, label: `attention.backward.dkdv${sfx}` });
  dispatch(module, 'dq_main', { constants: bw.dq.constants, bindings, params, workgroups: bw.dq.grid, label: `attention.backward.dq${sfx}` });
}
