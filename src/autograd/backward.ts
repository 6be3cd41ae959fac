// Reverse-mode autograd: one walk over the recorded graph in reverse topological order. Each rule runs in its own
// tidy scope with recording off; gradients meeting at a node are summed; leaves accumulate into `.grad`.
import { DTypeError, ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { type TensorBase, allocLike, keep, tidy } from '../tensor/base.js';
import { sameShape } from '../tensor/shape.js';
import { B, accumulate as accumulateInto, binary, contiguousCopy, fill } from '../launch/elementwise.js';
import { copyToSlot } from '../launch/optimizer.js';
import { cast } from '../launch/cast.js';
import { type GradNode, nodeOf } from './node.js';
import { withAutocast, withGradMode } from './mode.js';

export interface BackwardOptions {
  /** Keep saved tensors so backward can run again through the same graph. */
  retainGraph?: boolean;
}

/** Nodes reachable from `root` in topological order (inputs first), by an explicit DFS: shared subgraphs run once. */
function topoOrder(root: GradNode): GradNode[] {
  const order: GradNode[] = [];
  const visited = new Set<GradNode>([root]);
  const stack: [GradNode, number][] = [[root, 0]];
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
  return order;
}

/**
 * Computes the gradients of `root` with respect to every leaf that requires them, accumulating into `.grad`.
 * Synchronous: it encodes the GPU work; reading a gradient is what waits. Every check runs before any GPU work.
 */
export function backward(root: TensorBase, gradient?: TensorBase | null, options?: BackwardOptions): void {
  const opts = checkOptions('backward', options, ['retainGraph']);
  root.buf('backward');
  if (!root.requiresGrad) throw new ValueError(`backward: tensor ${fmtShape(root.shape)} does not require grad (no input with requiresGrad: true reached it)`);
  if (root.dtype !== 'f32' && root.dtype !== 'f16') throw new DTypeError(`backward: only float outputs have gradients; tensor ${fmtShape(root.shape)} is ${root.dtype}`);
  if (gradient !== undefined && gradient !== null) {
    gradient.buf('backward');
    if (!sameShape(gradient.shape, root.shape)) throw new ShapeError(`backward: gradient ${fmtShape(gradient.shape)} does not match output ${fmtShape(root.shape)}`);
    if (gradient.dtype !== 'f32' && gradient.dtype !== 'f16') throw new DTypeError(`backward: the gradient must be a float tensor (f32 or f16), got ${gradient.dtype}`);
  } else if (root.size !== 1) {
    throw new ShapeError(`backward: a gradient is needed for a non-scalar output ${fmtShape(root.shape)}`);
  }
  const rootNode = nodeOf(root);
  const order = rootNode ? topoOrder(rootNode) : [];
  const freed = order.find((n) => n.released);
  if (freed) throw new ValueError(`backward: the graph through '${freed.name}' was already freed; pass { retainGraph: true } to run backward twice`);
  withGradMode(false, () => {
    const seed = makeSeed(root, gradient ?? null);
    if (!rootNode) {
      accumulate(root, seed);
      return;
    }
    const pending = new Map<GradNode, TensorBase>([[rootNode, seed]]);
    try {
      for (let k = order.length - 1; k >= 0; k--) {
        const node = order[k];
        const g = pending.get(node);
        pending.delete(node);
        if (!g) continue;
        const grads = runRule(node, g);
        for (let i = 0; i < node.inputs.length; i++) {
          const e = node.inputs[i];
          const gi = grads[i];
          if (!gi) continue;
          if (!e) gi.dispose();
          else if (e.node) {
            const prev = pending.get(e.node);
            if (prev) {
              pending.set(e.node, addGrads(prev, gi));
              prev.dispose();
              gi.dispose();
            } else pending.set(e.node, gi);
          } else if (e.leaf) accumulate(e.leaf, gi);
        }
        if (!opts.retainGraph) node.release();
      }
    } finally {
      for (const t of pending.values()) t.dispose();
    }
  });
}

/** The gradient the walk starts from: a copy of the given one in the output's dtype, or ones. */
function makeSeed(root: TensorBase, gradient: TensorBase | null): TensorBase {
  if (gradient) {
    if (gradient.dtype !== root.dtype) return cast(gradient, root.dtype as 'f32' | 'f16', 'backward');
    return gradient.dtype === 'f16' ? cast(gradient, 'f16', 'backward') : contiguousCopy('backward', gradient);
  }
  if (root.dtype === 'f16') {
    const one = allocLike(root, root.shape.slice(), 'f32');
    fill('backward', one, 1);
    const h = cast(one, 'f16', 'backward');
    one.dispose();
    return h;
  }
  const seed = allocLike(root, root.shape.slice(), 'f32');
  fill('backward', seed, 1);
  return seed;
}

/**
 * Runs a node's rule in its own scope and takes ownership of the gradients it returns: g is disposed unless the rule
 * passed it on, and a tensor returned for several inputs becomes one view per input.
 */
function runRule(node: GradNode, g: TensorBase): (TensorBase | null)[] {
  const needs = node.inputs.map((e) => e !== null);
  let grads: (TensorBase | null)[];
  try {
    grads = withAutocast(null, () => tidy(() => node.rule(g, node.saved, needs), `backward of ${node.name}`));
  } catch (e) {
    g.dispose();
    throw e;
  }
  const seen = new Set<TensorBase>();
  const out = grads.map((t, i) => {
    if (!t || !needs[i]) {
      if (t && t !== g && !grads.some((u, j) => j !== i && u === t && needs[j])) t.dispose();
      return null;
    }
    if (seen.has(t)) return t.makeView(t.shape.slice(), t.strides.slice(), t.offset);
    seen.add(t);
    return t;
  });
  if (!seen.has(g)) g.dispose();
  return out;
}

/** Adds gradient g into leaf.grad (or makes it leaf.grad), taking ownership of g. */
function accumulate(leaf: TensorBase, g: TensorBase): void {
  if (leaf.isDisposed) {
    g.dispose();
    return;
  }
  if (!sameShape(g.shape, leaf.shape)) {
    g.dispose();
    throw new ShapeError(`backward: gradient ${fmtShape(g.shape)} does not match leaf ${fmtShape(leaf.shape)}`);
  }
  const have = leaf.grad && !leaf.grad.isDisposed ? leaf.grad : null;
  if (have && have.dtype === 'f16') {
    // f16 gradients are summed in f32 and rounded once; the sum replaces the old gradient.
    const sum = addGrads(have, g);
    have.dispose();
    g.dispose();
    setGrad(leaf, sum);
  } else if (have) {
    accumulateInto('backward.accumulate', have, g);
    g.dispose();
  } else if (leaf.gradSlot && !leaf.gradSlot.isDisposed && g.dtype === leaf.gradSlot.dtype) {
    // The leaf's gradient lives in an optimizer's gradient arena: write it there (a buffer copy, no dispatch).
    const slot = leaf.gradSlot;
    copyToSlot('backward.accumulate', slot, g);
    g.dispose();
    setGrad(leaf, slot.makeView(slot.shape.slice(), slot.strides.slice(), slot.offset));
  } else if (!g.isContiguous || g.offset !== 0 || g.storage!.refs > 1) {
    const own = g.dtype === 'f16' ? cast(g, 'f16', 'backward.accumulate') : contiguousCopy('backward.accumulate', g);
    g.dispose();
    setGrad(leaf, own);
  } else setGrad(leaf, g);
}

function setGrad(leaf: TensorBase, g: TensorBase): void {
  g.isGradOfOutside = true;
  keep(g);
  leaf.grad = g as typeof leaf;
}

/** a + b for gradients (same shape); f16 gradients are summed in f32 and rounded once. */
function addGrads(a: TensorBase, b: TensorBase): TensorBase {
  if (a.dtype !== 'f16' && b.dtype !== 'f16') return binary('backward.accumulate', a, b, B.ADD, 'f32');
  const fa = a.dtype === 'f16' ? cast(a, 'f32', 'backward.accumulate') : a;
  const fb = b.dtype === 'f16' ? cast(b, 'f32', 'backward.accumulate') : b;
  const s = binary('backward.accumulate', fa, fb, B.ADD, 'f32');
  if (fa !== a) fa.dispose();
  if (fb !== b) fb.dispose();
  const h = cast(s, 'f16', 'backward.accumulate');
  s.dispose();
  return h;
}
