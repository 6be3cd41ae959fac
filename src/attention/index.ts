export { scaledDotProductAttention, attentionWeights, chooseTiles, type SdpaOptions, type CausalOption } from './sdpa.js';
export { setFlag, getFlag, listFlags, KNOWN_FLAGS } from './flags.js';
export { KVCache } from './kv_cache.js';
export { flexAttention, createBlockMask, BlockMask, type FlexAttentionOptions, type ScoreMod, type MaskMod } from './flex.js';
export { attentionMods } from './mods.js';
