// Public exports of src/train.
export { batches, permutation, TensorDataset, type BatchOptions, type Batch, type Dataset } from './data';
export { fit, type FitOptions, type FitResult, type EpochLogs } from './fit';
export { accuracy, confusionMatrix, precisionRecallF1, classificationReport, type ClassScores, type PrecisionRecallF1 } from './metrics';
