// nn.Module: parameters, submodules and buffers with PyTorch's dotted names; train/eval; state dicts.
import { bumpTraceEpoch } from '../gpu/recorder.js';
import { KilnError, ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { keep } from '../tensor/base.js';
import { copy } from '../launch/elementwise.js';
import { currentScope, isProfiling, popScope, pushScope } from '../gpu/queue.js';
import { Tensor } from '../ops/tensor.js';

/** loadStateDict found keys that are missing, unexpected or of the wrong shape. */
export class StateDictError extends KilnError {
  constructor(
    message: string,
    public readonly missing: string[],
    public readonly unexpected: string[],
    public readonly mismatched: string[],
  ) {
    super(message);
  }
}

/** Field names become PyTorch's snake_case names: outProj -> out_proj, inProjWeight -> in_proj_weight. */
function snake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

type Slot = { kind: 'param' | 'buffer' | 'module'; value: Tensor | Module | null };

/**
 * Base class of layers. Subclasses declare parameters and submodules either as fields (a Tensor field
 * with requiresGrad is a parameter, a Module field is a submodule; the field name is converted to
 * snake_case) or explicitly with registerParameter / registerBuffer / registerModule, which also fix
 * the name. Parameters come before submodules in namedParameters(), as in PyTorch.
 */
// The modules whose forward is running, with their paths, while a profiler records (see moduleScope).
const frames: { module: Module; path: string }[] = [];

/**
 * Runs fn as `module`'s forward inside a profiler scope named by the module's path from the outermost running module
 * ('layers.0.self_attn', as named_modules names it; '' for the outermost; nested in a recordFunction scope the parent
 * opened), so profiler rows say where each dispatch ran. Nothing is tracked while no profiler records.
 */
function moduleScope<T>(module: Module, fn: () => T): T {
  if (!isProfiling()) return fn();
  const parent = frames[frames.length - 1];
  // Nested in the innermost scope: the parent's path, or a recordFunction inside the parent's forward.
  const base = currentScope();
  let path = base;
  if (parent && parent.module !== module) {
    const name = parent.module.namedModules().find(([n, m]) => m === module && n !== '')?.[0] ?? module.constructor.name;
    path = base ? `${base}.${name}` : name;
  }
  frames.push({ module, path });
  pushScope(path);
  try {
    return fn();
  } finally {
    frames.pop();
    popScope();
  }
}

export class Module {
  training = true;

  constructor() {
    // forward runs in the module's profiler scope: an own, non-enumerable wrapper of the class's forward.
    const forward = this.forward;
    Object.defineProperty(this, 'forward', {
      value: (...args: unknown[]) => moduleScope(this, () => forward.apply(this, args)),
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
  // Explicit registrations, by name, in registration order.
  private readonly _slots = new Map<string, Slot>();

  /** Registers (or replaces) a parameter under `name`; null registers an absent one (e.g. bias: false). */
  registerParameter<T extends Tensor | null>(name: string, t: T): T {
    this._checkName(name);
    if (t) {
      keep(t);
      if (!t.requiresGrad) t.requiresGrad = true;
    }
    this._slots.set(name, { kind: 'param', value: t });
    return t;
  }
  /** A tensor that is part of the state dict but not trained (running statistics, masks...). */
  registerBuffer<T extends Tensor | null>(name: string, t: T): T {
    this._checkName(name);
    if (t) keep(t);
    this._slots.set(name, { kind: 'buffer', value: t });
    return t;
  }
  registerModule<M extends Module | null>(name: string, m: M): M {
    this._checkName(name);
    this._slots.set(name, { kind: 'module', value: m });
    return m;
  }
  /** Removes a registration (ModuleDict.delete); a field holding the value still declares it. */
  protected unregister(name: string): void {
    this._slots.delete(name);
  }
  private _checkName(name: string): void {
    if (typeof name !== 'string' || name === '' || name.includes('.')) throw new ValueError(`Module: name ${JSON.stringify(name)} must be a non-empty string without '.'`);
  }

  // Registered tensors that a field assignment replaced (weight tying): no longer the module's, but freed with it.
  private readonly _replaced = new Set<Tensor>();

  /**
   * Weight tying by assignment (`head.weight = emb.weight`): a field named as a registration (as it is, or in
   * snake_case) that now holds another value, while no field holds the registered one, replaces the registration, as
   * PyTorch's __setattr__ does. The replaced tensor stays usable and is disposed with this module.
   */
  private _syncFields(): void {
    const fields = Object.entries(this).filter(([f]) => !f.startsWith('_'));
    const held = new Set(fields.map(([, v]) => v));
    for (const [field, value] of fields) {
      const name = this._slots.has(field) ? field : this._slots.has(snake(field)) ? snake(field) : null;
      if (name === null) continue;
      const slot = this._slots.get(name)!;
      if (slot.value === value || (slot.value && held.has(slot.value))) continue;
      if (slot.kind === 'module') {
        if (value !== null && !(value instanceof Module)) continue;
      } else {
        if (value !== null && !(value instanceof Tensor)) continue;
        if (slot.kind === 'param' && value && !(value.requiresGrad && value.isLeaf)) {
          throw new ValueError(`${this.constructor.name}: cannot assign a tensor ${fmtShape(value.shape)} that is not a leaf requiring grad as parameter '${name}' (assign another module's parameter to tie weights)`);
        }
        if (slot.value instanceof Tensor) this._replaced.add(slot.value);
        if (value) this._replaced.delete(value);
      }
      this._slots.set(name, { kind: slot.kind, value: value as Slot['value'] });
    }
  }

  /** Own entries in order: declared fields first (registered names win), then registrations not held by a field. */
  private _entries(): [string, Slot][] {
    this._syncFields();
    const out: [string, Slot][] = [];
    const seen = new Set<unknown>();
    const byValue = new Map<unknown, [string, Slot]>();
    for (const [n, s] of this._slots) if (s.value) byValue.set(s.value, [n, s]);
    for (const [field, value] of Object.entries(this)) {
      if (field.startsWith('_') || value === null || typeof value !== 'object' || seen.has(value)) continue;
      const reg = byValue.get(value);
      if (reg) {
        out.push(reg);
        seen.add(value);
      } else if (value instanceof Module) {
        out.push([snake(field), { kind: 'module', value }]);
        seen.add(value);
      } else if (value instanceof Tensor && value.requiresGrad && value.isLeaf) {
        out.push([snake(field), { kind: 'param', value }]);
        seen.add(value);
      }
    }
    for (const [n, s] of this._slots) if (!s.value || !seen.has(s.value)) out.push([n, s]);
    return out;
  }

  /** Direct submodules with their names. */
  namedChildren(): [string, Module][] {
    return this._entries().filter(([, s]) => s.kind === 'module' && s.value).map(([n, s]) => [n, s.value as Module]);
  }
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }
  /** This module and every descendant, with dotted names ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this.namedChildren()) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Tensors of `kinds` with dotted names; each once when `seen` is given, else under every name (the state dict). */
  private _named(kinds: Slot['kind'][], prefix: string, seen: Set<Tensor> | null, out: [string, Tensor][]): void {
    const entries = this._entries();
    for (const [n, s] of entries) {
      if (kinds.includes(s.kind) && s.value instanceof Tensor && !seen?.has(s.value)) {
        seen?.add(s.value);
        out.push([prefix + n, s.value]);
      }
    }
    for (const [n, s] of entries) if (s.kind === 'module' && s.value) (s.value as Module)._named(kinds, `${prefix}${n}.`, seen, out);
  }

  /** [dotted name, parameter] pairs, each parameter once, in PyTorch's order. */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    this._named(['param'], '', new Set(), out);
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }
  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    this._named(['buffer'], '', new Set(), out);
    return out;
  }

  /**
   * Parameters and buffers by dotted name. The values are the module's own tensors (as PyTorch's
   * state_dict shares storage): do not dispose them; clone them to keep a snapshot. A tensor shared by two modules
   * (tied weights) appears under each name, as in PyTorch.
   */
  stateDict(): Record<string, Tensor> {
    const sd: Record<string, Tensor> = {};
    const out: [string, Tensor][] = [];
    this._named(['param', 'buffer'], '', null, out);
    // Own data properties, so that every name ('__proto__', 'toString', ...) is kept.
    for (const [n, t] of out) Object.defineProperty(sd, n, { value: t, enumerable: true, writable: true, configurable: true });
    return sd;
  }

  /**
   * Copies the values of `sd` into this module's tensors in place (optimizers keep working). With
   * strict (the default) every key must match; otherwise missing and unexpected keys are skipped.
   * Shape mismatches always throw. Validates everything before copying anything.
   */
  loadStateDict(sd: Record<string, Tensor>, options?: { strict?: boolean }): { missingKeys: string[]; unexpectedKeys: string[] } {
    const fn = `${this.constructor.name}.loadStateDict`;
    const strict = checkOptions(fn, options, ['strict']).strict ?? true;
    if (typeof strict !== 'boolean') throw new ValueError(`${fn}: strict must be true or false, got ${String(strict)}`);
    if (sd === null || typeof sd !== 'object' || Array.isArray(sd)) throw new ValueError(`${fn}: expects an object {name: Tensor}, got ${String(sd)}`);
    const own = this.stateDict();
    // Own keys only: 'toString' or '__proto__' in a state dict are names like any other, never inherited members.
    const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
    const missing = Object.keys(own).filter((k) => !has(sd, k));
    const unexpected = Object.keys(sd).filter((k) => !has(own, k));
    const mismatched: string[] = [];
    for (const k of Object.keys(own)) {
      if (!has(sd, k)) continue;
      const src = sd[k];
      if (!(src instanceof Tensor)) mismatched.push(`${k}: not a Tensor`);
      else if (src.shape.length !== own[k].shape.length || src.shape.some((d, i) => d !== own[k].shape[i])) mismatched.push(`${k}: ${fmtShape(src.shape)} vs ${fmtShape(own[k].shape)} in the model`);
      else if (src.dtype !== own[k].dtype) mismatched.push(`${k}: dtype ${src.dtype} vs ${own[k].dtype} in the model`);
      else if (src.isDisposed) mismatched.push(`${k}: disposed`);
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      const parts: string[] = [];
      if (strict && missing.length) parts.push(`missing keys: ${missing.join(', ')}`);
      if (strict && unexpected.length) parts.push(`unexpected keys: ${unexpected.join(', ')}`);
      if (mismatched.length) parts.push(`mis-shaped keys: ${mismatched.join('; ')}`);
      throw new StateDictError(`${this.constructor.name}.loadStateDict: ${parts.join('; ')}`, missing, unexpected, mismatched);
    }
    for (const k of Object.keys(own)) if (has(sd, k)) copyInto(own[k], sd[k]);
    return { missingKeys: missing, unexpectedKeys: unexpected };
  }

  /** Sets training mode here and in every descendant (dropout on); returns this. */
  train(mode = true): this {
    // Dropout on or off changes what a compiled step encodes: it traces again.
    bumpTraceEpoch();
    for (const m of this.modules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Drops the gradients of every parameter. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  /** Frees every parameter and buffer (and their gradients). */
  dispose(): void {
    const out: [string, Tensor][] = [];
    this._named(['param', 'buffer'], '', new Set(), out);
    for (const [, t] of out) t.dispose();
    for (const m of this.modules()) {
      for (const t of m._replaced) t.dispose();
      m._replaced.clear();
    }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  forward(..._args: unknown[]): unknown {
    throw new KilnError(`${this.constructor.name}: forward() is not implemented`);
  }

  /** One line per module, as PyTorch prints a model. */
  toString(): string {
    const kids = this.namedChildren();
    const head = `${this.constructor.name}(${this.extraRepr()}`;
    if (!kids.length) return `${head})`;
    const body = kids.map(([n, m]) => `  (${n}): ${m.toString().replace(/\n/g, '\n  ')}`).join('\n');
    return `${head}\n${body}\n)`;
  }
  extraRepr(): string {
    return '';
  }
}

/**
 * Modules whose random draws are counted per call (Dropout and MultiheadAttention with a seed draw the i-th call's
 * mask from (seed, i)) keep the count under RANDOM_CALLS and the seed under RANDOM_SEED (-1: unseeded, drawing from
 * the global generator), so that a checkpoint (fit's) resumes their streams where they were, whatever seed the
 * rebuilt module was given. Neither is part of the state dict, which stays PyTorch's.
 */
export const RANDOM_CALLS: unique symbol = Symbol('kiln.randomCalls');
export const RANDOM_SEED: unique symbol = Symbol('kiln.randomSeed');

type RandomStream = Partial<Record<typeof RANDOM_CALLS | typeof RANDOM_SEED, number>>;

/** [seed, calls] of each module of `model` with a per-call random stream, by module path. */
export function moduleRandomState(model: Module): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const [name, m] of model.namedModules()) {
    const r = m as RandomStream;
    if (typeof r[RANDOM_CALLS] === 'number') Object.defineProperty(out, name, { value: [r[RANDOM_SEED] ?? -1, r[RANDOM_CALLS]], enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Restores what moduleRandomState returned; every path must name a module with a stream, and all of them appear. */
export function loadModuleRandomState(fn: string, model: Module, state: Record<string, [number, number]>): void {
  const mine = moduleRandomState(model);
  const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
  const valid = (v: unknown) => Array.isArray(v) && v.length === 2 && Number.isInteger(v[0]) && v[0] >= -1 && v[0] <= 0xffffffff && Number.isInteger(v[1]) && v[1] >= 0;
  const bad = Object.keys(state).filter((k) => !has(mine, k) || !valid(state[k]));
  const missing = Object.keys(mine).filter((k) => !has(state, k));
  if (bad.length || missing.length) throw new ValueError(`${fn}: the random streams do not fit this model (${[...bad.map((k) => `unexpected or invalid '${k}'`), ...missing.map((k) => `missing '${k}'`)].join(', ')})`);
  const byName = new Map(model.namedModules());
  for (const k of Object.keys(state)) {
    const r = byName.get(k) as unknown as RandomStream;
    const [seed, calls] = state[k];
    if (seed >= 0) r[RANDOM_SEED] = seed;
    r[RANDOM_CALLS] = calls;
  }
}

/** dst <- src elementwise (same shape and dtype), off the tape; dst keeps its own storage and offset. */
export function copyInto(dst: Tensor, src: Tensor): void {
  dst.buf('loadStateDict');
  src.buf('loadStateDict');
  if (dst.size === 0 || (src.storage === dst.storage && src.offset === dst.offset)) return;
  copy('loadStateDict', dst, src);
}

/** Checks that the last dim of `x` is `expected`, naming the module on failure. */
export function checkFeatures(module: string, x: Tensor, expected: number, what = 'features'): void {
  if (!(x instanceof Tensor)) throw new ValueError(`${module}: input must be a Tensor, got ${x}`);
  if (x.rank === 0 || x.shape[x.rank - 1] !== expected) {
    throw new ShapeError(`${module}: input ${fmtShape(x.shape)} has ${x.rank ? x.shape[x.rank - 1] : 0} ${what} in its last dim, expected ${expected}`);
  }
}
