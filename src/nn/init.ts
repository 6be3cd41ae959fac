// Seeded parameter initialisation, as PyTorch's defaults (the numbers differ from torch's RNG, the distributions do not).
import { ValueError } from '../errors.js';
import type { Tensor } from '../ops/tensor.js';
import { tensor } from '../ops/creation.js';
import { nextSeed, normals, uniforms } from '../tensor/random.js';

export function checkSeed(fn: string, seed: number | undefined): number {
  if (seed === undefined) return nextSeed();
  if (!Number.isInteger(seed) || seed < 0) throw new ValueError(`${fn}: seed must be a non-negative integer, got ${seed}`);
  return seed >>> 0;
}

/** U(-bound, bound) of `shape`, a fresh leaf that requires grad. stream separates tensors drawn from one seed. */
export function uniformParam(shape: number[], bound: number, seed: number, stream: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const u = uniforms(n, seed, stream);
  for (let i = 0; i < n; i++) u[i] = (u[i] * 2 - 1) * bound;
  return tensor(u, { shape, requiresGrad: true });
}

/** N(0, std^2) of `shape`, a fresh leaf that requires grad. stream separates tensors drawn from one seed. */
export function normalParam(shape: number[], std: number, seed: number, stream: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const g = normals(n, seed, stream);
  if (std !== 1) for (let i = 0; i < n; i++) g[i] *= std;
  return tensor(g, { shape, requiresGrad: true });
}

export function constParam(shape: number[], value: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(new Float32Array(n).fill(value), { shape, requiresGrad: true });
}

export function checkPositiveInt(fn: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw new ValueError(`${fn}: ${name} must be a positive integer, got ${v}`);
}
