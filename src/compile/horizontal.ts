// Horizontal fusion over a trace (runs last): dispatches that do not depend on each other and sit next to each other
// in the trace (only copies, clears, uploads, hooks or each other between them) become one dispatch of a generated
// kernel, `multi.<a>+<b>+...`. A backward pass is full of such siblings: a linear layer's dX and dW products and its
// bias-gradient sum, layerNorm's dX and dW / dB, attention's dK / dV and dQ.
//
// The generated module holds each member's own resolved text, its module-scope names prefixed `h<i>_` (overrides
// become consts holding the member's pipeline constants, entry points become plain functions taking their builtins as
// arguments), and one entry point: a 1-D grid over the members' workgroups, where the linear workgroup id picks the
// member (a branch on the workgroup id only, so barriers inside a member stay in uniform control flow) and rebuilds
// the member's workgroup_id, num_workgroups (its own grid), local_invocation_id, global_invocation_id and
// local_invocation_index. Members with barriers, workgroup memory or subgroup operations run with exactly the merged
// workgroup size; others may be smaller (several of their workgroups share one merged workgroup where the size
// divides). Members of one module with the same constants (dK / dV and dQ) share the declarations that do not touch a
// binding, workgroup memory included (one member runs per workgroup). Each member keeps its params block: one uniform
// binding holds them 256 bytes apart, in the plan's uniform buffer, and the plan patches each member's dynamic fields
// (seeds, index checks, optimizer step) at its own block. Bindings a member only reads are shared where the same
// buffer is read with the same type; a binding the trace filled with a dummy becomes a private array.
//
// Independence is decided on what each member's reachable code can write (a binding declared read_write that the entry
// point never writes is read-only here: attention's dQ entry binds dV only because a helper names a local `dv`).
import { gpu } from '../gpu/device.js';
import { isDummyBuffer, kernelCode, pipeline, type KernelBinding, type KernelEntry, type KernelModule } from '../gpu/kernels.js';
import { pipelineSource, type RecBinding, type RecCommand, type RecDispatch, type RecSlot } from './recording.js';

/** What one merged dispatch replaced, for explain(). */
export interface HorizontalGroup {
  readonly name: string;
  readonly members: readonly string[];
  readonly module: KernelModule;
}

// ---------------------------------------------------------------------------------------------------------------
// WGSL tokens and module-scope declarations.

interface Tok {
  readonly t: 'id' | 'num' | 'ws' | 'p';
  readonly v: string;
}

const ID = /[A-Za-z_][A-Za-z0-9_]*/y;
const NUM = /0[xX][0-9a-fA-F]+[iu]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[fhiu]?/y;
const WS = /\s+/y;

function tokenize(code: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const n = code.length;
  const sticky = (re: RegExp): string | null => {
    re.lastIndex = i;
    const m = re.exec(code);
    return m ? m[0] : null;
  };
  while (i < n) {
    const ch = code[i];
    if (ch === '/' && code[i + 1] === '/') {
      let j = code.indexOf('\n', i);
      if (j < 0) j = n;
      out.push({ t: 'ws', v: ' ' });
      i = j;
      continue;
    }
    if (ch === '/' && code[i + 1] === '*') {
      let depth = 0;
      let j = i;
      while (j < n) {
        if (code[j] === '/' && code[j + 1] === '*') (depth++, (j += 2));
        else if (code[j] === '*' && code[j + 1] === '/') {
          j += 2;
          if (--depth === 0) break;
        } else j++;
      }
      out.push({ t: 'ws', v: ' ' });
      i = j;
      continue;
    }
    let m = sticky(WS);
    if (m) {
      out.push({ t: 'ws', v: m });
      i += m.length;
      continue;
    }
    m = sticky(ID);
    if (m) {
      out.push({ t: 'id', v: m });
      i += m.length;
      continue;
    }
    m = /[0-9.]/.test(ch) ? sticky(NUM) : null;
    if (m) {
      out.push({ t: 'num', v: m });
      i += m.length;
      continue;
    }
    out.push({ t: 'p', v: ch });
    i++;
  }
  return out;
}

type DeclKind = 'fn' | 'var' | 'const' | 'override' | 'struct' | 'alias' | 'const_assert' | 'directive';

interface Decl {
  readonly kind: DeclKind;
  readonly name: string;
  /** Token range [start, end), attributes included. */
  readonly start: number;
  readonly end: number;
  /** The keyword's token, and the name's (-1 where there is none). */
  readonly kw: number;
  readonly nameAt: number;
  /** var: address space and access ('' where not given). */
  space?: string;
  access?: string;
  binding?: number;
  /** var / const / override / alias: the type's token range (empty where none), the initializer's. */
  type?: [number, number];
  init?: [number, number];
  /** fn: whether it is a compute entry point, its @workgroup_size arguments, its parameters. */
  compute?: boolean;
  workgroupSize?: [number, number][];
  params?: { name: string; builtin: string | null }[];
  /** Module-scope names this declaration references, and those it writes (vars only). */
  refs: Set<string>;
  writes: Set<string>;
}

interface Parsed {
  readonly toks: Tok[];
  readonly decls: Decl[];
  readonly byName: Map<string, Decl>;
  /** Per token: true where an identifier names a module-scope declaration (not a local, a member or an attribute). */
  readonly modRef: Uint8Array;
  /** Token indices of attributes to drop when the declaration is emitted (@compute, @workgroup_size, @builtin, @id). */
  readonly drop: Uint8Array;
}

const parsedCache = new Map<string, Parsed | null>();

function parseModule(code: string): Parsed | null {
  if (parsedCache.has(code)) return parsedCache.get(code)!;
  let p: Parsed | null;
  try {
    p = parseUncached(code);
  } catch {
    p = null;
  }
  if (parsedCache.size >= 64) parsedCache.delete(parsedCache.keys().next().value!);
  parsedCache.set(code, p);
  return p;
}

class ParseError extends Error {}

