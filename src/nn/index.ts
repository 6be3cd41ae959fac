// Public exports of src/nn.
export { Module, StateDictError, copyInto, checkFeatures } from './module';
export { Linear, Embedding, LayerNorm, Dropout, Sequential, ModuleList, ReLU, GELU, Tanh, Sigmoid, type LinearOptions, type EmbeddingOptions, type LayerNormOptions } from './layers';
export { dropout, dropoutMask, type DropoutOptions } from './dropout';
export { checkSeed, uniformParam, normalParam, constParam } from './init';
export { MultiheadAttention, TransformerEncoderLayer, AttentionPooling, AdditiveAttention, type MultiheadAttentionOptions, type TransformerEncoderLayerOptions, type AttentionCallOptions } from './attention';
