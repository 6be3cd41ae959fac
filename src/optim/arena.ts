// Parameter arenas (llm.c's layout): an optimizer moves its parameters into one f32 storage, gives each a gradient
// slot at the same offset in a second storage (backward writes gradients there), and keeps its state in a third, so
// a step is one dispatch over three buffers with no copies, whatever the number of parameters.
//
// A parameter moves into its arena at the optimizer's construction: its values are copied there, the same Tensor
// object becomes a view of the arena (src/tensor/base.ts `rehome`), and its old buffer is freed. It stays where it is,
// and each step copies it into its slot and back instead, while moving it would change what another tensor sees: it
// lives in the arena of another optimizer that is still alive (PyTorch lets two optimizers share a parameter; the
// first keeps it), other tensors share its storage (a view taken of it, a tensor it was sliced from), or it overlaps
// another parameter; once none of that holds, the next step moves it in. A gradient that is not in its slot
// (assigned by hand, or that of a parameter another optimizer owns) is copied into the slot at step time.
import { type Storage, type TensorBase, keep, rehome, upload } from '../tensor/base.js';
import { contiguousStrides } from '../tensor/shape.js';
import { empty } from '../ops/creation.js';
import type { Tensor } from '../ops/tensor.js';
import { fill } from '../launch/elementwise.js';
import { type OptimizerHyper, SKIP_STEP, arenaCapacity, copyElements, copyToSlot, optimizerStep } from '../launch/optimizer.js';

/** Parameters start on multiples of this many elements (256 bytes, the storage-binding offset alignment). */
const ALIGN = 64;

/** What is known of a storage that is (or was) an arena: its optimizer while alive, and the parameters moved in. */
interface ArenaRecord {
  owner: object | null;
  residents: Set<TensorBase>;
}
const records = new WeakMap<Storage, ArenaRecord>();
/** The live arena whose gradient storage each is (for clipGradNorm's segment table). */
const gradArenas = new WeakMap<Storage, Arena>();

/**
 * A segment table for gradients in `storage` (rows of (start, elements before), as grad_norm.wgsl reads them) that
 * lives as long as the arena whose gradient storage it is, uploaded only when the segments change; null when
 * `storage` is not a live arena's gradient storage. The caller must not dispose it.
 */
export function arenaSegmentTable(storage: Storage, segs: readonly number[], fn: string): Tensor | null {
  return gradArenas.get(storage)?.segmentTable(segs, fn) ?? null;
}

/** For tests: caps an arena's length (elements) below what the adapter's binding limit allows. */
export const arenaLimits = { maxElements: Infinity };

/**
 * Which parameters can move into a new arena without changing what any other tensor sees: those whose storage is
 * referenced only by parameters (of this list, or residents of a former arena), that overlap no other parameter,
 * and that do not live in a live optimizer's arena.
 */
function movableParams(params: readonly TensorBase[]): boolean[] {
  const out = params.map(() => false);
  const byStorage = new Map<Storage, number[]>();
  params.forEach((p, i) => {
    const s = p.storage!;
    const list = byStorage.get(s);
    if (list) list.push(i);
    else byStorage.set(s, [i]);
  });
  for (const [s, idx] of byStorage) {
    const rec = records.get(s);
    if (rec?.owner) continue;
    const ours = new Set(idx.map((i) => params[i]));
    let explained = idx.length;
    if (rec) for (const r of rec.residents) if (r.storage === s && !ours.has(r)) explained++;
    if (s.refs !== explained) continue;
    const ranges = idx.map((i) => [params[i].offset, params[i].offset + params[i].size]).sort((a, b) => a[0] - b[0]);
    if (ranges.some((r, k) => k > 0 && r[0] < ranges[k - 1][1])) continue;
    for (const i of idx) out[i] = true;
  }
  return out;
}