function parseUncached(code: string): Parsed {
  const toks = tokenize(code);
  const n = toks.length;
  const next = (i: number): number => {
    while (i < n && toks[i].t === 'ws') i++;
    return i;
  };
  const prevTok = (i: number): number => {
    i--;
    while (i >= 0 && toks[i].t === 'ws') i--;
    return i;
  };
  const is = (i: number, v: string) => i < n && toks[i].v === v && toks[i].t !== 'ws';
  /** The index of the bracket matching the opening one at i. */
  const match = (i: number): number => {
    const open = toks[i].v;
    const close = open === '(' ? ')' : open === '{' ? '}' : open === '[' ? ']' : '>';
    let depth = 0;
    for (let j = i; j < n; j++) {
      if (toks[j].t !== 'p') continue;
      if (toks[j].v === open) depth++;
      else if (toks[j].v === close && --depth === 0) return j;
    }
    throw new ParseError(`unbalanced ${open}`);
  };
  /** The next ';' at bracket depth 0 from i. */
  const semicolon = (i: number): number => {
    let depth = 0;
    for (let j = i; j < n; j++) {
      const v = toks[j].t === 'p' ? toks[j].v : '';
      if (v === '(' || v === '{' || v === '[') depth++;
      else if (v === ')' || v === '}' || v === ']') depth--;
      else if (v === ';' && depth === 0) return j;
    }
    throw new ParseError('missing ;');
  };
  const decls: Decl[] = [];
  const drop = new Uint8Array(n);
  let i = next(0);
  while (i < n) {
    const start = i;
    if (is(i, ';')) {
      i = next(i + 1);
      continue;
    }
    const attrs: { name: string; open: number; close: number; at: number }[] = [];
    while (is(i, '@')) {
      const nameAt = next(i + 1);
      let j = next(nameAt + 1);
      let open = -1;
      let close = -1;
      if (is(j, '(')) {
        open = j;
        close = match(j);
        j = next(close + 1);
      }
      attrs.push({ name: toks[nameAt].v, open, close, at: i });
      i = j;
    }
    const kwTok = toks[i];
    if (!kwTok || kwTok.t !== 'id') throw new ParseError(`unexpected '${kwTok?.v}' at module scope`);
    const kw = kwTok.v;
    const base = { start, kw: i, refs: new Set<string>(), writes: new Set<string>() };
    const markDrop = (a: { at: number; close: number; open: number; name: string }) => {
      const last = a.close >= 0 ? a.close : next(a.at + 1);
      for (let k = a.at; k <= last; k++) drop[k] = 1;
    };
    if (kw === 'enable' || kw === 'requires' || kw === 'diagnostic' || kw === 'const_assert') {
      const end = semicolon(i) + 1;
      decls.push({ ...base, kind: kw === 'const_assert' ? 'const_assert' : 'directive', name: '', nameAt: -1, end });
      i = next(end);
      continue;
    }
    if (kw === 'fn') {
      const nameAt = next(i + 1);
      const open = next(nameAt + 1);
      if (!is(open, '(')) throw new ParseError('fn without (');
      const close = match(open);
      let j = next(close + 1);
      while (j < n && !is(j, '{')) j++;
      const end = match(j) + 1;
      const d: Decl = { ...base, kind: 'fn', name: toks[nameAt].v, nameAt, end, compute: attrs.some((a) => a.name === 'compute') };
      for (const a of attrs) {
        if (a.name === 'compute' || a.name === 'workgroup_size') markDrop(a);
        if (a.name === 'workgroup_size') {
          const args: [number, number][] = [];
          let s = a.open + 1;
          let depth = 0;
          for (let k = a.open + 1; k < a.close; k++) {
            const v = toks[k].t === 'p' ? toks[k].v : '';
            if (v === '(') depth++;
            else if (v === ')') depth--;
            else if (v === ',' && depth === 0) (args.push([s, k]), (s = k + 1));
          }
          if (next(s) < a.close) args.push([s, a.close]);
          d.workgroupSize = args;
        }
      }
      // Parameters: [@builtin(x)] name: type, ...
      const params: { name: string; builtin: string | null }[] = [];
      let k = next(open + 1);
      while (k < close) {
        let builtin: string | null = null;
        while (is(k, '@')) {
          const an = next(k + 1);
          let e = an;
          const o = next(an + 1);
          if (is(o, '(')) e = match(o);
          if (toks[an].v === 'builtin') {
            builtin = toks[next(o + 1)].v;
            for (let q = k; q <= e; q++) drop[q] = 1;
          }
          k = next(e + 1);
        }
        params.push({ name: toks[k].v, builtin });
        // Skip to the next top-level comma.
        let depth = 0;
        for (; k < close; k++) {
          const v = toks[k].t === 'p' ? toks[k].v : '';
          if (v === '(' || v === '<' || v === '[') depth++;
          else if (v === ')' || v === '>' || v === ']') depth--;
          else if (v === ',' && depth === 0) break;
        }
        k = next(k + 1);
      }
      d.params = params;
      decls.push(d);
      i = next(end);
      continue;
    }
    if (kw === 'struct') {
      const nameAt = next(i + 1);
      const open = next(nameAt + 1);
      const end = match(open) + 1;
      decls.push({ ...base, kind: 'struct', name: toks[nameAt].v, nameAt, end });
      i = next(end);
      continue;
    }
    if (kw === 'var' || kw === 'const' || kw === 'override' || kw === 'alias') {
      let j = next(i + 1);
      let space = '';
      let access = '';
      if (kw === 'var' && is(j, '<')) {
        const close = match(j);
        const words = toks.slice(j + 1, close).filter((t) => t.t === 'id').map((t) => t.v);
        space = words[0] ?? '';
        access = words[1] ?? '';
        j = next(close + 1);
      }
      const nameAt = j;
      const end = semicolon(j) + 1;
      let type: [number, number] = [0, 0];
      let init: [number, number] = [0, 0];
      let k = next(nameAt + 1);
      if (kw === 'alias') {
        type = [next(k + 1), end - 1];
      } else {
        if (is(k, ':')) {
          const s = next(k + 1);
          let depth = 0;
          let e = s;
          for (; e < end - 1; e++) {
            const v = toks[e].t === 'p' ? toks[e].v : '';
            if (v === '<') depth++;
            else if (v === '>') depth--;
            else if (v === '=' && depth === 0) break;
          }
          type = [s, e];
          k = e;
        }
        if (is(k, '=')) init = [next(k + 1), end - 1];
      }
      const d: Decl = { ...base, kind: kw, name: toks[nameAt].v, nameAt, end, space, access, type, init };
      for (const a of attrs) {
        if (a.name === 'binding') d.binding = Number(toks[next(a.open + 1)].v.replace(/[iu]$/, ''));
        if (a.name === 'id') markDrop(a);
      }
      decls.push(d);
      i = next(end);
      continue;
    }
    throw new ParseError(`unknown module-scope '${kw}'`);
  }
  const byName = new Map<string, Decl>();
  for (const d of decls) if (d.name) byName.set(d.name, d);
  // References, scope by scope: an identifier names a module-scope declaration unless it follows '.' or '@', is a
  // struct member's name, a declaration's own name, or a local (parameter, let, var, const) in scope.
  const modRef = new Uint8Array(n);
  const ASSIGN_OPS = new Set(['+', '-', '*', '/', '%', '&', '|', '^']);
  for (const d of decls) {
    if (d.kind === 'directive') continue;
    const scopes: { names: Set<string>; forScope: boolean }[] = [];
    const local = (name: string) => scopes.some((s) => s.names.has(name));
    let pending: string | null = null;
    let pendingDepth = 0;
    let depth = 0;
    const structBody = d.kind === 'struct' ? next(next(d.kw + 1) + 1) : -1;
    const inFn = d.kind === 'fn';
    let bodyOpen = -1;
    if (inFn) {
      // Parameters are locals of the body.
      const names = new Set(d.params!.map((p) => p.name));
      scopes.push({ names, forScope: false });
      let j = next(d.kw + 1);
      j = match(next(j + 1));
      while (j < d.end && !is(j, '{')) j++;
      bodyOpen = j;
    }
    let inBuiltin = -1;
    for (let k = d.start; k < d.end; k++) {
      const tk = toks[k];
      if (tk.t === 'p') {
        if (inFn && k > bodyOpen) {
          if (tk.v === '{') {
            depth++;
            scopes.push({ names: new Set(), forScope: false });
          } else if (tk.v === '}') {
            depth--;
            scopes.pop();
            if (scopes.length && scopes[scopes.length - 1].forScope) scopes.pop();
          } else if (tk.v === ';' && pending !== null && depth === pendingDepth) {
            scopes[scopes.length - 1].names.add(pending);
            pending = null;
          }
        }
        if (k === inBuiltin) inBuiltin = -1;
        continue;
      }
      if (tk.t !== 'id') continue;
      const pv = prevTok(k);
      const prev = pv >= 0 ? toks[pv].v : '';
      if (prev === '.' || prev === '@') {
        if (prev === '@' && tk.v === 'builtin') {
          const o = next(k + 1);
          if (is(o, '(')) inBuiltin = match(o);
        }
        continue;
      }
      if (inBuiltin >= 0 && k < inBuiltin) continue;
      if (k === d.kw || k === d.nameAt) continue;
      if (d.kind === 'struct' && k > structBody && is(next(k + 1), ':')) continue;
      if (inFn) {
        if (k < bodyOpen) {
          // Parameter names (followed by ':') are locals; types reference module scope.
          if (is(next(k + 1), ':')) continue;
        } else {
          const v = tk.v;
          if (v === 'let' || v === 'var' || v === 'const') {
            let j = next(k + 1);
            if (is(j, '<')) j = next(match(j) + 1);
            pending = toks[j].v;
            pendingDepth = depth;
            k = j;
            continue;
          }
          if (v === 'for') {
            scopes.push({ names: new Set(), forScope: true });
            continue;
          }
          if (local(v)) continue;
        }
      }
      if (!byName.has(tk.v)) continue;
      modRef[k] = 1;
      d.refs.add(tk.v);
      // Writes: `name[...].f = `, compound assignments, ++ / --, and &name (a pointer: atomics, helper functions).
      if (byName.get(tk.v)!.kind === 'var') {
        const pp = prevTok(pv);
        const ppv = pp >= 0 ? toks[pp].v : '';
        if (prev === '&' && (pp < 0 || ['(', ',', '=', '{', ';', '&'].includes(ppv) || toks[pp].t === 'id' && ['let', 'var', 'return'].includes(ppv))) d.writes.add(tk.v);
        let j = next(k + 1);
        for (;;) {
          if (is(j, '[')) j = next(match(j) + 1);
          else if (is(j, '.')) j = next(next(j + 1) + 1);
          else break;
        }
        const a = toks[j]?.v;
        const b = toks[j + 1]?.v;
        const c = toks[j + 2]?.v;
        if (a === '=' && b !== '=') d.writes.add(tk.v);
        else if (ASSIGN_OPS.has(a) && b === '=') d.writes.add(tk.v);
        else if ((a === '+' || a === '-') && b === a) d.writes.add(tk.v);
        else if ((a === '<' || a === '>') && b === a && c === '=') d.writes.add(tk.v);
      }
    }
  }
  return { toks, decls, byName, modRef, drop };
}

