// Zero-region merging over a trace (runs before elementwise fusion): the gradient of a slice is a temporary filled with
// zeros and then written in one region (views.ts slice.backward), and the gradients of several slices of one tensor
// (the q, k and v thirds of a packed projection) are then summed, each sum a full-size add. Where both operands of
// such an add are zero-filled temporaries written in disjoint regions, the second one's region is written straight
// into the first (its fill and the add disappear, and later commands read the first in place of the sum):
//   fill(P, 0); P[R1] = f(...); fill(Q, 0); Q[R2] = g(...); Y = P + Q   ->   fill(P, 0); P[R1] = f(...); P[R2] = g(...)
// A chain of such adds (P + Q, then + S) folds into one buffer filled once, and not at all where the regions cover it
// before anything reads it.
import elementwise from '../launch/kernels/elementwise.js';
import dtypes from '../launch/kernels/dtypes.js';
import type { RecCommand, RecDispatch, RecSlot } from './recording.js';

const F32 = dtypes.constants.DT_F32;
const BINARY_ADD = elementwise.constants.BINARY_ADD;

const arr = (v: unknown): number[] => (Array.isArray(v) ? (v as number[]) : [Number(v)]);
const shapeOf = (d: RecDispatch): number[] => arr(d.values!.shape).slice(0, Number(d.values!.rank));

function isContiguousView(shape: readonly number[], off: number, strides: readonly number[]): boolean {
  if (off !== 0) return false;
  let n = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && strides[d] !== n) return false;
    n *= shape[d];
  }
  return true;
}

const elementwiseF32 = (c: RecCommand | undefined): c is RecDispatch =>
  !!c && c.kind === 'dispatch' && c.file === 'elementwise.wgsl' && !!c.values && (c.constants.OUT_DT ?? F32) === F32 && !c.check && !c.replay && !c.seedFields.length;

/** A zero-filled temporary: the command that fills it, and its elements. */
interface ZeroRegion {
  fill: number;
  n: number;
}

/**
 * The addresses a dispatch's output view covers within [0, n), or null where some fall outside (or the view cannot
 * be read from its params).
 */
function addressesOf(d: RecDispatch, n: number): number[] | null {
  const shape = shapeOf(d);
  const strides = arr(d.values!.o_strides);
  const off = Number(d.values!.o_off);
  const total = Number(d.values!.n);
  if (total > n) return null;
  const out: number[] = new Array(total);
  for (let i = 0; i < total; i++) {
    let rem = i;
    let at = off;
    for (let k = shape.length - 1; k >= 0; k--) {
      at += (rem % shape[k]) * strides[k];
      rem = Math.floor(rem / shape[k]);
    }
    if (at >= n) return null;
    out[i] = at;
  }
  return out;
}

