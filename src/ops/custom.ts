// defineOp: a user's op from a WGSL kernel and a backward rule, as torch.autograd.Function: the kernel is reflected
// once (src/launch/custom.ts), launched through kiln's launcher (so it is batched, profiled under the op's name and
// its outputs are ordinary tensors), and the op is recorded on the tape with the user's backward.
import { KilnError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { keep, tidy } from '../tensor/base.js';
import type { KernelModule } from '../gpu/kernels.js';
import { type CustomLaunchSpec, customEntry, launchCustom, reflectUserKernel } from '../launch/custom.js';
import { record } from '../autograd/node.js';
import { isGradEnabled, noGrad } from '../autograd/mode.js';
import { Tensor } from './tensor.js';

/** What forward and backward receive: the kernel launcher, the tensors saved for backward, which inputs need grads. */
export interface OpContext {
  /**
   * Runs one entry point of the op's kernel: `inputs` and `outputs` by binding name (outputs are allocated as
   * `{ shape, dtype? }`), `params` by uniform field, `constants` for `override`s, `workgroups`; returns the outputs.
   */
  launch(spec: CustomLaunchSpec): Record<string, Tensor>;
  /** Keeps tensors for backward (as PyTorch's ctx.save_for_backward); backward reads them as ctx.saved. */
  saveForBackward(...tensors: Tensor[]): void;
  readonly saved: readonly Tensor[];
  /** Per input: whether it needs a gradient (PyTorch's ctx.needs_input_grad). */
  readonly needsInputGrad: readonly boolean[];
  /** The op's name. */
  readonly name: string;
}

export interface OpDefinition {
  /** Names the op in the tape, in errors and in the profiler (its dispatches are labelled with it). */
  name: string;
  /** WGSL source of the op's kernel (one file: every entry point the op's forward and backward launch). */
  kernel: string;
  /** The entry point launches use by default (default: the kernel's only @compute function). */
  entry?: string;
  /** Computes the output from the inputs, with ctx.launch and any kiln ops; runs with gradient recording off. */
  forward: (ctx: OpContext, ...inputs: Tensor[]) => Tensor;
  /**
   * Gradients of the inputs from the output's gradient: one entry per input (null where none is needed), or a single
   * tensor for a one-input op. Kiln ops and ctx.launch both work here; temporaries are freed when it returns. Without
   * a backward, the op is not differentiable (an input that requires grad is a ValueError at the call).
   */
  backward?: (ctx: OpContext, grad: Tensor) => (Tensor | null | undefined)[] | Tensor | null;
}

/** The function defineOp returns: call it with tensors; `kernel` is the reflected module. */
export interface CustomOp {
  (...inputs: Tensor[]): Tensor;
  readonly opName: string;
  readonly kernel: KernelModule;
}

const NAME = /^[A-Za-z_][\w.-]*$/;

/**
 * Defines an op from a WGSL kernel: checks the definition and reflects the kernel (a ValueError names what is wrong,
 * before any GPU work), and returns the op as a function of tensors. See docs/custom-ops.md.
 */
export function defineOp(def: OpDefinition): CustomOp {
  const fn = 'defineOp';
  if (!def || typeof def !== 'object') throw new ValueError(`${fn}: expects { name, kernel, entry?, forward, backward? }`);
  checkOptions(fn, def, ['name', 'kernel', 'entry', 'forward', 'backward']);
  if (typeof def.name !== 'string' || !NAME.test(def.name)) throw new ValueError(`${fn}: name must be an identifier (letters, digits, _ . -), got ${JSON.stringify(def.name)}`);
  const opName = def.name;
  const where = `${fn}(${opName})`;
  if (typeof def.forward !== 'function') throw new ValueError(`${where}: forward must be a function (ctx, ...inputs) => Tensor`);
  if (def.backward !== undefined && typeof def.backward !== 'function') throw new ValueError(`${where}: backward must be a function (ctx, grad) => grads`);
  const kernel = reflectUserKernel(where, opName, def.kernel);
  const defaultEntry = customEntry(where, kernel, def.entry);

  // `like`: a tensor of the call, from which the launcher takes the class of the outputs it allocates.
  const context = (saved: Tensor[], needs: boolean[], like: Tensor): OpContext => ({
    name: opName,
    saved,
    needsInputGrad: needs,
    launch: (spec) => {
      const entry = spec?.entry ?? defaultEntry;
      // The default entry's dispatches carry the op's name in the profiler; others carry name.entry.
      return launchCustom(opName, entry === defaultEntry ? opName : `${opName}.${entry}`, kernel, { ...spec, entry }, like);
    },
    saveForBackward: (...ts) => {
      for (const t of ts) {
        if (!(t instanceof Tensor)) throw new ValueError(`${opName}: saveForBackward takes tensors`);
        saved.push(t);
      }
    },
  });
  const op = (...inputs: Tensor[]): Tensor => {
    inputs.forEach((t, i) => {
      if (!(t instanceof Tensor)) throw new ValueError(`${opName}: input ${i} is not a Tensor`);
      t.buf(opName);
    });
    const needs = inputs.map((t) => t.requiresGrad);
    if (!inputs.length) throw new ValueError(`${opName}: takes at least one tensor`);
    if (!def.backward && needs.some(Boolean) && isGradEnabled()) {
      throw new ValueError(`${opName}: input ${needs.indexOf(true)} ${fmtShape(inputs[needs.indexOf(true)].shape)} requires grad but the op has no backward`);
    }
    const saved: Tensor[] = [];
    const ctx = context(saved, needs, inputs[0]);
    const out = noGrad(() =>
      tidy(() => {
        const y = def.forward(ctx, ...inputs);
        if (!(y instanceof Tensor)) throw new KilnError(`${opName}: forward must return a Tensor, got ${String(y)}`);
        for (const t of saved) keep(t);
        return y;
      }),
    );
    // The node keeps its own views of the saved tensors; the handles kept above go.
    const toSave = saved.slice();
    try {
      if (!def.backward) return out;
      return record(opName, out, inputs, (g, savedViews, needsNow) => {
        const grads = def.backward!(context(savedViews as Tensor[], needsNow, g), g);
        const list = grads instanceof Tensor || grads === null ? [grads] : grads;
        if (!Array.isArray(list) || list.length !== inputs.length) throw new KilnError(`${opName}: backward returned ${Array.isArray(list) ? list.length : 'no'} gradients for ${inputs.length} inputs`);
        return list.map((gi, i) => {
          if (!needsNow[i] || gi === null || gi === undefined) return null;
          if (!(gi instanceof Tensor)) throw new KilnError(`${opName}: backward's gradient ${i} is not a Tensor`);
          if (gi.shape.length !== inputs[i].shape.length || gi.shape.some((d, k) => d !== inputs[i].shape[k])) {
            throw new KilnError(`${opName}: backward's gradient ${i} ${fmtShape(gi.shape)} does not match input ${i} ${fmtShape(inputs[i].shape)}`);
          }
          return gi;
        });
      }, toSave);
    } finally {
      for (const t of toSave) if (t !== out && !inputs.includes(t)) t.dispose();
    }
  };
  return Object.assign(op, { opName, kernel });
}
