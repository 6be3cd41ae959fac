// Transitional re-exports (removed when the last importer migrates): grad mode lives in ../autograd/mode.ts.
export { withGradMode, isGradEnabled } from '../autograd/mode.js';
