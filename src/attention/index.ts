export { scaledDotProductAttention, attentionWeights, chooseTiles, type SdpaOptions } from './sdpa';
export { setFlag, getFlag, listFlags, KNOWN_FLAGS } from './flags';
export { KVCache } from './kv_cache';
