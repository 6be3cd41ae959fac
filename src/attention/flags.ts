// The flags attention reads (kiln/experimental): each defined once here with its type, accepted values, default and
// doc line; plan.ts reads them through these typed handles when it plans a call, and nothing else reads them.
import { defineFlag, oneOf } from '../gpu/flags.js';
import { DeviceError } from '../errors.js';
import { checkTilesOnDevice, parseTilesFlag, type TileOverrides } from './tiles.js';

export const implFlag = defineFlag<'fused' | 'reference'>({
  name: 'attention.impl',
  doc: 'default implementation of scaledDotProductAttention (an explicit impl option wins)',
  accepts: "'fused' | 'reference'",
  defaultDoc: "'fused'",
  parse: oneOf(['fused', 'reference'] as const),
});

export const tilesFlag = defineFlag<TileOverrides>({
  name: 'attention.tiles',
  doc: 'tile sizes of the fused attention kernels, checked against their constraints and the adapter limits',
  accepts: '{ BLOCK_M?, BLOCK_N?, THREADS?, HEAD_DIM_MAX?, PARTS? } for every kind, or { forward?, dkdv?, dq? } of those '
    + '(BLOCK_M, BLOCK_N, HEAD_DIM_MAX multiples of 4; PARTS a power of two; THREADS >= (BLOCK_M / 4) * (BLOCK_N / 4) * PARTS '
    + 'and a multiple of the owned row groups; at most 4 vec4 columns per thread)',
  defaultDoc: "chosen per head dim from the adapter's workgroup memory and invocation limits",
  parse: parseTilesFlag,
  checkDevice: checkTilesOnDevice,
});

export const subgroupsFlag = defineFlag<boolean>({
  name: 'attention.subgroups',
  doc: "fold the fused kernels' row maxima and sums (and split score blocks) with subgroup shuffles",
  accepts: 'true | false',
  defaultDoc: 'wherever the adapter allows (subgroups filled in index order, tiles that fit)',
  parse: oneOf([true, false] as const),
  checkDevice(value, kd) {
    if (value && !kd.hasSubgroups) throw new DeviceError('the adapter has no subgroups');
  },
});

export const f16Flag = defineFlag<'native' | 'widen'>({
  name: 'attention.f16',
  doc: "how f16 attention runs: the kernels' f16 variant (needs shader-f16) or f32 kernels between casts",
  accepts: "'native' | 'widen'",
  defaultDoc: "'native' where the adapter has shader-f16, else 'widen'",
  parse: oneOf(['native', 'widen'] as const),
  checkDevice(value, kd) {
    if (value === 'native' && !kd.hasF16) throw new DeviceError("'native' needs the adapter feature shader-f16, which this device lacks");
  },
});

export { setFlag, getFlag, listFlags, KNOWN_FLAGS } from '../gpu/flags.js';
