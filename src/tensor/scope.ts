// tidy() scopes: every tensor made while a scope is open belongs to it, and is disposed when the scope closes unless
// the scope's result holds it. The backward walk opens one per rule, so rules never hand-dispose temporaries.
import { KilnError, ValueError } from '../errors.js';

/** What a scope needs of a tensor: disposing it, and whether autograd made it the `.grad` of a tensor made outside. */
export interface Scoped {
  dispose(): void;
  isGradOfOutside: boolean;
}

type Scope = Set<Scoped>;
const scopes: Scope[] = [];

/** Puts a new tensor in the innermost open scope. */
export function track(t: Scoped): void {
  if (scopes.length) scopes[scopes.length - 1].add(t);
}

/** Takes a tensor out of every open scope (it was disposed, or it is kept). */
export function untrack(t: Scoped): void {
  for (const s of scopes) s.delete(t);
}

/** Tensors held by a result: at any depth of arrays, plain objects and Maps (cycles are followed once). */
function collect(value: unknown, isTensor: (v: unknown) => boolean, into: Set<unknown>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, isTensor, into, seen);
  else if (value instanceof Map) for (const v of value.values()) collect(v, isTensor, into, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null) {
    for (const v of Object.values(value)) collect(v, isTensor, into, seen);
  }
}

function isAsync(fn: unknown): boolean {
  return typeof fn === 'function' && fn.constructor?.name === 'AsyncFunction';
}

/**
 * Runs fn in a new scope. Every tensor created inside is disposed when fn returns, except those its result holds
 * (in arrays, plain objects or Maps, at any depth) and gradients accumulated into `.grad` of tensors made outside;
 * those move to the enclosing scope. If fn throws, everything it created is disposed. fn must be synchronous.
 */
export function runScoped<T>(fn: () => T, isTensor: (v: unknown) => boolean, name = 'tidy'): T {
  if (typeof fn !== 'function') throw new ValueError(`${name}: expects a function`);
  if (isAsync(fn)) throw new ValueError(`${name}: fn must be synchronous (it is an async function); await outside ${name}`);
  const scope: Scope = new Set();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    for (const t of scope) t.dispose();
    throw new KilnError(`${name}: fn must be synchronous (it returned a Promise); the tensors it had created were disposed`);
  }
  const kept = new Set<unknown>();
  collect(result, isTensor, kept, new Set());
  const outer = scopes.length ? scopes[scopes.length - 1] : null;
  for (const t of scope) {
    if (kept.has(t) || t.isGradOfOutside) outer?.add(t);
    else t.dispose();
  }
  return result;
}

/** Keeps a tensor made inside tidy() alive past every open scope. */
export function keepScoped<T extends Scoped>(t: T): T {
  untrack(t);
  return t;
}
