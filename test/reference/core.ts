// Float64 CPU tensors for the reference implementations that kiln's GPU ops are tested against.
//
// Everything here is deliberately naive: contiguous row-major Float64Arrays, explicit index arithmetic and
// no sharing with src/. A reference that reused kiln's own shape or broadcasting code would agree with a
// bug in it, so this file re-derives PyTorch's rules on its own.

export interface Ref {
  data: Float64Array;
  shape: number[];
}

export interface AllCloseOptions {
  atol: number;
  rtol: number;
  /** Count NaN in both places as a match (PyTorch's equal_nan). Off by default: a NaN is usually a bug. */
  equalNan?: boolean | undefined;
}

export interface AllCloseResult {
  ok: boolean;
  /** Index of the element that misses its tolerance by the most (when all pass: the one nearest to failing); -1 when empty. */
  worstIndex: number;
  worstActual: number;
  worstExpected: number;
  /** How far the worst element is from its expected value, |actual - expected| (Infinity/NaN when those are). */
  worstDiff: number;
  message: string;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/** Row-major strides in elements; a size-1 dim gets the stride it would have anyway (never used to step). */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

function checkShape(shape: readonly number[], who: string): void {
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 0) throw new Error(`${who}: invalid shape ${fmtShape(shape)}`);
  }
}

/** Copies `data` into a fresh Float64Array, so later edits by the caller cannot change the reference. */
export function ref(data: ArrayLike<number>, shape: readonly number[]): Ref {
  checkShape(shape, 'ref');
  const n = numel(shape);
  if (data.length !== n) {
    throw new Error(`ref: ${data.length} values do not fill shape ${fmtShape(shape)} (${n} elements)`);
  }
  return { data: Float64Array.from(data), shape: [...shape] };
}

export function scalar(value: number): Ref {
  return { data: Float64Array.of(value), shape: [] };
}

export function zeros(shape: readonly number[]): Ref {
  checkShape(shape, 'zeros');
  return { data: new Float64Array(numel(shape)), shape: [...shape] };
}

export function full(shape: readonly number[], value: number): Ref {
  const z = zeros(shape);
  z.data.fill(value);
  return z;
}

export function clone(x: Ref): Ref {
  return { data: Float64Array.from(x.data), shape: [...x.shape] };
}

/** Wraps a negative dim the way PyTorch does and rejects out-of-range ones. */
export function normalizeDim(dim: number, rank: number, who = 'dim'): number {
  // A 0-d tensor still accepts dim 0 / -1 in PyTorch, as if it had one dim of size 1.
  const r = Math.max(rank, 1);
  if (!Number.isInteger(dim) || dim < -r || dim >= r) {
    throw new Error(`${who}: dim ${dim} is out of range for a tensor of rank ${rank}`);
  }
  return dim < 0 ? dim + r : dim;
}

export function reshape(x: Ref, shape: readonly number[]): Ref {
  const target = [...shape];
  const inferred = target.indexOf(-1);
  if (inferred >= 0) {
    const known = numel(target.filter((_, i) => i !== inferred));
    target[inferred] = known === 0 ? 0 : x.data.length / known;
  }
  checkShape(target, 'reshape');
  if (numel(target) !== x.data.length) {
    throw new Error(`reshape: cannot view ${fmtShape(x.shape)} as ${fmtShape(shape)}`);
  }
  return { data: Float64Array.from(x.data), shape: target };
}

/** The multi-index of flat position `flat` in a row-major tensor of `shape`. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    const s = shape[d];
    idx[d] = flat % s;
    flat = Math.floor(flat / s);
  }
  return idx;
}

/**
 * PyTorch broadcasting: align shapes on the right; each dim pair must be equal or contain a 1.
 * Throws naming every shape, because a silent broadcast in a reference hides the bug it should catch.
 */
export function broadcastShapes(...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const d = rank - s.length + i;
      const size = s[i];
      if (size === 1) continue;
      if (out[d] === 1) out[d] = size;
      else if (out[d] !== size) {
        throw new Error(
          `broadcastShapes: shapes ${shapes.map(fmtShape).join(', ')} do not broadcast (dim ${d - rank}: ${out[d]} vs ${size})`,
        );
      }
    }
  }
  return out;
}

