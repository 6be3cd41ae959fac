// Symbolic scalars for programmable attention (F.flexAttention's scoreMod / maskMod). A mod is called once with Exprs
// (score f32; b, h, qIdx, kvIdx i32) and builds a graph of nodes through methods named as the Tensor methods; the
// attention layer (src/attention/codegen.ts) lowers the graph to WGSL and differentiates it. Nothing here touches
// the GPU: JS numbers become constant slots (their values go to a storage array at launch, so a new value does not
// recompile), and `t.at(...)` on a Tensor records a captured read.
import { ValueError } from '../errors.js';
import { type Tensor, captureReader } from './tensor.js';

export type ExprKind = 'f32' | 'i32' | 'bool';

/** One node of a traced mod. `slot` is the constant slot ('const'), the capture slot ('at') or the argument index ('arg'). */
export interface ExprNode {
  readonly id: number;
  readonly op: string;
  readonly kind: ExprKind;
  readonly args: readonly ExprNode[];
  readonly slot: number;
  /** For 'at': the read's index among the trace's reads. */
  readonly site: number;
}

/** A tensor a mod reads with t.at(...). */
export interface CaptureInfo {
  readonly tensor: Tensor;
  readonly dtype: 'f32' | 'i32';
  readonly rank: number;
}

/** A captured read: which capture, and where it appears (for error messages). */
export interface ReadSite {
  readonly capture: number;
  readonly node: ExprNode;
  readonly mod: string;
}

const UNARY_F32 = ['exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'sin', 'cos', 'floor', 'ceil'] as const;
const BINARY_NUM = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'remainder', 'floorDivide'] as const;
const COMPARE = ['lt', 'le', 'gt', 'ge', 'eq', 'ne'] as const;

/** The operations a mod may use (each an Expr method named as the Tensor method). */
export const EXPR_OPERATIONS: readonly string[] = [
  ...BINARY_NUM, 'neg', 'abs', ...UNARY_F32, 'clamp', ...COMPARE, 'logicalAnd', 'logicalOr', 'logicalNot', 'where', 'to',
];

/** The trace a mod runs in: its constants, captures and reads. One per traced mod (or per pair traced together). */
export class ExprTrace {
  readonly consts: number[] = [];
  readonly constKinds: ExprKind[] = [];
  readonly captures: CaptureInfo[] = [];
  readonly reads: ReadSite[] = [];
  private readonly captureSlots = new Map<Tensor, number>();
  private nextId = 1;
  /** The mod being traced now ('scoreMod', 'maskMod'), for messages and read sites. */
  mod = '';

  constructor(readonly fn: string) {}

  node(op: string, kind: ExprKind, args: readonly ExprNode[], slot = -1, site = -1): ExprNode {
    return { id: this.nextId++, op, kind, args, slot, site };
  }

  constant(value: number | boolean, kind: ExprKind): Expr {
    this.consts.push(typeof value === 'boolean' ? (value ? 1 : 0) : value);
    this.constKinds.push(kind);
    return new Expr(this, this.node('const', kind, [], this.consts.length - 1));
  }

  arg(index: number, kind: ExprKind): Expr {
    return new Expr(this, this.node('arg', kind, [], index));
  }

  capture(t: Tensor, indices: readonly (Expr | number)[]): Expr {
    const where = `${this.mod} reads ${describeTensor(t)}.at(${indices.map((i) => (i instanceof Expr ? describe(i.node) : String(i))).join(', ')})`;
    if (t.dtype !== 'f32' && t.dtype !== 'i32') throw new ValueError(`${this.fn}: ${where}: a captured tensor must be f32 or i32, got ${t.dtype}`);
    t.buf(this.fn);
    if (indices.length !== t.rank) throw new ValueError(`${this.fn}: ${where}: ${describeTensor(t)} has ${t.rank} dims, so .at() takes ${t.rank} indices, got ${indices.length}`);
    const args: ExprNode[] = [];
    indices.forEach((ix, d) => {
      if (typeof ix === 'number') {
        if (!Number.isInteger(ix) || ix < 0 || ix >= t.shape[d]) {
          throw new ValueError(`${this.fn}: ${where}: index ${ix} of dim ${d} is out of range for size ${t.shape[d]}`);
        }
        args.push(this.constant(ix, 'i32').node);
        return;
      }
      if (!(ix instanceof Expr)) throw new ValueError(`${this.fn}: ${where}: an index must be an Expr or a number, got ${typeof ix}`);
      this.check(ix, where);
      if (ix.kind !== 'i32') throw new ValueError(`${this.fn}: ${where}: index ${d} is ${ix.kind}, an index must be i32 (an index Expr, or x.floor().to('i32'))`);
      args.push(ix.node);
    });
    let slot = this.captureSlots.get(t);
    if (slot === undefined) {
      slot = this.captures.length;
      this.captures.push({ tensor: t, dtype: t.dtype as 'f32' | 'i32', rank: t.rank });
      this.captureSlots.set(t, slot);
    }
    const node = this.node('at', t.dtype as ExprKind, args, slot, this.reads.length);
    this.reads.push({ capture: slot, node, mod: this.mod });
    return new Expr(this, node);
  }

