// Transitional re-exports for code written before the layer split (removed when the last importer migrates):
// TensorBase lives in ./base.ts, the Tensor users hold in ../ops/tensor.ts, creation in ../ops/creation.ts.
export { Tensor } from '../ops/tensor.js';
export { tensor, empty, type TensorOptions } from '../ops/creation.js';
export { tidy, keep, upload, Storage } from './base.js';
export type { NestedArray } from './host.js';