/**
 * For each dim of `target`, the stride to step `source` by when that output index advances: 0 where the
 * source is broadcast (missing or size 1), its own stride otherwise. This is the whole of broadcasting.
 */
export function broadcastStrides(source: readonly number[], target: readonly number[]): number[] {
  if (source.length > target.length) {
    throw new Error(`broadcast: ${fmtShape(source)} has more dims than ${fmtShape(target)}`);
  }
  const own = stridesOf(source);
  const offset = target.length - source.length;
  const out = new Array<number>(target.length).fill(0);
  for (let i = 0; i < source.length; i++) {
    const d = offset + i;
    if (source[i] === target[d]) out[d] = source[i] === 1 ? 0 : own[i];
    else if (source[i] === 1) out[d] = 0;
    else throw new Error(`broadcast: cannot broadcast ${fmtShape(source)} to ${fmtShape(target)}`);
  }
  return out;
}

/** Flat offsets into `source` for every element of `target`, in row-major order of `target`. */
export function broadcastIndex(source: readonly number[], target: readonly number[]): Float64Array {
  const bs = broadcastStrides(source, target);
  const n = numel(target);
  const out = new Float64Array(n);
  const idx = new Array<number>(target.length).fill(0);
  let off = 0;
  for (let flat = 0; flat < n; flat++) {
    out[flat] = off;
    // Odometer increment: carry from the last dim, undoing each wrapped dim's contribution.
    for (let d = target.length - 1; d >= 0; d--) {
      idx[d]++;
      off += bs[d];
      if (idx[d] < target[d]) break;
      off -= bs[d] * idx[d];
      idx[d] = 0;
    }
  }
  return out;
}

export function broadcastTo(x: Ref, shape: readonly number[]): Ref {
  const target = [...shape];
  const src = broadcastIndex(x.shape, target);
  const data = new Float64Array(src.length);
  for (let i = 0; i < src.length; i++) data[i] = x.data[src[i]];
  return { data, shape: target };
}

/**
 * The gradient of a broadcast: sums `grad` (shaped like the broadcast result) back down to `shape`,
 * over the leading dims that broadcasting added and the dims where `shape` has a 1.
 */
export function reduceToShape(grad: Ref, shape: readonly number[]): Ref {
  // Validates that `shape` really broadcasts to grad.shape.
  const dst = broadcastIndex(shape, grad.shape);
  const data = new Float64Array(numel(shape));
  for (let i = 0; i < dst.length; i++) data[dst[i]] += grad.data[i];
  return { data, shape: [...shape] };
}

export function permute(x: Ref, dims: readonly number[]): Ref {
  const rank = x.shape.length;
  if (dims.length !== rank) throw new Error(`permute: ${dims.length} dims given for a tensor of rank ${rank}`);
  const norm = dims.map((d) => normalizeDim(d, rank, 'permute'));
  if (new Set(norm).size !== rank) throw new Error(`permute: dims [${dims.join(',')}] repeat a dim`);
  const inStrides = stridesOf(x.shape);
  const outShape = norm.map((d) => x.shape[d]);
  const stepStrides = norm.map((d) => inStrides[d]);
  const n = x.data.length;
  const data = new Float64Array(n);
  const idx = new Array<number>(rank).fill(0);
  let off = 0;
  for (let flat = 0; flat < n; flat++) {
    data[flat] = x.data[off];
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      off += stepStrides[d];
      if (idx[d] < outShape[d]) break;
      off -= stepStrides[d] * idx[d];
      idx[d] = 0;
    }
  }
  return { data, shape: outShape };
}