  check(e: Expr, where: string): void {
    if (e.trace !== this) throw new ValueError(`${this.fn}: ${where}: an Expr from another mod's trace (Exprs live only while their mod is traced)`);
  }
}

let active: ExprTrace | null = null;

/** Runs fn with `trace` as the active trace (so t.at() records into it). */
export function withTrace<T>(trace: ExprTrace, fn: () => T): T {
  captureReader.read = traceAt;
  const prev = active;
  active = trace;
  try {
    return fn();
  } finally {
    active = prev;
  }
}

/** t.at(...indices): a captured read inside a mod being traced; an error anywhere else. */
export function traceAt(t: Tensor, indices: readonly (Expr | number)[]): Expr {
  const tr = indices.find((i): i is Expr => i instanceof Expr)?.trace ?? active;
  if (!tr) throw new ValueError(`at: ${describeTensor(t)}.at(...) reads one element inside a scoreMod / maskMod of F.flexAttention or createBlockMask; outside a mod, use select / indexing ops`);
  return tr.capture(t, indices);
}

function describeTensor(t: Tensor): string {
  return `a captured ${t.dtype} tensor [${t.shape.join(',')}]`;
}

const SYMBOL: Record<string, string> = { add: '+', sub: '-', mul: '*', div: '/', lt: '<', le: '<=', gt: '>', ge: '>=', eq: '==', ne: '!=', logicalAnd: '&&', logicalOr: '||' };
const ARG_NAMES = ['score', 'b', 'h', 'qIdx', 'kvIdx'];

/** A readable form of a node, for messages. */
export function describe(n: ExprNode, depth = 0): string {
  if (depth > 6) return '...';
  const d = (x: ExprNode) => describe(x, depth + 1);
  switch (n.op) {
    case 'arg': return ARG_NAMES[n.slot] ?? `arg${n.slot}`;
    case 'const': return `c${n.slot}`;
    case 'at': return `capture${n.slot}.at(${n.args.map(d).join(', ')})`;
    case 'to': return `${d(n.args[0])}.to('${n.kind}')`;
    case 'where': return `where(${d(n.args[0])}, ${d(n.args[1])}, ${d(n.args[2])})`;
    default:
      if (SYMBOL[n.op] && n.args.length === 2) return `(${d(n.args[0])} ${SYMBOL[n.op]} ${d(n.args[1])})`;
      return `${n.op}(${n.args.map(d).join(', ')})`;
  }
}

type Operand = Expr | number | boolean;

// Names that libraries probe on any object (promise resolution, JSON, test matchers, inspectors): absent, as usual.
const PROBED = new Set(['then', 'toJSON', 'asymmetricMatch', 'nodeType', 'tagName', 'inspect', 'length', 'constructor']);

const UNSUPPORTED: ProxyHandler<Expr> = {
  get(target, prop, receiver) {
    if (typeof prop !== 'string' || prop in target || PROBED.has(prop) || /^[_$@]/.test(prop)) return Reflect.get(target, prop, receiver);
    return () => {
      throw new ValueError(`${target.trace.fn}: ${target.trace.mod}: ${describe(target.node)}.${prop}(...): '${prop}' is not an Expr operation; a mod may use ${EXPR_OPERATIONS.join(' ')}, where(cond, a, b) and t.at(...)`);
    };
  },
};

/**
 * A symbolic scalar of a traced mod: f32 (the score and float results), i32 (b, h, qIdx, kvIdx, captured i32 reads) or
 * bool (comparisons). Methods are named as the Tensor methods; JS numbers are accepted as operands, and an i32 meeting
 * an f32 is promoted to f32.
 */
export class Expr {
  constructor(readonly trace: ExprTrace, readonly node: ExprNode) {
    // Behind a proxy, a method Expr lacks is a ValueError naming the mod, the method and the expression when called,
    // rather than JavaScript's TypeError "is not a function".
    return new Proxy(this, UNSUPPORTED);
  }