// ---------------------------------------------------------------------------------------------------------------
// Constant evaluation (workgroup sizes, workgroup memory), over consts and overrides with the pipeline's constants.

type Env = { parsed: Parsed; constants: Readonly<Record<string, number>>; memo: Map<string, number | null> };

function evalName(env: Env, name: string): number | null {
  if (env.memo.has(name)) return env.memo.get(name)!;
  env.memo.set(name, null);
  const d = env.parsed.byName.get(name);
  let v: number | null = null;
  if (d && d.kind === 'override' && Object.hasOwn(env.constants, name)) v = env.constants[name];
  else if (d && (d.kind === 'override' || d.kind === 'const') && d.init && d.init[1] > d.init[0]) v = evalExpr(env, d.init[0], d.init[1]);
  env.memo.set(name, v);
  return v;
}

function evalExpr(env: Env, from: number, to: number): number | null {
  const toks = env.parsed.toks.slice(from, to).filter((t) => t.t !== 'ws');
  let i = 0;
  const peek = () => toks[i]?.v;
  const fail = (): never => {
    throw new ParseError('not a constant');
  };
  const primary = (): number => {
    const t = toks[i++];
    if (!t) fail();
    if (t.t === 'num') {
      const s = t.v.replace(/[iu]$/, '');
      if (/[.eEfh]/.test(s) && !/^0[xX]/.test(s)) return Number(s.replace(/[fh]$/, ''));
      return Number(s);
    }
    if (t.v === '(') {
      const v = expr();
      if (toks[i++]?.v !== ')') fail();
      return v;
    }
    if (t.t === 'id') {
      if (t.v === 'true') return 1;
      if (t.v === 'false') return 0;
      if (peek() === '(' || peek() === '<') {
        if (peek() === '<') {
          while (i < toks.length && toks[i].v !== '>') i++;
          i++;
        }
        i++;
        const args: number[] = [];
        while (peek() !== ')') {
          args.push(expr());
          if (peek() === ',') i++;
          else if (peek() !== ')') fail();
        }
        i++;
        if (t.v === 'min') return Math.min(...args);
        if (t.v === 'max') return Math.max(...args);
        if ((t.v === 'u32' || t.v === 'i32' || t.v === 'f32') && args.length === 1) return t.v === 'f32' ? args[0] : Math.trunc(args[0]);
        fail();
      }
      const v = evalName(env, t.v);
      if (v === null) fail();
      return v!;
    }
    return fail();
  };
  const unary = (): number => {
    if (peek() === '-') {
      i++;
      return -unary();
    }
    return primary();
  };
  const term = (): number => {
    let v = unary();
    for (;;) {
      const op = peek();
      if (op !== '*' && op !== '/' && op !== '%') return v;
      i++;
      const w = unary();
      if (op === '*') v *= w;
      else if (w === 0) fail();
      else if (op === '/') v = Number.isInteger(v) && Number.isInteger(w) ? Math.trunc(v / w) : v / w;
      else v = v % w;
    }
  };
  const expr = (): number => {
    let v = term();
    for (;;) {
      const op = peek();
      if (op !== '+' && op !== '-') return v;
      i++;
      const w = term();
      v = op === '+' ? v + w : v - w;
    }
  };
  try {
    const v = expr();
    return i === toks.length ? v : null;
  } catch {
    return null;
  }
}

