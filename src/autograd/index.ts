import { isGradEnabled, withGradMode } from '../tensor/graph.js';
import { ValueError } from '../errors.js';
export { backward, type BackwardOptions } from './backward.js';

/** Runs fn with gradient recording off and returns what it returns. Synchronous. */
export function noGrad<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new ValueError('noGrad: expects a function');
  return withGradMode(false, fn);
}

export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

export { isGradEnabled };

import { Tensor } from '../tensor/tensor.js';
import { backward as runBackward } from './backward.js';
(Tensor.prototype as unknown as { backward: unknown }).backward = function (this: Tensor, gradient?: Tensor, options?: { retainGraph?: boolean }) {
  runBackward(this, gradient, options);
};
