// Public exports of src/io.
export { save, load, readHeader, CheckpointError, type SaveOptions, type LoadResult } from './safetensors.js';