/** One arena: a run of an optimizer's parameters (all of them, unless they exceed one binding). */
export class Arena {
  /** The optimizer's reference to the parameter storage (the parameters that moved in hold the others). */
  readonly weights: Tensor;
  readonly grads: Tensor;
  /** m at [0, total), v at [total, 2 total) (Adam), or null (SGD without momentum). */
  readonly state: Tensor | null;
  readonly table: Tensor;
  /** Each member's gradient slot: a view of `grads` shaped as the parameter. */
  readonly slots: Tensor[];
  private readonly rows: Uint32Array;
  private readonly record: ArenaRecord;
  private uploaded = false;
  private disposed = false;
  /** clipGradNorm's segment table for this arena's gradients, and the segments it holds. */
  private clipTable: Tensor | null = null;
  private clipKey = '';
  /** Some member lives elsewhere (its values are copied in and out at each step until it can move in). */
  private away = true;

  private constructor(
    owner: object,
    readonly members: readonly number[],
    readonly offsets: readonly number[],
    readonly total: number,
    parts: { weights: Tensor; grads: Tensor; state: Tensor | null; table: Tensor; slots: Tensor[] },
  ) {
    this.weights = parts.weights;
    this.grads = parts.grads;
    this.state = parts.state;
    this.table = parts.table;
    this.slots = parts.slots;
    this.record = { owner, residents: new Set() };
    records.set(this.weights.storage!, this.record);
    gradArenas.set(this.grads.storage!, this);
    this.rows = new Uint32Array(3 * members.length);
    members.forEach((_, j) => {
      this.rows[3 * j] = offsets[j];
      this.rows[3 * j + 1] = parts.slots[j].size;
      this.rows[3 * j + 2] = SKIP_STEP;
    });
  }

