// Traced mods (src/ops/expr.ts) to WGSL: the replacement of kernels/attention_mods.wgsl that flexAttention compiles
// into the fused forward and backward kernels, and of kernels/attention_mask_hook.wgsl for the block-mask pass. The
// text depends only on the expressions' structure (ops, kinds, which capture each read uses, capture dtypes and
// ranks, which captures need gradients): constant values and the captured tensors' offsets, shapes and strides go in
// the flex_c storage array at launch, so two closures with the same body share every pipeline.
//
// flex_c (u32 words): the query offset (i32: qIdx = offset + the kernel's query row) at 0; per capture c, at desc[c]:
// offset, gradient offset, shape[rank], strides[rank]; then the trace's constants from constBase (f32 or i32 bits,
// bools 0/1).
// Differentiation: reverse mode over the expression DAG (one adjoint per f32 node), giving d score' / d score for the
// backward's dS and d score' / d read for each read of a captured f32 tensor that requires grad.
import { ValueError } from '../errors.js';
import { type ExprKind, type ExprNode, type ExprTrace, describe } from '../ops/expr.js';

export const FLEX_CONST_BINDING = 16;
export const FLEX_CAPTURE_BINDING = 17;
export const FLEX_ERROR_BINDING = 15;

export interface FlexCode {
  /** Structure key: equal keys give equal text. */
  readonly key: string;
  /** Replacement of attention_mods.wgsl in the forward. */
  readonly mods: string;
  /** ... in the backward (with the captured-gradient pairs, when captures need gradients). */
  readonly modsBackward: string;
  /** Replacement of attention_mask_hook.wgsl (the block-mask pass), or null without a maskMod. */
  readonly maskHook: string | null;
  /** Whether the text binds kiln_errors (a captured read with a computed index). */
  readonly checks: boolean;
  /** Captured tensors in binding order (17 + slot). */
  readonly captureKinds: readonly ('f32' | 'i32')[];
  /** Captures (slots) whose gradients the backward accumulates. */
  readonly gradCaptures: readonly number[];
  /** Reads of gradient captures in the score mod (the per-entry pairs the dq pass writes). */
  readonly gradSites: number;
  /** u32 words of the capture descriptors (constants follow). */
  readonly constBase: number;
  /** Descriptor offset of each capture. */
  readonly desc: readonly number[];
  /** Read sites, for the device-side index check's message. */
  readonly sites: readonly string[];
}

function topo(roots: (ExprNode | null)[]): ExprNode[] {
  const seen = new Set<number>();
  const out: ExprNode[] = [];
  const visit = (n: ExprNode) => {
    if (seen.has(n.id)) return;
    seen.add(n.id);
    for (const a of n.args) visit(a);
    out.push(n);
  };
  for (const r of roots) if (r) visit(r);
  return out;
}

const WTYPE: Record<ExprKind, string> = { f32: 'f32', i32: 'i32', bool: 'bool' };

interface Ctx {
  names: Map<number, string>;
  desc: number[];
  constBase: number;
  trace: ExprTrace;
  checks: boolean;
}

function v(ctx: Ctx, n: ExprNode): string {
  return ctx.names.get(n.id)!;
}

