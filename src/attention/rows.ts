// The register-tiled attention forward for software adapters (kernels/attention_forward_rows.wgsl): its policy and
// launcher, installed into the plan by enableRowsAttention (Node's init() does; a browser page through
// kiln/experimental), so that a page which never enables it carries none of its kernel text.
import { DeviceError } from '../errors.js';
import { defineFlag, oneOf } from '../gpu/flags.js';
import { attentionForwardRows } from '../launch/attention_rows.js';
import { type RowsCall, installRowsAttention } from './plan.js';
import type { AdapterCaps, TileConfig } from './tiles.js';

/** Head dims the rows kernel holds in registers (ROWS_HD4 vec4s). */
const ROWS_HEAD_DIM_LIMIT = 64;
/** Its workgroup: one subgroup of this many invocations (ROWS_LANES; lavapipe's AVX2 SIMD width). */
const ROWS_LANES = 8;

// Defined here, with the kernel it chooses (a page without enableRowsAttention has neither).
export const forwardKernelFlag = defineFlag<'tiled' | 'rows'>({
  name: 'attention.forwardKernel',
  doc: "the fused forward's scalar kernel: workgroup-memory tiles, or 'rows' (register-tiled, for software adapters)",
  accepts: "'tiled' | 'rows'",
  defaultDoc: "'rows' on a software adapter where it can run",
  parse: oneOf(['tiled', 'rows'] as const),
});

/** Why the rows kernel cannot run a call on this adapter (null: it can). */
function rowsBlocker(c: RowsCall, caps: AdapterCaps): string | null {
  if (Math.max(c.D, c.Dv) > ROWS_HEAD_DIM_LIMIT) return `it holds head dims up to ${ROWS_HEAD_DIM_LIMIT}, got max(D, Dv) = ${Math.max(c.D, c.Dv)}`;
  if (c.D % 4 !== 0 || c.Dv % 4 !== 0) return `it reads k and v as vec4: D ${c.D} and Dv ${c.Dv} must be multiples of 4`;
  const vec4 = ({ t, layout }: RowsCall['kv'][number]) => (layout !== 'view' || c.widened ? true : t.offset % 4 === 0 && t.strides.every((st, i) => i === t.rank - 1 || st % 4 === 0 || t.shape[i] === 1));
  if (!c.kv.every(vec4)) return 'it reads k and v as vec4: their offsets and strides must be multiples of 4';
  if (c.subgroupsOff) return 'it needs subgroups, and attention.subgroups is false';
  if (!caps.hasSubgroups || !caps.subgroupsInOrder) return 'it needs subgroups filled in index order';
  if (caps.subgroupMinSize !== ROWS_LANES || caps.subgroupMaxSize !== ROWS_LANES) return `its workgroup is one subgroup of ${ROWS_LANES} (this adapter's: ${caps.subgroupMinSize}-${caps.subgroupMaxSize})`;
  return null;
}

/**
 * The rows kernel's constants: one subgroup of 8 invocations of 4 query rows (BLOCK_M = 32), key tiles of BLOCK_N = 16
 * (causal skipping and block masks work in them; the kernel walks them 4 keys at a time), HEAD_DIM_MAX 64 (the length
 * of its register arrays).
 */
function rowsTiles(): Required<TileConfig> {
  return { HEAD_DIM_MAX: ROWS_HEAD_DIM_LIMIT, BLOCK_M: 4 * ROWS_LANES, BLOCK_N: 16, THREADS: ROWS_LANES, PARTS: 1 };
}

/** Whether a call runs the rows kernel; forced ('rows') where it cannot, a DeviceError naming why. */
function useRows(fn: string, c: RowsCall, caps: AdapterCaps): boolean {
  const forced = forwardKernelFlag.get();
  if (forced === 'tiled') return false;
  const why = rowsBlocker(c, caps);
  if (forced === 'rows' && why) throw new DeviceError(`${fn}: attention.forwardKernel is 'rows', but ${why}`);
  return forced === 'rows' || (caps.isSoftware && !why && !c.tileOverride);
}

/**
 * Lets the attention plan choose the rows forward: by default on software adapters (a CPU, where a load costs a bounds
 * check and a branch per lane and a barrier splits the shader) wherever it can run and attention.tiles does not override
 * the forward's tiles (those are the tiled kernel's); the flag attention.forwardKernel forces either kernel.
 */
export function enableRowsAttention(): void {
  installRowsAttention({ use: useRows, tiles: rowsTiles, forward: attentionForwardRows });
}
