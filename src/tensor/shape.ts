// Shape rules: validation, strides, broadcasting. Pure functions, no GPU.
import { ShapeError, fmtShape } from '../errors.js';

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function checkShape(fn: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new ShapeError(`${fn}: shape must be an array of sizes, got ${JSON.stringify(shape)}`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new ShapeError(`${fn}: shape ${JSON.stringify(shape)} has an invalid size ${JSON.stringify(d)} (sizes are integers >= 0)`);
    }
  }
  if (shape.length > 8) throw new ShapeError(`${fn}: shape ${fmtShape(shape)} has ${shape.length} dims; kiln supports at most 8`);
  return shape.slice();
}

/** Normalizes a possibly negative dim; throws naming the function and the shape. */
export function normDim(fn: string, dim: number, rank: number, shape?: readonly number[]): number {
  const r = Math.max(rank, 1);
  if (!Number.isInteger(dim) || dim < -r || dim >= r) {
    throw new ShapeError(`${fn}: dim ${dim} is out of range for a tensor of ${rank} dims${shape ? ` ${fmtShape(shape)}` : ''} (valid: ${-r}..${r - 1})`);
  }
  return dim < 0 ? dim + r : dim;
}

export function broadcastShapes(fn: string, ...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i];
      if (out[o] === 1) out[o] = d;
      else if (d !== 1 && d !== out[o]) {
        throw new ShapeError(`${fn}: shapes ${shapes.map(fmtShape).join(' and ')} do not broadcast (dim ${o - rank}: ${out[o]} vs ${d})`);
      }
    }
  }
  return out;
}

/** Strides of `shape`/`strides` viewed as `target` (broadcast dims get stride 0). */
export function broadcastStrides(shape: readonly number[], strides: readonly number[], target: readonly number[]): number[] {
  const out = new Array<number>(target.length).fill(0);
  const off = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) out[off + i] = shape[i] === 1 && target[off + i] !== 1 ? 0 : strides[i];
  return out;
}

export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== acc) return false;
    acc *= shape[i];
  }
  return true;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