  /** JS operators (s + 1, s * 2, i < j) cannot be traced: a ValueError; in a template string, the readable form. */
  [Symbol.toPrimitive](hint: string): string {
    if (hint === 'string') return describe(this.node);
    throw new ValueError(`${this.trace.fn}: ${this.trace.mod}: a JavaScript operator or Math function was applied to ${describe(this.node)}; mods trace Expr methods (s.add(1), s.mul(2), i.lt(j), s.tanh())`);
  }

  get kind(): ExprKind {
    return this.node.kind;
  }

  toString(): string {
    return describe(this.node);
  }

  private fail(op: string, why: string): never {
    throw new ValueError(`${this.trace.fn}: ${this.trace.mod}: ${op} on ${describe(this.node)}: ${why}`);
  }

  private operand(op: string, y: Operand, like: ExprKind): Expr {
    if (y instanceof Expr) {
      this.trace.check(y, `${this.trace.mod}: ${op}`);
      return y;
    }
    if (typeof y === 'boolean') return this.trace.constant(y, 'bool');
    if (typeof y !== 'number') this.fail(op, `the operand must be an Expr or a number, got ${y === null ? 'null' : typeof y}`);
    return this.trace.constant(y, like === 'i32' && Number.isInteger(y) && Math.abs(y) < 2 ** 31 ? 'i32' : 'f32');
  }

  private numeric(op: string, e: Expr = this): void {
    if (e.kind === 'bool') this.fail(op, `${describe(e.node)} is bool; ${op} takes numbers (use where(cond, a, b) to choose values)`);
  }

  private static promote(a: Expr, b: Expr): [ExprNode, ExprNode, ExprKind] {
    if (a.kind === b.kind) return [a.node, b.node, a.kind];
    const tr = a.trace;
    const f = (e: Expr) => (e.kind === 'f32' ? e.node : tr.node('to', 'f32', [e.node]));
    return [f(a), f(b), 'f32'];
  }

  private binary(op: string, y: Operand, result?: ExprKind): Expr {
    const o = this.operand(op, y, this.kind);
    this.numeric(op);
    this.numeric(op, o);
    let [a, b, kind] = Expr.promote(this, o);
    // True division (as torch.div): integers divide as floats.
    if (op === 'div' || op === 'pow') {
      if (kind === 'i32') {
        a = this.trace.node('to', 'f32', [a]);
        b = this.trace.node('to', 'f32', [b]);
        kind = 'f32';
      }
    }
    return new Expr(this.trace, this.trace.node(op, result ?? kind, [a, b]));
  }

  private unaryFloat(op: string): Expr {
    this.numeric(op);
    const a = this.kind === 'i32' ? this.trace.node('to', 'f32', [this.node]) : this.node;
    return new Expr(this.trace, this.trace.node(op, 'f32', [a]));
  }

  add(y: Operand): Expr { return this.binary('add', y); }
  sub(y: Operand): Expr { return this.binary('sub', y); }
  mul(y: Operand): Expr { return this.binary('mul', y); }
  div(y: Operand): Expr { return this.binary('div', y); }
  pow(y: Operand): Expr { return this.binary('pow', y); }
  maximum(y: Operand): Expr { return this.binary('maximum', y); }
  minimum(y: Operand): Expr { return this.binary('minimum', y); }
  /** Python's % (the result takes the divisor's sign), as torch.remainder. */
  remainder(y: Operand): Expr { return this.binary('remainder', y); }
  /** floor(x / y), as torch.floor_divide. */
  floorDivide(y: Operand): Expr { return this.binary('floorDivide', y); }

  neg(): Expr {
    this.numeric('neg');
    return new Expr(this.trace, this.trace.node('neg', this.kind, [this.node]));
  }

  abs(): Expr {
    this.numeric('abs');
    return new Expr(this.trace, this.trace.node('abs', this.kind, [this.node]));
  }

  exp(): Expr { return this.unaryFloat('exp'); }
  log(): Expr { return this.unaryFloat('log'); }
  sqrt(): Expr { return this.unaryFloat('sqrt'); }
  tanh(): Expr { return this.unaryFloat('tanh'); }
  sigmoid(): Expr { return this.unaryFloat('sigmoid'); }
  sin(): Expr { return this.unaryFloat('sin'); }
  cos(): Expr { return this.unaryFloat('cos'); }
  floor(): Expr { return this.kind === 'i32' ? this : this.unaryFloat('floor'); }
  ceil(): Expr { return this.kind === 'i32' ? this : this.unaryFloat('ceil'); }

  clamp(min?: Operand | null, max?: Operand | null): Expr {
    let r: Expr = this;
    if (min !== undefined && min !== null) r = r.maximum(min);
    if (max !== undefined && max !== null) r = r.minimum(max);
    return r;
  }

