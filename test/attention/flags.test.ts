// Attention's flags: a typed registry that refuses an unknown flag or a bad value at setFlag time (ValueError naming
// the flag and what it accepts), tile choices checked against the kernels' constraints and the adapter's limits at
// setFlag and again when a call is planned (before anything is allocated), and the workgroup-memory formula of
// src/attention/tiles.ts against the kernels' own workgroup declarations.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { F, DeviceError, ShapeError, ValueError, deviceInfo, randn, memory } from '../../src/index.node';
import { KNOWN_FLAGS, chooseTiles, getFlag, listFlags, setFlag } from '../../src/experimental';
import { TILE_KINDS, type TileConfig, type TileKind, tileBytes } from '../../src/attention/tiles';
import { allClose } from '../reference/core';
import { sdpa } from '../reference/attention';
import { expectThrowsRaw, fromRef, rnd } from '../helpers';

afterEach(() => {
  for (const name of Object.keys(KNOWN_FLAGS)) setFlag(name, undefined);
});

function throwsAt(fn: () => void, cls: new (...a: never[]) => Error, ...patterns: RegExp[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(cls);
  for (const p of patterns) expect((err as Error).message).toMatch(p);
}

describe('flags registry', () => {
  it('lists the attention flags with a doc line, what they accept and their default', () => {
    for (const name of ['attention.impl', 'attention.tiles', 'attention.subgroups', 'attention.f16']) {
      expect(KNOWN_FLAGS[name], name).toMatch(/default/);
      expect(listFlags()).toHaveProperty([name]);
    }
  });

  it('refuses an unknown flag at setFlag and getFlag, naming the known ones', () => {
    throwsAt(() => setFlag('attention.bogus', 1), ValueError, /unknown flag "attention.bogus"/, /attention\.impl/);
    throwsAt(() => getFlag('nope'), ValueError, /unknown flag "nope"/);
  });

  it('refuses a bad value at setFlag, naming the flag and what it accepts', () => {
    throwsAt(() => setFlag('attention.impl', 'bogus'), ValueError, /setFlag\('attention\.impl', "bogus"\)/, /'fused' \| 'reference'/);
    throwsAt(() => setFlag('attention.subgroups', 'yes'), ValueError, /attention\.subgroups/, /true \| false/);
    throwsAt(() => setFlag('attention.f16', 'fast'), ValueError, /attention\.f16/, /'native' \| 'widen'/);
    expect(getFlag('attention.impl')).toBeUndefined();
    setFlag('attention.impl', 'reference');
    expect(getFlag('attention.impl')).toBe('reference');
    setFlag('attention.impl', undefined);
    expect(getFlag('attention.impl')).toBeUndefined();
  });

  it('checks a tile override against the kernels\' constraints at setFlag', () => {
    throwsAt(() => setFlag('attention.tiles', { BLOCK_M: 6 }), ValueError, /BLOCK_M = 6 must be a multiple of 4/);
    throwsAt(() => setFlag('attention.tiles', { HEAD_DIM_MAX: 18 }), ValueError, /HEAD_DIM_MAX = 18 must be a multiple of 4/);
    throwsAt(() => setFlag('attention.tiles', { BLOCK_M: 16, BLOCK_N: 16, THREADS: 8 }), ValueError, /THREADS = 8 must be at least .* = 16/);
    throwsAt(() => setFlag('attention.tiles', { BLOCK_M: 16, BLOCK_N: 16, THREADS: 18 }), ValueError, /THREADS = 18 must be a multiple of BLOCK_M \/ 4 = 4/);
    throwsAt(() => setFlag('attention.tiles', { dq: { BLOCK_M: 16, BLOCK_N: 16, THREADS: 16, HEAD_DIM_MAX: 128 } }), ValueError, /dq:.*THREADS = 16 leaves each thread 8 vec4 columns/);
    throwsAt(() => setFlag('attention.tiles', { PARTS: 3 }), ValueError, /PARTS = 3 must be a power of two/);
    throwsAt(() => setFlag('attention.tiles', { BLOCKM: 16 }), ValueError, /unknown field 'BLOCKM'/);
    throwsAt(() => setFlag('attention.tiles', { forward: { BLOCK_M: 8 }, BLOCK_N: 8 }), ValueError, /'BLOCK_N' next to per-kind overrides/);
    throwsAt(() => setFlag('attention.tiles', 16), ValueError, /attention\.tiles/);
    expect(getFlag('attention.tiles')).toBeUndefined();
  });

  it('checks a tile override against the adapter\'s limits at setFlag', () => {
    const lim = deviceInfo().limits;
    throwsAt(() => setFlag('attention.tiles', { THREADS: lim.maxComputeInvocationsPerWorkgroup * 2 }), DeviceError, /THREADS = \d+ exceeds this adapter's maxComputeInvocationsPerWorkgroup/);
    throwsAt(
      () => setFlag('attention.tiles', { forward: { HEAD_DIM_MAX: 256, BLOCK_M: 64, BLOCK_N: 64, THREADS: 256 } }), DeviceError,
      /need \d+ bytes of workgroup memory; this adapter's maxComputeWorkgroupStorageSize is \d+/,
    );
  });

  it('checks the merged tiles again when a call is planned, before any allocation (HEAD_DIM_MAX below the head dim)', () => {
    const q = randn([1, 2, 9, 32], { seed: 1 });
    setFlag('attention.tiles', { HEAD_DIM_MAX: 16 });
    expectThrowsRaw(() => F.scaledDotProductAttention(q, q, q), ValueError, /attention\.tiles \(forward\) HEAD_DIM_MAX = 16 is below the head dimension max\(D, Dv\) = 32/);
    // The merged config breaks a constraint the override alone cannot be checked for: 64 x 64 tiles against the
    // default THREADS.
    setFlag('attention.tiles', { forward: { BLOCK_M: 64, BLOCK_N: 64 } });
    expectThrowsRaw(() => F.scaledDotProductAttention(q, q, q), ValueError, /attention\.tiles \(forward\) THREADS = \d+ must be at least \(BLOCK_M \/ 4\) \* \(BLOCK_N \/ 4\) \* PARTS = 256/);
    setFlag('attention.tiles', undefined);
    q.dispose();
  });

  it('a valid override runs and matches the float64 reference (forward and backward tiles)', async () => {
    setFlag('attention.tiles', { forward: { BLOCK_M: 8, BLOCK_N: 8, THREADS: 8 }, dkdv: { BLOCK_M: 8, BLOCK_N: 8, THREADS: 16 }, dq: { BLOCK_M: 8, BLOCK_N: 12, THREADS: 8 } });
    expect(chooseTiles('forward', 16)).toMatchObject({ BLOCK_M: 8, BLOCK_N: 8, THREADS: 8, HEAD_DIM_MAX: 32 });
    const qr = rnd([1, 2, 11, 16], 3), kr = rnd([1, 2, 13, 16], 4), vr = rnd([1, 2, 13, 16], 5);
    const q = fromRef(qr), k = fromRef(kr), v = fromRef(vr);
    const o = F.scaledDotProductAttention(q, k, v, { isCausal: true });
    const r = allClose(Array.from(await o.toArray()), sdpa(qr, kr, vr, { isCausal: true }).out.data, { atol: 2e-5, rtol: 1e-4 });
    expect(r.ok, r.message).toBe(true);
    for (const t of [q, k, v, o]) t.dispose();
  });

  it("the fused path refuses head dims over 256 before allocating (impl: 'reference' runs them)", () => {
    const q = randn([1, 1, 4, 300], { seed: 2 });
    const before = memory().buffers;
    expectThrowsRaw(() => F.scaledDotProductAttention(q, q, q), ShapeError, /supports head dimensions up to 256 \(D 300, Dv 300\); use impl: 'reference'/);
    expect(memory().buffers).toBe(before);
    const o = F.scaledDotProductAttention(q, q, q, { impl: 'reference' });
    expect(o.shape).toEqual([1, 1, 4, 300]);
    o.dispose();
    q.dispose();
  });
});

describe('workgroup memory', () => {
  // Evaluates the kernels' own `var<workgroup>` declarations for a config: each array's element size times its
  // length expression with the override constants substituted, every variable rounded up to 16 bytes (WebGPU's rule).
  function declaredBytes(file: string, entryVars: string[], c: TileConfig, halfTiles: boolean): number {
    const text = readFileSync(resolve(__dirname, '../../kernels', file), 'utf8') + readFileSync(resolve(__dirname, '../../kernels/attention_common.wgsl'), 'utf8');
    const env: Record<string, number> = { BLOCK_M: c.BLOCK_M, BLOCK_N: c.BLOCK_N, HEAD_DIM_MAX: c.HEAD_DIM_MAX, THREADS: c.THREADS };
    let total = 0;
    for (const m of text.matchAll(/^var<workgroup> (\w+): (.*);/gm)) {
      if (!entryVars.includes(m[1])) continue;
      const type = m[2];
      const arr = /^array<(vec4<\w+>|\w+), (.*)>$/.exec(type);
      const elemOf = (t: string) => (t === 'vec4<tile_t>' ? (halfTiles ? 8 : 16) : t.startsWith('vec4') ? 16 : 4);
      const bytes = arr ? elemOf(arr[1]) * Number(Function(...Object.keys(env), `return Math.floor(${arr[2].replace(/(\d+)u/g, '$1').replace(/(\w+) \/ (\d+)/g, 'Math.floor($1 / $2)')});`)(...Object.values(env))) : 4;
      total += Math.ceil(bytes / 16) * 16;
    }
    return total;
  }
  const vars: Record<TileKind, [string, string[]]> = {
    forward: ['attention_forward.wgsl', ['q_tile', 'kv_tile', 'p_tile', 'red', 'adm_tile', 'nonfinite_seen']],
    dkdv: ['attention_backward.wgsl', ['q_tile', 'do_tile', 'k_tile', 'v_tile', 'pz_tile', 'dsk_tile', 'adm_k', 'lse_tile', 'delta_tile', 'nonfinite_seen']],
    dq: ['attention_backward.wgsl', ['q_tile', 'do_tile', 'k_tile', 'v_tile', 'dsq_tile', 'adm_q', 'lse_tile', 'delta_tile', 'nonfinite_seen']],
  };
  it('tileBytes (tiles.ts) equals the kernels\' declarations for every kind and a range of configs', () => {
    for (const kind of TILE_KINDS) {
      for (const HEAD_DIM_MAX of [32, 64, 128, 256]) {
        for (const [BLOCK_M, BLOCK_N] of [[64, 64], [32, 16], [8, 4], [4, 4]]) {
          for (const half of [false, true]) {
            const c = { HEAD_DIM_MAX, BLOCK_M, BLOCK_N, THREADS: 64 };
            const [file, names] = vars[kind];
            expect(tileBytes(kind, c, half), `${kind} ${JSON.stringify(c)} half ${half}`).toBe(declaredBytes(file, names, c, half));
          }
        }
      }
    }
  });
});
