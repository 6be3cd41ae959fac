/// <reference types="@webgpu/types" preserve="true" />
// kiln's public API, and nothing else (docs/api.md's contract and what README documents). Flags, attention tile
// choices, raw kernel access, the GPU device, GPU counters and timers are in kiln/experimental (src/experimental.ts).
// Every module is free of import side effects (package.json "sideEffects": false), so bundlers keep what a page uses.

export { init, deviceInfo, type InitOptions, type DeviceInfo } from './gpu/device.js';
export { memory, resetPeak, emptyCache, setPoolLimit, type MemoryInfo } from './gpu/memory.js';
export { flush, sync } from './gpu/queue.js';
export { KilnError, ShapeError, DTypeError, DeviceError, DisposedError, ValueError, IndexError, CheckpointError } from './errors.js';
export { Tensor } from './ops/tensor.js';
export { tensor, type TensorOptions } from './ops/creation.js';
export { tidy, keep } from './tensor/base.js';
export type { NestedArray } from './tensor/host.js';
export type { DType } from './tensor/dtype.js';
export { manualSeed, getRngState, setRngState, type RngState } from './tensor/random.js';
export { enableLeakDetector } from './tensor/leaks.js';
export { zeros, ones, full, zerosLike, onesLike, fullLike, arange, rand, randn, type CreateOptions, type RandomOptions } from './ops/creation.js';
export {
  add, sub, mul, div, pow, neg, exp, log, sqrt, rsqrt, abs, relu, gelu, tanh, sigmoid, sin, cos, softplus, log1p, clamp,
  maximum, minimum, eq, ne, lt, le, gt, ge, logicalAnd, logicalOr, logicalNot, where, clone, silu, erf,
} from './ops/elementwise.js';
export { sum, mean, max, min, amax, amin, argmax, argmin, var, std, logsumexp, all, any, type VarOptions, type MaxResult } from './ops/reduce.js';
export { matmul, linear, bmm, setMatmulPrecision, getMatmulPrecision } from './ops/matmul.js';
export { split, chunk, flip, repeat } from './ops/shape_ops.js';
export { triu, tril, maskedFill } from './ops/masking.js';
export { gather, indexSelect, scatterAdd, cumsum } from './ops/indexing.js';
export { einsum } from './ops/einsum.js';
export { sort, argsort, topk, multinomial, type SortOptions, type TopkOptions, type SortResult, type MultinomialOptions } from './ops/sorting.js';
export { reshape, flatten, permute, transpose, unsqueeze, squeeze, expand, slice, select, contiguous, detach } from './ops/views.js';
export { softmax, logSoftmax, layerNorm, embedding, concat, stack } from './ops/nn_ops.js';
export { noGrad, enableGrad, isGradEnabled } from './autograd/mode.js';
export { autocast, type AutocastOptions } from './ops/autocast.js';
export { backward } from './autograd/backward.js';
export { gradcheck, type GradcheckOptions, type GradcheckResult, type GradcheckInputResult } from './ops/gradcheck.js';
export { defineOp, type OpDefinition, type OpContext, type CustomOp } from './ops/custom.js';
export type { CustomLaunchSpec, CustomOutput } from './launch/custom.js';
export * as F from './functional.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export { save, load, readHeader, type SaveOptions, type LoadResult } from './io/index.js';
export {
  batches, permutation, TensorDataset, fit, saveCheckpoint, loadCheckpoint, accuracy, confusionMatrix, precisionRecallF1, classificationReport,
  type BatchOptions, type Batch, type Dataset, type FitOptions, type FitResult, type EpochLogs, type FitCheckpointOptions, type SaveCheckpointOptions, type LoadedCheckpoint, type CheckpointParts, type ClassScores, type PrecisionRecallF1,
} from './train/index.js';
export { scaledDotProductAttention, attentionWeights, KVCache, type SdpaOptions } from './attention/index.js';
export { flexAttention, createBlockMask, BlockMask, type FlexAttentionOptions, type ScoreMod, type MaskMod } from './attention/index.js';
export { Expr, where as exprWhere } from './ops/expr.js';
export { attentionMods } from './attention/index.js';
export * as viz from './viz/index.js';
export { compile, type CompileOptions, type CompiledStep, type CompiledStats, type ExplainOptions, type FusePasses } from './compile/index.js';
