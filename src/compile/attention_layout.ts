// Attention layout pass over a trace (runs after zero regions, before elementwise fusion): the copies around a fused
// attention that only change layout disappear, because the attention kernels read and write strided layouts (the
// params o_l, dq_l, dk_l, dv_l of kernels/attention_common.wgsl: offset, batch, head and row strides), and the delta
// pass folds into the passes that read it. In a multi-head attention the step has, per layer:
//   forward   attention -> o [B, H, T, D]; contiguous(o transposed) -> [B, T, H * D]
//             becomes: attention writes o straight into that buffer (o_l); the backward reads o there.
//   backward  contiguous(dO) -> [B, H, T, D]; delta; dkdv; dq; dq, dk, dv each copied (made contiguous, then into its
//             slice of the packed qkv gradient, which the zero-region pass made one buffer)
//             becomes: dkdv and dq read dO where the copy read it (o_l: o and dO share one layout, so both copies go or
//             neither), compute each row's delta themselves (DELTA_SELF, the same sum in the same order as the delta
//             pass) and write dq, dk, dv straight into their final places (dq_l, dk_l, dv_l).
// Only the scalar kernels (attention_forward.wgsl main, attention_forward_rows.wgsl main_rows, attention_backward.wgsl,
// f32, no flex mods) are matched. A copy is replaced only where what it did is an affine map of the attention
// tensor's elements [B, H, N, X] (last dim contiguous) that the pass reads off the copies' own params and checks
// element by element, and where moving the write earlier (or the read later) changes nothing in between: no other
// command touches the buffer on the way, and nothing a kernel writes is a buffer it also reads.
import { pipeline as kernelPipeline } from '../gpu/kernels.js';
import elementwise from '../launch/kernels/elementwise.js';
import dtypes from '../launch/kernels/dtypes.js';
import type { RecCommand, RecDispatch, RecSlot } from './recording.js';
import { writes } from './fuse.js';
import { arr, slotAt } from './epilogue.js';

const F32 = dtypes.constants.DT_F32;
const COPY = elementwise.constants.UNARY_COPY;
/** Copies over more elements than this are left alone (the pass checks every element on the host). */
const MAX_ELEMENTS = 1 << 24;

/** Offset, batch, head and row strides of [B, H, N, X] (X contiguous). */
type Layout = readonly [number, number, number, number];


function touches(c: RecCommand | null, slot: number): boolean {
  if (!c) return false;
  if (c.kind === 'dispatch') return c.bindings.some((b) => b.slot === slot);
  if (c.kind === 'copy') return c.src === slot || c.dst === slot;
  if (c.kind === 'clear' || c.kind === 'upload') return c.slot === slot;
  return false;
}

/** The scalar attention kernels this pass rewrites: which one, or null (matrix units, flex mods, f16, unknown). */
function attentionKind(c: RecCommand | null): 'forward' | 'delta' | 'dkdv' | 'dq' | null {
  if (!c || c.kind !== 'dispatch' || !c.values || !c.module || c.check || c.replay) return null;
  const [base, tags] = c.file.split('#');
  if (tags && tags.split(',').some((t) => t !== 'subgroups')) return null;
  if ((base === 'attention_forward.wgsl' && c.entry === 'main') || (base === 'attention_forward_rows.wgsl' && c.entry === 'main_rows')) return 'forward';
  if (base !== 'attention_backward.wgsl') return null;
  return c.entry === 'delta_main' ? 'delta' : c.entry === 'dkdv' ? 'dkdv' : c.entry === 'dq_main' ? 'dq' : null;
}

/** An f32 copy of elementwise.wgsl (a contiguous() or a slice gradient's write), readable from its params. */
function isCopy(c: RecCommand | null): c is RecDispatch {
  if (!c || c.kind !== 'dispatch' || c.file !== 'elementwise.wgsl' || c.entry !== 'unary' || !c.values) return false;
  const k = c.constants;
  return (k.OP ?? 0) === COPY && (k.A_DT ?? F32) === F32 && (k.OUT_DT ?? F32) === F32 && !c.check && !c.replay && !c.seedFields.length;
}

/** The element positions a copy reads (src) and writes (dst), in its iteration order; null when too large. */
function copyMap(d: RecDispatch): { src: Int32Array; dst: Int32Array } | null {
  const v = d.values!;
  const n = Number(v.n);
  if (n > MAX_ELEMENTS) return null;
  const rank = Number(v.rank);
  const shape = arr(v.shape).slice(0, rank);
  const as = arr(v.a_strides), os = arr(v.o_strides);
  const src = new Int32Array(n), dst = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let a = Number(v.a_off), o = Number(v.o_off);
    for (let k = rank - 1; k >= 0; k--) {
      const c = rem % shape[k];
      rem = Math.floor(rem / shape[k]);
      a += c * as[k];
      o += c * os[k];
    }
    src[i] = a;
    dst[i] = o;
  }
  return { src, dst };
}

