// Recording an op on the autograd tape, beside its forward.
import { type GradEdge, type GradNode, isGradEnabled, newNodeId } from '../tensor/graph.js';
import { type Tensor, keep } from '../tensor/tensor.js';

function edgeOf(t: Tensor | null | undefined): GradEdge | null {
  if (!t || !t.requiresGrad) return null;
  if (t.gradFn) {
    t.gradFn.refs++;
    return { node: t.gradFn, leaf: null };
  }
  return { node: null, leaf: t };
}

/**
 * Attaches a backward rule to `out` when any input requires a gradient. `save` lists tensors the
 * rule needs: they are kept as views (so the caller may dispose its own handles) and freed once
 * backward ran or the graph was dropped.
 */
export function record(
  name: string,
  out: Tensor,
  inputs: (Tensor | null | undefined)[],
  backward: (gradOut: Tensor, saved: Tensor[], needs: boolean[]) => (Tensor | null)[],
  save: Tensor[] = [],
): Tensor {
  if (!isGradEnabled() || !inputs.some((t) => t?.requiresGrad)) return out;
  const saved = save.map((t) => {
    // Owned by the node, not by any tidy scope.
    return keep(t.makeView(t.shape, t.strides, t.offset));
  });
  const node: GradNode = {
    name,
    inputs: inputs.map(edgeOf),
    backward: (g, needs) => backward(g, node.saved, needs),
    saved,
    refs: 0,
    released: false,
    id: newNodeId(),
  };
  out.setGradFn(node);
  return out;
}