/** Commands with zero regions merged: how many adds were removed, and how many fills of buffers the regions cover. */
export function mergeZeroRegions(commands: readonly RecCommand[], slots: readonly RecSlot[]): { commands: RecCommand[]; merged: number; fillsDropped: number } {
  const users = new Map<number, number[]>();
  const note = (slot: number, i: number) => {
    const list = users.get(slot);
    if (!list) users.set(slot, [i]);
    else if (list[list.length - 1] !== i) list.push(i);
  };
  commands.forEach((c, i) => {
    if (c.kind === 'dispatch') for (const b of c.bindings) note(b.slot, i);
    else if (c.kind === 'copy') (note(c.src, i), note(c.dst, i));
    else if (c.kind === 'clear' || c.kind === 'upload') note(c.slot, i);
  });
  const temp = (slot: number) => slot >= 0 && slots[slot].origin === 'temp' && slots[slot].releasedAt !== null && !!slots[slot].pb;
  const outSlot = (d: RecDispatch) => d.bindings.find((b) => b.binding === 4)?.slot ?? -1;

  // Zero regions: a temporary whose first command fills it with 0 over a contiguous view from 0, then written only
  // by elementwise dispatches (each into a view, none read back) until it is read by one add.
  const regions = new Map<number, ZeroRegion>();
  const removed = new Set<number>();
  const work = commands.slice();
  let merged = 0;
  /** The buffers other regions were merged into, and their zero region. */
  const mergedInto = new Map<number, ZeroRegion>();
  for (let i = 0; i < work.length; i++) {
    const c = work[i];
    if (!elementwiseF32(c)) continue;
    if (c.entry === 'fill' && Number(c.values!.scalar) === 0) {
      const slot = outSlot(c);
      const v = c.values!;
      if (temp(slot) && users.get(slot)![0] === i && isContiguousView(shapeOf(c), Number(v.o_off), arr(v.o_strides))) {
        regions.set(slot, { fill: i, n: Number(v.n) });
      }
      continue;
    }
    if (c.entry !== 'binary' || c.constants.OP !== BINARY_ADD) continue;
    let a = c.bindings.find((x) => x.binding === 1)!.slot;
    let b = c.bindings.find((x) => x.binding === 2)!.slot;
    // P: the operand filled first (the sum is symmetric).
    if ((regions.get(a)?.fill ?? Infinity) > (regions.get(b)?.fill ?? Infinity)) [a, b] = [b, a];
    const y = outSlot(c);
    const P = regions.get(a);
    const Q = regions.get(b);
    if (!P || !Q || a === b || !temp(y) || slots[a].pb!.size < slots[y].pb!.size) continue;
    const v = c.values!;
    const shape = shapeOf(c);
    const n = Number(v.n);
    if (P.n !== n || Q.n !== n) continue;
    if (![['a_off', 'a_strides'], ['b_off', 'b_strides'], ['o_off', 'o_strides']].every(([o, s]) => isContiguousView(shape, Number(v[o]), arr(v[s])))) continue;
    // P must be filled before Q's writes, and each of them used only by its fill, its region writes and this add.
    const writesOf = (slot: number, r: ZeroRegion) => users.get(slot)!.filter((k) => k !== r.fill && k !== i);
    const pw = writesOf(a, P);
    const qw = writesOf(b, Q);
    if (users.get(a)![users.get(a)!.length - 1] !== i || users.get(b)![users.get(b)!.length - 1] !== i) continue;
    if (qw.some((k) => k < P.fill)) continue;
    const isRegionWrite = (slot: number) => (k: number) => {
      const d = work[k];
      return elementwiseF32(d) && d.entry !== 'fill' && d.bindings.every((x) => (x.slot === slot) === (x.binding === 4 && x.writable));
    };
    if (!pw.every(isRegionWrite(a)) || !qw.every(isRegionWrite(b))) continue;
    // The regions written into P and Q must not meet (P keeps its values in its own, which Q's must leave alone).
    const addrs = [...pw, ...qw].map((k) => addressesOf(work[k] as RecDispatch, n));
    if (addrs.some((x) => x === null)) continue;
    const mark = new Uint8Array(n);
    let disjoint = true;
    for (const list of addrs) {
      for (const at of list!) {
        if (mark[at]) {
          disjoint = false;
          break;
        }
        mark[at] = 1;
      }
      if (!disjoint) break;
    }
    if (!disjoint) continue;
    // Q's writes go to P; Q's fill and the add go; what read Y reads P.
    for (const k of qw) {
      const d = work[k] as RecDispatch;
      work[k] = { ...d, bindings: d.bindings.map((x) => (x.binding === 4 ? { ...x, slot: a } : x)) };
    }
    removed.add(Q.fill);
    removed.add(i);
    regions.delete(b);
    // P lives on as Y: its users are Y's, and it is a zero region again for a following add.
    const yUsers = users.get(y)!.filter((k) => k !== i);
    users.set(a, [...users.get(a)!.filter((k) => k !== i), ...qw, ...yUsers].sort((p, q) => p - q));
    for (const k of yUsers) {
      const d = work[k];
      if (d.kind === 'dispatch') work[k] = { ...d, bindings: d.bindings.map((x) => (x.slot === y ? { ...x, slot: a } : x)) };
      else if (d.kind === 'copy') work[k] = { ...d, src: d.src === y ? a : d.src, dst: d.dst === y ? a : d.dst };
      else if (d.kind === 'clear' || d.kind === 'upload') work[k] = { ...d, slot: d.slot === y ? a : d.slot };
    }
    merged++;
    mergedInto.set(a, P);
  }
  // A buffer whose regions cover all of it before anything reads it needs no fill (the q, k, v thirds).
  let fillsDropped = 0;
  for (const [slot, r] of mergedInto) {
    if (!regions.has(slot)) continue;
    const list = users.get(slot)!.filter((k) => k !== r.fill && !removed.has(k));
    const regionWrites = list.filter((k) => {
      const d = work[k];
      return d.kind === 'dispatch' && d.bindings.some((x) => x.slot === slot && x.writable);
    });
    if (!regionWrites.every((k) => elementwiseF32(work[k]) && (work[k] as RecDispatch).entry !== 'fill')) continue;
    const readers = list.filter((k) => !regionWrites.includes(k));
    if (readers.length && Math.min(...readers) < Math.max(...regionWrites)) continue;
    const cover = new Uint8Array(r.n);
    for (const k of regionWrites) for (const at of addressesOf(work[k] as RecDispatch, r.n) ?? []) cover[at] = 1;
    if (cover.every((v) => v === 1)) {
      removed.add(r.fill);
      fillsDropped++;
    }
  }
  return { commands: work.filter((_c, k) => !removed.has(k)), merged, fillsDropped };
}