  lt(y: Operand): Expr { return this.binary('lt', y, 'bool'); }
  le(y: Operand): Expr { return this.binary('le', y, 'bool'); }
  gt(y: Operand): Expr { return this.binary('gt', y, 'bool'); }
  ge(y: Operand): Expr { return this.binary('ge', y, 'bool'); }

  eq(y: Operand): Expr { return this.compareAny('eq', y); }
  ne(y: Operand): Expr { return this.compareAny('ne', y); }

  private compareAny(op: 'eq' | 'ne', y: Operand): Expr {
    const o = this.operand(op, y, this.kind);
    if (this.kind === 'bool' || o.kind === 'bool') {
      if (this.kind !== o.kind) this.fail(op, `compares bool with ${this.kind === 'bool' ? o.kind : this.kind}`);
      return new Expr(this.trace, this.trace.node(op, 'bool', [this.node, o.node]));
    }
    return this.binary(op, o, 'bool');
  }

  private logical(op: string, y: Operand): Expr {
    const o = this.operand(op, y, 'bool');
    if (this.kind !== 'bool' || o.kind !== 'bool') this.fail(op, `takes bool operands (comparisons), got ${this.kind} and ${o.kind}`);
    return new Expr(this.trace, this.trace.node(op, 'bool', [this.node, o.node]));
  }

  logicalAnd(y: Operand): Expr { return this.logical('logicalAnd', y); }
  logicalOr(y: Operand): Expr { return this.logical('logicalOr', y); }

  logicalNot(): Expr {
    if (this.kind !== 'bool') this.fail('logicalNot', `takes a bool (a comparison), got ${this.kind}`);
    return new Expr(this.trace, this.trace.node('logicalNot', 'bool', [this.node]));
  }

  /** this where cond holds, else other (as Tensor.where(cond, other)). */
  where(cond: Operand, other: Operand): Expr {
    return where(cond instanceof Expr ? cond : this.operand('where', cond, 'bool'), this, other);
  }

  /** A cast: 'i32' truncates toward zero (as .to(torch.int32)); 'f32' converts. */
  to(dtype: 'f32' | 'i32' | 'float32' | 'int32'): Expr {
    const kind = dtype === 'float32' ? 'f32' : dtype === 'int32' ? 'i32' : dtype;
    if (kind !== 'f32' && kind !== 'i32') this.fail('to', `casts to 'f32' or 'i32', got ${JSON.stringify(dtype)}`);
    if (this.kind === kind) return this;
    return new Expr(this.trace, this.trace.node('to', kind, [this.node]));
  }
}

/** where(cond, a, b): a where cond holds, else b (as torch.where), inside a mod. */
export function where(cond: Expr, a: Operand, b: Operand): Expr {
  if (!(cond instanceof Expr)) throw new ValueError(`where: inside a mod, the condition must be a bool Expr (a comparison), got ${typeof cond}`);
  const tr = cond.trace;
  if (cond.kind !== 'bool') throw new ValueError(`${tr.fn}: ${tr.mod}: where(${describe(cond.node)}, ...): the condition must be bool (a comparison), got ${cond.kind}`);
  const lift = (x: Operand, other: Operand): Expr => {
    if (x instanceof Expr) {
      tr.check(x, `${tr.mod}: where`);
      return x;
    }
    if (typeof x === 'boolean') return tr.constant(x, 'bool');
    if (typeof x !== 'number') throw new ValueError(`${tr.fn}: ${tr.mod}: where: a value must be an Expr or a number, got ${typeof x}`);
    const otherKind = other instanceof Expr ? other.kind : typeof other === 'number' && Number.isInteger(other) && Number.isInteger(x) ? 'i32' : 'f32';
    return tr.constant(x, otherKind === 'i32' && Number.isInteger(x) ? 'i32' : otherKind === 'bool' ? 'bool' : 'f32');
  };
  const ea = lift(a, b), eb = lift(b, a);
  if ((ea.kind === 'bool') !== (eb.kind === 'bool')) throw new ValueError(`${tr.fn}: ${tr.mod}: where(${describe(cond.node)}, ${describe(ea.node)}, ${describe(eb.node)}): cannot mix bool and ${ea.kind === 'bool' ? eb.kind : ea.kind}`);
  let na = ea.node, nb = eb.node;
  let kind = ea.kind;
  if (ea.kind !== eb.kind) {
    kind = 'f32';
    if (ea.kind === 'i32') na = tr.node('to', 'f32', [na]);
    if (eb.kind === 'i32') nb = tr.node('to', 'f32', [nb]);
  }
  return new Expr(tr, tr.node('where', kind, [cond.node, na, nb]));
}

/** Whether x is a symbolic scalar of a traced mod. */
export function isExpr(x: unknown): x is Expr {
  return x instanceof Expr;
}
