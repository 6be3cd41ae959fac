// Public exports of src/nn (the `nn` namespace): modules, layers and the seeded parameter initialiser examples use.
export { Module, StateDictError } from './module.js';
export {
  Linear, Embedding, LayerNorm, RMSNorm, Dropout, Sequential, ModuleList, ModuleDict, ReLU, GELU, SiLU, Identity, Tanh, Sigmoid,
  type LinearOptions, type EmbeddingOptions, type LayerNormOptions, type RMSNormOptions,
} from './layers.js';
export type { DropoutOptions } from './dropout.js';
export { normalParam } from './init.js';
export {
  MultiheadAttention, TransformerEncoderLayer, TransformerDecoderLayer, AttentionPooling, AdditiveAttention, type MultiheadAttentionOptions,
  type TransformerEncoderLayerOptions, type TransformerDecoderLayerOptions, type DecoderCallOptions, type AttentionCallOptions,
} from './attention.js';
export {
  Conv2d, Conv1d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, BatchNorm2d, BatchNorm1d,
  type Conv2dOptions, type Conv1dModuleOptions, type MaxPool2dOptions, type AvgPool2dOptions, type BatchNormModuleOptions,
} from './conv.js';
