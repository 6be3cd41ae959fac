// User kernels (defineOp, src/ops/custom.ts): the run-time reflection of a user's WGSL, and its launcher. kiln's own
// kernels are reflected at build time by wgsl_reflect; the runtime carries no WGSL parser, so a user kernel is read by
// the small declaration reader below, which understands what a compute kernel's interface is made of: @group(0)
// bindings (storage buffers, read or read_write, and at most one uniform struct of u32/i32/f32 scalars), `override`
// constants, and @compute entry points with their @workgroup_size. Anything else in the file is the compiler's to
// check (a compile error is a DeviceError naming the op's line at the next sync, as for kiln's own kernels).
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import type { DType } from '../tensor/dtype.js';
import { type TensorBase, allocLike } from '../tensor/base.js';
import { gpu } from '../gpu/device.js';
import { type KernelBinding, type KernelEntry, type KernelModule, type ParamValue, type ParamsField, dispatch } from '../gpu/kernels.js';
import { bufOf } from './common.js';
import { contiguousCopy } from './elementwise.js';

/** WGSL text with comments removed (line and nested block comments), line breaks kept: the run-time twin of the build's
 * scripts/kernel_reflect.mjs stripComments (a script the runtime cannot import), without its //!include handling. */
function stripComments(text: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const next = text[i + 1];
    if (depth === 0 && c === '/' && next === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && next === '*') {
      depth++;
      i++;
    } else if (depth > 0 && c === '*' && next === '/') {
      depth--;
      i++;
    } else if (depth > 0) {
      if (c === '\n') out += c;
    } else out += c;
  }
  if (depth > 0) throw new ValueError('an unterminated block comment');
  return out;
}

const SCALARS = new Set(['u32', 'i32', 'f32']);

/**
 * Reflects a user's WGSL kernel into the data kiln's launcher reads (a KernelModule), or throws a ValueError naming
 * what does not fit, before any GPU work.
 */
