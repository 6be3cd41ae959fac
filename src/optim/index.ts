// Public exports of src/optim.
export { Optimizer, SGD, Adam, AdamW, type SGDOptions, type AdamOptions, type OptimizerStateDict, type OptimizerParamState, type OptimizerParamGroup } from './optimizer.js';
export { clipGradNorm, clipGradValue } from './clip.js';
export { GradScaler, type GradScalerOptions, type GradScalerStateDict } from './scaler.js';
export {
  LRScheduler, LambdaLR, LinearWarmupLR, CosineAnnealingLR, WarmupCosineLR, StepLR, MultiStepLR, ExponentialLR, LinearLR, ReduceLROnPlateau,
  linearWarmup, cosineDecay, warmupCosine, type SchedulerStateDict, type ReduceLROnPlateauOptions,
} from './schedule.js';
