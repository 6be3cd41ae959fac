// F: the functional API, as PyTorch's torch.nn.functional.
export { softmax, logSoftmax, layerNorm, embedding, concat, stack } from './ops/nn_ops.js';
export { linear, matmul } from './ops/matmul.js';
export { relu, gelu, tanh, sigmoid, softplus, exp, log, silu } from './ops/elementwise.js';
export { dropout } from './nn/dropout.js';
export { scaledDotProductAttention, attentionWeights } from './attention/sdpa.js';
export { flexAttention } from './attention/flex.js';
export { crossEntropy, mseLoss, binaryCrossEntropyWithLogits, type CrossEntropyOptions, type BceWithLogitsOptions, type Reduction } from './ops/losses.js';
export {
  conv2d, conv1d, maxPool2d, avgPool2d, adaptiveAvgPool2d, batchNorm,
  type ConvOptions, type Conv1dOptions, type MaxPoolOptions, type AvgPoolOptions, type BatchNormOptions, type Pair,
} from './ops/conv.js';
