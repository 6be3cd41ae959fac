// Public exports of src/train.
export { batches, permutation, TensorDataset, type BatchOptions, type Batch, type Dataset } from './data.js';
export { fit, type FitOptions, type FitResult, type EpochLogs } from './fit.js';
export { accuracy, confusionMatrix, precisionRecallF1, classificationReport, type ClassScores, type PrecisionRecallF1 } from './metrics.js';
