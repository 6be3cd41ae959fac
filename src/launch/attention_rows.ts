// Launcher of the register-tiled attention forward (kernels/attention_forward_rows.wgsl), as planned: the variant
// (subgroups, and f16), the constants and the folded grid come from src/attention/plan.ts; this file binds and
// dispatches. Imported by src/attention/rows.ts only, so a page that never enables the rows kernel carries none of it.
import type { ParamValues } from '../gpu/recorder.js';
import type { TensorBase } from '../tensor/base.js';
import { type KernelModule, type KernelVariant, dispatch, kernelVariant } from '../gpu/kernels.js';
import { dummy, rawBuf } from './common.js';
import { type AttentionLaunch, type FlexBindings, type FlexModules, flexBindingMap, replaceInclude, withFlexBindings } from './attention.js';
import rowsKernel from './kernels/attention_forward_rows.js';

/** The include named `name` at any depth of mod, or null. */
function findInclude(mod: KernelModule, name: string): KernelModule | null {
  for (const m of mod.includes) {
    const r = m.file === name ? m : findInclude(m, name);
    if (r) return r;
  }
  return null;
}

// The rows kernel with a flex structure's mods: the mods module and extra bindings of that structure's tiled forward.
const flexRows = new WeakMap<FlexModules, KernelModule>();

function rowsModule(flex: FlexBindings | null): KernelModule {
  if (!flex) return rowsKernel;
  let m = flexRows.get(flex.modules);
  if (!m) {
    const fwd = flex.modules.forward;
    const extra = fwd.entries.main.bindings.filter((b) => !rowsKernel.entries.main_rows.bindings.some((x) => x.binding === b.binding) && !['q', 'k', 'v', 'mask', 'o', 'lse'].includes(b.name));
    m = withFlexBindings(replaceInclude(rowsKernel, 'attention_mods.wgsl', findInclude(fwd, 'attention_mods.wgsl')!), fwd.file, ['main_rows'], extra);
    flexRows.set(flex.modules, m);
  }
  return m;
}

/** The forward: o [Bt, Hq, Nq, Dv] and lse [Bt, Hq, Nq] from q, k, v (k and v also as vec4) and the mask. */
export function attentionForwardRows(
  fn: string,
  variant: readonly KernelVariant[],
  label: string,
  launch: AttentionLaunch,
  params: ParamValues,
  t: { q: TensorBase; k: TensorBase; v: TensorBase; mask: TensorBase | null; o: TensorBase; lse: TensorBase },
  flex: FlexBindings | null,
): void {
  dispatch(kernelVariant(rowsModule(flex), variant), 'main_rows', {
    constants: launch.constants,
    bindings: {
      q: rawBuf(t.q, fn), k: rawBuf(t.k, fn), v: rawBuf(t.v, fn), k4: rawBuf(t.k, fn), v4: rawBuf(t.v, fn), mask: t.mask ? rawBuf(t.mask, fn) : dummy(),
      o: rawBuf(t.o, fn), lse: rawBuf(t.lse, fn),
      ...(flex ? flexBindingMap(fn, flex) : {}),
    },
    params, workgroups: launch.grid,
    label: flex ? flex.checkLabel : label,
    ...(flex ? { indexShape: flex.checkShape } : {}),
  });
}
