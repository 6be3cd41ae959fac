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

/**
 * autocast's region (src/ops/autocast.ts), null outside every enabled one. Here, beside the grad mode, so that
 * backward() can run its rules with autocast off (as PyTorch's engine does: a backward op runs in the dtypes its
 * forward chose).
 */
export interface AutocastRegion {
  readonly dtype: 'f16';
}
let autocastRegion: AutocastRegion | null = null;

export function currentAutocast(): AutocastRegion | null {
  return autocastRegion;
}

/** Runs fn inside `region` (null: autocast off), restoring the previous one afterwards. */
export function withAutocast<T>(region: AutocastRegion | null, fn: () => T): T {
  const prev = autocastRegion;
  autocastRegion = region;
  try {
    return fn();
  } finally {
    autocastRegion = prev;
  }
}
