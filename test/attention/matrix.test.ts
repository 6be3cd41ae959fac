// The matrix-unit attention (kernels/attention_mma.wgsl) through its portable body, which CI runs (flag
// attention.matrixBody = 'portable'; on a GPU with a trusted subgroup-matrix config the same cases run the builtins'
// body by default): forward and gradients against the float64 reference evaluated on the same f16-rounded inputs, for
// f16 tensors and for f32 ones under setMatmulPrecision('medium'); masks, causal alignments, GQA, dropout (the scalar
// kernels' Philox stream), fully masked rows, NaN and infinity; and the plan's routing (mods, 'highest').
import { afterEach, describe, expect, it } from 'vitest';
import {
  F, type Tensor, deviceInfo, memory, setMatmulPrecision, tensor, tidy, permute,
} from '../../src/index.node';
import { planAttention } from '../../src/attention/plan';
import { mmaBackwardBytes, mmaTileBytes } from '../../src/attention/matrix';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { setFlag, startGpuTimer, hasTimestampQuery } from '../../src/experimental';
import { attnDropoutKeep } from '../../src/tensor/random';
import { type Ref, allClose, ref } from '../reference/core';
import { type SdpaOptions, sdpa, sdpaBackward } from '../reference/attention';
import { nearestHalf } from '../reference/half';
import { poison, rnd } from '../helpers';

const hasF16 = () => deviceInfo().features.includes('shader-f16');

type Io = 'f16' | 'f32';

interface Case {
  name: string;
  q: number[];
  k: number[];
  v: number[];
  causal?: true | 'lowerRight';
  /** A bool key mask [B, 1, 1, Nk] whose batch 1 masks every key (zero rows, zero gradients). */
  keyMask?: boolean;
  /** A float mask [Nq, Nk] with some -inf entries, requiring grad. */
  bias?: boolean;
  dropout?: number;
  logitScale?: number;
  /** Inputs permuted from [B, N, H, D] (strided views). */
  strided?: boolean;
}

/** Random values already rounded to binary16, so the GPU and the float64 reference see the same numbers. */
function rndHalf(shape: number[], seed: number, scale = 1): Ref {
  const r = rnd(shape, seed);
  for (let i = 0; i < r.data.length; i++) r.data[i] = nearestHalf(r.data[i] * scale);
  return r;
}

const make = (r: Ref, io: Io, requiresGrad = false): Tensor => tensor(Float32Array.from(r.data), { shape: [...r.shape], dtype: io, requiresGrad });

// p is rounded to f16 before P V (as FlashAttention's f16 kernels): each weight is off by at most half an f16 ulp
// (2^-11 relative), so o_i = sum_j p_ij v_ij / l_i is off by at most 2^-11 max|v| = 4.9e-4 with |v| <= 1; f16 outputs
// are rounded once more (4.9e-4 relative).
const OUT_TOL = { atol: 5e-4, rtol: 1e-3 };
// The backward rounds P z and dS to f16 for its products (as FlashAttention's f16 backward), and delta = rowsum(dO o)
// carries o's error into dS.
const GRAD_TOL = { atol: 1.5e-3, rtol: 3e-3 };

