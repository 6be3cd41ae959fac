/** Base class of every error kiln throws on purpose. */
export class KilnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** Shapes that do not fit together, or sizes and dims that are out of range. */
export class ShapeError extends KilnError {}
/** A dtype the operation does not accept, or two that do not mix. */
export class DTypeError extends KilnError {}
/** No adapter, a lost device, a kernel that failed to compile, a limit exceeded. */
export class DeviceError extends KilnError {}
/** Use of a tensor after dispose(). */
export class DisposedError extends KilnError {}
/** An argument with a value outside its domain (a learning rate of NaN, p = 1.5, an unknown option key, ...). */
export class ValueError extends KilnError {}
/** An index outside its tensor (an embedding id, a class target, a gather index), found on the device at the next sync. */
export class IndexError extends KilnError {}
/** A checkpoint that cannot be written or read: a file error, a malformed header, a dtype kiln does not know. */
export class CheckpointError extends KilnError {}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * Checks an options object: it must be undefined, null or a plain object, and every own key must be one of
 * `allowed`. An unknown key is a ValueError naming it and what is allowed (`{ causal: true }` where `isCausal` is
 * meant), with a suggestion when one allowed key differs only in case or by a small edit. Returns the object, or {}
 * for undefined / null.
 */
export function checkOptions<T extends object>(fn: string, options: T | null | undefined, allowed: readonly string[]): T {
  if (options === undefined || options === null) return {} as T;
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new ValueError(`${fn}: options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (allowed.includes(key)) continue;
    const hint = closest(key, allowed);
    throw new ValueError(
      `${fn}: unknown option '${key}'${hint ? ` (did you mean '${hint}'?)` : ''}; allowed: ${allowed.length ? allowed.join(', ') : 'none'}`,
    );
  }
  return options;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'an array';
  return String(v);
}

/** The allowed key nearest to `key` (case-insensitive equality, or edit distance <= 2), if any. */
function closest(key: string, allowed: readonly string[]): string | null {
  const lower = key.toLowerCase();
  let best: string | null = null;
  let bestDist = 3;
  for (const a of allowed) {
    if (a.toLowerCase() === lower) return a;
    const d = editDistance(lower, a.toLowerCase());
    if (d < bestDist) {
      bestDist = d;
      best = a;
    }
  }
  if (best) return best;
  // A key that names part of an allowed one ('causal' for 'isCausal').
  return allowed.find((a) => a.toLowerCase().includes(lower) && lower.length >= 3) ?? null;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
