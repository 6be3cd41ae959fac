// NaN and infinities in every input position of attention (q, k, v, the float mask, rows and keys the masks exclude),
// forward and backward, for the fused kernels (f32, and f16 native or widened, and f16 on the matrix-unit forward's
// portable body), the reference path and
// attentionWeights, against the float64 reference: a NaN or +inf score makes its row NaN (output, lse, gradients), a row
// of -inf scores is NaN, a -inf score alone gets weight 0, and only masking excludes a key. A row no key may be seen by
// gives zeros and zero gradients whatever its values hold.
import { describe, expect, it } from 'vitest';
import { F, type Tensor, deviceInfo, memory, tensor, tidy } from '../../src/index.node';
import { setFlag } from '../../src/experimental';
import { type Ref, ref } from '../reference/core';
import { type SdpaOptions, sdpa, sdpaBackward } from '../reference/attention';
import { nearestHalf } from '../reference/half';
import { rnd } from '../helpers';

// 'fused' runs the default forward kernel; 'fused tiled' and 'fused rows' force attention.forwardKernel.
type Path = 'fused' | 'reference' | 'fused f16' | 'fused f16 widened' | 'fused f16 matrix' | 'fused tiled' | 'fused rows';

interface Plant {
  /** Which input: q, k, v or the float mask. */
  at: 'q' | 'k' | 'v' | 'mask';
  /** Flat index into it. */
  index: number[];
  value: number;
}

interface Scenario {
  name: string;
  plants: Plant[];
  causal?: boolean | 'upperLeft' | 'lowerRight';
  mask?: 'bool' | 'float' | 'keys';
  /** Sets k[..., 0] to 0.5 everywhere (so a -inf in q[..., 0] makes every score of its row -inf). */
  positiveK0?: boolean;
}

const [B, H, Nq, Nk, D, Dv] = [1, 2, 5, 6, 8, 8];
const shapes = { q: [B, H, Nq, D], k: [B, H, Nk, D], v: [B, H, Nk, Dv], mask: [Nq, Nk] };
const flat = (shape: number[], idx: number[]) => idx.reduce((a, x, i) => a * shape[i] + x, 0);

// bool mask [Nq, Nk]: row 3 sees nothing, row 1 sees keys 0..2, the others all but key 5.
const boolMask = ref(Array.from({ length: Nq * Nk }, (_, e) => {
  const i = Math.floor(e / Nk), j = e % Nk;
  return i === 3 ? 0 : i === 1 ? (j <= 2 ? 1 : 0) : j === 5 ? 0 : 1;
}), [Nq, Nk]);
// float mask [Nq, Nk]: row 4 all -inf (no admissible key), some -inf elsewhere, finite biases.
function floatMask(): Ref {
  const r = rnd([Nq, Nk], 77, -1, 1);
  for (let j = 0; j < Nk; j++) r.data[4 * Nk + j] = -Infinity;
  r.data[0 * Nk + 5] = -Infinity;
  r.data[2 * Nk + 0] = -Infinity;
  return r;
}
// key mask [B, 1, 1, Nk]: keys 4 and 5 are padding for every query.
const keyMask = ref([1, 1, 1, 1, 0, 0], [B, 1, 1, Nk]);