async function check(c: Case, io: Io, seed: number): Promise<void> {
  const before = memory().buffers;
  const s = c.logitScale ? Math.sqrt(c.logitScale) : 1;
  const qr = rndHalf(c.q, seed, s), kr = rndHalf(c.k, seed + 1, s), vr = rndHalf(c.v, seed + 2);
  const Nq = c.q.at(-2)!, Nk = c.k.at(-2)!, Hq = c.q.length === 4 ? c.q[1] : 1;
  const B = c.q[0];
  const boolMask = c.keyMask ? ref(Array.from({ length: B * Nk }, (_, i) => ((i % Nk) % 3 === 1 || (i >= Nk && i < 2 * Nk) ? 0 : 1)), [B, 1, 1, Nk]) : undefined;
  const floatMask = c.bias ? ref(rndHalf([Nq, Nk], seed + 3, 2).data.map((x, i) => ((i * 7919) % 11 === 0 ? -Infinity : x)), [Nq, Nk]) : undefined;
  const dropSeed = 77;
  const dropoutMask = c.dropout ? (b: number, h: number, i: number, j: number) => (attnDropoutKeep(dropSeed, 0, b * Hq + h, i, j, c.dropout!) ? 1 / (1 - c.dropout!) : 0) : undefined;
  const opts: SdpaOptions = { isCausal: c.causal, boolMask, floatMask, dropoutMask };
  const want = sdpa(qr, kr, vr, opts);
  const dOr = rndHalf(want.out.shape as number[], seed + 5);
  const wantG = sdpaBackward(qr, kr, vr, dOr, opts);
  poison([c.q, c.k, c.v, want.out.shape], 4096);
  const lift = (r: Ref): Tensor => {
    if (!c.strided) return make(r, io, true);
    // [B, H, N, D] data as a permuted view of a [B, N, H, D] tensor that requires grad.
    const [b, h, n, d] = r.shape;
    const t = new Float32Array(r.data.length);
    for (let i = 0; i < r.data.length; i++) {
      const dd = i % d, nn = Math.floor(i / d) % n, hh = Math.floor(i / (d * n)) % h, bb = Math.floor(i / (d * n * h));
      t[((bb * n + nn) * h + hh) * d + dd] = r.data[i];
    }
    return tensor(t, { shape: [b, n, h, d], dtype: io, requiresGrad: true });
  };
  const leaves = [lift(qr), lift(kr), lift(vr)];
  const [q, k, v] = c.strided ? leaves.map((t) => permute(t, [0, 2, 1, 3])) : leaves;
  const mask = boolMask
    ? tensor(Uint8Array.from(boolMask.data), { shape: [...boolMask.shape], dtype: 'bool' })
    : floatMask ? tensor(Float32Array.from(floatMask.data), { shape: [Nq, Nk], requiresGrad: true }) : null;
  const dO = make(dOr, io);
  const out = F.scaledDotProductAttention(q, k, v, { attnMask: mask, isCausal: c.causal, dropoutP: c.dropout, seed: c.dropout ? dropSeed : undefined });
  expect(out.dtype).toBe(io);
  expect(out.shape).toEqual(want.out.shape);
  const r = allClose(Array.from(await out.toArray()), want.out.data, OUT_TOL);
  expect(r.ok, `${io} ${c.name} forward: ${r.message}`).toBe(true);
  const loss = tidy(() => out.float().mul(dO.float()).sum());
  loss.backward();
  const grads = (c.strided ? leaves.map((t) => permute(t.grad!, [0, 2, 1, 3])) : leaves.map((t) => t.grad!));
  for (const [n, [name, w]] of ([['dq', wantG.dq], ['dk', wantG.dk], ['dv', wantG.dv]] as const).entries()) {
    const rr = allClose(Array.from(await grads[n].toArray()), w.data, GRAD_TOL);
    expect(rr.ok, `${io} ${c.name} ${name}: ${rr.message}`).toBe(true);
  }
  if (c.bias) {
    const rr = allClose(Array.from(await mask!.grad!.toArray()), wantG.dFloatMask!.data, GRAD_TOL);
    expect(rr.ok, `${io} ${c.name} dmask: ${rr.message}`).toBe(true);
  }
  if (c.strided) for (const g of grads) g.dispose();
  for (const t of new Set([...leaves, q, k, v, out, dO, loss, ...(mask ? [mask] : [])])) t.dispose();
  expect(memory().buffers, `${c.name} leaks`).toBe(before);
}

