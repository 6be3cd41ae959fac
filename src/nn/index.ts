// Public exports of src/nn.
export { Module, StateDictError, copyInto, checkFeatures } from './module.js';
export { Linear, Embedding, LayerNorm, Dropout, Sequential, ModuleList, ReLU, GELU, Tanh, Sigmoid, type LinearOptions, type EmbeddingOptions, type LayerNormOptions } from './layers.js';
export { dropout, dropoutMask, type DropoutOptions } from './dropout.js';
export { checkSeed, uniformParam, normalParam, constParam } from './init.js';
export { MultiheadAttention, TransformerEncoderLayer, AttentionPooling, AdditiveAttention, type MultiheadAttentionOptions, type TransformerEncoderLayerOptions, type AttentionCallOptions } from './attention.js';
