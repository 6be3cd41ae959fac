// A flags registry that switches kernel variants at run time (fused or reference attention, tile
// sizes), for benchmarks and kernel-fusion experiments.
const flags = new Map<string, unknown>();

export const KNOWN_FLAGS: Record<string, string> = {
  'attention.impl': "default implementation of scaledDotProductAttention: 'fused' | 'reference'",
  'attention.tiles': 'override tile sizes of the fused attention kernels: { BLOCK_M, BLOCK_N, THREADS, HEAD_DIM_MAX }',
  'attention.subgroups': 'fold the forward kernel\'s row maxima and sums with subgroup shuffles: true | false; default: wherever the adapter allows',
  'attention.f16': "how f16 attention runs: 'native' (f16 kernel variant, needs shader-f16) | 'widen' (cast to f32 around the f32 kernels); default native where the adapter has shader-f16",
};

export function setFlag(name: string, value: unknown): void {
  if (!(name in KNOWN_FLAGS)) throw new Error(`kiln: unknown flag '${name}' (known: ${Object.keys(KNOWN_FLAGS).join(', ')})`);
  if (value === undefined) flags.delete(name);
  else flags.set(name, value);
}
export function getFlag(name: string): unknown {
  return flags.get(name);
}
export function listFlags(): Record<string, unknown> {
  return Object.fromEntries(Object.keys(KNOWN_FLAGS).map((k) => [k, flags.get(k)]));
}