/** The WGSL expression of node n, its arguments already named. */
function lower(ctx: Ctx, n: ExprNode): string {
  const a = n.args.map((x) => v(ctx, x));
  const k0 = n.args[0]?.kind;
  switch (n.op) {
    // qIdx is absolute: the call's queryOffset (flex_c[0]) plus the kernel's query row (incremental decoding).
    case 'arg': return ['s', 'i32(b)', 'i32(h)', '(i32(i) + bitcast<i32>(flex_c[0u]))', 'i32(j)'][n.slot];
    case 'const': {
      const w = `flex_c[${ctx.constBase + n.slot}u]`;
      return n.kind === 'f32' ? `bitcast<f32>(${w})` : n.kind === 'i32' ? `bitcast<i32>(${w})` : `(${w} != 0u)`;
    }
    case 'to': return `${WTYPE[n.kind]}(${a[0]})`;
    case 'add': return `(${a[0]} + ${a[1]})`;
    case 'sub': return `(${a[0]} - ${a[1]})`;
    case 'mul': return `(${a[0]} * ${a[1]})`;
    case 'div': return `(${a[0]} / ${a[1]})`;
    case 'pow': return `flex_pow(${a[0]}, ${a[1]})`;
    case 'maximum': return n.kind === 'f32' ? `max_nan(${a[0]}, ${a[1]})` : `max(${a[0]}, ${a[1]})`;
    case 'minimum': return n.kind === 'f32' ? `min_nan(${a[0]}, ${a[1]})` : `min(${a[0]}, ${a[1]})`;
    case 'remainder': return n.kind === 'f32' ? `flex_rem(${a[0]}, ${a[1]})` : `flex_irem(${a[0]}, ${a[1]})`;
    case 'floorDivide': return n.kind === 'f32' ? `floor(${a[0]} / ${a[1]})` : `flex_ifloordiv(${a[0]}, ${a[1]})`;
    case 'neg': return `(-${a[0]})`;
    case 'abs': return `abs(${a[0]})`;
    case 'exp': return `flex_exp(${a[0]})`;
    case 'log': return `flex_log(${a[0]})`;
    case 'sqrt': return `flex_sqrt(${a[0]})`;
    case 'tanh': return `flex_tanh(${a[0]})`;
    case 'sigmoid': return `flex_sigmoid(${a[0]})`;
    case 'sin': return `sin(${a[0]})`;
    case 'cos': return `cos(${a[0]})`;
    case 'floor': return `floor(${a[0]})`;
    case 'ceil': return `ceil(${a[0]})`;
    case 'lt': case 'le': case 'gt': case 'ge': case 'eq': case 'ne': {
      if (k0 === 'f32') {
        const [x, y] = n.op === 'gt' || n.op === 'ge' ? [a[1], a[0]] : [a[0], a[1]];
        const f = { lt: 'f_lt', le: 'f_le', gt: 'f_lt', ge: 'f_le', eq: 'f_eq', ne: 'f_ne' }[n.op];
        return `${f}(${x}, ${y})`;
      }
      const op = { lt: '<', le: '<=', gt: '>', ge: '>=', eq: '==', ne: '!=' }[n.op];
      return `(${a[0]} ${op} ${a[1]})`;
    }
    case 'logicalAnd': return `(${a[0]} && ${a[1]})`;
    case 'logicalOr': return `(${a[0]} || ${a[1]})`;
    case 'logicalNot': return `(!${a[0]})`;
    case 'where': return `select(${a[2]}, ${a[1]}, ${a[0]})`;
    case 'at': return `cap_read_${n.slot}(${n.site}u, ${a.join(', ')})`;
    default:
      throw new ValueError(`${ctx.trace.fn}: unsupported operation '${n.op}' in ${describe(n)}`);
  }
}

/** `let` lines computing nodes (those not yet named), naming each. */
function forwardLines(ctx: Ctx, nodes: ExprNode[], prefix: string): string[] {
  const lines: string[] = [];
  for (const n of nodes) {
    if (ctx.names.has(n.id)) continue;
    const expr = lower(ctx, n);
    const name = `${prefix}${n.id}`;
    lines.push(`  let ${name}: ${WTYPE[n.kind]} = ${expr};`);
    ctx.names.set(n.id, name);
  }
  return lines;
}

/**
 * Reverse-mode adjoint lines for root (f32) over `nodes` (topological), seeded with 1: returns the lines and the
 * adjoint variable of each f32 node that has one.
 */