/**
 * Where each element of a dense tensor of n elements ends up after a chain of copies (each reading every element of
 * the previous buffer exactly once, nothing else), or null where the chain does not carry each element exactly once.
 */
function carry(chain: readonly RecDispatch[], n: number): Int32Array | null {
  let where = Int32Array.from({ length: n }, (_, i) => i);
  for (const c of chain) {
    const m = copyMap(c);
    if (!m || m.src.length !== n) return null;
    let size = 0;
    for (const p of m.src) size = Math.max(size, p + 1);
    const to = new Int32Array(size).fill(-1);
    for (let k = 0; k < n; k++) {
      if (to[m.src[k]] !== -1) return null;
      to[m.src[k]] = m.dst[k];
    }
    const next = new Int32Array(n);
    for (let e = 0; e < n; e++) {
      const p = where[e];
      if (p >= size || to[p] < 0) return null;
      next[e] = to[p];
    }
    where = next;
  }
  return where;
}

/** Where a copy read each element of its dense output of n elements (the inverse view), or null. */
function source(c: RecDispatch, n: number): Int32Array | null {
  const m = copyMap(c);
  if (!m || m.src.length !== n) return null;
  const from = new Int32Array(n).fill(-1);
  for (let k = 0; k < n; k++) {
    const p = m.dst[k];
    if (p < 0 || p >= n || from[p] !== -1) return null;
    from[p] = m.src[k];
  }
  return from;
}

/** The layout under which element (b, h, i, x) of [B, H, N, X] sits at where[dense index], or null if none does. */
function fit(where: Int32Array, dims: readonly [number, number, number, number]): Layout | null {
  const [B, H, N, X] = dims;
  if (where.length !== B * H * N * X || where.length === 0) return null;
  const at = (b: number, h: number, i: number) => where[((b * H + h) * N + i) * X];
  const off = where[0];
  const sb = B > 1 ? at(1, 0, 0) - off : 0;
  const sh = H > 1 ? at(0, 1, 0) - off : 0;
  const sn = N > 1 ? at(0, 0, 1) - off : 0;
  if (off < 0 || sb < 0 || sh < 0 || sn < 0) return null;
  let max = 0;
  for (let b = 0, e = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < N; i++) {
        const base = off + b * sb + h * sh + i * sn;
        for (let x = 0; x < X; x++, e++) if (where[e] !== base + x) return null;
        max = Math.max(max, base + X);
      }
    }
  }
  // Distinct places only (a layout that writes two elements to one place is not what the copies did).
  const seen = new Uint8Array(max);
  for (const p of where) {
    if (seen[p]) return null;
    seen[p] = 1;
  }
  return [off, sb, sh, sn];
}

const sameLayout = (a: Layout, b: Layout) => a.every((v, i) => v === b[i]);

/** The dispatch with bindings moved to other slots, layout params replaced, and overrides changed. */
function rewrite(d: RecDispatch, rebind: ReadonlyMap<number, number>, layouts: Readonly<Record<string, Layout>>, constants: Record<string, number> = {}, label = d.label): RecDispatch {
  const params = d.params ? d.params.slice() : null;
  const values = { ...d.values! };
  for (const [name, l] of Object.entries(layouts)) {
    const f = d.fields.find((x) => x.name === name);
    if (!f || !params) throw new Error(`kiln: ${d.file}:${d.entry} has no param '${name}'`);
    const view = new DataView(params.buffer, params.byteOffset, params.byteLength);
    l.forEach((x, k) => view.setUint32(f.offset + 4 * k, x, true));
    values[name] = [...l];
  }
  let p = { pipeline: d.pipeline, layout: d.layout, key: d.pipelineKey };
  const all = { ...d.constants, ...constants };
  if (Object.keys(constants).length) p = kernelPipeline(d.module!, d.entry, all);
  return {
    ...d, pipeline: p.pipeline, layout: p.layout, pipelineKey: p.key, constants: all, params, values, label,
    bindings: d.bindings.map((b) => (rebind.has(b.binding) ? { ...b, slot: rebind.get(b.binding)! } : b)),
  };
}

/** Whether a dispatch binds a buffer it writes twice, or also for reading (aliasing errors in WebGPU). */
function aliases(d: RecDispatch): boolean {
  const w = d.bindings.filter((b) => b.writable && b.slot >= 0).map((b) => b.slot);
  return new Set(w).size !== w.length || d.bindings.some((b) => !b.writable && w.includes(b.slot));
}

const denseLayout = (dims: readonly number[]): Layout => [0, dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3]];
const layoutOf = (d: RecDispatch, name: string): Layout => arr(d.values![name]).slice(0, 4) as unknown as Layout;

