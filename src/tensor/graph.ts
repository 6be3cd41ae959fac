// The autograd graph's data. Ops record a node per differentiable result; autograd/ walks them.
// Lives in the tensor layer because tensors point at the node that made them.
import type { Tensor } from './tensor.js';

export interface GradEdge {
  /** The node that produced the input, or null for a leaf. */
  node: GradNode | null;
  /** The leaf tensor that accumulates the gradient (when node is null), kept by reference only. */
  leaf: Tensor | null;
}

export interface GradNode {
  name: string;
  inputs: (GradEdge | null)[];
  /** Given the gradient of the output, returns one gradient per input (null where not needed). */
  backward: (gradOut: Tensor, needs: boolean[]) => (Tensor | null)[];
  /** Tensors kept alive for backward; released once backward ran or the graph was dropped. */
  saved: Tensor[];
  /** Live tensors and downstream nodes that still reference this node. */
  refs: number;
  released: boolean;
  id: number;
}

let gradEnabled = true;
export function isGradEnabled(): boolean {
  return gradEnabled;
}
export function setGradEnabled(on: boolean): boolean {
  const prev = gradEnabled;
  gradEnabled = on;
  return prev;
}

let nextNodeId = 1;
export function newNodeId(): number {
  return nextNodeId++;
}

/** Drops one reference to a node; when none remain, frees its saved tensors and walks upstream. */
export function unrefNode(node: GradNode): void {
  const stack = [node];
  while (stack.length) {
    const n = stack.pop()!;
    if (--n.refs > 0 || n.released) continue;
    releaseNode(n);
    for (const e of n.inputs) if (e?.node) stack.push(e.node);
  }
}

export function releaseNode(n: GradNode): void {
  if (n.released) return;
  n.released = true;
  for (const t of n.saved) t.dispose();
  n.saved = [];
}

/** Runs fn with gradient recording switched on or off, restoring the previous mode afterwards. */
export function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    setGradEnabled(prev);
  }
}
