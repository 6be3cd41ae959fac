// Launchers of the fused attention kernels (kernels/attention_forward.wgsl, kernels/attention_backward.wgsl), as
// src/attention/plan.ts planned them: which variant (f16, subgroups), the override constants (tiles, PARTS) and the
// folded grids. The kernels' params (shapes, offsets and strides of q, k, v and the mask, scale, causal diagonal,
// dropout) come in whole from the plan; this file binds buffers and dispatches, and decides nothing.
import type { TensorBase } from '../tensor/base.js';
import { dispatch, kernelVariant, type KernelVariant } from '../gpu/kernels.js';
import { dummy, rawBuf } from './common.js';
import forwardKernel from './kernels/attention_forward.js';
import backwardKernel from './kernels/attention_backward.js';

/** One planned launch: override constants and the (folded) grid. */
export interface AttentionLaunch {
  readonly constants: Readonly<Record<string, number>>;
  readonly grid: readonly [number, number, number];
}

/** The forward: o [Bt, Hq, Nq, Dv] and lse [Bt, Hq, Nq] from q, k, v and the mask (any of them strided, as params say). */
export function attentionForward(
  fn: string,
  variant: readonly KernelVariant[],
  label: string,
  launch: AttentionLaunch,
  params: Record<string, number>,
  t: { q: TensorBase; k: TensorBase; v: TensorBase; mask: TensorBase | null; o: TensorBase; lse: TensorBase },
): void {
  dispatch(kernelVariant(forwardKernel, variant), 'main', {
    constants: launch.constants,
    bindings: {
      q: rawBuf(t.q, fn), k: rawBuf(t.k, fn), v: rawBuf(t.v, fn),
      mask: t.mask ? rawBuf(t.mask, fn) : dummy(),
      o: rawBuf(t.o, fn), lse: rawBuf(t.lse, fn),
    },
    params,
    workgroups: launch.grid,
    label,
  });
}

/** The three passes of the backward: delta, dK/dV (owning key tiles) and dQ (owning query tiles; and dmask). */
export function attentionBackward(
  fn: string,
  variant: readonly KernelVariant[],
  label: string,
  launches: { dkdv: AttentionLaunch; dq: AttentionLaunch; deltaGrid: readonly [number, number, number] },
  params: Record<string, number>,
  t: {
    q: TensorBase; k: TensorBase; v: TensorBase; mask: TensorBase | null; o: TensorBase; dout: TensorBase; lse: TensorBase;
    delta: TensorBase; dq: TensorBase; dk: TensorBase; dv: TensorBase; dmask: TensorBase | null;
  },
): void {
  const kernel = kernelVariant(backwardKernel, variant);
  const bindings = {
    q: rawBuf(t.q, fn), k: rawBuf(t.k, fn), v: rawBuf(t.v, fn),
    mask: t.mask ? rawBuf(t.mask, fn) : dummy(),
    o: rawBuf(t.o, fn), dout: rawBuf(t.dout, fn), lse: rawBuf(t.lse, fn),
    delta: rawBuf(t.delta, fn), dq: rawBuf(t.dq, fn), dk: rawBuf(t.dk, fn), dv: rawBuf(t.dv, fn),
    dmask: t.dmask ? rawBuf(t.dmask, fn) : dummy(true),
  };
  dispatch(kernel, 'delta_main', { constants: launches.dkdv.constants, bindings, params, workgroups: launches.deltaGrid, label: `attention.backward.delta${label}` });
  dispatch(kernel, 'dkdv', { constants: launches.dkdv.constants, bindings, params, workgroups: launches.dkdv.grid, label: `attention.backward.dkdv${label}` });
  dispatch(kernel, 'dq_main', { constants: launches.dq.constants, bindings, params, workgroups: launches.dq.grid, label: `attention.backward.dq${label}` });
}
