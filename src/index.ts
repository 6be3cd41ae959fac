// kiln's public API, and nothing else.
import './ops/methods';
import './autograd/index';

export { init, deviceInfo, type InitOptions, type DeviceInfo } from './gpu/device.js';
export { memory, resetPeak, emptyCache, setPoolLimit, type MemoryInfo } from './gpu/memory.js';
export { flush, sync, stats as gpuStats, resetStats as resetGpuStats } from './gpu/queue.js';
export { startGpuTimer, hasTimestampQuery, gpuDevice, type GpuTiming } from './gpu/profiler.js';
export { compileKernel, kernelFiles } from './gpu/kernels.js';
export { KilnError, ShapeError, DTypeError, DeviceError, DisposedError, ValueError } from './errors.js';
export { Tensor, tensor, tidy, keep, type TensorOptions, type NestedArray } from './tensor/tensor.js';
export type { DType } from './tensor/dtype.js';
export { manualSeed } from './tensor/random.js';
export { enableLeakDetector } from './tensor/leaks.js';
export { zeros, ones, full, zerosLike, onesLike, fullLike, arange, rand, randn, type CreateOptions, type RandomOptions } from './ops/creation.js';
export {
  add, sub, mul, div, pow, neg, exp, log, sqrt, rsqrt, abs, relu, gelu, tanh, sigmoid, sin, cos, softplus, log1p, clamp,
  maximum, minimum, eq, ne, lt, le, gt, ge, logicalAnd, logicalOr, logicalNot, where, clone,
} from './ops/elementwise.js';
export { sum, mean, max, min, argmax, argmin } from './ops/reduce.js';
export { matmul, linear } from './ops/matmul.js';
export { reshape, flatten, permute, transpose, unsqueeze, squeeze, expand, slice, select, contiguous, detach } from './ops/views.js';
export { softmax, logSoftmax, layerNorm, embedding, concat, stack } from './ops/nn_ops.js';
export { noGrad, enableGrad, isGradEnabled, backward } from './autograd/index.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult, type GradcheckInputResult } from './autograd/gradcheck.js';
export * as F from './functional.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * from './io/index.js';
export * from './train/index.js';
export * from './attention/index.js';
export * as viz from './viz/index.js';
