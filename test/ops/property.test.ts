// Property tests over random shapes: broadcasting binary ops (forward and gradient shapes/values) and reductions.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as K from '../../src/index.node';
import * as R from '../reference/ops';
import { broadcastShapes, permute as refPermute, reduceToShape, reshape as refReshape } from '../reference/core';
import { expectTensorClose, fromRef, rnd, rndAway } from '../helpers';

/** Two shapes that broadcast: a common shape, with dims independently set to 1 or dropped from the front on each side. */
const broadcastPair = fc
  .tuple(
    fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 0, maxLength: 4 }),
    fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    fc.integer({ min: 0, max: 4 }),
    fc.integer({ min: 0, max: 4 }),
  )
  .map(([base, onesA, onesB, dropA, dropB]) => {
    const a = base.map((d, i) => (onesA[i] ? 1 : d)).slice(Math.min(dropA, base.length));
    const b = base.map((d, i) => (onesB[i] ? 1 : d)).slice(Math.min(dropB, base.length));
    return [a, b] as [number[], number[]];
  });

const ops: [string, (a: K.Tensor, b: K.Tensor) => K.Tensor, (a: any, b: any) => any][] = [
  ['add', K.add, R.add],
  ['sub', K.sub, R.sub],
  ['mul', K.mul, R.mul],
  ['div', K.div, R.div],
  ['maximum', K.maximum, R.maximum],
];

describe('property: broadcasting binary ops', () => {
  it('forward matches the reference for random broadcastable shapes', async () => {
    await fc.assert(
      fc.asyncProperty(broadcastPair, fc.integer({ min: 0, max: ops.length - 1 }), fc.integer({ min: 1, max: 1000 }), async ([sa, sb], k, seed) => {
        const [name, kf, rf] = ops[k];
        const a = rnd(sa, seed);
        const b = name === 'div' ? rndAway(sb, seed + 1) : rnd(sb, seed + 1);
        const at = fromRef(a);
        const bt = fromRef(b);
        const y = kf(at, bt);
        expect(y.shape).toEqual(broadcastShapes(sa, sb));
        await expectTensorClose(y, rf(a, b), 1e-6, 1e-6, `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`);
        for (const t of [at, bt, y]) t.dispose();
      }),
      { numRuns: 25, seed: 42 },
    );
  });

  it('gradients are summed back to each input shape (d(a*b) = b, a reduced)', async () => {
    await fc.assert(
      fc.asyncProperty(broadcastPair, fc.integer({ min: 1, max: 1000 }), async ([sa, sb], seed) => {
        const a = rnd(sa, seed);
        const b = rnd(sb, seed + 1);
        const at = fromRef(a, { requiresGrad: true });
        const bt = fromRef(b, { requiresGrad: true });
        const before = K.memory().buffers;
        const loss = K.tidy(() => K.sum(K.mul(at, bt)));
        loss.backward();
        const out = broadcastShapes(sa, sb);
        const ones = { data: new Float64Array(out.reduce((p, d) => p * d, 1)).fill(1), shape: out };
        // d/da sum(a*b) = sum over broadcast dims of b (broadcast to out), and likewise for b.
        await expectTensorClose(at.grad!, reduceToShape(R.mul(ones, b), sa), 1e-5, 1e-5, `grad a ${JSON.stringify(sa)} ${JSON.stringify(sb)}`);
        await expectTensorClose(bt.grad!, reduceToShape(R.mul(ones, a), sb), 1e-5, 1e-5, 'grad b');
        loss.dispose();
        expect(K.memory().buffers).toBe(before + 2);
        for (const t of [at, bt]) t.dispose();
      }),
      { numRuns: 20, seed: 7 },
    );
  });

  it('reductions over random dim sets match the reference', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 1000 }),
        async (shape, pick, keep, seed) => {
          const dims = shape.map((_, i) => i).filter((i) => pick[i]);
          const x = rnd(shape, seed);
          const xt = fromRef(x);
          const s = K.sum(xt, dims.length ? dims : undefined, keep);
          await expectTensorClose(s, R.sum(x, dims.length ? dims : undefined, keep), 1e-5, 1e-5, `sum ${JSON.stringify(shape)} ${JSON.stringify(dims)}`);
          const m = K.amax(xt, dims.length ? dims : undefined, keep);
          await expectTensorClose(m, R.max(x, dims.length ? dims : undefined, keep), 0, 0, 'max');
          for (const t of [xt, s, m]) t.dispose();
        },
      ),
      { numRuns: 20, seed: 3 },
    );
  });
});

describe('property: views', () => {
  it('reshape of a permuted (non-contiguous) tensor equals reshape of its contiguous copy', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 1, max: 1000 }),
        async (shape, permSeed, seed) => {
          // A permutation from the seed, and a target shape from a random factorisation of numel (with 1s inserted).
          const dims = shape.map((_, i) => i);
          let r = permSeed;
          for (let i = dims.length - 1; i > 0; i--) {
            const j = r % (i + 1);
            r = Math.floor(r / (i + 1)) + 7;
            [dims[i], dims[j]] = [dims[j], dims[i]];
          }
          const n = shape.reduce((a, b) => a * b, 1);
          const target: number[] = [];
          let rest = n;
          for (let k = 2; k <= rest; ) {
            if (rest % k === 0 && (seed + k + target.length) % 3 !== 0) {
              target.push(k);
              rest /= k;
            } else k++;
            if ((seed + target.length) % 5 === 0) target.push(1);
          }
          if (rest > 1) target.push(rest);
          if (target.length === 0) target.push(1);
          const inferAt = seed % target.length;
          const spec = target.map((d, i) => (i === inferAt ? -1 : d));
          const x = rnd(shape, seed);
          const xt = fromRef(x);
          const p = K.permute(xt, dims);
          const y = K.reshape(p, spec);
          const want = refReshape(refPermute(x, dims), target);
          await expectTensorClose(y, want, 0, 0, `${JSON.stringify(shape)} permute ${JSON.stringify(dims)} -> ${JSON.stringify(spec)}`);
          // And an elementwise op reading the (possibly non-contiguous) result through its strides.
          const z = K.add(y, 1);
          await expectTensorClose(z, R.add(want, 1), 1e-7, 1e-7, 'op on view');
          for (const t of [xt, p, y, z]) t.dispose();
        },
      ),
      { numRuns: 25, seed: 11 },
    );
  });
});
