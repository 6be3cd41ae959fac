import { setGradEnabled } from '../tensor/graph';
export function noGradScope<T>(fn: () => T): T {
  const prev = setGradEnabled(false);
  try {
    return fn();
  } finally {
    setGradEnabled(prev);
  }
}