/** [B, H, N, X] of o (and dO), dq, dk, dv of an attention dispatch. */
function dimsOf(d: RecDispatch, what: 'o' | 'dq' | 'dk' | 'dv'): [number, number, number, number] {
  const v = d.values!;
  const n = (k: string) => Number(v[k]);
  if (what === 'o') return [n('B'), n('Hq'), n('Nq'), n('Dv')];
  if (what === 'dq') return [n('B'), n('Hq'), n('Nq'), n('D')];
  return [n('B'), n('Hk'), n('Nk'), what === 'dk' ? n('D') : n('Dv')];
}

export interface AttentionLayoutResult {
  commands: RecCommand[];
  /** Copies removed: of o after the forward, of dO before the backward, of the gradients after it. */
  removed: { o: number; dout: number; grads: number };
  /** Delta passes folded into dkdv / dq. */
  deltas: number;
}

export function attentionLayout(commands: readonly RecCommand[], slots: readonly RecSlot[]): AttentionLayoutResult {
  const work: (RecCommand | null)[] = commands.slice();
  const temp = (s: number) => s >= 0 && slots[s].origin === 'temp' && slots[s].releasedAt !== null && !!slots[s].pb;
  const users = (slot: number): number[] => {
    const out: number[] = [];
    work.forEach((c, i) => {
      if (touches(c, slot)) out.push(i);
    });
    return out;
  };
  const between = (from: number, to: number, pred: (c: RecCommand) => boolean) => work.slice(from + 1, to).some((c) => !!c && pred(c));
  const dispatchAt = (i: number) => work[i] as RecDispatch;
  const removed = { o: 0, dout: 0, grads: 0 };
  let deltas = 0;

  // 1. o written where its contiguous copy put it, and dO read where its copy read it (together: one layout).
  for (let f = 0; f < work.length; f++) {
    if (attentionKind(work[f]) !== 'forward') continue;
    const F = dispatchAt(f);
    const O = slotAt(F, 5);
    const dims = dimsOf(F, 'o');
    if (!temp(O) || !sameLayout(layoutOf(F, 'o_l'), denseLayout(dims))) continue;
    const copies: number[] = [];
    const backward: number[] = [];
    let other = false;
    for (const u of users(O)) {
      if (u === f) continue;
      const c = work[u]!;
      const kind = attentionKind(c);
      if (isCopy(c) && slotAt(c, 1) === O && slotAt(c, 4) !== O && u > f) copies.push(u);
      else if ((kind === 'delta' || kind === 'dkdv' || kind === 'dq') && slotAt(c as RecDispatch, 5) === O && u > f) backward.push(u);
      else other = true;
    }
    if (other || copies.length !== 1) continue;
    const x = copies[0];
    const X = dispatchAt(x);
    const C = slotAt(X, 4);
    const where = carry([X], dims.reduce((p, q) => p * q, 1));
    const L = where && fit(where, dims);
    if (!L || C === O || between(f, x, (c) => touches(c, C)) || F.bindings.some((b) => b.binding !== 5 && b.slot === C)) continue;
    const last = backward.length ? Math.max(...backward) : x;
    // o stays in C until the backward has read it.
    if (between(x, last + 1, (c) => writes(c).includes(C))) continue;
    let y = -1;
    let G = -1;
    if (backward.length) {
      if (backward.some((b) => b < x)) continue;
      const B0 = dispatchAt(backward[0]);
      const GC = slotAt(B0, 6);
      if (backward.some((b) => slotAt(dispatchAt(b), 6) !== GC || !sameLayout(layoutOf(dispatchAt(b), 'o_l'), denseLayout(dims)))) continue;
      const gcUsers = users(GC).filter((u) => !backward.includes(u));
      if (gcUsers.length !== 1 || !temp(GC)) continue;
      y = gcUsers[0];
      const Y = work[y];
      if (!isCopy(Y) || slotAt(Y, 4) !== GC || y > Math.min(...backward)) continue;
      G = slotAt(Y, 1);
      const from = source(Y, dims.reduce((p, q) => p * q, 1));
      const L2 = from && fit(from, dims);
      // dO is read where the copy read it: nothing may write it on the way, and o and dO share a layout.
      if (!L2 || !sameLayout(L, L2) || G === GC || between(y, last + 1, (c) => writes(c).includes(G))) continue;
    }
    const next = new Map<number, RecDispatch>();
    next.set(f, rewrite(F, new Map([[5, C]]), { o_l: L }));
    for (const b of backward) next.set(b, rewrite(dispatchAt(b), new Map([[5, C], [6, G]]), { o_l: L }));
    if ([...next.values()].some(aliases)) continue;
    for (const [i, d] of next) work[i] = d;
    work[x] = null;
    removed.o++;
    if (y >= 0) {
      work[y] = null;
      removed.dout++;
    }
  }

  // 2. dq, dk and dv written where the copies after the backward put them.
  interface Candidate {
    w: number;
    binding: number;
    name: 'dq_l' | 'dk_l' | 'dv_l';
    target: number;
    layout: Layout;
    chain: number[];
    places: Set<number>;
    ok: boolean;
  }
  const candidates: Candidate[] = [];
  for (let w = 0; w < work.length; w++) {
    const kind = attentionKind(work[w]);
    if (kind !== 'dkdv' && kind !== 'dq') continue;
    const W = dispatchAt(w);
    const outs = kind === 'dkdv' ? ([[10, 'dk'], [11, 'dv']] as const) : ([[9, 'dq']] as const);
    for (const [binding, what] of outs) {
      const T = slotAt(W, binding);
      const dims = dimsOf(W, what);
      if (!temp(T) || !sameLayout(layoutOf(W, `${what}_l`), denseLayout(dims))) continue;
      const chain: number[] = [];
      let cur = T;
      let at = w;
      for (;;) {
        const u = users(cur);
        if (u.length !== 2 || u[0] !== at) break;
        const c = work[u[1]];
        if (!isCopy(c) || slotAt(c, 1) !== cur || slotAt(c, 4) === cur) break;
        chain.push(u[1]);
        at = u[1];
        cur = slotAt(c, 4);
        if (!temp(cur)) break;
      }
      if (!chain.length) continue;
      const where = carry(chain.map(dispatchAt), dims.reduce((p, q) => p * q, 1));
      const layout = where && fit(where, dims);
      if (!layout || W.bindings.some((b) => !b.writable && b.slot === cur)) continue;
      candidates.push({ w, binding, name: `${what}_l`, target: cur, layout, chain, places: new Set(where), ok: true });
    }
  }
  // Each gradient's write moves from its last copy back to its kernel: in between, nothing may touch the target but
  // the other moved writes, into other places.
  for (let changed = true; changed; ) {
    changed = false;
    for (const c of candidates) {
      if (!c.ok) continue;
      const last = c.chain[c.chain.length - 1];
      for (let k = c.w + 1; k < last && c.ok; k++) {
        // (the copies of moved writes go away)
        if (candidates.some((o) => o.ok && o.chain.includes(k))) continue;
        const writers = candidates.filter((o) => o.ok && o.w === k && o.target === c.target);
        if (touches(work[k], c.target) || writers.some((o) => [...o.places].some((p) => c.places.has(p)))) c.ok = false;
      }
      if (!c.ok) changed = true;
    }
  }
  const byW = new Map<number, Candidate[]>();
  for (const c of candidates) if (c.ok) byW.set(c.w, [...(byW.get(c.w) ?? []), c]);
  for (const [w, list] of byW) {
    // dk and dv into one buffer: dkdv writes dv through the dk binding (KV_ONE; dv keeps its unused buffer).
    const one = list.length === 2 && list[0].target === list[1].target;
    const rebind = new Map(list.filter((c) => !one || c.binding === 10).map((c) => [c.binding, c.target]));
    const d = rewrite(dispatchAt(w), rebind, Object.fromEntries(list.map((c) => [c.name, c.layout])), one ? { KV_ONE: 1 } : {});
    if (aliases(d)) continue;
    work[w] = d;
    for (const c of list) {
      for (const k of c.chain) work[k] = null;
      removed.grads += c.chain.length;
    }
  }

  // 3. The delta pass folded into dkdv and dq (each computes the delta of the rows it loads, from the same o and dO).
  for (let t = 0; t < work.length; t++) {
    if (attentionKind(work[t]) !== 'delta') continue;
    const T = dispatchAt(t);
    const delta = slotAt(T, 8);
    const readers = users(delta).filter((u) => u !== t);
    const same = (d: RecDispatch) => slotAt(d, 5) === slotAt(T, 5) && slotAt(d, 6) === slotAt(T, 6) && sameLayout(layoutOf(d, 'o_l'), layoutOf(T, 'o_l'));
    if (!temp(delta) || !readers.length || readers.some((u) => u < t || (attentionKind(work[u]) !== 'dkdv' && attentionKind(work[u]) !== 'dq') || !same(dispatchAt(u)))) continue;
    const last = Math.max(...readers);
    if (between(t, last, (c) => writes(c).some((s) => s === slotAt(T, 5) || s === slotAt(T, 6)))) continue;
    for (const u of readers) {
      const d = dispatchAt(u);
      work[u] = rewrite(d, new Map(), {}, { DELTA_SELF: 1 }, `${d.label}+delta`);
    }
    work[t] = null;
    deltas++;
  }
  return { commands: work.filter((c): c is RecCommand => c !== null), removed, deltas };
}
