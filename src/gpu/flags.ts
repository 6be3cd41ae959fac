// Run-time flags: kernel variants, tile choices and other switches for benchmarks and experiments (kiln/experimental).
// Each flag is defined once, by the layer that reads it, with its type (the parser), the values it accepts, its
// default and one line of documentation. setFlag checks a value against that entry when it is given (an unknown flag or
// a value the entry does not accept is a ValueError naming both), and against the live device when there is one; the
// layer reads it back through its typed handle, so no reader casts.
import { bumpTraceEpoch } from './recorder.js';
import { DeviceError, KilnError, ValueError } from '../errors.js';
import { currentDeviceOrNull, type KilnDevice } from './device.js';

export interface FlagSpec<T> {
  /** '<layer>.<name>', e.g. 'attention.impl'. */
  readonly name: string;
  /** One line: what the flag switches. */
  readonly doc: string;
  /** The values it accepts, as a reader would write them: "'fused' | 'reference'". */
  readonly accepts: string;
  /** What applies while the flag is unset. */
  readonly defaultDoc: string;
  /** The value, checked (and normalised); throws ValueError saying what is wrong with it. */
  readonly parse: (value: unknown) => T;
  /** Checks a parsed value against a device's limits and features; throws DeviceError (or ValueError). */
  readonly checkDevice?: (value: T, device: KilnDevice) => void;
}

/** A defined flag, as the layer that reads it sees it. */
export interface Flag<T> {
  readonly name: string;
  /** The value given to setFlag (parsed), or undefined when unset (the default applies). */
  get(): T | undefined;
}

interface Entry {
  spec: FlagSpec<unknown>;
  value: unknown;
}

const registry = new Map<string, Entry>();

/** Flag name -> its documentation line (with what it accepts and its default). */
export const KNOWN_FLAGS: Record<string, string> = {};

/** Defines a flag; each name once. */
export function defineFlag<T>(spec: FlagSpec<T>): Flag<T> {
  if (registry.has(spec.name)) throw new KilnError(`kiln: flag '${spec.name}' is defined twice`);
  const entry: Entry = { spec: spec as FlagSpec<unknown>, value: undefined };
  registry.set(spec.name, entry);
  KNOWN_FLAGS[spec.name] = `${spec.doc}: ${spec.accepts}; default: ${spec.defaultDoc}`;
  return { name: spec.name, get: () => entry.value as T | undefined };
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function entryOf(fn: string, name: unknown): Entry {
  const entry = typeof name === 'string' && Object.hasOwn(KNOWN_FLAGS, name) ? registry.get(name) : undefined;
  if (!entry) throw new ValueError(`${fn}: unknown flag ${describe(name)}; known flags: ${[...registry.keys()].join(', ')}`);
  return entry;
}

/**
 * Sets a flag (undefined resets it to its default). The value is checked now: a flag that does not exist, or a value
 * it does not accept, is a ValueError naming the flag and what it accepts; a value the current device cannot run is a
 * DeviceError.
 */
export function setFlag(name: string, value: unknown): void {
  bumpTraceEpoch();
  const entry = entryOf('setFlag', name);
  if (value === undefined) {
    entry.value = undefined;
    return;
  }
  const { spec } = entry;
  const where = `setFlag('${spec.name}', ${describe(value)})`;
  let parsed: unknown;
  try {
    parsed = spec.parse(value);
    const kd = currentDeviceOrNull();
    if (kd && spec.checkDevice) spec.checkDevice(parsed, kd);
  } catch (e) {
    if (e instanceof ValueError) throw new ValueError(`${where}: ${e.message}; accepted: ${spec.accepts}`);
    if (e instanceof DeviceError) throw new DeviceError(`${where}: ${e.message}`);
    throw e;
  }
  entry.value = parsed;
}

/** The value a flag was set to, or undefined while it is unset. */
export function getFlag(name: string): unknown {
  return entryOf('getFlag', name).value;
}

/** Every flag's current value (undefined where unset). */
export function listFlags(): Record<string, unknown> {
  return Object.fromEntries([...registry].map(([name, e]) => [name, e.value]));
}

/** A parser accepting exactly `values`. */
export function oneOf<const V extends readonly (string | boolean | number)[]>(values: V): (value: unknown) => V[number] {
  return (value) => {
    if (!values.includes(value as V[number])) throw new ValueError(`${describe(value)} is not an accepted value`);
    return value as V[number];
  };
}