/**
 * Size, alignment and a signature (aliases resolved, counts evaluated: equal for equal types) of a (workgroup) type,
 * or null where it is not a plain fixed-size type.
 */
function typeLayout(env: Env, from: number, to: number): { size: number; align: number; sig: string } | null {
  const toks = env.parsed.toks.slice(from, to).filter((t) => t.t !== 'ws');
  let i = 0;
  const parse = (): { size: number; align: number; sig: string } | null => {
    const t = toks[i++];
    if (!t || t.t !== 'id') return null;
    const scalar: Record<string, number> = { f32: 4, u32: 4, i32: 4, bool: 4, f16: 2 };
    if (scalar[t.v]) return { size: scalar[t.v], align: scalar[t.v], sig: t.v };
    const vec = /^vec([234])([fhiu]?)$/.exec(t.v);
    if (vec) {
      let el: { size: number; align: number; sig: string } | null;
      if (vec[2]) el = { size: vec[2] === 'h' ? 2 : 4, align: vec[2] === 'h' ? 2 : 4, sig: { f: 'f32', h: 'f16', i: 'i32', u: 'u32' }[vec[2]]! };
      else {
        if (toks[i++]?.v !== '<') return null;
        el = parse();
        if (toks[i++]?.v !== '>') return null;
      }
      if (!el) return null;
      const k = Number(vec[1]);
      return { size: k * el.size, align: (k === 2 ? 2 : 4) * el.size, sig: `vec${k}<${el.sig}>` };
    }
    if (t.v === 'atomic') {
      if (toks[i++]?.v !== '<') return null;
      const el = parse();
      if (!el || toks[i++]?.v !== '>') return null;
      return { ...el, sig: `atomic<${el.sig}>` };
    }
    if (t.v === 'array') {
      if (toks[i++]?.v !== '<') return null;
      const el = parse();
      if (!el || toks[i++]?.v !== ',') return null;
      // The count: everything up to the matching '>'.
      let depth = 0;
      const s = i;
      for (; i < toks.length; i++) {
        if (toks[i].v === '(' ) depth++;
        else if (toks[i].v === ')') depth--;
        else if (toks[i].v === '>' && depth === 0) break;
      }
      const countToks = toks.slice(s, i);
      i++;
      const sub: Env = env;
      const count = evalTokens(sub, countToks);
      if (count === null || !(count > 0)) return null;
      const stride = Math.ceil(el.size / el.align) * el.align;
      return { size: count * stride, align: el.align, sig: `array<${el.sig},${count}>` };
    }
    const d = env.parsed.byName.get(t.v);
    if (d?.kind === 'alias' && d.type) return typeLayout(env, d.type[0], d.type[1]);
    return null;
  };
  const r = parse();
  return r && i === toks.length ? r : null;
}

function evalTokens(env: Env, toks: Tok[]): number | null {
  // Evaluate a token list not at a known range of the parsed module: find it back by identity.
  const all = env.parsed.toks;
  const from = all.indexOf(toks[0]);
  if (from < 0) return null;
  const to = all.indexOf(toks[toks.length - 1]) + 1;
  return evalExpr(env, from, to);
}

// ---------------------------------------------------------------------------------------------------------------
// One member: its module analysed from its entry point.

const SYNC = /^(workgroupBarrier|storageBarrier|textureBarrier|workgroupUniformLoad|subgroup\w*|quad\w*)$/;
const BUILTINS = new Set(['workgroup_id', 'num_workgroups', 'local_invocation_id', 'local_invocation_index', 'global_invocation_id', 'subgroup_invocation_id', 'subgroup_size']);

interface Unit {
  readonly parsed: Parsed;
  readonly env: Env;
  readonly entry: Decl;
  /** Declarations reachable from the entry point, in module order (directives apart). */
  readonly reach: Decl[];
  readonly directives: string[];
  readonly size: [number, number, number];
  readonly sync: boolean;
  /** Workgroup variables reached: name -> bytes and type signature. */
  readonly workgroup: Map<string, { bytes: number; sig: string }>;
  /** Binding variables reached (storage and uniform) and whether the reachable code writes each. */
  readonly resources: Map<string, { decl: Decl; written: boolean }>;
  /** Names whose declaration (transitively) references a binding: per member, never shared. */
  readonly perMember: Set<string>;
  /** Module text + constants: members with the same key share what is not per member. */
  readonly classKey: string;
  readonly usesArrayLength: boolean;
}

const unitCache = new WeakMap<GPUComputePipeline, Unit | null>();

