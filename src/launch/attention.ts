// Launchers of the fused attention kernels (kernels/attention_forward.wgsl, kernels/attention_backward.wgsl), as
// src/attention/plan.ts planned them: which variant (f16, subgroups), the override constants (tiles, PARTS) and the
// folded grids. The kernels' params (shapes, offsets and strides of q, k, v and the mask, scale, causal diagonal,
// dropout) come in whole from the plan; this file binds buffers and dispatches, and decides nothing.
import type { ParamValues } from '../gpu/recorder.js';
import type { TensorBase } from '../tensor/base.js';
import { type KernelBinding, type KernelEntry, type KernelModule, dispatch, grid1d, kernelVariant, type KernelVariant } from '../gpu/kernels.js';
import type { PooledBuffer } from '../gpu/memory.js';
import { dummy, rawBuf } from './common.js';
import forwardKernel from './kernels/attention_forward.js';
import backwardKernel from './kernels/attention_backward.js';
import flexKernel from './kernels/attention_flex.js';
import indexCheckKernel from './kernels/index_check.js';

/** One planned launch: override constants and the (folded) grid. */
export interface AttentionLaunch {
  readonly constants: Readonly<Record<string, number>>;
  readonly grid: readonly [number, number, number];
}

/** The forward: o [Bt, Hq, Nq, Dv] and lse [Bt, Hq, Nq] from q, k, v and the mask (any of them strided, as params say). */
export function attentionForward(
  fn: string,
  variant: readonly KernelVariant[],
  label: string,
  launch: AttentionLaunch,
  params: ParamValues,
  t: { q: TensorBase; k: TensorBase; v: TensorBase; mask: TensorBase | null; o: TensorBase; lse: TensorBase },
  flex: FlexBindings | null = null,
): void {
  dispatch(kernelVariant(flex ? flex.modules.forward : forwardKernel, variant), 'main', {
    constants: launch.constants,
    bindings: {
      q: rawBuf(t.q, fn), k: rawBuf(t.k, fn), v: rawBuf(t.v, fn),
      mask: t.mask ? rawBuf(t.mask, fn) : dummy(),
      o: rawBuf(t.o, fn), lse: rawBuf(t.lse, fn),
      ...(flex ? flexBindingMap(fn, flex) : {}),
    },
    params,
    workgroups: launch.grid,
    label: flex ? flex.checkLabel : label,
    ...(flex?.modules ? { indexShape: flex.checkShape } : {}),
  });
}

/** The three passes of the backward: delta, dK/dV (owning key tiles) and dQ (owning query tiles; and dmask). */
export function attentionBackward(
  fn: string,
  variant: readonly KernelVariant[],
  label: string,
  launches: { dkdv: AttentionLaunch; dq: AttentionLaunch; deltaGrid: readonly [number, number, number] },
  params: ParamValues,
  t: {
    q: TensorBase; k: TensorBase; v: TensorBase; mask: TensorBase | null; o: TensorBase; dout: TensorBase; lse: TensorBase;
    delta: TensorBase; dq: TensorBase; dk: TensorBase; dv: TensorBase; dmask: TensorBase | null;
  },
  flex: FlexBindings | null = null,
): void {
  const kernel = kernelVariant(flex ? flex.modules.backward : backwardKernel, variant);
  const bindings = {
    q: rawBuf(t.q, fn), k: rawBuf(t.k, fn), v: rawBuf(t.v, fn),
    mask: t.mask ? rawBuf(t.mask, fn) : dummy(),
    o: rawBuf(t.o, fn), dout: rawBuf(t.dout, fn), lse: rawBuf(t.lse, fn),
    delta: rawBuf(t.delta, fn), dq: rawBuf(t.dq, fn), dk: rawBuf(t.dk, fn), dv: rawBuf(t.dv, fn),
    dmask: t.dmask ? rawBuf(t.dmask, fn) : dummy(true),
    ...(flex ? flexBindingMap(fn, flex) : {}),
  };
  // With mods, the index check of captured reads is labelled with the reads (and its label is the dispatch's).
  const lbl = (pass: string) => (flex ? flex.checkLabel : `attention.backward.${pass}${label}`);
  const shape = flex ? { indexShape: flex.checkShape } : {};
  dispatch(kernel, 'delta_main', { constants: launches.dkdv.constants, bindings, params, workgroups: launches.deltaGrid, label: `attention.backward.delta${label}` });
  dispatch(kernel, 'dkdv', { constants: launches.dkdv.constants, bindings, params, workgroups: launches.dkdv.grid, label: lbl('dkdv'), ...shape });
  dispatch(kernel, 'dq_main', { constants: launches.dq.constants, bindings, params, workgroups: launches.dq.grid, label: lbl('dq'), ...shape });
}

// ---- programmable attention (flexAttention): kernels with generated mods ----

/** What a flex launch binds beyond the plain kernels' buffers: flex_c, the captured tensors, and the index check. */
export interface FlexBindings {
  readonly modules: FlexModules;
  readonly consts: TensorBase;
  readonly captures: readonly TensorBase[];
  /** The device-side index check's label (names the mods' reads) and position shape [reads, 8]. */
  readonly checkLabel: string;
  readonly checkShape: readonly number[];
}

/** The generated text a flex launch compiles (src/attention/codegen.ts): see kernels/attention_mods.wgsl. */
export interface FlexSource {
  readonly key: string;
  readonly mods: string;
  readonly modsBackward: string;
  readonly maskHook: string | null;
  readonly checks: boolean;
  readonly captureKinds: readonly string[];
}

export interface FlexModules {
  readonly forward: KernelModule;
  readonly backward: KernelModule;
  readonly blocks: KernelModule | null;
}