const scenarios: Scenario[] = [
  {
    name: 'NaN and inf in q, one of them in a row the bool mask hides',
    mask: 'bool',
    plants: [
      { at: 'q', index: [0, 0, 1, 3], value: NaN },
      { at: 'q', index: [0, 1, 3, 0], value: Infinity },   // row 3: fully masked
      { at: 'q', index: [0, 1, 2, 5], value: -Infinity },
    ],
  },
  {
    name: 'NaN and +inf in k under causal (some rows cannot see them)',
    causal: true,
    plants: [
      { at: 'k', index: [0, 0, 2, 1], value: NaN },
      { at: 'k', index: [0, 1, 4, 0], value: Infinity },   // -inf scores where q[..., 0] < 0, +inf where > 0
    ],
  },
  {
    name: 'NaN and -inf in v, bottom-right causal',
    causal: 'lowerRight',
    plants: [
      { at: 'v', index: [0, 0, 1, 2], value: NaN },
      { at: 'v', index: [0, 1, 3, 5], value: -Infinity },
      { at: 'v', index: [0, 1, 5, 0], value: NaN },          // the last key: only the last row sees it
    ],
  },
  {
    name: 'NaN, +inf and -inf in the float mask, a row of -inf',
    mask: 'float',
    plants: [
      { at: 'mask', index: [0, 1], value: NaN },
      { at: 'mask', index: [2, 3], value: Infinity },
      { at: 'mask', index: [1, 2], value: -Infinity },
    ],
  },
  {
    name: 'a row whose scores are all -inf (from the data) is NaN',
    positiveK0: true,
    plants: [{ at: 'q', index: [0, 0, 2, 0], value: -Infinity }],
  },
  {
    name: 'padding keys (masked for every query) full of NaN change nothing',
    mask: 'keys',
    plants: [
      { at: 'k', index: [0, 0, 4, 1], value: NaN }, { at: 'k', index: [0, 1, 5, 3], value: Infinity },
      { at: 'v', index: [0, 0, 5, 2], value: NaN }, { at: 'v', index: [0, 1, 4, 0], value: -Infinity },
    ],
  },
  {
    name: 'a bool-masked row and key hold NaN in q, k and v',
    mask: 'bool',
    plants: [
      { at: 'q', index: [0, 0, 3, 0], value: NaN }, { at: 'q', index: [0, 1, 3, 7], value: NaN },
      { at: 'k', index: [0, 0, 5, 0], value: NaN }, { at: 'v', index: [0, 1, 5, 1], value: Infinity },
    ],
  },
];

