// Public exports of src/optim.
export { Optimizer, SGD, Adam, AdamW, type SGDOptions, type AdamOptions } from './optimizer.js';
export { clipGradNorm } from './clip.js';
export { LambdaLR, LinearWarmupLR, CosineAnnealingLR, WarmupCosineLR, linearWarmup, cosineDecay, warmupCosine } from './schedule.js';
