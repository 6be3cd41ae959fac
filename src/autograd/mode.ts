// Gradient mode: whether ops record on the tape. noGrad / enableGrad are synchronous and return what fn returns.
import { ValueError } from '../errors.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with recording switched on or off, restoring the previous mode afterwards. */
export function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn with gradient recording off and returns what it returns. Synchronous. */
export function noGrad<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new ValueError('noGrad: expects a function');
  return withGradMode(false, fn);
}

/** Runs fn with gradient recording on (inside noGrad, say) and returns what it returns. Synchronous. */
export function enableGrad<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new ValueError('enableGrad: expects a function');
  return withGradMode(true, fn);
}
