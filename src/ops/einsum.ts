// einsum as PyTorch's torch.einsum: diagonals as strided views, letters summed out early, then pairwise contractions
// left to right, each one batched matmul over permuted and reshaped views (no per-element loops on the host).
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { allocLike, tidy } from '../tensor/base.js';
import { numel } from '../tensor/shape.js';
import { copy, fill } from '../launch/elementwise.js';
import { record } from '../autograd/node.js';
import type { Tensor } from './tensor.js';
import { matmul } from './matmul.js';
import { sum } from './reduce.js';
import { inF32 } from './elementwise.js';
import { expand, permute, reshape } from './views.js';

interface Term {
  t: Tensor;
  letters: string[];
}

const ELLIPSIS_BASE = 0x100; // placeholder letters for the dims '...' stands for, right-aligned across operands

function parseTerm(fn: string, term: string, t: Tensor, maxEllipsis: number): string[] {
  const parts = term.split('...');
  if (parts.length > 2) throw new ValueError(`${fn}: term '${term}' has more than one '...'`);
  const named = parts.join('');
  for (const ch of named) if (!/[a-zA-Z]/.test(ch)) throw new ValueError(`${fn}: '${ch}' in term '${term}' is not a letter`);
  if (parts.length === 1) {
    if (named.length !== t.rank) throw new ShapeError(`${fn}: term '${term}' names ${named.length} dims but its operand is ${fmtShape(t.shape)}`);
    return [...named];
  }
  const e = t.rank - named.length;
  if (e < 0) throw new ShapeError(`${fn}: term '${term}' names ${named.length} dims but its operand is ${fmtShape(t.shape)}`);
  const dots = Array.from({ length: e }, (_, k) => String.fromCharCode(ELLIPSIS_BASE + maxEllipsis - e + k));
  return [...parts[0], ...dots, ...parts[1]];
}

/** A view of x with the dims of each repeated letter merged into one (the diagonal), on the tape. */
function diagonal(x: Tensor, letters: string[]): Term {
  const out: string[] = [];
  const shape: number[] = [];
  const strides: number[] = [];
  const groups: number[][] = [];
  letters.forEach((l, i) => {
    const j = out.indexOf(l);
    if (j < 0) {
      out.push(l);
      shape.push(x.shape[i]);
      strides.push(x.strides[i]);
      groups.push([i]);
    } else {
      if (shape[j] !== x.shape[i]) throw new ShapeError(`einsum: letter '${l}' repeats in one term with sizes ${shape[j]} and ${x.shape[i]}`);
      strides[j] += x.strides[i];
      groups[j].push(i);
    }
  });
  if (out.length === letters.length) return { t: x, letters };
  const inShape = x.shape.slice();
  const view = record('einsum', x.makeView(shape, strides, x.offset), [x], (g) => {
    // Zeros with g written along the diagonal: the same merged strides over a contiguous buffer.
    const z = allocLike(g, inShape, 'f32');
    fill('einsum.backward', z, 0);
    const diagStrides = groups.map((grp) => grp.reduce((a, i) => a + z.strides[i], 0));
    const target = z.makeView(shape, diagStrides, 0);
    copy('einsum.backward', target, g);
    target.dispose();
    return [z];
  });
  return { t: view, letters: out };
}

/** Sums over the letters no one else needs. */
function sumOut(term: Term, keep: (l: string) => boolean): Term {
  const dims = term.letters.flatMap((l, i) => (keep(l) ? [] : [i]));
  if (dims.length === 0) return term;
  return { t: sum(term.t, dims), letters: term.letters.filter((l) => keep(l)) };
}

function permuteTo(term: Term, order: string[]): Tensor {
  const dims = order.map((l) => term.letters.indexOf(l));
  return dims.every((d, i) => d === i) ? term.t : permute(term.t, dims);
}

/** A contraction of two terms as one batched matmul: [batch, freeA, sum] @ [batch, sum, freeB]. */
function contract(a: Term, b: Term, needed: Set<string>, size: Map<string, number>): Term {
  const inB = new Set(b.letters);
  const inA = new Set(a.letters);
  const batch = a.letters.filter((l) => inB.has(l) && needed.has(l));
  const summed = a.letters.filter((l) => inB.has(l) && !needed.has(l));
  const freeA = a.letters.filter((l) => !inB.has(l));
  const freeB = b.letters.filter((l) => !inA.has(l));
  const n = (ls: string[]) => numel(ls.map((l) => size.get(l)!));
  const A = reshape(permuteTo(a, [...batch, ...freeA, ...summed]), [n(batch), n(freeA), n(summed)]);
  const Bm = reshape(permuteTo(b, [...batch, ...summed, ...freeB]), [n(batch), n(summed), n(freeB)]);
  const letters = [...batch, ...freeA, ...freeB];
  return { t: reshape(matmul(A, Bm), letters.map((l) => size.get(l)!)), letters };
}

