// Public exports of src/optim.
export { Optimizer, SGD, Adam, AdamW, type SGDOptions, type AdamOptions } from './optimizer';
export { clipGradNorm } from './clip';
export { LambdaLR, LinearWarmupLR, CosineAnnealingLR, WarmupCosineLR, linearWarmup, cosineDecay, warmupCosine } from './schedule';