export function reflectUserKernel(fn: string, name: string, source: string): KernelModule {
  if (typeof source !== 'string' || !source.trim()) throw new ValueError(`${fn}: kernel must be WGSL source text, got ${typeof source === 'string' ? 'an empty string' : typeof source}`);
  let code: string;
  try {
    code = stripComments(source);
  } catch (e) {
    throw new ValueError(`${fn}: kernel has ${(e as Error).message}`);
  }
  const structs = new Map<string, { name: string; type: string }[]>();
  for (const m of code.matchAll(/\bstruct\s+([A-Za-z_]\w*)\s*\{([^}]*)\}/g)) {
    const fields = m[2].split(/[,;]/).map((f) => f.trim()).filter(Boolean).map((f) => {
      const fm = /^(?:@\w+(?:\([^)]*\))?\s*)*([A-Za-z_]\w*)\s*:\s*(.+)$/.exec(f);
      if (!fm) throw new ValueError(`${fn}: cannot read field '${f}' of struct ${m[1]}`);
      return { name: fm[1], type: fm[2].trim() };
    });
    structs.set(m[1], fields);
  }
  const bindings: KernelBinding[] = [];
  let params: { name: string; size: number; fields: ParamsField[] } | null = null;
  for (const m of code.matchAll(/((?:@\w+\s*\([^)]*\)\s*)+)var\s*<([^>]*)>\s*([A-Za-z_]\w*)\s*:\s*([^;]+);/g)) {
    const attrs = m[1];
    const group = /@group\s*\(\s*(\d+)\s*\)/.exec(attrs);
    const binding = /@binding\s*\(\s*(\d+)\s*\)/.exec(attrs);
    const varName = m[3];
    if (!group || !binding) throw new ValueError(`${fn}: '${varName}' needs @group(0) @binding(n)`);
    if (group[1] !== '0') throw new ValueError(`${fn}: '${varName}' is in @group(${group[1]}); kiln binds @group(0) only`);
    if (varName === 'kiln_errors') throw new ValueError(`${fn}: the binding name 'kiln_errors' is reserved for kiln's index checks`);
    const space = m[2].split(',').map((s) => s.trim());
    const at = Number(binding[1]);
    if (bindings.some((b) => b.binding === at)) throw new ValueError(`${fn}: two variables at @binding(${at})`);
    if (space[0] === 'uniform') {
      if (params) throw new ValueError(`${fn}: one uniform struct at most ('${params.name}' and '${varName}'); put every scalar in one struct`);
      const fields = structs.get(m[4].trim());
      if (!fields) throw new ValueError(`${fn}: uniform '${varName}' must be a struct of u32, i32 and f32 scalars, got ${m[4].trim()}`);
      const out: ParamsField[] = fields.map((f, i) => {
        if (!SCALARS.has(f.type)) throw new ValueError(`${fn}: field '${f.name}' of uniform '${varName}' is ${f.type}; kiln fills u32, i32 and f32 scalars`);
        return { name: f.name, offset: 4 * i, kind: f.type as ParamsField['kind'], count: 1 };
      });
      params = { name: varName, size: Math.max(16, Math.ceil((4 * out.length) / 16) * 16), fields: out };
      bindings.push({ name: varName, binding: at, kind: 'uniform' });
    } else if (space[0] === 'storage') {
      const access = space[1] ?? 'read';
      if (access !== 'read' && access !== 'read_write') throw new ValueError(`${fn}: storage '${varName}' has access '${access}'; use read or read_write`);
      bindings.push({ name: varName, binding: at, kind: access === 'read' ? 'read-only-storage' : 'storage' });
    } else throw new ValueError(`${fn}: '${varName}' is var<${m[2]}>; kiln binds storage buffers and one uniform struct`);
  }
  bindings.sort((a, b) => a.binding - b.binding);
  const overrides = [...code.matchAll(/\boverride\s+([A-Za-z_]\w*)/g)].map((m) => m[1]);
  // Function bodies by name, so each entry point's layout holds the bindings it (or a function it calls) names.
  const bodies = new Map<string, string>();
  for (const m of code.matchAll(/\bfn\s+([A-Za-z_]\w*)\s*\(/g)) {
    let i = code.indexOf('{', m.index! + m[0].length);
    const start = i;
    let depth = 0;
    for (; i < code.length; i++) {
      if (code[i] === '{') depth++;
      else if (code[i] === '}' && --depth === 0) break;
    }
    bodies.set(m[1], code.slice(start, i + 1));
  }
  const uses = (entryName: string): KernelBinding[] => {
    const words = new Set<string>();
    const stack = [entryName];
    const seen = new Set<string>();
    while (stack.length) {
      const f = stack.pop()!;
      if (seen.has(f)) continue;
      seen.add(f);
      for (const w of (bodies.get(f) ?? '').match(/[A-Za-z_]\w*/g) ?? []) {
        words.add(w);
        if (bodies.has(w)) stack.push(w);
      }
    }
    return bindings.filter((b) => words.has(b.name));
  };
  const entries: Record<string, KernelEntry> = {};
  for (const m of code.matchAll(/((?:@\w+\s*(?:\([^)]*\))?\s*)+)fn\s+([A-Za-z_]\w*)\s*\(/g)) {
    if (!/@compute\b/.test(m[1])) continue;
    const ws = /@workgroup_size\s*\(([^)]*)\)/.exec(m[1]);
    if (!ws) throw new ValueError(`${fn}: entry point '${m[2]}' has no @workgroup_size`);
    const dims = ws[1].split(',').map((s) => s.trim()).filter(Boolean);
    const nums = dims.map((d) => (/^\d+u?$/.test(d) ? parseInt(d, 10) : NaN));
    const size = nums.every((n) => n > 0) ? ([nums[0], nums[1] ?? 1, nums[2] ?? 1] as [number, number, number]) : null;
    const used = uses(m[2]);
    entries[m[2]] = { bindings: used, params: used.some((b) => b.kind === 'uniform') ? params : null, workgroupSize: size };
  }
  if (!Object.keys(entries).length) throw new ValueError(`${fn}: kernel has no @compute entry point`);
  return { file: `defineOp(${name})`, code, includes: [], entries, overrides, constants: {} };
}

