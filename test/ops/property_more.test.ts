// Property tests over random shapes for the ops beyond the first set: sort/topk, gather/scatterAdd, cumsum,
// logsumexp, var, flip, repeat and einsum against their float64 references.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import * as M from '../reference/more_ops';
import * as X from '../reference/indexing';
import { sortAlong } from '../reference/sorting';
import { einsum as refEinsum } from '../reference/einsum';
import { type Ref, allClose, ref, rng } from '../reference/core';
import { fromRef, rnd } from '../helpers';

const shapeArb = fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 });
const seedArb = fc.integer({ min: 1, max: 100000 });

async function close(t: K.Tensor, want: Ref, tol: number, label: string): Promise<void> {
  expect(t.shape, `${label} shape`).toEqual(want.shape);
  const r = allClose(Array.from(await t.toArray()), want.data, { atol: tol, rtol: tol, equalNan: true });
  expect(r.ok, `${label} ${r.message}`).toBe(true);
}

const runs = { numRuns: 25 };

describe('property: ops beyond the first set', () => {
  it('sort and topk along a random dim (coarse values with ties)', async () => {
    await fc.assert(fc.asyncProperty(shapeArb, seedArb, fc.boolean(), async (shape, seed, desc) => {
      const x = R.map(rnd(shape, seed, -2, 2), (v) => Math.round(v * 2) / 2);
      const d = seed % shape.length;
      const k = seed % (shape[d] + 1);
      const xt = fromRef(x);
      const s = K.sort(xt, d, { descending: desc });
      const want = sortAlong(x, d, desc);
      await close(s.values, want.values, 0, `sort ${shape} d ${d}`);
      await close(s.indices, want.indices, 0, `sort indices ${shape} d ${d}`);
      const t = K.topk(xt, k, d, { largest: desc });
      await close(t.indices, sortAlong(x, d, desc, k).indices, 0, `topk ${shape} d ${d} k ${k}`);
      for (const u of [xt, s.values, s.indices, t.values, t.indices]) u.dispose();
    }), runs);
  });

  it('gather, scatterAdd and cumsum along a random dim', async () => {
    await fc.assert(fc.asyncProperty(shapeArb, seedArb, async (shape, seed) => {
      const g = rng(seed);
      const d = seed % shape.length;
      const idxShape = shape.map((s, i) => (i === d ? 1 + Math.floor(g.uniform() * 7) : Math.max(1, Math.floor(g.uniform() * s) + 1)));
      const idx = ref(Array.from({ length: idxShape.reduce((a, b) => a * b, 1) }, () => Math.floor(g.uniform() * shape[d])), idxShape);
      const x = rnd(shape, seed + 1);
      const src = rnd(idxShape, seed + 2);
      const xt = fromRef(x), it_ = fromRef(idx, { dtype: 'i32' }), st = fromRef(src);
      const ga = K.gather(xt, d, it_);
      await close(ga, X.gather(x, d, idx), 0, `gather ${shape} ${idxShape} d ${d}`);
      const sa = K.scatterAdd(xt, d, it_, st);
      await close(sa, X.scatterAdd(x, d, idx, src), 1e-5, `scatterAdd ${shape} ${idxShape} d ${d}`);
      const cs = K.cumsum(xt, d);
      await close(cs, X.cumsum(x, d), 1e-5, `cumsum ${shape} d ${d}`);
      for (const u of [xt, it_, st, ga, sa, cs]) u.dispose();
    }), runs);
  });

  it('logsumexp, var, flip and repeat over random dims', async () => {
    await fc.assert(fc.asyncProperty(shapeArb, seedArb, async (shape, seed) => {
      const x = rnd(shape, seed, -4, 4);
      const d = seed % shape.length;
      const xt = fromRef(x);
      const l = K.logsumexp(xt, d, seed % 2 === 0);
      await close(l, M.logsumexp(x, d, seed % 2 === 0), 1e-5, `logsumexp ${shape} d ${d}`);
      const v = K.var(xt, d, { correction: 0 });
      await close(v, M.variance(x, d, 0), 1e-5, `var ${shape} d ${d}`);
      const f = K.flip(xt, [d]);
      await close(f, M.flip(x, [d]), 0, `flip ${shape} d ${d}`);
      const times = shape.map((_, i) => 1 + ((seed >> i) % 3));
      const r = K.repeat(xt, times);
      await close(r, M.repeat(x, times), 0, `repeat ${shape} ${times}`);
      for (const u of [xt, l, v, f, r]) u.dispose();
    }), runs);
  });

  it('einsum contractions of random sizes', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 4, maxLength: 4 }), seedArb, async ([b, i, j, k], seed) => {
      const a = rnd([b, i, j], seed), c = rnd([b, j, k], seed + 1);
      const at = fromRef(a), ct = fromRef(c);
      for (const eq of ['bij,bjk->bik', 'bij,bjk->ki', 'bij,bjk', 'bij,bjk->']) {
        const o = K.einsum(eq, at, ct);
        await close(o, refEinsum(eq, a, c), 1e-4, `${eq} ${[b, i, j, k]}`);
        o.dispose();
      }
      at.dispose();
      ct.dispose();
    }), runs);
  });
});