function unitOf(d: RecDispatch, modules: Iterable<KernelModule>): Unit | null {
  if (unitCache.has(d.pipeline)) return unitCache.get(d.pipeline)!;
  let u: Unit | null = null;
  try {
    u = analyse(d, modules);
  } catch {
    u = null;
  }
  unitCache.set(d.pipeline, u);
  return u;
}

function analyse(d: RecDispatch, modules: Iterable<KernelModule>): Unit | null {
  const src = pipelineSource(d, modules);
  if (!src) return null;
  const code = kernelCode(src.kernel);
  const parsed = parseModule(code);
  if (!parsed) return null;
  const entry = parsed.byName.get(src.entry);
  if (!entry || entry.kind !== 'fn' || !entry.compute || !entry.workgroupSize) return null;
  if (entry.params!.some((p) => !p.builtin || !BUILTINS.has(p.builtin))) return null;
  const env: Env = { parsed, constants: src.constants, memo: new Map() };
  const dims = entry.workgroupSize.map(([a, b]) => evalExpr(env, a, b));
  if (dims.some((x) => x === null || !Number.isInteger(x) || x! < 1)) return null;
  const size: [number, number, number] = [dims[0]!, dims[1] ?? 1, dims[2] ?? 1];
  // Reachability from the entry point.
  const seen = new Set<string>([entry.name]);
  const stack = [entry];
  while (stack.length) {
    const x = stack.pop()!;
    for (const r of x.refs) {
      if (seen.has(r)) continue;
      seen.add(r);
      stack.push(parsed.byName.get(r)!);
    }
  }
  const reach = parsed.decls.filter((x) => x.kind !== 'directive' && x.kind !== 'const_assert' && seen.has(x.name));
  const directives = parsed.decls.filter((x) => x.kind === 'directive').map((x) => parsed.toks.slice(x.start, x.end).map((t) => t.v).join('').replace(/\s+/g, ' ').trim());
  let sync = false;
  const workgroup = new Map<string, { bytes: number; sig: string }>();
  const resources = new Map<string, { decl: Decl; written: boolean }>();
  let usesArrayLength = false;
  for (const x of reach) {
    if (x.kind === 'fn') {
      for (let k = x.start; k < x.end; k++) {
        const t = parsed.toks[k];
        if (t.t !== 'id') continue;
        if (SYNC.test(t.v)) sync = true;
        if (t.v === 'arrayLength') usesArrayLength = true;
      }
    }
    if (x.kind === 'var' && x.space === 'workgroup') {
      sync = true;
      const lay = typeLayout(env, x.type![0], x.type![1]);
      if (!lay) return null;
      workgroup.set(x.name, { bytes: lay.size, sig: lay.sig });
    }
    if (x.kind === 'var' && (x.space === 'storage' || x.space === 'uniform')) resources.set(x.name, { decl: x, written: false });
    if (x.kind === 'var' && x.space === 'handle') return null;
    if (x.kind === 'var' && x.binding === undefined && x.space !== 'workgroup' && x.space !== 'private') return null;
  }
  for (const x of reach) for (const w of x.writes) if (resources.has(w)) resources.get(w)!.written = true;
  // Per-member names: bindings and what reaches them.
  const perMember = new Set<string>(resources.keys());
  for (let changed = true; changed; ) {
    changed = false;
    for (const x of reach) {
      if (perMember.has(x.name)) continue;
      for (const r of x.refs) {
        if (perMember.has(r)) {
          perMember.add(x.name);
          changed = true;
          break;
        }
      }
    }
  }
  const ck = Object.keys(src.constants).sort().map((k) => `${k}=${src.constants[k]}`).join(',');
  return { parsed, env, entry, reach, directives, size, sync, workgroup, resources, perMember, classKey: `${ck}\n${code}`, usesArrayLength };
}

// ---------------------------------------------------------------------------------------------------------------
// Members as the merged kernel binds them.

/** How one of a member's binding variables is bound in the merged kernel. */
type BindPlan =
  | { kind: 'uniform' }
  | { kind: 'private'; written: boolean }
  | { kind: 'storage'; slot: number; writable: boolean; type: string };

interface Member {
  readonly d: RecDispatch;
  readonly unit: Unit;
  readonly binds: Map<string, BindPlan>;
  /** Physical identities of what it reads and writes (dummies bound as private arrays excluded). */
  readonly reads: Set<string>;
  readonly writes: Set<string>;
  readonly threads: number;
}

/** Token text of a type with aliases resolved (two members' types compare equal when they are the same type). */
function canonicalType(u: Unit, from: number, to: number, depth = 0): string {
  if (depth > 8) return '?';
  const out: string[] = [];
  for (let k = from; k < to; k++) {
    const t = u.parsed.toks[k];
    if (t.t === 'ws') continue;
    const a = t.t === 'id' && u.parsed.modRef[k] ? u.parsed.byName.get(t.v) : undefined;
    if (a?.kind === 'alias') out.push(canonicalType(u, a.type![0], a.type![1], depth + 1));
    else if (a) out.push(`#${t.v}`); // a module type (struct): not shared across members
    else out.push(t.v);
  }
  return out.join(' ');
}

function memberOf(d: RecDispatch, slots: readonly RecSlot[], physical: (slot: number) => string, modules: Iterable<KernelModule>): Member | null {
  if (d.members || !d.pipeline) return null;
  if (d.uniform && d.uniform.size > 256) return null;
  const unit = unitOf(d, modules);
  if (!unit) return null;
  const binds = new Map<string, BindPlan>();
  const reads = new Set<string>();
  const writes = new Set<string>();
  for (const [name, { decl, written }] of unit.resources) {
    if (decl.space === 'uniform') {
      if (!d.uniform || d.uniform.binding !== decl.binding) return null;
      binds.set(name, { kind: 'uniform' });
      continue;
    }
    const rb = d.bindings.find((b) => b.binding === decl.binding);
    const type = canonicalType(unit, decl.type![0], decl.type![1]);
    const runtimeArray = /^array < [^,]*>$/.test(type) && !type.includes('atomic') && !type.includes('#');
    const dummy = !rb || rb.slot === -1 || (!slots[rb.slot].pb && isDummyBuffer(slots[rb.slot].buffer));
    if (dummy && runtimeArray && !unit.usesArrayLength) {
      binds.set(name, { kind: 'private', written });
      continue;
    }
    if (!rb) return null;
    // A binding the reachable code never writes is read-only here (atomics must stay read_write).
    const writable = rb.writable && (written || type.includes('atomic'));
    binds.set(name, { kind: 'storage', slot: rb.slot, writable, type });
    if (rb.slot === -1) continue;
    (writable ? writes : reads).add(physical(rb.slot));
  }
  return { d, unit, binds, reads, writes, threads: unit.size[0] * unit.size[1] * unit.size[2] };
}

