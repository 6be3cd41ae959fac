// Kernel loading: WGSL sources are real files in kernels/, bundled as text. wgsl_reflect reads each
// entry point's bindings and its params struct, so no bind group layout is written by hand.
import { WgslReflect } from 'wgsl_reflect';
import { DeviceError, KilnError } from '../errors.js';
import { gpu, onDeviceInit } from './device.js';
import type { PooledBuffer } from './memory.js';
import { allocUniform, encodeDispatch, recordAsyncError, uniformRingBuffer } from './queue.js';
import { KERNEL_SOURCES } from './kernel_sources.js';

export type ParamValue = number | boolean | readonly number[];

interface FieldLayout {
  name: string;
  offset: number;
  kind: 'u32' | 'i32' | 'f32';
  /** Number of scalars (1 for a scalar; 4 * N for array<vec4<u32>, N>, ...). */
  count: number;
}

interface EntryInfo {
  file: string;
  entry: string;
  code: string;
  bindings: { name: string; binding: number; kind: 'uniform' | 'storage' | 'read-only-storage' }[];
  params: { name: string; size: number; fields: FieldLayout[] } | null;
  overrides: Set<string>;
  workgroupSize: [number, number, number] | null;
  layout: GPUBindGroupLayout | null;
}

const INCLUDE = /^\s*\/\/!include\s+([\w.-]+)\s*$/gm;

/** Resolves `//!include name.wgsl` lines. Included text is appended so the file's own line numbers stay right. */
export function resolveIncludes(file: string, sources: Record<string, string> = KERNEL_SOURCES): string {
  const src = sources[file];
  if (src === undefined) throw new KilnError(`kiln: no kernel file '${file}' (known: ${Object.keys(sources).join(', ')})`);
  const seen = new Set<string>([file]);
  let tail = '';
  const walk = (text: string): string =>
    text.replace(INCLUDE, (_m, name: string) => {
      if (!seen.has(name)) {
        seen.add(name);
        const inc = sources[name];
        if (inc === undefined) throw new KilnError(`kiln: ${file} includes unknown kernel file '${name}'`);
        tail += `\n// ---- included from ${name} ----\n` + walk(inc);
      }
      return `// (included ${name} below)`;
    });
  const body = walk(src);
  return body + tail;
}

const reflected = new Map<string, WgslReflect>();
const entries = new Map<string, EntryInfo>();
const modules = new Map<string, GPUShaderModule>();
const pipelines = new Map<string, GPUComputePipeline>();
const MAX_BIND_GROUPS = 4096;
const bindGroups = new Map<string, GPUBindGroup>();

onDeviceInit(() => {
  modules.clear();
  pipelines.clear();
  bindGroups.clear();
  for (const e of entries.values()) e.layout = null;
});

function scalarKind(typeName: string): 'u32' | 'i32' | 'f32' {
  if (/u32/.test(typeName)) return 'u32';
  if (/i32/.test(typeName)) return 'i32';
  if (/f32/.test(typeName)) return 'f32';
  throw new KilnError(`kiln: unsupported params member type '${typeName}'`);
}

function fieldCount(m: { type: { name: string }; size: number }): number {
  return Math.max(1, Math.floor(m.size / 4));
}

/**
 * Variants a WGSL override cannot express (DESIGN: generate text only there), named `file#tag` or `file#tag1,tag2`:
 *   f16        the file's `alias io_t = f32;` (and `alias tile_t = f32;`, if any) become f16, with `enable f16;` put in
 *              front of line 1. Needs shader-f16.
 *   subgroups  every `//!include name.wgsl` that has a `name_subgroups.wgsl` sibling includes that instead, with
 *              `enable subgroups;` (and subgroup_uniformity diagnostics off: the callers keep whole subgroups
 *              together, which WGSL's analysis cannot see) in front of line 1. Needs subgroups.
 * Directives go on line 1 and included text is appended, so compile errors keep the file's own line numbers. The
 * bindings are the base file's, so the base file is what gets reflected.
 */
export const KERNEL_VARIANTS = ['f16', 'subgroups'] as const;
export type KernelVariant = (typeof KERNEL_VARIANTS)[number];

/** `file` with variant tags, in a canonical order (so each variant has one cache key). */
export function variantName(file: string, tags: readonly KernelVariant[]): string {
  const t = KERNEL_VARIANTS.filter((v) => tags.includes(v));
  return t.length ? `${file}#${t.join(',')}` : file;
}

