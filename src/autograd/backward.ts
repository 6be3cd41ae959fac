// Reverse-mode autograd: one walk over the recorded graph in reverse topological order.
import { ShapeError, ValueError, fmtShape } from '../errors.js';
import { type GradNode, releaseNode, setGradEnabled } from '../tensor/graph.js';
import { type Tensor, keep } from '../tensor/tensor.js';
import { sameShape } from '../tensor/shape.js';
import { elementwise } from '../ops/kernel_args.js';
import { add, clone } from '../ops/elementwise.js';
import { full } from '../ops/creation.js';
import { castRaw } from '../ops/cast.js';

export interface BackwardOptions {
  /** Keep saved tensors so backward can run again through the same graph. */
  retainGraph?: boolean;
}

/**
 * Computes gradients of `root` with respect to every leaf that requires them, accumulating into
 * `.grad`. Synchronous: it encodes the GPU work; reading a gradient is what waits.
 */
export function backward(root: Tensor, gradient?: Tensor, options: BackwardOptions = {}): void {
  root.buf('backward');
  if (!root.requiresGrad) throw new ValueError(`backward: tensor ${fmtShape(root.shape)} does not require grad (no input with requiresGrad: true reached it)`);
  if (!gradient && root.size !== 1) throw new ShapeError(`backward: a gradient is needed for a non-scalar output ${fmtShape(root.shape)}`);
  if (gradient && !sameShape(gradient.shape, root.shape)) throw new ShapeError(`backward: gradient ${fmtShape(gradient.shape)} does not match output ${fmtShape(root.shape)}`);
  const prev = setGradEnabled(false);
  const pending = new Map<GradNode, Tensor>();
  const owned: Tensor[] = [];
  try {
    const seed = gradient ? clone(gradient) : full(root.shape.slice(), 1, { dtype: root.dtype === 'f16' ? 'f16' : 'f32' });
    if (!root.gradFn) {
      accumulate(root, seed);
      return;
    }
    // Topological order by an explicit DFS (no recursion per input: shared subgraphs run once).
    const order: GradNode[] = [];
    const visited = new Set<GradNode>();
    const stack: [GradNode, number][] = [[root.gradFn, 0]];
    visited.add(root.gradFn);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      if (i < node.inputs.length) {
        top[1]++;
        const next = node.inputs[i]?.node;
        if (next && !visited.has(next)) {
          visited.add(next);
          stack.push([next, 0]);
        }
      } else {
        stack.pop();
        order.push(node);
      }
    }
    pending.set(root.gradFn, seed);
    for (let k = order.length - 1; k >= 0; k--) {
      const node = order[k];
      const g = pending.get(node);
      pending.delete(node);
      if (!g) continue;
      if (node.released) {
        g.dispose();
        throw new ValueError(`backward: the graph through '${node.name}' was already freed; pass { retainGraph: true } to run backward twice`);
      }
      const needs = node.inputs.map((e) => e !== null);
      let grads: (Tensor | null)[];
      try {
        grads = node.backward(g, needs);
      } finally {
        g.dispose();
      }
      for (let i = 0; i < node.inputs.length; i++) {
        const e = node.inputs[i];
        const gi = grads[i];
        if (!e || !gi) {
          gi?.dispose();
          continue;
        }
        if (e.node) {
          const prevG = pending.get(e.node);
          if (prevG) {
            pending.set(e.node, addGrads(prevG, gi));
            prevG.dispose();
            gi.dispose();
          } else pending.set(e.node, gi);
        } else if (e.leaf) {
          accumulate(e.leaf, gi);
        }
      }
      if (!options.retainGraph) releaseNode(node);
    }
  } finally {
    for (const t of pending.values()) t.dispose();
    for (const t of owned) t.dispose();
    setGradEnabled(prev);
  }
}

function accumulate(leaf: Tensor, g: Tensor): void {
  if (leaf.isDisposed) {
    g.dispose();
    return;
  }
  let grad = g;
  if (!sameShape(g.shape, leaf.shape)) {
    g.dispose();
    throw new ShapeError(`backward: gradient ${fmtShape(g.shape)} does not match leaf ${fmtShape(leaf.shape)}`);
  }
  if (!g.isContiguous || g.offset !== 0 || g.storage!.refs > 1) {
    grad = clone(g);
    g.dispose();
  }
  if (leaf.grad && !leaf.grad.isDisposed && leaf.grad.dtype === 'f16') {
    // f16 has no in-place kernel: the sum (taken in f32) replaces the old gradient.
    const sum = addGrads(leaf.grad, grad);
    leaf.grad.dispose();
    grad.dispose();
    sum.isGradOfOutside = true;
    keep(sum);
    leaf.grad = sum;
  } else if (leaf.grad && !leaf.grad.isDisposed) {
    elementwise('accumulate', 'backward.accumulate', leaf.grad, { a: grad });
    grad.dispose();
  } else {
    grad.isGradOfOutside = true;
    keep(grad);
    leaf.grad = grad;
  }
}

/** a + b for gradients; f16 gradients are summed in f32 and rounded once. */
function addGrads(a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== 'f16' && b.dtype !== 'f16') return add(a, b);
  const fa = a.dtype === 'f16' ? castRaw(a, 'f32', 'backward.accumulate') : a;
  const fb = b.dtype === 'f16' ? castRaw(b, 'f32', 'backward.accumulate') : b;
  const s = add(fa, fb);
  if (fa !== a) fa.dispose();
  if (fb !== b) fb.dispose();
  const h = castRaw(s, 'f16', 'backward.accumulate');
  s.dispose();
  return h;
}