/** An output the launch allocates: its shape and dtype (default f32). */
export interface CustomOutput {
  shape: number[];
  dtype?: DType;
}

/** One launch of a user kernel's entry point: tensors by binding name, params by field name, override constants. */
export interface CustomLaunchSpec {
  entry?: string;
  /** Tensors the kernel reads (or updates in place), by binding name; views are copied dense first. */
  inputs?: Record<string, TensorBase>;
  /** Tensors the launch allocates for the kernel to write, by binding name (read_write storage). */
  outputs?: Record<string, CustomOutput>;
  /** The uniform struct's fields. */
  params?: Record<string, ParamValue>;
  /** Pipeline-overridable constants (`override NAME: u32 = ...;`), which specialise the kernel. */
  constants?: Record<string, number>;
  /** Workgroups to dispatch: [x, y?, z?] or a number. */
  workgroups: number | readonly number[];
}

/** The entry point a spec names, or the module's only one. */
export function customEntry(fn: string, kernel: KernelModule, entry: string | undefined): string {
  const names = Object.keys(kernel.entries);
  if (entry === undefined) {
    if (names.length !== 1) throw new ValueError(`${fn}: the kernel has ${names.length} entry points (${names.join(', ')}); name one with entry`);
    return names[0];
  }
  if (!names.includes(entry)) throw new ValueError(`${fn}: the kernel has no @compute entry point '${entry}' (has: ${names.join(', ')})`);
  return entry;
}

/**
 * Checks a launch against the kernel's interface (every binding given once, outputs on read_write storage, every
 * param field, known constants, a valid grid) without GPU work; then copies strided or offset inputs dense, allocates
 * the outputs, and dispatches once under `label` (the op's name, which the profiler shows). Returns the outputs.
 */