export function variantCode(file: string, tags: readonly string[], sources: Record<string, string> = KERNEL_SOURCES): string {
  let src = sources[file];
  if (src === undefined) throw new KilnError(`kiln: no kernel file '${file}'`);
  let prefix = '';
  for (const tag of tags) {
    if (tag === 'f16') {
      const alias = /^alias io_t = f32;/m;
      if (!alias.test(src)) throw new KilnError(`kiln: ${file} has no 'alias io_t = f32;' line, so it has no f16 variant`);
      src = src.replace(alias, 'alias io_t = f16;').replace(/^alias tile_t = f32;/m, 'alias tile_t = f16;');
      prefix += 'enable f16; ';
    } else if (tag === 'subgroups') {
      let swapped = 0;
      src = src.replace(INCLUDE, (line, name: string) => {
        const alt = name.replace(/\.wgsl$/, '_subgroups.wgsl');
        if (sources[alt] === undefined) return line;
        swapped++;
        return line.replace(name, alt);
      });
      if (!swapped) throw new KilnError(`kiln: ${file} includes no file with a _subgroups sibling, so it has no subgroups variant`);
      prefix += 'enable subgroups; diagnostic(off, subgroup_uniformity); ';
    } else throw new KilnError(`kiln: unknown kernel variant '${tag}' (known: ${KERNEL_VARIANTS.join(', ')})`);
  }
  return prefix + resolveIncludes(file, { ...sources, [file]: src });
}

export function entryInfo(file: string, entry: string): EntryInfo {
  const key = `${file}:${entry}`;
  let info = entries.get(key);
  if (info) return info;
  const [baseFile, tagList] = file.split('#');
  const tags = tagList ? tagList.split(',') : [];
  const baseCode = resolveIncludes(baseFile);
  if (tags.includes('f16') && !gpu().hasF16) throw new DeviceError(`kiln: ${file} needs the adapter feature shader-f16, which this device lacks`);
  if (tags.includes('subgroups') && !gpu().hasSubgroups) throw new DeviceError(`kiln: ${file} needs the adapter feature subgroups, which this device lacks`);
  const code = tags.length ? variantCode(baseFile, tags) : baseCode;
  let refl = reflected.get(baseFile);
  if (!refl) {
    try {
      refl = new WgslReflect(baseCode);
    } catch (e) {
      throw new DeviceError(`kiln: ${baseFile} could not be parsed: ${(e as Error).message}`);
    }
    reflected.set(baseFile, refl);
  }
  const fn = refl.entry.compute.find((f) => f.name === entry);
  if (!fn) throw new KilnError(`kiln: ${file} has no compute entry point '${entry}' (has: ${refl.entry.compute.map((f) => f.name).join(', ')})`);
  const bindings: EntryInfo['bindings'] = [];
  let params: EntryInfo['params'] = null;
  for (const r of fn.resources) {
    if (r.group !== 0) throw new KilnError(`kiln: ${file}: binding '${r.name}' must be in @group(0)`);
    if (r.resourceType === 0 /* Uniform */) {
      bindings.push({ name: r.name, binding: r.binding, kind: 'uniform' });
      const t = r.type as unknown as { members?: { name: string; offset: number; size: number; type: { name: string; format?: { name: string; format?: { name: string } } } }[] };
      if (!t.members) throw new KilnError(`kiln: ${file}: uniform '${r.name}' must be a struct`);
      const fields: FieldLayout[] = t.members.map((m) => {
        const base = m.type.format?.format?.name ?? m.type.format?.name ?? m.type.name;
        return { name: m.name, offset: m.offset, kind: scalarKind(base.includes('<') ? base : `${base} ${m.type.name}`), count: fieldCount(m) };
      });
      params = { name: r.name, size: r.size, fields };
    } else if (r.resourceType === 1 /* Storage */) {
      bindings.push({ name: r.name, binding: r.binding, kind: r.access === 'read' ? 'read-only-storage' : 'storage' });
    } else {
      throw new KilnError(`kiln: ${file}: binding '${r.name}' has an unsupported resource type`);
    }
  }
  bindings.sort((a, b) => a.binding - b.binding);
  const ws = fn.workgroupSize as [number, number, number] | null;
  info = {
    file,
    entry,
    code,
    bindings,
    params,
    overrides: new Set(refl.overrides.map((o) => o.name)),
    workgroupSize: ws && ws.every((n) => typeof n === 'number' && n > 0) ? ws : null,
    layout: null,
  };
  entries.set(key, info);
  return info;
}

function lineOf(code: string, line: number): string {
  return code.split('\n')[line - 1]?.trim() ?? '';
}

function shaderModule(file: string, code: string): GPUShaderModule {
  let m = modules.get(file);
  if (m) return m;
  const kd = gpu();
  // A compile error is also a validation error; scope it so it is reported once, below, with the file and line,
  // rather than as an anonymous uncaptured error.
  kd.device.pushErrorScope('validation');
  m = kd.device.createShaderModule({ code, label: file });
  void kd.device.popErrorScope().catch(() => null);
  const module = m;
  void m.getCompilationInfo().then((ci) => reportCompileError(module, compileError(file, code, ci)));
  modules.set(file, module);
  return m;
}