function adjointLines(ctx: Ctx, nodes: ExprNode[], root: ExprNode): { lines: string[]; adj: Map<number, string> } {
  // Only nodes on a path from the score or a captured f32 read to the root need adjoints.
  const live = new Set<number>();
  for (const n of nodes) {
    if (n.kind !== 'f32') continue;
    if ((n.op === 'arg' && n.slot === 0) || n.op === 'at' || n.args.some((x) => live.has(x.id))) live.add(n.id);
  }
  const adj = new Map<number, string>();
  const lines: string[] = [];
  for (const n of nodes) if (live.has(n.id)) {
    adj.set(n.id, `g${n.id}`);
    lines.push(`  var g${n.id}: f32 = ${n.id === root.id ? '1.0' : '0.0'};`);
  }
  const add = (x: ExprNode, term: string) => {
    if (live.has(x.id)) lines.push(`  g${x.id} += ${term};`);
  };
  for (let idx = nodes.length - 1; idx >= 0; idx--) {
    const n = nodes[idx];
    if (!live.has(n.id) || n.op === 'arg' || n.op === 'at') continue;
    const g = `g${n.id}`;
    const a = n.args.map((x) => v(ctx, x));
    const out = v(ctx, n);
    const [x, y] = n.args;
    switch (n.op) {
      case 'to': break; // i32 -> f32: nothing upstream is differentiable
      case 'add': add(x, g); add(y, g); break;
      case 'sub': add(x, g); add(y, `-${g}`); break;
      case 'mul': add(x, `${g} * ${a[1]}`); add(y, `${g} * ${a[0]}`); break;
      case 'div': add(x, `${g} / ${a[1]}`); add(y, `-${g} * ${a[0]} / (${a[1]} * ${a[1]})`); break;
      case 'pow':
        add(x, `flex_pow_dx(${a[0]}, ${a[1]}, ${g})`);
        add(y, `flex_pow_dy(${a[0]}, ${a[1]}, ${out}, ${g})`);
        break;
      // Ties split the gradient evenly, as torch.maximum / minimum.
      case 'maximum':
        add(x, `${g} * flex_pick(${a[0]}, ${a[1]})`); add(y, `${g} * flex_pick(${a[1]}, ${a[0]})`); break;
      case 'minimum':
        add(x, `${g} * flex_pick(${a[1]}, ${a[0]})`); add(y, `${g} * flex_pick(${a[0]}, ${a[1]})`); break;
      case 'remainder': add(x, g); add(y, `-${g} * floor(${a[0]} / ${a[1]})`); break;
      case 'floorDivide': case 'floor': case 'ceil': break;
      case 'neg': add(x, `-${g}`); break;
      case 'abs': add(x, `${g} * sign(${a[0]})`); break;
      case 'exp': add(x, `${g} * ${out}`); break;
      case 'log': add(x, `${g} / ${a[0]}`); break;
      case 'sqrt': add(x, `${g} * 0.5 / ${out}`); break;
      case 'tanh': add(x, `${g} * (1.0 - ${out} * ${out})`); break;
      case 'sigmoid': add(x, `${g} * ${out} * (1.0 - ${out})`); break;
      case 'sin': add(x, `${g} * cos(${a[0]})`); break;
      case 'cos': add(x, `-${g} * sin(${a[0]})`); break;
      case 'where': add(n.args[1], `select(0.0, ${g}, ${a[0]})`); add(n.args[2], `select(${g}, 0.0, ${a[0]})`); break;
      default: throw new ValueError(`${ctx.trace.fn}: no derivative for '${n.op}' in ${describe(n)}`);
    }
  }
  return { lines, adj };
}

