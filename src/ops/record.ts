// Transitional re-export (removed when the last importer migrates): the tape lives in ../autograd/node.ts.
export { record } from '../autograd/node.js';