// Both the module's compilation info and every pipeline built on it see a compile error; report it once per module,
// so that a late duplicate does not surface at some unrelated later readback.
const reportedModules = new WeakSet<GPUShaderModule>();
function reportCompileError(module: GPUShaderModule, err: DeviceError | null): boolean {
  if (!err) return false;
  if (!reportedModules.has(module)) {
    reportedModules.add(module);
    recordAsyncError(err, true);
  }
  return true;
}

function compileError(file: string, code: string, ci: GPUCompilationInfo): DeviceError | null {
  const errors = ci.messages.filter((x) => x.type === 'error');
  if (!errors.length) return null;
  const text = errors.map((x) => `kernels/${file}:${x.lineNum}:${x.linePos}: ${x.message}\n    ${lineOf(code, x.lineNum)}`).join('\n');
  return new DeviceError(`kiln: shader compile error\n${text}`);
}

function bindGroupLayout(info: EntryInfo): GPUBindGroupLayout {
  if (info.layout) return info.layout;
  const kd = gpu();
  info.layout = kd.device.createBindGroupLayout({
    label: `${info.file}:${info.entry}`,
    entries: info.bindings.map((b) => ({
      binding: b.binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: b.kind === 'uniform' ? { type: 'uniform', hasDynamicOffset: true } : { type: b.kind },
    })),
  });
  return info.layout;
}

function constantsKey(constants: Record<string, number> | undefined): string {
  if (!constants) return '';
  return Object.keys(constants)
    .sort()
    .map((k) => `${k}=${constants[k]}`)
    .join(',');
}

export function pipeline(file: string, entry: string, constants?: Record<string, number>): { pipeline: GPUComputePipeline; info: EntryInfo; key: string } {
  const info = entryInfo(file, entry);
  const key = `${file}:${entry}:${constantsKey(constants)}`;
  let p = pipelines.get(key);
  if (!p) {
    if (constants) {
      for (const name of Object.keys(constants)) {
        if (!info.overrides.has(name)) throw new KilnError(`kiln: ${file} has no override constant '${name}'`);
      }
    }
    const kd = gpu();
    const module = shaderModule(file, info.code);
    kd.device.pushErrorScope('validation');
    p = kd.device.createComputePipeline({
      label: key,
      layout: kd.device.createPipelineLayout({ bindGroupLayouts: [bindGroupLayout(info)] }),
      compute: { module, entryPoint: entry, constants },
    });
    void kd.device.popErrorScope().then(async (err) => {
      if (!err) return;
      // A pipeline over a module that failed to compile: report the compile error (file and line), not the symptom.
      const ci = await module.getCompilationInfo().catch(() => null);
      if (!reportCompileError(module, ci && compileError(file, info.code, ci))) {
        recordAsyncError(new DeviceError(`kiln: pipeline ${key} failed: ${err.message}`));
      }
    });
    pipelines.set(key, p);
  }
  return { pipeline: p, info, key };
}

function packParams(info: EntryInfo, values: Record<string, ParamValue>): Uint8Array {
  const layout = info.params!;
  const bytes = new Uint8Array(Math.ceil(layout.size / 16) * 16);
  const view = new DataView(bytes.buffer);
  for (const f of layout.fields) {
    const v = values[f.name];
    if (v === undefined) throw new KilnError(`kiln: ${info.file}:${info.entry}: missing kernel param '${f.name}'`);
    const arr = typeof v === 'number' ? [v] : typeof v === 'boolean' ? [v ? 1 : 0] : v;
    const n = Math.min(arr.length, f.count);
    for (let i = 0; i < n; i++) {
      const o = f.offset + 4 * i;
      if (f.kind === 'f32') view.setFloat32(o, arr[i], true);
      else if (f.kind === 'i32') view.setInt32(o, arr[i], true);
      else view.setUint32(o, arr[i] >>> 0, true);
    }
  }
  return bytes;
}

export interface DispatchSpec {
  constants?: Record<string, number>;
  bindings: Record<string, PooledBuffer | GPUBuffer>;
  params?: Record<string, ParamValue>;
  workgroups: readonly number[];
  label?: string;
}