const cases: Case[] = [
  { name: 'primes', q: [2, 3, 7, 16], k: [2, 3, 13, 16], v: [2, 3, 13, 16] },
  { name: 'causal, Nq < Nk, two key tiles', q: [1, 2, 19, 16], k: [1, 2, 45, 16], v: [1, 2, 45, 16], causal: true },
  { name: 'causal lowerRight', q: [1, 2, 9, 16], k: [1, 2, 37, 16], v: [1, 2, 37, 16], causal: 'lowerRight' },
  { name: 'D=12 Dv=7 (head dims off the 16-wide blocks)', q: [1, 2, 9, 12], k: [1, 2, 11, 12], v: [1, 2, 11, 7] },
  { name: 'D=5 Dv=3', q: [1, 3, 7, 5], k: [1, 3, 9, 5], v: [1, 3, 9, 3] },
  { name: 'GQA 4/2', q: [2, 4, 9, 16], k: [2, 2, 11, 16], v: [2, 2, 11, 16] },
  { name: 'key mask, a fully masked batch', q: [3, 2, 5, 8], k: [3, 2, 7, 8], v: [3, 2, 7, 8], keyMask: true },
  { name: 'float mask with -inf, with grad', q: [2, 2, 6, 16], k: [2, 2, 7, 16], v: [2, 2, 7, 16], bias: true },
  { name: 'logits x50, causal', q: [1, 2, 21, 16], k: [1, 2, 21, 16], v: [1, 2, 21, 16], logitScale: 50, causal: true },
  { name: 'dropout 0.3', q: [1, 2, 17, 16], k: [1, 2, 33, 16], v: [1, 2, 33, 16], dropout: 0.3 },
  { name: 'strided (permuted) inputs', q: [2, 2, 5, 16], k: [2, 2, 6, 16], v: [2, 2, 6, 16], strided: true },
];

afterEach(() => {
  setFlag('attention.matrixBody', undefined);
  setMatmulPrecision('highest');
});

function portable(io: Io): void {
  setFlag('attention.matrixBody', 'portable');
  if (io === 'f32') setMatmulPrecision('medium');
}

// Every case has head dims <= 16, so the whole file compiles one set of pipelines per storage type (a new set costs
// lavapipe's LLVM a minute or more).
describe('matrix-unit attention, portable body', () => {
  for (const io of ['f16', 'f32'] as const) {
    // f32 inputs run the f16 cases' pipelines with io_t = f32: a subset, to keep lavapipe's compile time down.
    for (const c of io === 'f16' ? cases : cases.filter((x) => ['primes', 'dropout 0.3'].includes(x.name))) {
      // The first case of each storage type compiles the forward, dK/dV and dQ pipelines: minutes for lavapipe's LLVM
      // on a loaded machine.
      it(`${io}: ${c.name}`, async (ctx) => {
        if (!hasF16()) ctx.skip();
        portable(io);
        await check(c, io, 300 + cases.indexOf(c) * 10);
      }, c === cases[0] ? 600_000 : undefined);
    }
  }
});

describe('the plan routes attention to the matrix kernel', () => {
  /** The dispatch labels of one forward + backward of causal f16/f32 attention (with a mod when given). */
  async function labelsOf(io: Io, mod = false): Promise<string[]> {
    const q = make(rndHalf([1, 2, 8, 16], 1), io, true);
    const timer = startGpuTimer();
    const o = mod ? F.flexAttention(q, q, q, { scoreMod: (s) => s.mul(0.5) }) : F.scaledDotProductAttention(q, q, q, { isCausal: true });
    const loss = tidy(() => o.float().sum());
    loss.backward();
    await q.grad!.toArray();
    const labels = Object.keys((await timer.stop()).byLabel);
    for (const t of [q, o, loss]) t.dispose();
    return labels;
  }

  it('f16 inputs, and f32 ones under medium precision, run the matrix forward and backward', async (ctx) => {
    if (!hasTimestampQuery() || !hasF16()) ctx.skip();
    setFlag('attention.matrixBody', 'portable');
    const l16 = await labelsOf('f16');
    expect(l16, l16.join(' ')).toEqual(expect.arrayContaining(['attention.forward.mma.portable.f16', 'attention.backward.dkdv.mma.portable.f16', 'attention.backward.dq.mma.portable.f16']));
    expect(l16.some((l) => /^attention\.(forward|backward\.dkdv|backward\.dq)(\.f16)?(\.subgroups)?$/.test(l)), l16.join(' ')).toBe(false);
    setMatmulPrecision('medium');
    expect(await labelsOf('f32')).toEqual(expect.arrayContaining(['attention.forward.mma.portable', 'attention.backward.dq.mma.portable']));
  });

  // The plan alone (no kernels compiled: the scalar kernels' pipelines cost minutes on lavapipe).
  const planOf = (io: Io, mods = false) => {
    const q = make(rndHalf([1, 2, 8, 16], 1), io);
    const p = planAttention('scaledDotProductAttention', q, q, q, { isCausal: true }, undefined, [], mods);
    q.dispose();
    return p.fused!;
  };

  it("f32 inputs under 'highest' or 'high', and calls with mods, plan the scalar kernels, saying why", (ctx) => {
    if (!hasF16()) ctx.skip();
    setFlag('attention.matrixBody', 'portable');
    expect(planOf('f16').matrix?.body).toBe('portable');
    expect(planOf('f16').whyScalar).toBe(null);
    for (const precision of ['highest', 'high'] as const) {
      setMatmulPrecision(precision);
      expect(planOf('f32').matrix).toBe(null);
      expect(planOf('f32').whyScalar).toContain(`matmul precision '${precision}'`);
    }
    setMatmulPrecision('medium');
    expect(planOf('f32').matrix).toMatchObject({ body: 'portable', io: 'f32' });
    expect(planOf('f16', true).matrix).toBe(null);
    expect(planOf('f16', true).whyScalar).toContain('mods');
  });

  it('without a subgroup-matrix config (and without the flag) the scalar kernels are planned', (ctx) => {
    if (deviceInfo().subgroupMatrix?.matmul) ctx.skip();
    expect(planOf('f16').matrix).toBe(null);
    expect(planOf('f16').whyScalar).toBeTruthy();
  });
});