interface Limits {
  storage: number;
  workgroupBytes: number;
  invocations: number;
  perDimension: number;
}

/**
 * The merged workgroup size of a set of members, or null where they cannot share one: that of the members with
 * barriers, workgroup memory or subgroup operations (all the same), else the largest. The others' invocations are
 * independent of each other and are laid over the merged workgroups in order, whatever their size.
 */
function mergedSize(members: readonly Member[], limits: Limits): number | null {
  const sync = members.filter((m) => m.unit.sync);
  const S = sync.length ? sync[0].threads : Math.max(...members.map((m) => m.threads));
  if (S > limits.invocations) return null;
  for (const m of sync) if (m.threads !== S) return null;
  return S;
}

function storageCount(members: readonly Member[]): number {
  const keys = new Set<string>();
  members.forEach((m, i) => {
    for (const b of m.binds.values()) {
      if (b.kind !== 'storage') continue;
      keys.add(b.writable ? `w${i}:${b.slot}:${b.type}` : `r${b.slot}:${b.type}`);
    }
  });
  return keys.size;
}

/** Per member, the index of the first member of its module with its constants (whose prefix their shared names take). */
function classesOf(members: readonly Member[]): number[] {
  const first = new Map<string, number>();
  return members.map((m, i) => {
    if (!first.has(m.unit.classKey)) first.set(m.unit.classKey, i);
    return first.get(m.unit.classKey)!;
  });
}

/**
 * The group's workgroup memory: each workgroup variable (by its name in the merged text) -> the declaration holding
 * it, and the bytes declared. One member runs per workgroup, so variables of one type that no member uses together
 * share a declaration (attention's dQ entry's score tile and the dK / dV entry's).
 */
function workgroupLayout(members: readonly Member[]): { storage: Map<string, string>; bytes: number } {
  const classes = classesOf(members);
  const vars = new Map<string, { sig: string; bytes: number; users: Set<number> }>();
  members.forEach((m, i) => {
    for (const [name, w] of m.unit.workgroup) {
      const key = `h${classes[i]}_${name}`;
      let v = vars.get(key);
      if (!v) vars.set(key, (v = { ...w, users: new Set() }));
      v.users.add(i);
    }
  });
  const stores: { key: string; sig: string; users: Set<number> }[] = [];
  const storage = new Map<string, string>();
  let bytes = 0;
  for (const [key, v] of vars) {
    const s = stores.find((x) => x.sig === v.sig && ![...v.users].some((u) => x.users.has(u)));
    if (s) {
      for (const u of v.users) s.users.add(u);
      storage.set(key, s.key);
    } else {
      stores.push({ key, sig: v.sig, users: new Set(v.users) });
      storage.set(key, key);
      bytes += v.bytes;
    }
  }
  return { storage, bytes };
}

function fits(members: readonly Member[], limits: Limits): boolean {
  if (mergedSize(members, limits) === null) return false;
  if (storageCount(members) > limits.storage) return false;
  if (workgroupLayout(members).bytes > limits.workgroupBytes) return false;
  // One module may enable what another's text cannot compile under? Directives only add features: allowed.
  return members.length <= 64;
}

const meets = (a: ReadonlySet<string>, b: ReadonlySet<string>) => {
  for (const x of a) if (b.has(x)) return true;
  return false;
};

// ---------------------------------------------------------------------------------------------------------------
// The pass.

/**
 * The trace's commands with groups of independent neighbouring dispatches merged into one dispatch each, the
 * groups made (for explain()), and how many dispatches went in. `uniformSlot` is the plan's params stride; `made`
 * the modules earlier passes generated (their dispatches' text is found there).
 */
export function mergeHorizontal(commands: readonly RecCommand[], slots: readonly RecSlot[], uniformSlot: number, made: readonly KernelModule[] = []): { commands: RecCommand[]; groups: HorizontalGroup[]; merged: number } {
  const kd = gpu();
  const L = kd.device.limits;
  const limits: Limits = {
    storage: L.maxStorageBuffersPerShaderStage,
    workgroupBytes: L.maxComputeWorkgroupStorageSize,
    invocations: L.maxComputeInvocationsPerWorkgroup,
    perDimension: L.maxComputeWorkgroupsPerDimension,
  };
  // Physical identity of a slot: the trace's temporaries are placed by the plan (distinct within one dispatch);
  // others are their buffer.
  const bufferIds = new Map<GPUBuffer, number>();
  const physical = (slot: number): string => {
    const s = slots[slot];
    if (s.origin === 'temp' && s.releasedAt !== null && s.pb) return `t${slot}`;
    let id = bufferIds.get(s.buffer);
    if (id === undefined) bufferIds.set(s.buffer, (id = bufferIds.size));
    return `b${id}`;
  };
  const touches = (c: RecCommand): { reads: Set<string>; writes: Set<string> } => {
    const reads = new Set<string>();
    const writes = new Set<string>();
    if (c.kind === 'dispatch') {
      for (const b of c.bindings) if (b.slot >= 0) (b.writable ? writes : reads).add(physical(b.slot));
    } else if (c.kind === 'copy') {
      reads.add(physical(c.src));
      writes.add(physical(c.dst));
    } else if (c.kind === 'clear' || c.kind === 'upload') writes.add(physical(c.slot));
    return { reads, writes };
  };

  // Modules the trace's dispatches were made from, and those earlier passes made.
  const modules = new Set<KernelModule>(made);
  for (const c of commands) {
    const s = c.kind === 'dispatch' ? pipelineSource(c, []) : undefined;
    if (s) modules.add(s.kernel);
  }
  const memberAt = (d: RecDispatch) => (d.workgroups.every((n) => n > 0) ? memberOf(d, slots, physical, modules) : null);
  const out: RecCommand[] = [];
  const groups: HorizontalGroup[] = [];
  let merged = 0;
  let i = 0;
  while (i < commands.length) {
    const first = commands[i];
    const m0 = first.kind === 'dispatch' ? memberAt(first) : null;
    if (!m0) {
      out.push(first);
      i++;
      continue;
    }
    const members: Member[] = [m0];
    const taken = new Set<number>([i]);
    // Commands stepped over (they stay, after the merged dispatch), with what they touch.
    const between: { reads: Set<string>; writes: Set<string>; host: boolean }[] = [];
    let j = i + 1;
    let last = i;
    for (; j < commands.length; j++) {
      const c = commands[j];
      if (c.kind !== 'dispatch') {
        between.push({ ...touches(c), host: c.kind === 'hook' || c.kind === 'draw' });
        continue;
      }
      const m = memberAt(c);
      if (!m) break;
      // Independent of every member: nothing one writes the other reads or writes.
      if (members.some((x) => meets(x.writes, m.reads) || meets(x.writes, m.writes) || meets(m.writes, x.reads))) break;
      // It can move up to the group's place: nothing stepped over writes what it reads or touches what it writes;
      // host work it depends on (a seed drawn, an optimizer's step advanced) is not stepped over.
      const dynamic = !!(c.replay || c.seedFields.length);
      if (between.some((b) => meets(b.writes, m.reads) || meets(b.writes, m.writes) || meets(b.reads, m.writes) || (dynamic && b.host))) break;
      if (!fits([...members, m], limits)) break;
      members.push(m);
      taken.add(j);
      last = j;
    }
    if (members.length < 2) {
      out.push(first);
      i++;
      continue;
    }
    const made = mergedDispatch(members, limits, uniformSlot);
    out.push(made.dispatch);
    groups.push(made.group);
    merged += members.length;
    for (let k = i + 1; k <= last; k++) if (!taken.has(k)) out.push(commands[k]);
    i = last + 1;
  }
  return { commands: out, groups, merged };
}

