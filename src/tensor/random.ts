// Counter-based random numbers (Philox4x32-10): the same seed gives the same numbers on every
// adapter because they are generated here, bit-exactly, and the GPU kernels use the same function.
import { ValueError } from '../errors.js';
import { noteSeedDraw } from '../gpu/recorder.js';

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

function mulhi(a: number, b: number): number {
  // High 32 bits of a 32x32 unsigned product, from 16-bit halves.
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const lo = a0 * b0;
  const m1 = a1 * b0;
  const m2 = a0 * b1;
  const hi = a1 * b1;
  const mid = (lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  return (hi + (m1 >>> 16) + (m2 >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32 with 10 rounds; writes four 32-bit words into out. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  for (let r = 0; r < 10; r++) {
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi0 = mulhi(M0, c0 >>> 0);
    const lo1 = Math.imul(M1, c2) >>> 0;
    const hi1 = mulhi(M1, c2 >>> 0);
    const n0 = (hi1 ^ c1 ^ k0) >>> 0;
    const n1 = lo1;
    const n2 = (hi0 ^ c3 ^ k1) >>> 0;
    const n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0 >>> 0; out[1] = c1 >>> 0; out[2] = c2 >>> 0; out[3] = c3 >>> 0;
}

export function uniformFromU32(x: number): number {
  return (x >>> 8) * (1 / 16777216);
}

/** Whether the fused attention kernels keep element (bh, i, j) under dropout p (same as random.wgsl). */
export function attnDropoutKeep(seed0: number, seed1: number, bh: number, i: number, j: number, p: number): boolean {
  const w = new Uint32Array(4);
  philox4x32(j >>> 0, i >>> 0, bh >>> 0, 0x5a17, seed0 >>> 0, seed1 >>> 0, w);
  // The kernels see p as an f32.
  return uniformFromU32(w[0]) >= Math.fround(p);
}

let globalSeed = 0x5eed;
let globalCounter = 0;
export function manualSeed(seed: number): void {
  globalSeed = seed >>> 0;
  globalCounter = 0;
}
/** The global generator's state (its seed and how many seeds it has drawn), as torch.get_rng_state. */
export interface RngState {
  seed: number;
  counter: number;
}
export function getRngState(): RngState {
  return { seed: globalSeed, counter: globalCounter };
}
/** Restores what getRngState() returned, so the draws that follow repeat those that followed it. */
export function setRngState(state: RngState): void {
  const ok = (v: unknown, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
  if (!state || typeof state !== 'object' || !ok(state.seed, 0xffffffff) || !ok(state.counter, Number.MAX_SAFE_INTEGER)) {
    throw new ValueError(`setRngState: expects { seed, counter } as getRngState() returns (non-negative integers), got ${JSON.stringify(state)}`);
  }
  globalSeed = state.seed >>> 0;
  globalCounter = state.counter;
}
/** A fresh seed for calls that were not given one, drawn reproducibly from the global seed. */
export function nextSeed(): number {
  const w = new Uint32Array(4);
  philox4x32(globalCounter++, 0, 0, 0x7777, globalSeed, 0x1234567, w);
  // A compiled step's replay draws here again, and re-derives what this seed fed (uniform fields, dropout masks).
  noteSeedDraw(w[0], nextSeed);
  return w[0];
}

/** n uniforms in [0, 1) from a seed; stream distinguishes independent uses of one seed. */
export function uniforms(n: number, seed: number, stream = 0): Float32Array {
  const out = new Float32Array(n);
  const w = new Uint32Array(4);
  for (let i = 0; i < n; i += 4) {
    philox4x32(i >>> 2, stream, 0, 0x52a7, seed >>> 0, 0, w);
    for (let k = 0; k < 4 && i + k < n; k++) out[i + k] = uniformFromU32(w[k]);
  }
  return out;
}

/** n standard normals (Box-Muller on pairs of uniforms). */
export function normals(n: number, seed: number, stream = 0): Float32Array {
  const out = new Float32Array(n);
  const w = new Uint32Array(4);
  for (let i = 0; i < n; i += 4) {
    philox4x32(i >>> 2, stream, 1, 0x52a7, seed >>> 0, 0, w);
    for (let k = 0; k < 4; k += 2) {
      // Offset by half a step so the log never sees 0.
      const u1 = ((w[k] >>> 8) + 0.5) / 16777216;
      const u2 = (w[k + 1] >>> 8) / 16777216;
      const r = Math.sqrt(-2 * Math.log(u1));
      if (i + k < n) out[i + k] = r * Math.cos(2 * Math.PI * u2);
      if (i + k + 1 < n) out[i + k + 1] = r * Math.sin(2 * Math.PI * u2);
    }
  }
  return out;
}
