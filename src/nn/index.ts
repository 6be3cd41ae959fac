// Public exports of src/nn (the `nn` namespace): modules, layers and the seeded parameter initialiser examples use.
export { Module, StateDictError } from './module.js';
export { Linear, Embedding, LayerNorm, Dropout, Sequential, ModuleList, ReLU, GELU, Tanh, Sigmoid, type LinearOptions, type EmbeddingOptions, type LayerNormOptions } from './layers.js';
export type { DropoutOptions } from './dropout.js';
export { normalParam } from './init.js';
export { MultiheadAttention, TransformerEncoderLayer, AttentionPooling, AdditiveAttention, type MultiheadAttentionOptions, type TransformerEncoderLayerOptions, type AttentionCallOptions } from './attention.js';
