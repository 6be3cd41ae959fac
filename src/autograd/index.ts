// Transitional re-exports (removed when the last importer migrates).
export { noGrad, enableGrad, isGradEnabled, withGradMode } from './mode.js';
export { backward, type BackwardOptions } from './backward.js';
