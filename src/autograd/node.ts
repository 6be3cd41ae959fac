// The tape: a node per differentiable result, recorded beside the forward by `record`. A node keeps the tensors its
// rule needs (as views, so callers may dispose their handles) until backward ran through it or nothing refers to it.
import { type TapeLink, type TensorBase, keep } from '../tensor/base.js';
import { isGradEnabled } from './mode.js';

/**
 * A backward rule: given the gradient of the output, the saved tensors and which inputs need a gradient, returns one
 * gradient per input (null where not needed). It runs in its own tidy scope with recording off, so temporaries need
 * no dispose, and it may return `g` itself or the same tensor for several inputs.
 */
export type Rule<T extends TensorBase> = (g: T, saved: T[], needs: boolean[]) => (T | null)[];

export interface GradEdge {
  /** The node that produced the input, or null for a leaf. */
  node: GradNode | null;
  /** The leaf tensor that accumulates the gradient (when node is null). */
  leaf: TensorBase | null;
}

let nextNodeId = 1;

export class GradNode implements TapeLink {
  readonly id = nextNodeId++;
  /** Live tensors and downstream nodes that refer to this node. */
  refs = 0;
  released = false;
  constructor(
    readonly name: string,
    readonly inputs: (GradEdge | null)[],
    readonly rule: Rule<TensorBase>,
    public saved: TensorBase[],
  ) {}
  hold(): void {
    this.refs++;
  }
  /** Drops one reference; when none remain, frees the saved tensors and walks upstream (no recursion). */
  drop(): void {
    const stack: GradNode[] = [this];
    while (stack.length) {
      const n = stack.pop()!;
      if (--n.refs > 0 || n.released) continue;
      n.release();
      for (const e of n.inputs) if (e?.node) stack.push(e.node);
    }
  }
  /** Frees what the node saved for backward. */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const t of this.saved) t.dispose();
    this.saved = [];
  }
}

function edgeOf(t: TensorBase | null | undefined): GradEdge | null {
  if (!t || !t.requiresGrad) return null;
  const node = t.gradFn as GradNode | null;
  if (node) {
    node.hold();
    return { node, leaf: null };
  }
  return { node: null, leaf: t };
}

/**
 * Attaches a backward rule to `out` when recording is on and any input requires a gradient; returns `out`. `save`
 * lists tensors the rule needs: they are kept as views, owned by the node.
 */
export function record<T extends TensorBase>(name: string, out: T, inputs: (T | null | undefined)[], rule: Rule<T>, save: T[] = []): T {
  if (!isGradEnabled() || !inputs.some((t) => t?.requiresGrad)) return out;
  const saved = save.map((t) => keep(t.makeView(t.shape, t.strides, t.offset)));
  out.setGradFn(new GradNode(name, inputs.map(edgeOf), rule as unknown as Rule<TensorBase>, saved));
  return out;
}

/** The node a tensor's gradFn link is (autograd is the only layer that makes links). */
export function nodeOf(t: TensorBase): GradNode | null {
  return t.gradFn as GradNode | null;
}