export function launchCustom<T extends TensorBase>(fn: string, label: string, kernel: KernelModule, spec: CustomLaunchSpec, like: T): Record<string, T> {
  if (!spec || typeof spec !== 'object') throw new ValueError(`${fn}: launch expects { inputs?, outputs?, params?, constants?, workgroups, entry? }`);
  const allowed = ['entry', 'inputs', 'outputs', 'params', 'constants', 'workgroups'];
  for (const k of Object.keys(spec)) if (!allowed.includes(k)) throw new ValueError(`${fn}: launch: unknown key '${k}'; allowed: ${allowed.join(', ')}`);
  const entry = customEntry(fn, kernel, spec.entry);
  const info = kernel.entries[entry];
  const inputs = spec.inputs ?? {};
  const outputs = spec.outputs ?? {};
  const storage = info.bindings.filter((b) => b.kind !== 'uniform');
  for (const b of storage) {
    const inIn = Object.hasOwn(inputs, b.name);
    const inOut = Object.hasOwn(outputs, b.name);
    if (inIn === inOut) throw new ValueError(`${fn}: binding '${b.name}' must be given ${inIn ? 'once (it is both an input and an output)' : 'as an input or an output'}`);
    if (inOut && b.kind !== 'storage') throw new ValueError(`${fn}: output '${b.name}' is var<storage, read>; an output needs read_write`);
  }
  for (const k of [...Object.keys(inputs), ...Object.keys(outputs)]) {
    if (!storage.some((b) => b.name === k)) throw new ValueError(`${fn}: the kernel has no storage binding '${k}' (has: ${storage.map((b) => b.name).join(', ') || 'none'})`);
  }
  for (const [k, t] of Object.entries(inputs)) {
    if (!t || typeof (t as TensorBase).buf !== 'function') throw new ValueError(`${fn}: input '${k}' is not a Tensor`);
    t.buf(fn);
    if (t.dtype === 'f16') throw new DTypeError(`${fn}: input '${k}' is f16; user kernels read 32-bit words (f32, i32, bool) and an f16 tensor packs two halves per word, so pass x.float() and cast the result with .half()`);
    const writable = storage.find((b) => b.name === k)?.kind === 'storage';
    if (writable && (!t.isContiguous || t.offset !== 0)) throw new ValueError(`${fn}: input '${k}' ${fmtShape(t.shape)} is read_write but a strided or offset view; updated in place it must be dense (call contiguous() first)`);
  }
  for (const [k, o] of Object.entries(outputs)) {
    if (!o || !Array.isArray(o.shape) || o.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new ShapeError(`${fn}: output '${k}' needs a shape of non-negative integers, got ${JSON.stringify(o?.shape)}`);
    const dt = o.dtype ?? 'f32';
    if (dt !== 'f32' && dt !== 'i32' && dt !== 'bool') throw new DTypeError(`${fn}: output '${k}' dtype ${String(dt)}; user kernels write f32, i32 or bool (32-bit words: make it f32 and cast the result with .half() for f16)`);
  }
  const params = spec.params ?? {};
  const fields = info.params?.fields ?? [];
  for (const f of fields) {
    const v = params[f.name];
    if (typeof v !== 'number' && typeof v !== 'boolean') throw new ValueError(`${fn}: param '${f.name}' (${f.kind}) is missing or not a number`);
    if (typeof v === 'number' && f.kind !== 'f32' && !Number.isInteger(v)) throw new ValueError(`${fn}: param '${f.name}' is ${f.kind}, got ${v}`);
  }
  for (const k of Object.keys(params)) if (!fields.some((f) => f.name === k)) throw new ValueError(`${fn}: the kernel's uniform has no field '${k}' (has: ${fields.map((f) => f.name).join(', ') || 'none'})`);
  for (const [k, v] of Object.entries(spec.constants ?? {})) {
    if (!kernel.overrides.includes(k)) throw new ValueError(`${fn}: the kernel has no override constant '${k}' (has: ${kernel.overrides.join(', ') || 'none'})`);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ValueError(`${fn}: constant '${k}' must be a finite number, got ${String(v)}`);
  }
  const wg = typeof spec.workgroups === 'number' ? [spec.workgroups] : Array.isArray(spec.workgroups) ? spec.workgroups : [];
  const maxWg = gpu().device.limits.maxComputeWorkgroupsPerDimension;
  if (!wg.length || wg.length > 3 || wg.some((n) => !Number.isInteger(n) || n < 0 || n > maxWg)) {
    throw new ValueError(`${fn}: workgroups must be 1 to 3 integers in [0, ${maxWg}], got ${JSON.stringify(spec.workgroups)}`);
  }
  // Every check is done: from here on buffers are taken and work is encoded.
  const temps: TensorBase[] = [];
  const out: Record<string, T> = {};
  const bound: Record<string, ReturnType<typeof bufOf>> = {};
  try {
    for (const [k, t] of Object.entries(inputs)) {
      let dense = t;
      if (!t.isContiguous || t.offset !== 0) {
        dense = contiguousCopy(fn, t);
        temps.push(dense);
      }
      bound[k] = bufOf(dense, fn);
    }
    for (const [k, o] of Object.entries(outputs)) {
      const t = allocLike(like, o.shape.slice(), o.dtype ?? 'f32', `${label}.${k}`);
      out[k] = t;
      bound[k] = bufOf(t, fn);
    }
    dispatch(kernel, entry, { bindings: bound, params: info.params ? params : undefined, constants: spec.constants, workgroups: wg, label });
  } catch (e) {
    for (const t of Object.values(out)) t.dispose();
    throw e;
  } finally {
    for (const t of temps) t.dispose();
  }
  return out;
}