// ---------------------------------------------------------------------------------------------------------------
// The merged kernel's text and dispatch.

const modules = new Map<string, KernelModule>();

function emitDecl(u: Unit, d: Decl, rename: (name: string) => string): string {
  const { toks, modRef, drop } = u.parsed;
  let s = '';
  for (let k = d.start; k < d.end; k++) {
    if (drop[k]) continue;
    const t = toks[k];
    s += (t.t === 'id' && modRef[k]) || k === d.nameAt ? rename(t.v) : t.v;
  }
  return s.trim();
}

function range(u: Unit, r: [number, number], rename: (name: string) => string): string {
  const { toks, modRef } = u.parsed;
  let s = '';
  for (let k = r[0]; k < r[1]; k++) {
    const t = toks[k];
    s += t.t === 'id' && modRef[k] ? rename(t.v) : t.v;
  }
  return s.trim();
}

function literal(type: string, v: number): string | null {
  if (type === 'u32') return `${v >>> 0}u`;
  if (type === 'i32') return `${v | 0}i`;
  if (type === 'bool') return v ? 'true' : 'false';
  if (type === 'f32') return `bitcast<f32>(${new Uint32Array(new Float32Array([v]).buffer)[0]}u)`;
  return null;
}

function mergedDispatch(members: readonly Member[], limits: Limits, uniformSlot: number): { dispatch: RecDispatch; group: HorizontalGroup } {
  const S = mergedSize(members, limits)!;
  const directives = new Set<string>();
  const decls: string[] = [];
  const emitted = new Set<string>();
  const bindings: RecBinding[] = [];
  const layout: KernelBinding[] = [];
  const shared = new Map<string, string>();
  const uniformStructs: string[] = [];
  const classes = classesOf(members);
  const workgroup = workgroupLayout(members).storage;
  let nextBinding = 1;
  let uniforms = 0;
  const calls: string[] = [];
  let base = 0;
  const memberAt: { dispatch: RecDispatch; at: number }[] = [];
  const params = new Uint8Array(Math.max(1, members.filter((m) => m.d.uniform).length) * uniformSlot);
  const subgroupArgs = members.some((m) => m.unit.entry.params!.some((p) => p.builtin === 'subgroup_invocation_id' || p.builtin === 'subgroup_size'));
  members.forEach((m, i) => {
    const u = m.unit;
    for (const dir of u.directives) directives.add(dir);
    const c = classes[i];
    const names = new Map<string, string>();
    let uniformName = '';
    if (m.d.uniform) {
      uniformName = `h_params.m${uniforms}`;
      memberAt.push({ dispatch: m.d, at: uniforms * uniformSlot });
      if (m.d.params) params.set(m.d.params.subarray(0, Math.min(m.d.params.length, uniformSlot)), uniforms * uniformSlot);
      uniforms++;
    }
    for (const [name, b] of m.binds) {
      if (b.kind === 'uniform') names.set(name, uniformName);
      else if (b.kind === 'storage' && !b.writable) {
        const key = `${b.slot}:${b.type}`;
        if (!shared.has(key)) shared.set(key, `h${i}_${name}`);
        names.set(name, shared.get(key)!);
      }
    }
    const rename = (name: string): string => {
      const n = names.get(name) ?? (u.perMember.has(name) ? `h${i}_${name}` : `h${c}_${name}`);
      return u.workgroup.has(name) ? workgroup.get(n)! : n;
    };
    for (const d of u.reach) {
      const own = rename(d.name);
      if (emitted.has(own)) continue;
      emitted.add(own);
      if (d.kind === 'var' && m.binds.has(d.name)) {
        const b = m.binds.get(d.name)!;
        if (b.kind === 'uniform') {
          uniformStructs.push(`  @size(${uniformSlot}) m${uniforms - 1}: ${range(u, d.type!, rename)},`);
          continue;
        }
        if (b.kind === 'private') {
          // A binding the trace filled with a dummy: the member's variant does not use it.
          const el = range(u, d.type!, rename).replace(/^array\s*<\s*/, '').replace(/\s*>$/, '');
          // Never written: a constant, so the uniformity analysis sees its reads as uniform (a member's control flow
          // may branch on it, as attention's tile count reads the block-mask binding, and barriers follow).
          decls.push(b.written ? `var<private> ${own}: array<${el}, 64>;` : `const ${own} = array<${el}, 64>();`);
          continue;
        }
        const n = nextBinding++;
        decls.push(`@group(0) @binding(${n}) var<storage, ${b.writable ? 'read_write' : 'read'}> ${own}: ${range(u, d.type!, rename)};`);
        bindings.push({ binding: n, slot: b.slot, writable: b.writable });
        layout.push({ name: own, binding: n, kind: b.writable ? 'storage' : 'read-only-storage' });
        continue;
      }
      if (d.kind === 'override') {
        const type = d.type && d.type[1] > d.type[0] ? range(u, d.type, rename) : '';
        const given = Object.hasOwn(u.env.constants, d.name) ? u.env.constants[d.name] : undefined;
        let value = given !== undefined ? literal(type || 'u32', given) : d.init && d.init[1] > d.init[0] ? range(u, d.init, rename) : null;
        if (value === null) value = literal('u32', evalName(u.env, d.name) ?? 0);
        decls.push(`const ${own}${type ? `: ${type}` : ''} = ${value};`);
        continue;
      }
      decls.push(emitDecl(u, d, rename));
    }
    // The call: this member's workgroups [base, base + count) of the merged grid.
    const [gx, gy, gz] = m.d.workgroups;
    const nw = gx * gy * gz;
    const [sx, sy, sz] = u.size;
    // A member with barriers runs one of its workgroups per merged workgroup (the same size); any other has its
    // invocations laid over the merged workgroups in order (two matmul workgroups of 32 in one of 64, a 64-thread
    // reduction over two of 32), as its invocations do not talk to each other.
    const total = nw * m.threads;
    const count = m.unit.sync ? nw : Math.ceil(total / S);
    const lines: string[] = [];
    const guard: string[] = [];
    if (m.unit.sync) {
      lines.push(`    let h_g = h_w - ${base}u;`, `    let h_li = h_lix;`);
    } else if (m.threads === S) {
      lines.push(`    let h_g = h_w - ${base}u;`, `    let h_li = h_lix;`);
    } else {
      lines.push(`    let h_v = (h_w - ${base}u) * ${S}u + h_lix;`, `    let h_g = h_v / ${m.threads}u;`, `    let h_li = h_v % ${m.threads}u;`);
      if (total % S !== 0) guard.push(`h_v < ${total}u`);
    }
    const args = u.entry.params!.map((p) => {
      switch (p.builtin) {
        case 'workgroup_id': return 'h_wg';
        case 'num_workgroups': return `vec3<u32>(${gx}u, ${gy}u, ${gz}u)`;
        case 'local_invocation_id': return 'h_l';
        case 'local_invocation_index': return 'h_li';
        case 'global_invocation_id': return `h_wg * vec3<u32>(${sx}u, ${sy}u, ${sz}u) + h_l`;
        case 'subgroup_invocation_id': return 'h_sid';
        default: return 'h_ssz';
      }
    });
    const body = [
      `let h_wg = vec3<u32>(h_g % ${gx}u, (h_g / ${gx}u) % ${gy}u, h_g / ${gx * gy}u);`,
      `let h_l = vec3<u32>(h_li % ${sx}u, (h_li / ${sx}u) % ${sy}u, h_li / ${sx * sy}u);`,
      `${rename(u.entry.name)}(${args.join(', ')});`,
    ];
    if (guard.length) lines.push(`    if (${guard.join(' && ')}) {`, ...body.map((x) => `      ${x}`), '    }');
    else lines.push(...body.map((x) => `    ${x}`));
    calls.push(`${i ? ' else ' : '  '}if (h_w < ${base + count}u) {  // ${m.d.label}: [${gx}, ${gy}, ${gz}] workgroups of ${sx * sy * sz}\n${lines.join('\n')}\n  }`);
    base += count;
  });
  const name = `multi.${members.map((m) => (m.d.label.includes('+') ? `(${m.d.label})` : m.d.label)).join('+')}`;
  const text: string[] = [...directives, '', `// ---- generated by kiln compile (src/compile/horizontal.ts): ${name} ----`];
  if (uniforms) {
    text.push(`struct h_Params {\n${uniformStructs.join('\n')}\n}`, `@group(0) @binding(0) var<uniform> h_params: h_Params;`);
    layout.unshift({ name: 'h_params', binding: 0, kind: 'uniform' });
  }
  text.push(...decls);
  const builtins = ['@builtin(workgroup_id) h_wid: vec3<u32>', '@builtin(num_workgroups) h_nwg: vec3<u32>', '@builtin(local_invocation_index) h_lix: u32'];
  if (subgroupArgs) builtins.push('@builtin(subgroup_invocation_id) h_sid: u32', '@builtin(subgroup_size) h_ssz: u32');
  text.push(
    `@compute @workgroup_size(${S})`,
    `fn main(${builtins.join(', ')}) {`,
    '  let h_w = h_wid.x + h_wid.y * h_nwg.x;',
    calls.join(''),
    '}',
    '',
  );
  const code = text.join('\n');
  let module = modules.get(code);
  if (!module) {
    if (modules.size >= 256) modules.delete(modules.keys().next().value!);
    const entry: KernelEntry = { bindings: layout, params: uniforms ? { name: 'h_Params', size: uniforms * uniformSlot, fields: [] } : null, workgroupSize: [S, 1, 1] };
    module = { file: name, code, includes: [], entries: { main: entry }, overrides: [], constants: {} };
    modules.set(code, module);
  }
  const p = pipeline(module, 'main');
  let workgroups: [number, number, number] = [base, 1, 1];
  if (base > limits.perDimension) {
    const y = Math.ceil(base / limits.perDimension);
    workgroups = [Math.ceil(base / y), y, 1];
  }
  const dispatch: RecDispatch = {
    kind: 'dispatch', pipeline: p.pipeline, layout: p.layout, pipelineKey: p.key, file: name, entry: 'main', label: name,
    bindings, uniform: uniforms ? { binding: 0, size: uniforms * uniformSlot } : null, params: uniforms ? params : null, fields: [], values: null, constants: {},
    workgroups, boundBytes: members.reduce((n, m) => n + m.d.boundBytes, 0), check: null, seedFields: [], replay: null, members: memberAt,
  };
  return { dispatch, group: { name, members: members.map((m) => m.d.label), module } };
}