function textModule(file: string, code: string, checks: boolean): KernelModule {
  return { file, code, includes: checks ? [indexCheckKernel] : [], entries: {}, overrides: [], constants: {} };
}

/** mod with every include named `name` (at any depth) replaced by `repl`; mod itself when none is. */
export function replaceInclude(mod: KernelModule, name: string, repl: KernelModule): KernelModule {
  let changed = false;
  const includes = mod.includes.map((m) => {
    const r = m.file === name ? repl : replaceInclude(m, name, repl);
    if (r !== m) changed = true;
    return r;
  });
  const subgroups = mod.subgroups ? replaceInclude(mod.subgroups, name, repl) : undefined;
  if (!changed && subgroups === mod.subgroups) return mod;
  return { ...mod, includes, ...(subgroups ? { subgroups } : {}) };
}

/** mod with its entries' bindings extended by the flex bindings (entries that evaluate the mods). */
export function withFlexBindings(mod: KernelModule, tag: string, entries: readonly string[], extra: KernelBinding[]): KernelModule {
  const out: Record<string, KernelEntry> = {};
  for (const [name, e] of Object.entries(mod.entries)) {
    out[name] = entries.includes(name) ? { ...e, bindings: [...e.bindings, ...extra.filter((b) => !e.bindings.some((x) => x.binding === b.binding))] } : e;
  }
  return { ...mod, file: `${mod.file}(${tag})`, entries: out };
}

// Pipelines are cached by module object (gpu/kernels.ts): one module set per mod structure. Bounded, oldest dropped.
const flexCache = new Map<string, FlexModules>();
const MAX_FLEX_MODULES = 64;
let flexSerial = 0;

/** The forward, backward and block-mask kernel modules of a generated mod text, one set per structure. */
export function flexModules(src: FlexSource): FlexModules {
  const hit = flexCache.get(src.key);
  if (hit) {
    flexCache.delete(src.key);
    flexCache.set(src.key, hit);
    return hit;
  }
  const tag = `flex${++flexSerial}`;
  const extra: KernelBinding[] = [{ name: 'flex_c', binding: 16, kind: 'read-only-storage' }];
  src.captureKinds.forEach((_k, c) => extra.push({ name: `cap${c}`, binding: 17 + c, kind: 'read-only-storage' }));
  if (src.checks) extra.push({ name: 'kiln_errors', binding: 15, kind: 'storage' });
  const mods = textModule('attention_mods.wgsl', src.mods, src.checks);
  const forward = withFlexBindings(replaceInclude(forwardKernel, 'attention_mods.wgsl', mods), tag, ['main'], extra);
  const modsBw = src.modsBackward === src.mods ? mods : textModule('attention_mods.wgsl', src.modsBackward, src.checks);
  const backward = withFlexBindings(replaceInclude(backwardKernel, 'attention_mods.wgsl', modsBw), tag, ['dkdv', 'dq_main'], extra);
  const blocks = src.maskHook
    ? withFlexBindings(replaceInclude(flexKernel, 'attention_mask_hook.wgsl', textModule('attention_mask_hook.wgsl', src.maskHook, src.checks)), tag, ['block_eval'], extra)
    : null;
  const m = { forward, backward, blocks };
  if (flexCache.size >= MAX_FLEX_MODULES) flexCache.delete(flexCache.keys().next().value!);
  flexCache.set(src.key, m);
  return m;
}

/** How many distinct mod structures have been compiled (each: one forward, one backward, one block-mask module). */
export function flexModuleCount(): number {
  return flexSerial;
}

export function flexBindingMap(fn: string, f: FlexBindings): Record<string, PooledBuffer> {
  const b: Record<string, PooledBuffer> = { flex_c: rawBuf(f.consts, fn) };
  f.captures.forEach((t, c) => (b[`cap${c}`] = rawBuf(t, fn)));
  return b;
}

/** The block-mask pass: status of every block, then the kernels' lists (kernels/attention_flex.wgsl). */
export function flexBlockMask(
  fn: string,
  f: FlexBindings,
  params: Record<string, number>,
  t: { status: TensorBase; lists: TensorBase },
  counts: { blocks: number; lists: number },
): void {
  const kernel = f.modules.blocks ?? flexKernel;
  dispatch(kernel, 'block_eval', {
    bindings: { ...flexBindingMap(fn, f), status: rawBuf(t.status, fn) },
    params, workgroups: grid1d(counts.blocks), label: f.checkLabel, indexShape: f.checkShape,
  });
  dispatch(flexKernel, 'block_lists', {
    bindings: { status: rawBuf(t.status, fn), lists: rawBuf(t.lists, fn) },
    params, workgroups: grid1d(Math.ceil(counts.lists / 64)), label: 'createBlockMask.lists',
  });
}

/** grad[e] = sum_w partials[base + w * stride + e] (e < n, w < slots), in order of w. */
export function flexCaptureReduce(fn: string, partials: TensorBase, grad: TensorBase, n: number, slots: number, stride: number, base: number): void {
  dispatch(flexKernel, 'capture_reduce', {
    bindings: { partials: rawBuf(partials, fn), grad: rawBuf(grad, fn) },
    params: { ...FLEX_IDLE_PARAMS, n, slots, stride, base },
    workgroups: grid1d(Math.ceil(n / 64)),
    label: 'flexAttention.backward.captures',
  });
}

/** attention_flex.wgsl's params, unused fields zero. */
export const FLEX_IDLE_PARAMS: Readonly<Record<string, number>> = {
  n: 0, slots: 0, stride: 0, base: 0, Nq: 0, Nk: 0, qbs: 1, kbs: 1, nqb: 0, nkb: 0, rows: 0, Hm: 1, kv_idx: 0, q_cnt: 0, q_idx: 0,
};
