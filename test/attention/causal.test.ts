// Causal alignment and incremental decoding. isCausal: true (or 'upperLeft') is PyTorch's is_causal, top-left aligned;
// 'lowerRight' is its causal_lower_right (query i sees keys j <= i + Nk - Nq), in the fused kernels, the reference path
// and attentionWeights, forward and backward. A causal nn.MultiheadAttention or nn.TransformerEncoderLayer fed through
// a KVCache (one token at a time, in chunks, after a prefill, with grouped-query heads) matches one full forward pass.
import { describe, expect, it } from 'vitest';
import { DTypeError, F, KVCache, type Tensor, ValueError, nn, noGrad, tidy } from '../../src/index.node';
import { allClose } from '../reference/core';
import { sdpa } from '../reference/attention';
import { expectMatchesReference } from './check';
import { expectThrowsRaw, fromRef, rnd } from '../helpers';

describe("isCausal: 'lowerRight' (bottom-right aligned)", () => {
  const cases = [
    { name: 'Nq < Nk (decoding a chunk)', q: [2, 2, 5, 16], k: [2, 2, 12, 16] },
    { name: 'Nq > Nk (first rows see nothing)', q: [1, 2, 9, 8], k: [1, 2, 4, 8] },
    { name: 'one query, 11 cached keys', q: [1, 2, 1, 16], k: [1, 2, 11, 16] },
    { name: 'grouped-query heads 4/2', q: [1, 4, 3, 8], k: [1, 2, 7, 8] },
    { name: 'Nq = Nk (same as top-left)', q: [1, 1, 6, 8], k: [1, 1, 6, 8] },
  ];
  for (const impl of ['fused', 'reference'] as const) {
    for (const [n, c] of cases.entries()) {
      it(`${impl}: ${c.name}, forward and gradients`, async () => {
        await expectMatchesReference({
          q: rnd(c.q, 10 + n), k: rnd(c.k, 20 + n), v: rnd(c.k, 30 + n), ref: { isCausal: 'lowerRight' }, kiln: { isCausal: 'lowerRight', impl }, seed: 40 + n,
        });
      });
    }
  }

  it("'upperLeft' is true's explicit spelling; attentionWeights takes both alignments", async () => {
    const qr = rnd([1, 2, 4, 8], 1), kr = rnd([1, 2, 7, 8], 2);
    const q = fromRef(qr), k = fromRef(kr);
    for (const isCausal of ['upperLeft', 'lowerRight'] as const) {
      const w = F.attentionWeights(q, k, { isCausal });
      const r = allClose(Array.from(await w.toArray()), sdpa(qr, kr, rnd([1, 2, 7, 8], 3), { isCausal }).probs.data, { atol: 1e-6, rtol: 1e-5 });
      expect(r.ok, `${isCausal}: ${r.message}`).toBe(true);
      w.dispose();
    }
    const a = await F.scaledDotProductAttention(q, k, k, { isCausal: true }).toArray();
    const b = await F.scaledDotProductAttention(q, k, k, { isCausal: 'upperLeft' }).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    expectThrowsRaw(() => F.scaledDotProductAttention(q, k, k, { isCausal: 'bottomRight' as never }), ValueError, /isCausal must be true, false, 'upperLeft' or 'lowerRight', got "bottomRight"/);
    q.dispose();
    k.dispose();
  });
});

describe('incremental decoding through a KVCache matches one full forward pass', () => {
  const E = 16, N = 11;
  const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
    const r = allClose(Array.from(a), Array.from(b), { atol: 1e-5, rtol: 1e-5 });
    expect(r.ok, `${what}: ${r.message}`).toBe(true);
  };
  /** Runs `forward` over x [1, N, E] in chunks of the given sizes through a fresh cache; returns the rows in order. */
  async function decode(forward: (x: Tensor, cache: KVCache) => Tensor, x: Tensor, chunks: number[]): Promise<number[]> {
    const cache = new KVCache(32);
    const rows: number[] = [];
    let t = 0;
    for (const n of chunks) {
      const y = noGrad(() => tidy(() => forward(x.slice(1, t, t + n), cache)));
      rows.push(...(await y.toArray()));
      y.dispose();
      t += n;
    }
    expect(cache.length).toBe(N);
    cache.dispose();
    return rows;
  }
  const schedules: [string, number[]][] = [
    ['one token at a time', Array(N).fill(1)],
    ['in chunks', [3, 1, 4, 2, 1]],
    ['after a prefill', [7, 1, 1, 1, 1]],
  ];

  for (const kvHeads of [4, 2]) {
    for (const [name, chunks] of schedules) {
      it(`MultiheadAttention(${E}, 4, kvHeads ${kvHeads}), causal, ${name}`, async () => {
        const m = new nn.MultiheadAttention(E, 4, { kvHeads, seed: 5 });
        m.eval();
        const x = fromRef(rnd([1, N, E], 9));
        const full = await noGrad(() => m.forward(x, x, x, { isCausal: true })).toArray();
        const rows = await decode((xt, cache) => m.forward(xt, xt, xt, { isCausal: true, cache }), x, chunks);
        close(rows, full, name);
        x.dispose();
      });
    }
  }

  for (const normFirst of [true, false]) {
    for (const [name, chunks] of schedules) {
      it(`TransformerEncoderLayer (causal, ${normFirst ? 'pre' : 'post'}-norm, 2 kv heads), ${name}`, async () => {
        const layer = new nn.TransformerEncoderLayer(E, 4, { dimFeedforward: 32, dropout: 0, isCausal: true, normFirst, kvHeads: 2, seed: 3 });
        layer.eval();
        const x = fromRef(rnd([1, N, E], 8));
        const full = await noGrad(() => layer.forward(x)).toArray();
        const rows = await decode((xt, cache) => layer.forward(xt, { cache }), x, chunks);
        close(rows, full, name);
        x.dispose();
      });
    }
  }

  it("F.scaledDotProductAttention with a cache takes isCausal: 'lowerRight'", async () => {
    const qr = rnd([1, 2, N, 8], 4), kr = rnd([1, 2, N, 8], 5), vr = rnd([1, 2, N, 8], 6);
    const q = fromRef(qr), k = fromRef(kr), v = fromRef(vr);
    const full = await F.scaledDotProductAttention(q, k, v, { isCausal: true }).toArray();
    const cache = new KVCache(N);
    const rows: number[] = [];
    for (const [a, b] of [[0, 4], [4, 5], [5, 11]]) {
      const { k: kc, v: vc } = cache.append(k.slice(2, a, b), v.slice(2, a, b));
      const o = F.scaledDotProductAttention(q.slice(2, a, b), kc, vc, { isCausal: 'lowerRight' });
      rows.push(...(await o.toArray()));
    }
    // rows are in [chunk][head][row] order; full is [head][row]
    const byHead = [0, 1].flatMap((h) => [[0, 4], [4, 5], [5, 11]].flatMap(([a, b], ci) => {
      const off = [0, 4, 5][ci] * 2 * 8;
      return Array.from({ length: (b - a) * 8 }, (_, e) => rows[off + h * (b - a) * 8 + e]);
    }));
    close(byHead, full, 'sdpa through a cache');
    const [kh, vh] = [k.half(), v.half()];
    expectThrowsRaw(() => cache.append(kh, vh), DTypeError, /KVCache.append: k f16 and v f16 differ from the cache's f32 and f32/);
    for (const t of [kh, vh]) t.dispose();
    cache.dispose();
    for (const t of [q, k, v]) t.dispose();
  });
});