describe('matrix kernels: workgroup memory', () => {
  // Evaluates the kernels' own `var<workgroup>` declarations for a config (override constants substituted, integer
  // division as WGSL's, each variable rounded up to 16 bytes: WebGPU's rule), against what the plan computes.
  function declaredBytes(file: string, names: string[], c: { BLOCK_M: number; BLOCK_N: number; HEAD_DIM_MAX: number }): number {
    const text = readFileSync(resolve(__dirname, '../../kernels', file), 'utf8') + readFileSync(resolve(__dirname, '../../kernels/attention_common.wgsl'), 'utf8');
    const env: Record<string, number> = { BLOCK_M: c.BLOCK_M, BLOCK_N: c.BLOCK_N, HEAD_DIM_MAX: c.HEAD_DIM_MAX };
    let total = 0;
    for (const m of text.matchAll(/^var<workgroup> (\w+): (.*?);/gm)) {
      if (!names.includes(m[1])) continue;
      const arr = /^array<(\w+), (.*)>$/.exec(m[2]);
      let bytes = 4;
      if (arr) {
        const expr = arr[2].replace(/(\d+)u/g, '$1').replace(/\(([^()]+)\) \/ (\d+)/g, 'Math.floor(($1) / $2)');
        bytes = (arr[1] === 'f16' ? 2 : 4) * Number(Function(...Object.keys(env), `return ${expr};`)(...Object.values(env)));
      }
      total += Math.ceil(bytes / 16) * 16;
    }
    return total;
  }

  it('mmaTileBytes and mmaBackwardBytes equal the kernels\' declarations over a range of configs', () => {
    for (const HEAD_DIM_MAX of [16, 32, 64, 128, 256]) {
      for (const [BLOCK_M, BLOCK_N] of [[64, 64], [64, 32], [32, 16], [16, 16], [16, 48]]) {
        const c = { HEAD_DIM_MAX, BLOCK_M, BLOCK_N };
        const where = JSON.stringify(c);
        expect(mmaTileBytes(c), `forward ${where}`).toBe(declaredBytes('attention_mma.wgsl', ['tile_a', 'tile_b', 'tile_c', 'o_acc', 'row_alpha', 'row_m', 'row_l', 'adm_w', 'nonfinite_seen'], c));
        expect(mmaBackwardBytes('dkdv', c), `dkdv ${where}`).toBe(declaredBytes('attention_mma_backward.wgsl', ['tile_h', 'tile_c', 'acc_k', 'acc_v', 'adm_w', 'lse_t', 'delta_t', 'nonfinite_seen'], c));
        expect(mmaBackwardBytes('dq', c), `dq ${where}`).toBe(declaredBytes('attention_mma_backward.wgsl', ['tile_h', 'tile_c', 'acc_q', 'adm_w', 'lse_t', 'delta_t', 'nonfinite_seen'], c));
      }
    }
  });
});