/**
 * Einstein summation, as PyTorch's torch.einsum: 'ij,jk->ik', implicit output (the letters used once, in alphabetical
 * order, after any '...'), '...' for broadcast leading dims, repeated letters in a term for diagonals ('ii->i'), size-1
 * dims broadcast. Differentiable; contractions run as batched matmuls.
 */
export function einsum(equation: string, ...operands: (Tensor | Tensor[])[]): Tensor {
  const fn = 'einsum';
  if (typeof equation !== 'string') throw new ValueError(`${fn}: equation must be a string, got ${String(equation)}`);
  const tensors = operands.length === 1 && Array.isArray(operands[0]) ? operands[0] : (operands as Tensor[]);
  for (const t of tensors) {
    t.buf(fn);
    if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new DTypeError(`${fn}: operands must be f32 or f16, got ${t.dtype}`);
  }
  const dtypes = [...new Set(tensors.map((t) => t.dtype))];
  if (dtypes.length > 1) throw new DTypeError(`${fn}: operands must share a dtype (as matmul's), got ${tensors.map((t) => t.dtype).join(', ')}`);
  const eq = equation.replace(/\s+/g, '');
  const [lhs, rhs, extra] = eq.split('->');
  if (extra !== undefined) throw new ValueError(`${fn}: equation '${equation}' has more than one '->'`);
  const termsIn = lhs.split(',');
  if (termsIn.length !== tensors.length) throw new ValueError(`${fn}: equation '${equation}' has ${termsIn.length} operand terms but ${tensors.length} tensors were given`);
  const maxEllipsis = Math.max(0, ...termsIn.map((term, i) => (term.includes('...') ? tensors[i].rank - term.replace('...', '').length : 0)));
  const letterLists = termsIn.map((term, i) => parseTerm(fn, term, tensors[i], maxEllipsis));
  // Sizes: equal, or 1 (broadcast).
  const size = new Map<string, number>();
  letterLists.forEach((ls, i) => ls.forEach((l, d) => {
    const s = tensors[i].shape[d];
    const prev = size.get(l);
    if (prev === undefined || prev === 1) size.set(l, s);
    else if (s !== prev && s !== 1) {
      const name = l.charCodeAt(0) >= ELLIPSIS_BASE ? "'...'" : `'${l}'`;
      throw new ShapeError(`${fn}: ${name} has sizes ${prev} and ${s} in '${equation}' (operands ${tensors.map((t) => fmtShape(t.shape)).join(', ')})`);
    }
  }));
  const dots = Array.from({ length: maxEllipsis }, (_, k) => String.fromCharCode(ELLIPSIS_BASE + k));
  let outLetters: string[];
  if (rhs === undefined) {
    const count = new Map<string, number>();
    for (const ls of letterLists) for (const l of ls) if (l.charCodeAt(0) < ELLIPSIS_BASE) count.set(l, (count.get(l) ?? 0) + 1);
    outLetters = [...dots, ...[...count.keys()].filter((l) => count.get(l) === 1).sort()];
  } else {
    if (rhs.split('...').length > 2) throw new ValueError(`${fn}: output '${rhs}' has more than one '...'`);
    const [pre, post] = rhs.includes('...') ? rhs.split('...') : [rhs, ''];
    for (const ch of pre + post) {
      if (!/[a-zA-Z]/.test(ch)) throw new ValueError(`${fn}: '${ch}' in output '${rhs}' is not a letter`);
      if (!size.has(ch)) throw new ValueError(`${fn}: output letter '${ch}' appears in no operand of '${equation}'`);
    }
    outLetters = rhs.includes('...') ? [...pre, ...dots, ...post] : [...pre];
    if (!rhs.includes('...') && maxEllipsis > 0) throw new ValueError(`${fn}: operands use '...' but the output '${rhs}' does not`);
    if (new Set(outLetters).size !== outLetters.length) throw new ValueError(`${fn}: output '${rhs}' repeats a letter`);
  }
  // f16: every sum and contraction in f32 and one rounding of the result (a chain of contractions would otherwise
  // round each intermediate product to f16).
  if (dtypes[0] === 'f16') return inF32('f16', tensors, (...wide) => einsum(equation, ...wide));
  return tidy(() => {
    let terms: Term[] = letterLists.map((ls, i) => {
      const d = diagonal(tensors[i], ls);
      // Broadcast size-1 dims to the letter's size where another operand has it larger.
      const target = d.letters.map((l) => size.get(l)!);
      return target.every((s, k) => s === d.t.shape[k]) ? d : { t: expand(d.t, target), letters: d.letters };
    });
    const neededAfter = (k: number): Set<string> => new Set([...outLetters, ...terms.slice(k).flatMap((t) => t.letters)]);
    terms = terms.map((term, i) => sumOut(term, (l) => outLetters.includes(l) || terms.some((o, j) => j !== i && o.letters.includes(l))));
    let acc = terms[0];
    for (let k = 1; k < terms.length; k++) {
      acc = contract(acc, terms[k], neededAfter(k + 1), size);
    }
    acc = sumOut(acc, (l) => outLetters.includes(l));
    const out = permuteTo(acc, outLetters);
    return out === tensors[0] ? reshape(out, out.shape) : out;
  });
}