export function transpose(x: Ref, d0: number, d1: number): Ref {
  const rank = x.shape.length;
  const a = normalizeDim(d0, rank, 'transpose');
  const b = normalizeDim(d1, rank, 'transpose');
  const dims = x.shape.map((_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

export interface Rng {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Standard normal. */
  normal(): number;
}

/**
 * mulberry32 for uniforms, Box-Muller for normals. Only the references' own test inputs come from here;
 * it is not kiln's counter-based generator and tests must not expect the two to agree.
 */
export function rng(seed: number): Rng {
  let state = seed >>> 0;
  const next32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  // 53 random bits so that uniform() can land on every double in [0, 1) a float64 test might care about.
  const uniform = (): number => {
    const hi = next32() >>> 5;
    const lo = next32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  };
  let spare: number | null = null;
  const normal = (): number => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    // 1 - u keeps the log argument in (0, 1], so it is never log(0).
    const u1 = 1 - uniform();
    const u2 = uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  };
  return { uniform, normal };
}

export function randArr(shape: readonly number[], seed: number, lo = -1, hi = 1): Ref {
  const r = rng(seed);
  const x = zeros(shape);
  for (let i = 0; i < x.data.length; i++) x.data[i] = lo + (hi - lo) * r.uniform();
  return x;
}

export function randn(shape: readonly number[], seed: number): Ref {
  const r = rng(seed);
  const x = zeros(shape);
  for (let i = 0; i < x.data.length; i++) x.data[i] = r.normal();
  return x;
}

function dataOf(x: ArrayLike<number> | Ref): ArrayLike<number> {
  return 'data' in x && 'shape' in x ? (x as Ref).data : (x as ArrayLike<number>);
}

/** Largest |a[i] - b[i]|; NaN anywhere makes the result NaN so it cannot pass a `<` check by accident. */
export function maxAbsDiff(a: ArrayLike<number> | Ref, b: ArrayLike<number> | Ref): number {
  const x = dataOf(a);
  const y = dataOf(b);
  if (x.length !== y.length) throw new Error(`maxAbsDiff: lengths differ (${x.length} vs ${y.length})`);
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    if (x[i] === y[i]) continue; // equal infinities are a match, not Inf - Inf = NaN
    const d = Math.abs(x[i] - y[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > worst) worst = d;
  }
  return worst;
}

/**
 * PyTorch's allclose rule per element: |actual - expected| <= atol + rtol * |expected|.
 * Equal values (including equal infinities) always match. Reports the element that misses its tolerance by the
 * most, with its index, so a failing GPU test says where it went wrong rather than only that it did.
 */
export function allClose(
  actual: ArrayLike<number> | Ref,
  expected: ArrayLike<number> | Ref,
  { atol, rtol, equalNan = false }: AllCloseOptions,
): AllCloseResult {
  const a = dataOf(actual);
  const e = dataOf(expected);
  if (a.length !== e.length) {
    return {
      ok: false,
      worstIndex: -1,
      worstActual: NaN,
      worstExpected: NaN,
      worstDiff: NaN,
      message: `allClose: lengths differ (actual ${a.length}, expected ${e.length})`,
    };
  }
  let ok = true;
  let worstIndex = -1;
  let worstExcess = -Infinity;
  let failures = 0;
  for (let i = 0; i < a.length; i++) {
    const av = a[i];
    const ev = e[i];
    let excess: number;
    if (av === ev || (equalNan && Number.isNaN(av) && Number.isNaN(ev))) {
      excess = -(atol + rtol * Math.abs(ev)); // an exact match is as good as it gets
    } else if (Number.isNaN(av) || Number.isNaN(ev) || !Number.isFinite(av) || !Number.isFinite(ev)) {
      excess = Infinity; // a NaN or an infinity that is not matched exactly cannot be close
    } else {
      excess = Math.abs(av - ev) - (atol + rtol * Math.abs(ev));
    }
    if (excess > 0) {
      ok = false;
      failures++;
    }
    if (worstIndex < 0 || excess > worstExcess) {
      worstExcess = excess;
      worstIndex = i;
    }
  }
  const worstActual = worstIndex >= 0 ? a[worstIndex] : NaN;
  const worstExpected = worstIndex >= 0 ? e[worstIndex] : NaN;
  const worstDiff = worstIndex >= 0 ? Math.abs(worstActual - worstExpected) : 0;
  const message = ok
    ? `allClose: ${a.length} elements within atol=${atol}, rtol=${rtol}`
    : `allClose: ${failures} of ${a.length} elements outside atol=${atol}, rtol=${rtol}; ` +
      `worst at index ${worstIndex}: actual ${worstActual}, expected ${worstExpected} (|diff| ${worstDiff})`;
  return { ok, worstIndex, worstActual, worstExpected, worstDiff, message };
}