const PRELUDE = `
fn flex_exp(x: f32) -> f32 {
  return select(exp(x), x, is_nan(x));
}
fn flex_log(x: f32) -> f32 {
  return select(select(log(x), neg_inf_f32(), x == 0.0), nan_f32(), x < 0.0 || is_nan(x));
}
fn flex_sqrt(x: f32) -> f32 {
  return select(sqrt(max(x, 0.0)), nan_f32(), x < 0.0 || is_nan(x));
}
fn flex_tanh(x: f32) -> f32 {
  return select(select(tanh(x), sign(x), abs(x) > 15.0), x, is_nan(x));
}
fn flex_sigmoid(x: f32) -> f32 {
  return select(1.0 / (1.0 + exp(-x)), x, is_nan(x));
}
fn flex_pow(x: f32, y: f32) -> f32 {
  if (is_nan(y)) { return y; }
  if (y == 0.0) { return 1.0; }
  if (is_nan(x)) { return x; }
  if (y == 1.0) { return x; }
  if (y == 2.0) { return x * x; }
  if (x == 0.0) { return select(inf_f32(), 0.0, y > 0.0); }
  let r = exp2(y * log2(abs(x)));
  if (x < 0.0) {
    if (floor(y) != y) { return nan_f32(); }
    let odd = abs(y) < 16777216.0 && (i32(y) & 1) != 0;
    return select(r, -r, odd);
  }
  return r;
}
fn flex_pow_dx(x: f32, y: f32, g: f32) -> f32 {
  return select(g * y * flex_pow(x, y - 1.0), 0.0, y == 0.0);
}
fn flex_pow_dy(x: f32, y: f32, r: f32, g: f32) -> f32 {
  return select(g * r * flex_log(x), 0.0, x == 0.0 && y >= 0.0);
}
fn flex_pick(a: f32, b: f32) -> f32 {
  return select(select(0.0, 1.0, a > b), 0.5, a == b);
}
fn flex_rem(a: f32, b: f32) -> f32 {
  return a - floor(a / b) * b;
}
fn flex_irem(a: i32, b: i32) -> i32 {
  if (b == 0) { return 0; }
  let r = a % b;
  return select(r, r + b, r != 0 && ((r < 0) != (b < 0)));
}
fn flex_ifloordiv(a: i32, b: i32) -> i32 {
  if (b == 0) { return 0; }
  let q = a / b;
  return select(q, q - 1, (a % b != 0) && ((a < 0) != (b < 0)));
}
`;

function captureFunctions(ctx: Ctx, kinds: readonly ('f32' | 'i32')[], ranks: readonly number[]): string[] {
  const out: string[] = [];
  kinds.forEach((kind, c) => {
    const rank = ranks[c];
    const d0 = ctx.desc[c];
    const params = Array.from({ length: rank }, (_, d) => `i${d}: i32`).join(', ');
    const shape = (d: number) => `flex_c[${d0 + 2 + d}u]`;
    const stride = (d: number) => `flex_c[${d0 + 2 + rank + d}u]`;
    // Branch-free (selects, clamped indices): mods run at every score entry, and branches there make the
    // software adapter's compiler slow. A bad index is noted, and the read clamped into the tensor, never past it.
    const body: string[] = [];
    body.push(`  var e = flex_c[${d0}u];`, '  var ok = true;');
    for (let d = 0; d < rank; d++) {
      body.push(`  let ok${d} = i${d} >= 0 && u32(i${d}) < ${shape(d)};`);
      if (ctx.checks) body.push(`  flex_note_bad(!ok${d} && ok, site * 8u + ${d}u, i${d}, ${shape(d)});`);
      body.push(`  ok = ok && ok${d};`);
      body.push(`  e += min(u32(max(i${d}, 0)), ${shape(d)} - 1u) * ${stride(d)};`);
    }
    body.push(`  return select(${kind === 'f32' ? 'nan_f32()' : '0'}, cap${c}[e], ok);`);
    out.push(`fn cap_read_${c}(site: u32${rank ? ', ' : ''}${params}) -> ${kind} {`, ...body, '}');
    // Flat index of the gradient entry (contiguous, from the gradient offset), or 0xffffffff out of range.
    const g: string[] = [`  var e = 0u;`, '  var ok = true;'];
    for (let d = 0; d < rank; d++) {
      g.push(`  ok = ok && i${d} >= 0 && u32(i${d}) < ${shape(d)};`);
      g.push(`  e = e * ${shape(d)} + min(u32(max(i${d}, 0)), ${shape(d)} - 1u);`);
    }
    g.push(`  return select(0xffffffffu, flex_c[${d0 + 1}u] + e, ok);`);
    out.push(`fn cap_gidx_${c}(${params}) -> u32 {`, ...g, '}');
  });
  return out;
}

/**
 * The WGSL of a traced scoreMod (root `score`, f32) and maskMod (root `mask`, bool) over `trace`; `gradCaptures`:
 * the capture slots whose gradients the backward accumulates.
 */