  /**
   * Lays `params` out in arenas of at most arenaCapacity(stateWords) elements each, zeroes the state, and moves in
   * the parameters that can move (moveIn). `owner` is the optimizer.
   */
  static build(owner: object, label: string, params: readonly Tensor[], stateWords: number): Arena[] {
    const cap = Math.min(arenaCapacity(stateWords), arenaLimits.maxElements);
    const plans: { members: number[]; offsets: number[]; total: number }[] = [];
    for (const [i, p] of params.entries()) {
      let plan = plans[plans.length - 1];
      if (!plan || Math.ceil(plan.total / ALIGN) * ALIGN + p.size > cap) plans.push((plan = { members: [], offsets: [], total: 0 }));
      const at = Math.ceil(plan.total / ALIGN) * ALIGN;
      plan.members.push(i);
      plan.offsets.push(at);
      plan.total = at + p.size;
    }
    const made: Tensor[] = [];
    const make = (n: number, dtype: 'f32' | 'i32', what: string): Tensor => {
      const t = keep(empty([Math.max(n, 1)], dtype, what));
      made.push(t);
      return t;
    };
    const arenas: Arena[] = [];
    try {
      for (const plan of plans) {
        const weights = make(plan.total, 'f32', `${label}.params`);
        const grads = make(plan.total, 'f32', `${label}.grads`);
        const state = stateWords ? make(stateWords * plan.total, 'f32', `${label}.state`) : null;
        const table = make(3 * plan.members.length, 'i32', `${label}.table`);
        const slots = plan.members.map((i, j) => {
          const p = params[i];
          const v = keep(grads.makeView(p.shape.slice(), contiguousStrides(p.shape), plan.offsets[j]));
          made.push(v);
          return v;
        });
        arenas.push(new Arena(owner, plan.members, plan.offsets, plan.total, { weights, grads, state, table, slots }));
      }
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
    // Allocation is done: nothing below can fail on a valid parameter, so no parameter is left half moved.
    for (const a of arenas) {
      if (a.state) fill(`${label}.init`, a.state, 0);
      a.moveIn(params);
    }
    return arenas;
  }

  /**
   * Moves into this arena the members that do not live here and can move (movableParams): their values are copied
   * to their offsets, the same Tensor objects become views there, and backward writes their gradients to their slots.
   * Runs at construction and again at a step while some member lives elsewhere (its other optimizer was disposed, the
   * view that shared its storage is gone).
   */
  moveIn(params: readonly Tensor[]): void {
    const away = this.members.map((_member, j) => j).filter((j) => !this.holds(j, params[this.members[j]]));
    if (!away.length) return;
    const movable = movableParams(away.map((j) => params[this.members[j]]));
    away.forEach((j, k) => {
      const p = params[this.members[j]];
      if (!movable[k]) return;
      copyElements(p, this.weights, this.offsets[j], p.size);
      records.get(p.storage!)?.residents.delete(p);
      rehome(p, this.weights.storage!, this.offsets[j]);
      this.record.residents.add(p);
      p.gradSlot = this.slots[j];
    });
    this.away = this.members.some((i, j) => !this.holds(j, params[i]));
  }

  /** Member j's parameter lives in this arena (it moved in and nothing moved it since). */
  holds(j: number, p: TensorBase): boolean {
    return p.storage === this.weights.storage && p.offset === this.offsets[j];
  }

  /** The gradient g of member j is its slot (backward wrote it there). */
  holdsGrad(j: number, g: TensorBase): boolean {
    return g.storage === this.grads.storage && g.offset === this.offsets[j] && g.isContiguous;
  }

  /**
   * Encodes one step of the members with a gradient (`active`; `steps` holds their counts after this update, and the
   * others are skipped): moves in members that now can, copies in what still does not live here, ONE dispatch, and
   * copies back the parameters that live elsewhere.
   */
  step(fn: string, params: readonly Tensor[], active: readonly boolean[], steps: readonly number[], stepCount: number, hyper: OptimizerHyper, skipIf: Tensor | null = null, stepNow?: () => number): void {
    let changed = !this.uploaded;
    let any = false;
    this.members.forEach((i, j) => {
      const lag = active[i] ? stepCount - steps[i] : SKIP_STEP;
      if (this.rows[3 * j + 2] !== lag) changed = true;
      this.rows[3 * j + 2] = lag;
      any ||= active[i];
    });
    if (!any) return;
    if (this.away) this.moveIn(params);
    if (changed) {
      upload(this.table, new Int32Array(this.rows.buffer), fn);
      this.uploaded = true;
    }
    const outside: number[] = [];
    this.members.forEach((i, j) => {
      if (!active[i]) return;
      const p = params[i];
      const g = p.grad!;
      if (!this.holds(j, p)) {
        copyElements(p, this.weights, this.offsets[j], p.size);
        outside.push(j);
      }
      if (!this.holdsGrad(j, g)) copyToSlot(fn, this.slots[j], g);
    });
    optimizerStep(fn, { table: this.table, weights: this.weights, grads: this.grads, state: this.state, total: this.total, numParams: this.members.length }, stepCount, hyper, skipIf, stepNow);
    for (const j of outside) {
      const p = params[this.members[j]];
      copyElements(this.weights, p, p.offset, p.size, this.offsets[j]);
    }
  }

  /** See arenaSegmentTable: null when the segments are more than the members' (views other than the slots). */
  segmentTable(segs: readonly number[], fn: string): Tensor | null {
    if (this.disposed || segs.length > 2 * this.members.length) return null;
    const key = segs.join(',');
    if (!this.clipTable) this.clipTable = keep(empty([2 * this.members.length], 'i32', `${fn}.table`));
    if (key !== this.clipKey) {
      const rows = new Int32Array(2 * this.members.length);
      rows.set(segs);
      upload(this.clipTable, rows, fn);
      this.clipKey = key;
    }
    return this.clipTable;
  }

  /** Views of member j's state (m, and v for Adam), shaped as the parameter. */
  stateViews(j: number, shape: readonly number[], stateWords: number): { m: Tensor | null; v: Tensor | null } {
    const s = this.state;
    const view = (k: number) => (s && k < stateWords ? s.makeView(shape.slice(), contiguousStrides(shape), k * this.total + this.offsets[j]) : null);
    return { m: view(0), v: view(1) };
  }

  /** Frees the optimizer's buffers; the parameters keep the parameter storage (by reference count). */
  dispose(params: readonly Tensor[]): void {
    if (this.disposed) return;
    this.disposed = true;
    this.record.owner = null;
    this.members.forEach((i, j) => {
      const p = params[i];
      if (p.gradSlot === this.slots[j]) p.gradSlot = null;
      this.slots[j].dispose();
    });
    for (const t of [this.weights, this.grads, this.state, this.table, this.clipTable]) t?.dispose();
  }
}
