// Build-time kernel reflection: wgsl_reflect reads each kernels/*.wgsl once here, so the runtime ships its bindings,
// params layouts and workgroup sizes as data (src/gpu/kernels.ts, KernelModule) and carries no WGSL parser.
// Used by scripts/gen-kernels.mjs, and by tests that reflect a kernel of their own.
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';

/** `//!include name.wgsl` on a line of its own (as src/gpu/kernels.ts resolves it at run time). */
export const INCLUDE = /^[ \t]*\/\/!include[ \t]+([\w.-]+)[ \t]*$/gm;

/**
 * WGSL text with its comments blanked and each line trimmed. Line breaks stay where they were, so a compile error
 * still names the line of the file itself; `//!include` lines are kept (they are directives). Block comments nest,
 * as WGSL's do.
 */
export function stripComments(text) {
  let out = '';
  let depth = 0;
  let line = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '\n') {
      line = false;
      out += c;
    } else if (line) {
      // inside a line comment
    } else if (c === '/' && next === '*') {
      depth++;
      i++;
    } else if (depth > 0 && c === '*' && next === '/') {
      depth--;
      i++;
    } else if (depth > 0) {
      // inside a block comment
    } else if (c === '/' && next === '/') {
      if (/^\/\/!include\s/.test(text.slice(i, i + 11))) {
        const end = text.indexOf('\n', i);
        out += text.slice(i, end < 0 ? text.length : end);
        i = (end < 0 ? text.length : end) - 1;
      } else {
        line = true;
        i++;
      }
    } else {
      out += c;
    }
  }
  if (depth > 0) throw new Error('unterminated block comment');
  return out
    .split('\n')
    .map((l) => l.trim().replace(/[ \t]+/g, ' '))
    .join('\n');
}

/** The names a text's `//!include` lines name, in order. */
export function includesOf(text) {
  return [...text.matchAll(INCLUDE)].map((m) => m[1]);
}

/**
 * Text with its includes appended (each once), as the runtime resolves it; `sources` maps file name to text. Returns
 * the text and where each appended file starts (1-based lines), to name the file of a line.
 */
export function resolveWithParts(file, sources) {
  const seen = new Set([file]);
  const tail = [];
  const walk = (name, text) =>
    text.replace(INCLUDE, (_m, inc) => {
      if (!seen.has(inc)) {
        seen.add(inc);
        if (sources[inc] === undefined) throw new Error(`${name} includes unknown kernel file '${inc}'`);
        tail.push({ file: inc, text: walk(inc, sources[inc]) });
      }
      return `// (included ${inc} below)`;
    });
  if (sources[file] === undefined) throw new Error(`no kernel file '${file}'`);
  let text = walk(file, sources[file]);
  const parts = [{ file, line: 1 }];
  for (const t of tail) {
    const line = text.split('\n').length + 2;
    text += `\n// ---- included from ${t.file} ----\n${t.text}`;
    parts.push({ file: t.file, line });
  }
  return { text, parts };
}

export function resolveIncludes(file, sources) {
  return resolveWithParts(file, sources).text;
}

/** `kernels/<file>:<line>: <text>` for a line of resolved text. */
function whereIs(resolved, line) {
  let part = resolved.parts[0];
  for (const p of resolved.parts) if (p.line <= line) part = p;
  return `kernels/${part.file}:${line - part.line + 1}: ${resolved.text.split('\n')[line - 1]?.trim() ?? ''}`;
}

function scalarKind(typeName) {
  if (/u32/.test(typeName)) return 'u32';
  if (/i32/.test(typeName)) return 'i32';
  if (/f32/.test(typeName)) return 'f32';
  throw new Error(`unsupported params member type '${typeName}'`);
}

/** Module-scope integer constants of the file's own text (`const NAME: u32 = 5u;`): op-code tables and the like. */
function integerConstants(text) {
  const out = {};
  for (const m of text.matchAll(/^const\s+([A-Za-z_]\w*)\s*(?::\s*([ui]32))?\s*=\s*(-?(?:0x[0-9a-fA-F]+|\d+))([ui]?)\s*;/gm)) {
    if (!m[2] && !m[4]) continue; // an abstract literal: leave it
    out[m[1]] = Number(m[3]);
  }
  return out;
}

/** The compute entry points a text declares (by pattern, for a file that cannot be reflected). */
export function computeEntryNames(text) {
  return [...text.matchAll(/@compute\b[^{;]*?\bfn\s+([A-Za-z_]\w*)/g)].map((m) => m[1]);
}

/**
 * Reflects one kernel file. `sources` maps every kernel file name to its (comment-stripped) text. Returns the data
 * src/gpu/kernels.ts's KernelModule holds, with includes as names: { file, code, includes, entries, overrides,
 * constants }. The reflection is of the file with its includes resolved (the base file, never a variant).
 */
export function reflectKernel(file, sources) {
  const code = sources[file];
  const resolved = resolveWithParts(file, sources);
  let refl;
  try {
    refl = new WgslReflect(resolved.text);
  } catch (e) {
    const line = /Line: (\d+)/.exec(e.message);
    const where = line ? whereIs(resolved, Number(line[1])) : '';
    // wgsl_reflect 1.6 misreads a comparison inside a constructor call, `vec4<bool>(a >= b)`, as a template list.
    const hint = /<[\w<>, ]+>\([^()]*[<>]=?/.test(where) ? ' (wgsl_reflect reads `T<..>(a >= b)` as a template list: write `T<..>((a >= b))`)' : '';
    throw new Error(`${file} could not be parsed by wgsl_reflect: ${e.message}${where ? `\n    ${where}` : ''}${hint}`);
  }
  const entries = {};
  for (const fn of refl.entry.compute) {
    const bindings = [];
    let params = null;
    for (const r of fn.resources) {
      if (r.group !== 0) throw new Error(`${file}: binding '${r.name}' must be in @group(0)`);
      if (r.resourceType === 0 /* Uniform */) {
        bindings.push({ name: r.name, binding: r.binding, kind: 'uniform' });
        if (!r.type.members) throw new Error(`${file}: uniform '${r.name}' must be a struct`);
        const fields = r.type.members.map((m) => {
          const base = m.type.format?.format?.name ?? m.type.format?.name ?? m.type.name;
          return { name: m.name, offset: m.offset, kind: scalarKind(base.includes('<') ? base : `${base} ${m.type.name}`), count: Math.max(1, Math.floor(m.size / 4)) };
        });
        params = { name: r.name, size: r.size, fields };
      } else if (r.resourceType === 1 /* Storage */) {
        bindings.push({ name: r.name, binding: r.binding, kind: r.access === 'read' ? 'read-only-storage' : 'storage' });
      } else {
        throw new Error(`${file}: binding '${r.name}' has an unsupported resource type`);
      }
    }
    bindings.sort((a, b) => a.binding - b.binding);
    const ws = fn.workgroupSize;
    entries[fn.name] = { bindings, params, workgroupSize: ws && ws.every((n) => typeof n === 'number' && n > 0) ? [...ws] : null };
  }
  return {
    file,
    code,
    includes: includesOf(code),
    entries,
    overrides: refl.overrides.map((o) => o.name),
    constants: integerConstants(code),
  };
}