/** Encodes one kernel dispatch into the current batch. */
export function dispatch(file: string, entry: string, spec: DispatchSpec): void {
  const kd = gpu();
  const { pipeline: p, info, key } = pipeline(file, entry, spec.constants);
  const maxWg = kd.device.limits.maxComputeWorkgroupsPerDimension;
  const wg: [number, number, number] = [spec.workgroups[0] ?? 1, spec.workgroups[1] ?? 1, spec.workgroups[2] ?? 1];
  if (wg.some((n) => n > maxWg)) throw new DeviceError(`kiln: ${file}:${entry} dispatch [${wg.join(',')}] exceeds ${maxWg} workgroups per dimension`);
  if (wg.some((n) => n === 0)) return;
  let uniformOffset: number | null = null;
  const ids: (number | string)[] = [];
  const entriesList: GPUBindGroupEntry[] = [];
  const maxBinding = kd.device.limits.maxStorageBufferBindingSize;
  let boundBytes = 0;
  for (const b of info.bindings) {
    if (b.kind === 'uniform') {
      uniformOffset = allocUniform(packParams(info, spec.params ?? {}));
      entriesList.push({ binding: b.binding, resource: { buffer: uniformRingBuffer(), size: Math.ceil(info.params!.size / 16) * 16 } });
      ids.push('u');
      continue;
    }
    const src = spec.bindings[b.name];
    if (!src) throw new KilnError(`kiln: ${info.file}:${info.entry} needs a buffer for binding '${b.name}' (given: ${Object.keys(spec.bindings).join(', ')})`);
    let buffer = 'buffer' in src ? src.buffer : src;
    if (b.kind === 'storage' && buffer === dummies.get('r')?.buf) buffer = dummyBuffer(true);
    if (buffer.size > maxBinding) throw new DeviceError(`kiln: ${info.file}:${info.entry}: binding '${b.name}' is ${buffer.size} bytes, over maxStorageBufferBindingSize ${maxBinding}`);
    entriesList.push({ binding: b.binding, resource: { buffer } });
    if (buffer !== dummies.get('r')?.buf && buffer !== dummies.get('w')?.buf) boundBytes += buffer.size;
    ids.push('id' in src && 'buffer' in src ? src.id : bufferId(buffer));
  }
  const bgKey = `${key}|${ids.join(',')}`;
  let bg = bindGroups.get(bgKey);
  if (bg) {
    bindGroups.delete(bgKey); // refresh LRU position
  } else {
    bg = kd.device.createBindGroup({ layout: bindGroupLayout(info), entries: entriesList });
    if (bindGroups.size >= MAX_BIND_GROUPS) bindGroups.delete(bindGroups.keys().next().value!);
  }
  bindGroups.set(bgKey, bg);
  encodeDispatch(p, bg, uniformOffset, wg, spec.label ?? `${file.replace('.wgsl', '')}:${entry}`, boundBytes);
}

const dummies = new Map<string, { gen: number; buf: GPUBuffer }>();
/**
 * Small buffers for bindings a kernel variant does not use. A writable binding gets its own, since
 * WebGPU forbids one buffer bound both writable and read-only in one dispatch.
 */
export function dummyBuffer(writable: boolean): GPUBuffer {
  const kd = gpu();
  const key = writable ? 'w' : 'r';
  let d = dummies.get(key);
  if (!d || d.gen !== kd.generation) {
    d = { gen: kd.generation, buf: kd.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label: `kiln dummy ${key}` }) };
    dummies.set(key, d);
  }
  return d.buf;
}

const otherIds = new WeakMap<GPUBuffer, number>();
let nextOtherId = 1;
function bufferId(b: GPUBuffer): string {
  let id = otherIds.get(b);
  if (id === undefined) otherIds.set(b, (id = nextOtherId++));
  return `x${id}`;
}

/** Splits a 1-D count of workgroups into a grid within the per-dimension limit. */
export function grid1d(workgroups: number): [number, number, number] {
  const maxWg = gpu().device.limits.maxComputeWorkgroupsPerDimension;
  if (workgroups <= maxWg) return [workgroups, 1, 1];
  const y = Math.ceil(workgroups / maxWg);
  const x = Math.ceil(workgroups / y);
  if (y > maxWg) throw new DeviceError(`kiln: ${workgroups} workgroups exceed the dispatch limit`);
  return [x, y, 1];
}

/** Compiles every entry of a kernel file now and throws its compile errors (warm-up, tests). */
export async function compileKernel(file: string): Promise<void> {
  const [baseFile, tagList] = file.split('#');
  const code = tagList ? variantCode(baseFile, tagList.split(',')) : resolveIncludes(file);
  const kd = gpu();
  // Scoped, so the error is thrown here only and not also reported later as an uncaptured validation error.
  kd.device.pushErrorScope('validation');
  const m = kd.device.createShaderModule({ code, label: file });
  await kd.device.popErrorScope().catch(() => null);
  const ci = await m.getCompilationInfo();
  const errors = ci.messages.filter((x) => x.type === 'error');
  if (errors.length) {
    throw new DeviceError(`kiln: shader compile error\n${errors.map((x) => `kernels/${file}:${x.lineNum}:${x.linePos}: ${x.message}\n    ${lineOf(code, x.lineNum)}`).join('\n')}`);
  }
}

export function kernelFiles(): string[] {
  return Object.keys(KERNEL_SOURCES);
}
