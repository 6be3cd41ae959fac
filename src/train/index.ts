// Public exports of src/train.
export { batches, permutation, TensorDataset, type BatchOptions, type Batch, type Dataset } from './data.js';
export { fit, type FitOptions, type FitResult, type EpochLogs, type FitCheckpointOptions } from './fit.js';
export { saveCheckpoint, loadCheckpoint, type SaveCheckpointOptions, type LoadedCheckpoint, type CheckpointParts, type StatefulScheduler } from './checkpoint.js';
export { accuracy, confusionMatrix, precisionRecallF1, classificationReport, type ClassScores, type PrecisionRecallF1 } from './metrics.js';