export function generateFlex(trace: ExprTrace, score: ExprNode | null, mask: ExprNode | null, gradCaptures: readonly number[]): FlexCode {
  const caps = trace.captures;
  const desc: number[] = [];
  let words = 1; // flex_c[0]: the query offset
  for (const c of caps) {
    desc.push(words);
    words += 2 + 2 * c.rank;
  }
  const constBase = words;
  const computedIndex = trace.reads.some((r) => r.node.args.some((a) => a.op !== 'const'));
  const ctx: Ctx = { names: new Map(), desc, constBase, trace, checks: computedIndex };
  const kinds = caps.map((c) => c.dtype);
  const decls: string[] = [`@group(0) @binding(${FLEX_CONST_BINDING}) var<storage, read> flex_c: array<u32>;`];
  kinds.forEach((k, c) => decls.push(`@group(0) @binding(${FLEX_CAPTURE_BINDING + c}) var<storage, read> cap${c}: array<${k}>;`));
  if (computedIndex) decls.push(`@group(0) @binding(${FLEX_ERROR_BINDING}) var<storage, read_write> kiln_errors: array<atomic<u32>, 8>;`);
  const include = computedIndex ? ['//!include index_check.wgsl'] : [];
  const capFns = captureFunctions(ctx, kinds, caps.map((c) => c.rank));

  // mask_mod
  const maskFn: string[] = ['fn mask_mod(b: u32, h: u32, i: u32, j: u32) -> bool {'];
  if (mask) {
    ctx.names = new Map();
    maskFn.push(...forwardLines(ctx, topo([mask]), 'm'), `  return ${v(ctx, mask)};`);
  } else maskFn.push('  return true;');
  maskFn.push('}');

  // score_mod, score_mod_grad and the captured-gradient pairs
  const scoreNodes = score ? topo([score]) : [];
  const scoreFn: string[] = ['fn score_mod(s: f32, b: u32, h: u32, i: u32, j: u32) -> f32 {'];
  const gradFn: string[] = ['fn score_mod_grad(s: f32, b: u32, h: u32, i: u32, j: u32) -> f32 {'];
  const gradSet = new Set(gradCaptures);
  const sites = score ? scoreNodes.filter((n) => n.op === 'at' && gradSet.has(n.slot)) : [];
  let vjp: string[] = [];
  if (score) {
    ctx.names = new Map();
    scoreFn.push(...forwardLines(ctx, scoreNodes, 't'), `  return ${v(ctx, score)};`);
    ctx.names = new Map();
    const fwd = forwardLines(ctx, scoreNodes, 't');
    const { lines, adj } = adjointLines(ctx, scoreNodes, score);
    const sArg = scoreNodes.find((n) => n.op === 'arg' && n.slot === 0);
    gradFn.push(...fwd, ...lines, `  return ${sArg && adj.has(sArg.id) ? adj.get(sArg.id) : '0.0'};`);
    if (sites.length) {
      vjp = [
        `struct FlexVjp {`, `  idx: array<u32, ${sites.length}>,`, `  val: array<f32, ${sites.length}>,`, `}`,
        'fn score_mod_vjp(s: f32, b: u32, h: u32, i: u32, j: u32) -> FlexVjp {', ...fwd, ...lines, '  var r: FlexVjp;',
      ];
      sites.forEach((n, k) => {
        vjp.push(`  r.idx[${k}] = cap_gidx_${n.slot}(${n.args.map((x) => v(ctx, x)).join(', ')});`);
        vjp.push(`  r.val[${k}] = ${adj.get(n.id) ?? '0.0'};`);
      });
      vjp.push('  return r;', '}');
    }
  } else {
    scoreFn.push('  return s;');
    gradFn.push('  return 1.0;');
  }
  scoreFn.push('}');
  gradFn.push('}');

  const R = sites.length;
  const capture: string[] = [];
  if (R) {
    capture.push(
      'fn flex_capture_init(tid: u32, w: u32) {',
      '  let part = params.cg_part_base + params.cg_total * w;',
      '  for (var e = tid; e < params.cg_total; e += THREADS) { dmask[part + e] = 0.0; }',
      '}',
      'fn flex_capture_block(slot: u32, w: u32, i0: u32, j0: u32, b: u32, h: u32, s: Block4, raw: Block4, dsp: Block4) {',
      '  var sv = array<vec4<f32>, 4>(s.r0, s.r1, s.r2, s.r3);',
      '  var rv = array<vec4<f32>, 4>(raw.r0, raw.r1, raw.r2, raw.r3);',
      '  var dv = array<vec4<f32>, 4>(dsp.r0, dsp.r1, dsp.r2, dsp.r3);',
      '  for (var e = 0u; e < flex_loop(16u); e++) {',
      '    let r = e >> 2u;',
      '    let t = e & 3u;',
      `    let base = 2u * (params.cg_pairs * w + (slot + e) * ${R}u);`,
      '    if (sv[r][t] > MASKED) {',
      '      let g = score_mod_vjp(rv[r][t], b, h, i0 + RG * r, j0 + CG * t);',
      `      for (var k = 0u; k < ${R}u; k++) {`,
      '        dmask[base + 2u * k] = select(f32(g.idx[k]), -1.0, g.idx[k] == 0xffffffffu);',
      '        dmask[base + 2u * k + 1u] = dv[r][t] * g.val[k];',
      '      }',
      '    } else {',
      `      for (var k = 0u; k < ${R}u; k++) { dmask[base + 2u * k] = -1.0; }`,
      '    }',
      '  }',
      '}',
      // Each thread owns the partial sums whose index is its id modulo THREADS and adds the pairs in one fixed order.
      'fn flex_capture_fold(tid: u32, w: u32) {',
      '  storageBarrier();',
      '  let base = 2u * params.cg_pairs * w;',
      '  let part = params.cg_part_base + params.cg_total * w;',
      '  for (var e = 0u; e < params.cg_pairs; e++) {',
      '    let x = dmask[base + 2u * e];',
      '    if (x >= 0.0) {',
      '      let gi = u32(x);',
      '      if (gi % THREADS == tid) { dmask[part + gi] += dmask[base + 2u * e + 1u]; }',
      '    }',
      '  }',
      '  storageBarrier();',
      '}',
    );
  }
  // The hooks the fused kernels call (attention_mods.wgsl). Each calls the mods at ONE site, in a loop over the
  // block's entries whose trip count the compiler cannot see (flex_loop), so it is not unrolled into 16 inlined
  // copies of the mod: that took the software adapter's compiler minutes per backward pipeline.
  const hooks: string[] = [
    'fn flex_loop(n: u32) -> u32 {',
    '  return select(0u, n, params.Nq != 0u);',
    '}',
    'struct FlexEntry {', '  s: f32,', '  ok: bool,', '}',
    'fn flex_entry(s: f32, b: u32, h: u32, i: u32, j: u32) -> FlexEntry {',
    ...(mask ? ['  if (!(flex_full || mask_mod(b, h, i, j))) {', '    return FlexEntry(s, false);', '  }'] : []),
    `  return FlexEntry(${score ? 'score_mod(s, b, h, i, j)' : 's'}, true);`,
    '}',
    'fn mod_block(x: ModBlock, i0: u32, jv: vec4<u32>, b: u32, h: u32) -> ModBlock {',
    '  var s = array<vec4<f32>, 4>(x.s.r0, x.s.r1, x.s.r2, x.s.r3);',
    '  var ok = x.ok;',
    '  for (var e = 0u; e < flex_loop(16u); e++) {',
    '    if ((ok & (1u << e)) != 0u) {',
    '      let r = e >> 2u;',
    '      let t = e & 3u;',
    '      let m = flex_entry(s[r][t], b, h, i0 + RG * r, jv[t]);',
    '      s[r][t] = m.s;',
    '      ok = select(ok & ~(1u << e), ok, m.ok);',
    '    }',
    '  }',
    '  return ModBlock(Block4(s[0], s[1], s[2], s[3]), ok);',
    '}',
    'fn mod_row(x: ModRow, i: u32, jv: vec4<u32>, b: u32, h: u32) -> ModRow {',
    '  var s = x.s;',
    '  var ok = x.ok;',
    '  for (var t = 0u; t < flex_loop(4u); t++) {',
    '    if ((ok & (1u << t)) != 0u) {',
    '      let m = flex_entry(s[t], b, h, i, jv[t]);',
    '      s[t] = m.s;',
    '      ok = select(ok & ~(1u << t), ok, m.ok);',
    '    }',
    '  }',
    '  return ModRow(s, ok);',
    '}',
    'fn mod_grad_block(raw: Block4, ok: u32, i0: u32, jv: vec4<u32>, b: u32, h: u32) -> Block4 {',
    ...(score
      ? [
          '  var x = array<vec4<f32>, 4>(raw.r0, raw.r1, raw.r2, raw.r3);',
          '  var g = array<vec4<f32>, 4>(vec4<f32>(1.0), vec4<f32>(1.0), vec4<f32>(1.0), vec4<f32>(1.0));',
          '  for (var e = 0u; e < flex_loop(16u); e++) {',
          '    if ((ok & (1u << e)) != 0u) {',
          '      let r = e >> 2u;',
          '      let t = e & 3u;',
          '      g[r][t] = score_mod_grad(x[r][t], b, h, i0 + RG * r, jv[t]);',
          '    }',
          '  }',
          '  return Block4(g[0], g[1], g[2], g[3]);',
        ]
      : ['  let one = vec4<f32>(1.0);', '  return Block4(one, one, one, one);']),
    '}',
  ];
  // A bad index is noted in private memory and reported once, at the end of the entry point (flex_report), so the
  // reporting loop is not inlined at every read.
  const report = computedIndex
    ? [
        'var<private> flex_bad: vec4<u32> = vec4<u32>(0u);',
        'fn flex_note_bad(bad: bool, pos: u32, value: i32, limit: u32) {',
        '  flex_bad = select(flex_bad, vec4<u32>(1u, pos, bitcast<u32>(value), limit), bad && flex_bad.x == 0u);',
        '}',
        'fn flex_report() {',
        '  if (flex_bad.x != 0u) { report_index_error(CHECK_ROWS, params.check_id, flex_bad.y, bitcast<i32>(flex_bad.z), flex_bad.w); }',
        '}',
      ]
    : ['fn flex_report() {', '}'];
  const head = [...include, ...decls, PRELUDE, ...report, ...capFns];
  const noCapture = [
    'fn flex_capture_init(tid: u32, w: u32) {', '}',
    'fn flex_capture_block(slot: u32, w: u32, i0: u32, j0: u32, b: u32, h: u32, s: Block4, raw: Block4, dsp: Block4) {', '}',
    'fn flex_capture_fold(tid: u32, w: u32) {', '}',
  ];
  const mods = [...head, ...maskFn, ...scoreFn, ...gradFn, ...hooks, ...noCapture].join('\n');
  const modsBackward = R ? [...head, ...maskFn, ...scoreFn, ...gradFn, ...hooks, ...vjp, ...capture].join('\n') : mods;
  const maskHook = mask ? [...head, ...maskFn].join('\n') : null;
  const siteText = trace.reads.map((r, k) => `${k}: ${r.mod} reads ${describe(r.node)}`);
  return {
    key: modsBackward, mods, modsBackward, maskHook, checks: computedIndex, captureKinds: kinds, gradCaptures: [...gradCaptures], gradSites: R,
    constBase, desc, sites: siteText,
  };
}

/** The flex_c words of a launch: the query offset, capture descriptors (gradient offsets `gradOffsets`), the constants. */
export function flexConstWords(trace: ExprTrace, code: FlexCode, gradOffsets: readonly number[], queryOffset = 0): Uint32Array {
  const words = new Uint32Array(Math.max(4, code.constBase + trace.consts.length));
  words[0] = queryOffset >>> 0;
  const f = new Float32Array(1), u = new Uint32Array(f.buffer), i = new Int32Array(f.buffer);
  trace.captures.forEach((c, slot) => {
    const d = code.desc[slot];
    const t = c.tensor;
    words[d] = t.offset;
    words[d + 1] = gradOffsets[slot] ?? 0;
    for (let k = 0; k < c.rank; k++) {
      words[d + 2 + k] = t.shape[k];
      words[d + 2 + c.rank + k] = t.strides[k];
    }
  });
  trace.consts.forEach((value, k) => {
    const kind = trace.constKinds[k];
    if (kind === 'f32') f[0] = value;
    else i[0] = kind === 'bool' ? (value ? 1 : 0) : value;
    words[code.constBase + k] = u[0];
  });
  return words;
}
