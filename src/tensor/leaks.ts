// Optional leak detector: reports tensors garbage-collected without dispose(), with where they were made.
/** What the detector reads of a tensor. */
interface Tracked {
  shape: readonly number[];
}

let registry: FinalizationRegistry<string> | null = null;
let reporter: (msg: string) => void = (m) => console.warn(m);
const tokens = new WeakMap<object, object>();

export function enableLeakDetector(on = true, report?: (msg: string) => void): void {
  if (report) reporter = report;
  registry = on ? new FinalizationRegistry((where: string) => reporter(`kiln: a tensor was garbage-collected without dispose(); created at\n${where}`)) : null;
}

export function leakTrack(t: Tracked): void {
  if (!registry) return;
  const where = (new Error().stack ?? '').split('\n').slice(3, 8).join('\n');
  const token = {};
  tokens.set(t, token);
  registry.register(t, `${t.shape.length ? `[${t.shape.join(',')}]` : '[]'} ${where}`, token);
}

export function leakUntrack(t: Tracked): void {
  const token = tokens.get(t);
  if (token && registry) registry.unregister(token);
}
