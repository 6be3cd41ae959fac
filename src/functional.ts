// F: the functional API, as PyTorch's torch.nn.functional.
export { softmax, logSoftmax, layerNorm, embedding, concat, stack } from './ops/nn_ops';
export { linear, matmul } from './ops/matmul';
export { relu, gelu, tanh, sigmoid, softplus, exp, log } from './ops/elementwise';
