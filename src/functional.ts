// F: the functional API, as PyTorch's torch.nn.functional.
export { softmax, logSoftmax, layerNorm, embedding, concat, stack } from './ops/nn_ops';
export { linear, matmul } from './ops/matmul';
export { relu, gelu, tanh, sigmoid, softplus, exp, log } from './ops/elementwise';
export { dropout } from './nn/dropout';
export { scaledDotProductAttention, attentionWeights } from './attention/sdpa';
export { crossEntropy, mseLoss, binaryCrossEntropyWithLogits, type CrossEntropyOptions, type BceWithLogitsOptions, type Reduction } from './ops/losses';
