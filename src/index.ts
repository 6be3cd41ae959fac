// kiln's public API, and nothing else.
import './ops/methods';
import './autograd/index';

export { init, deviceInfo, type InitOptions, type DeviceInfo } from './gpu/device';
export { memory, resetPeak, emptyCache, setPoolLimit, type MemoryInfo } from './gpu/memory';
export { flush, sync, stats as gpuStats, resetStats as resetGpuStats } from './gpu/queue';
export { startGpuTimer, hasTimestampQuery, gpuDevice, type GpuTiming } from './gpu/profiler';
export { compileKernel, kernelFiles } from './gpu/kernels';
export { KilnError, ShapeError, DTypeError, DeviceError, DisposedError, ValueError } from './errors';
export { Tensor, tensor, tidy, keep, type TensorOptions, type NestedArray } from './tensor/tensor';
export type { DType } from './tensor/dtype';
export { manualSeed } from './tensor/random';
export { enableLeakDetector } from './tensor/leaks';
export { zeros, ones, full, zerosLike, onesLike, fullLike, arange, rand, randn, type CreateOptions, type RandomOptions } from './ops/creation';
export {
  add, sub, mul, div, pow, neg, exp, log, sqrt, rsqrt, abs, relu, gelu, tanh, sigmoid, sin, cos, softplus, log1p, clamp,
  maximum, minimum, eq, ne, lt, le, gt, ge, logicalAnd, logicalOr, logicalNot, where, clone,
} from './ops/elementwise';
export { sum, mean, max, min, argmax, argmin } from './ops/reduce';
export { matmul, linear } from './ops/matmul';
export { reshape, flatten, permute, transpose, unsqueeze, squeeze, expand, slice, select, contiguous, detach } from './ops/views';
export { softmax, logSoftmax, layerNorm, embedding, concat, stack } from './ops/nn_ops';
export { noGrad, enableGrad, isGradEnabled, backward } from './autograd/index';
export { gradcheck, type GradcheckOptions, type GradcheckResult, type GradcheckInputResult } from './autograd/gradcheck';
export * as F from './functional';
export * as nn from './nn/index';
export * as optim from './optim/index';
export * from './io/index';
export * from './train/index';
export * from './attention/index';
export * as viz from './viz/index';