/** Elementwise: NaN where NaN is expected, the same infinity, else within tolerance. */
function expectSame(got: ArrayLike<number>, want: ArrayLike<number>, tol: { atol: number; rtol: number }, label: string): void {
  expect(got.length, `${label} length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    const ok = Number.isNaN(w) ? Number.isNaN(g) : !Number.isFinite(w) ? g === w : Number.isFinite(g) && Math.abs(g - w) <= tol.atol + tol.rtol * Math.abs(w);
    if (!ok) expect.fail(`${label}[${i}]: got ${g}, expected ${w}`);
  }
}

function inputs(sc: Scenario, f16: boolean): { q: Ref; k: Ref; v: Ref; mask: Ref | null } {
  const round = (r: Ref) => {
    if (f16) for (let i = 0; i < r.data.length; i++) r.data[i] = nearestHalf(r.data[i]);
    return r;
  };
  const q = round(rnd(shapes.q, 11)), k = round(rnd(shapes.k, 12)), v = round(rnd(shapes.v, 13));
  if (sc.positiveK0) for (let j = 0; j < B * H * Nk; j++) k.data[j * D] = 0.5;
  const mask = sc.mask === 'float' ? floatMask() : sc.mask === 'bool' ? boolMask : sc.mask === 'keys' ? keyMask : null;
  const planted = { q, k, v, mask: mask ? ref(Array.from(mask.data), mask.shape) : null };
  for (const pl of sc.plants) {
    const target = planted[pl.at]!;
    target.data[flat(target.shape as number[], pl.index)] = pl.value;
  }
  return planted;
}

async function check(sc: Scenario, path: Path): Promise<void> {
  const f16 = path.includes('f16');
  const before = memory().buffers;
  const r = inputs(sc, f16);
  const opts: SdpaOptions = {
    isCausal: sc.causal,
    boolMask: sc.mask === 'bool' || sc.mask === 'keys' ? r.mask! : undefined,
    floatMask: sc.mask === 'float' ? r.mask! : undefined,
    maskedProducts: path === 'reference' ? 'zero' : 'skip',
  };
  const want = sdpa(r.q, r.k, r.v, opts);
  const dOr = rnd(want.out.shape, 14);
  const wantG = sdpaBackward(r.q, r.k, r.v, dOr, opts);
  const dtype = f16 ? 'f16' : 'f32';
  const mk = (x: Ref) => tensor(Float32Array.from(x.data), { shape: [...x.shape], dtype, requiresGrad: true });
  const q = mk(r.q), k = mk(r.k), v = mk(r.v);
  const mask = !r.mask ? null
    : sc.mask === 'float' ? tensor(Float32Array.from(r.mask.data), { shape: [...r.mask.shape], requiresGrad: true })
    : tensor(Uint8Array.from(r.mask.data), { shape: [...r.mask.shape], dtype: 'bool' });
  const dO = tensor(Float32Array.from(dOr.data), { shape: [...dOr.shape] });
  const impl = path === 'reference' ? 'reference' : 'fused';
  if (f16) setFlag('attention.f16', path === 'fused f16 widened' ? 'widen' : 'native');
  if (path === 'fused f16 matrix') setFlag('attention.matrixBody', 'portable');
  if (path === 'fused tiled' || path === 'fused rows') setFlag('attention.forwardKernel', path === 'fused tiled' ? 'tiled' : 'rows');
  try {
    const out = F.scaledDotProductAttention(q, k, v, { attnMask: mask, isCausal: sc.causal, impl });
    const tol = f16 ? { atol: 2e-3, rtol: 5e-3 } : { atol: 2e-5, rtol: 1e-4 };
    expectSame(await out.toArray(), want.out.data, tol, `${path} ${sc.name} out`);
    const loss = tidy(() => out.float().mul(dO).sum());
    loss.backward();
    const gtol = f16 ? { atol: 3e-3, rtol: 1e-2 } : { atol: 1e-4, rtol: 1e-3 };
    for (const [name, t, w] of [['dq', q, wantG.dq], ['dk', k, wantG.dk], ['dv', v, wantG.dv]] as const) {
      expectSame(await t.grad!.toArray(), w.data, gtol, `${path} ${sc.name} ${name}`);
    }
    if (sc.mask === 'float') expectSame(await mask!.grad!.toArray(), wantG.dFloatMask!.data, gtol, `${path} ${sc.name} dmask`);
    for (const t of [out, loss]) t.dispose();
  } finally {
    setFlag('attention.f16', undefined);
    setFlag('attention.matrixBody', undefined);
    setFlag('attention.forwardKernel', undefined);
    for (const t of [q, k, v, dO, ...(mask ? [mask] : [])]) t.dispose();
  }
  expect(memory().buffers, `${path} ${sc.name} leaks`).toBe(before);
}

describe('attention with NaN and infinities', () => {
  for (const path of ['fused', 'reference', 'fused f16', 'fused f16 widened', 'fused f16 matrix', 'fused tiled', 'fused rows'] as const) {
    for (const sc of scenarios) {
      it(`${path}: ${sc.name}`, async (ctx) => {
        if ((path === 'fused f16' || path === 'fused f16 matrix') && !deviceInfo().features.includes('shader-f16')) ctx.skip();
        const sg = deviceInfo().subgroups;
        if (path === 'fused rows' && !(sg?.inOrder && sg.minSize === 8 && sg.maxSize === 8)) ctx.skip();
        await check(sc, path);
        // The matrix path's first case compiles its pipelines (minutes for lavapipe's LLVM on a loaded machine).
      }, path === 'fused f16 matrix' && sc === scenarios[0] ? 600_000 : undefined);
    }
  }

  it('attentionWeights: a NaN row is NaN, a row of -inf scores is NaN, a fully masked row is zeros', async () => {
    for (const sc of [scenarios[0], scenarios[3], scenarios[4]]) {
      const r = inputs(sc, false);
      const opts: SdpaOptions = { isCausal: sc.causal, boolMask: sc.mask === 'bool' ? r.mask! : undefined, floatMask: sc.mask === 'float' ? r.mask! : undefined };
      const want = sdpa(r.q, r.k, r.v, opts).probs;
      const q = tensor(Float32Array.from(r.q.data), { shape: [...r.q.shape] }), k = tensor(Float32Array.from(r.k.data), { shape: [...r.k.shape] });
      const mask: Tensor | null = !r.mask ? null
        : sc.mask === 'float' ? tensor(Float32Array.from(r.mask.data), { shape: [...r.mask.shape] })
        : tensor(Uint8Array.from(r.mask.data), { shape: [...r.mask.shape], dtype: 'bool' });
      const w = F.attentionWeights(q, k, { attnMask: mask, isCausal: sc.causal });
      expectSame(await w.toArray(), want.data, { atol: 1e-6, rtol: 1e-5 }, `attentionWeights ${sc.name}`);
      for (const t of [q, k, w, ...(mask ? [mask] : [])]) t.dispose();
    }
  });
});
