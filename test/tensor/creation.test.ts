// Creation: tensor() from nested arrays and typed arrays, zeros/ones/full/arange, and seeded rand/randn.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { poison } from '../helpers';

describe('tensor()', () => {
  it('infers shape and dtype from nested arrays and typed arrays', async () => {
    const a = K.tensor([[1, 2, 3], [4, 5, 6]]);
    expect(a.shape).toEqual([2, 3]);
    expect(a.dtype).toBe('f32');
    expect(Array.from(await a.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
    const b = K.tensor(Int32Array.from([1, -2, 3]));
    expect(b.dtype).toBe('i32');
    expect(b.shape).toEqual([3]);
    const c = K.tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), { shape: [3, 2] });
    expect(c.shape).toEqual([3, 2]);
    const d = K.tensor([true, false]);
    expect(d.dtype).toBe('bool');
    expect(Array.from(await d.toArray())).toEqual([1, 0]);
    const e = K.tensor([1, 2, 3], { dtype: 'i32' });
    expect(e.dtype).toBe('i32');
    expect(await e.toArray()).toBeInstanceOf(Int32Array);
    const s = K.tensor(7);
    expect(s.shape).toEqual([]);
    expect(await s.item()).toBe(7);
    const r = K.tensor([[1, 2]], { requiresGrad: true });
    expect(r.requiresGrad).toBe(true);
    for (const t of [a, b, c, d, e, s, r]) t.dispose();
  });

  it('values round to f32', async () => {
    const t = K.tensor([0.1, 1e-40, 3e38]);
    expect(Array.from(await t.toArray())).toEqual([Math.fround(0.1), Math.fround(1e-40), Math.fround(3e38)]);
  });
});

describe('filled and ranged', () => {
  it('zeros / ones / full / *Like at odd sizes on a poisoned pool', async () => {
    for (const shape of [[1], [7], [3, 13], [2, 1, 65]]) {
      const n = shape.reduce((p, d) => p * d, 1);
      poison([shape]);
      const z = K.zeros(shape);
      expect(z.shape).toEqual(shape);
      expect(Array.from(await z.toArray())).toEqual(new Array(n).fill(0));
      poison([shape]);
      expect(Array.from(await K.ones(shape).toArray())).toEqual(new Array(n).fill(1));
      poison([shape]);
      expect(Array.from(await K.full(shape, -2.5).toArray())).toEqual(new Array(n).fill(-2.5));
      expect(Array.from(await K.full(shape, 3, { dtype: 'i32' }).toArray())).toEqual(new Array(n).fill(3));
      expect(Array.from(await K.zerosLike(z).toArray())).toEqual(new Array(n).fill(0));
      expect(Array.from(await K.onesLike(z).toArray())).toEqual(new Array(n).fill(1));
      expect(Array.from(await K.fullLike(z, 4).toArray())).toEqual(new Array(n).fill(4));
    }
    const zi = K.zeros([3], { dtype: 'i32' });
    expect(zi.dtype).toBe('i32');
    expect(K.ones([2], { requiresGrad: true }).requiresGrad).toBe(true);
  });

  it('arange', async () => {
    const a = K.arange(5);
    expect(a.dtype).toBe('i32');
    expect(Array.from(await a.toArray())).toEqual([0, 1, 2, 3, 4]);
    expect(Array.from(await K.arange(2, 11, 3).toArray())).toEqual([2, 5, 8]);
    expect(Array.from(await K.arange(5, 0, -2).toArray())).toEqual([5, 3, 1]);
    const f = K.arange(0, 1, 0.25);
    expect(f.dtype).toBe('f32');
    expect(Array.from(await f.toArray())).toEqual([0, 0.25, 0.5, 0.75]);
    expect(Array.from(await K.arange(3, undefined, 1, { dtype: 'f32' }).toArray())).toEqual([0, 1, 2]);
    expect(K.arange(0).shape).toEqual([0]);
  });
});

describe('random', () => {
  it('the same seed gives the same numbers; different seeds differ', async () => {
    for (const fn of [K.rand, K.randn]) {
      const a = await fn([7, 13], { seed: 42 }).toArray();
      const b = await fn([7, 13], { seed: 42 }).toArray();
      const c = await fn([7, 13], { seed: 43 }).toArray();
      expect(Array.from(a)).toEqual(Array.from(b));
      expect(Array.from(a)).not.toEqual(Array.from(c));
    }
  });

  it('manualSeed makes unseeded calls reproducible', async () => {
    K.manualSeed(7);
    const a = await K.randn([5]).toArray();
    const a2 = await K.randn([5]).toArray();
    K.manualSeed(7);
    const b = await K.randn([5]).toArray();
    const b2 = await K.randn([5]).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a2)).toEqual(Array.from(b2));
    expect(Array.from(a)).not.toEqual(Array.from(a2));
  });

  it('rand is in [0, 1) with mean 1/2; randn has mean ~0 and std ~1 over 10k', async () => {
    const u = await K.rand([10000], { seed: 1 }).toArray();
    let mu = 0;
    for (const v of u) {
      expect(v >= 0 && v < 1).toBe(true);
      mu += v;
    }
    mu /= u.length;
    expect(Math.abs(mu - 0.5)).toBeLessThan(0.015);
    const n = await K.randn([100, 100], { seed: 2 }).toArray();
    let m = 0;
    for (const v of n) m += v;
    m /= n.length;
    let v2 = 0;
    for (const v of n) v2 += (v - m) ** 2;
    const std = Math.sqrt(v2 / (n.length - 1));
    expect(Math.abs(m)).toBeLessThan(0.03);
    expect(Math.abs(std - 1)).toBeLessThan(0.03);
    expect(n.every(Number.isFinite)).toBe(true);
    // Never all-equal or zero.
    expect(new Set(Array.from(n.slice(0, 100))).size).toBe(100);
  });

  it('odd sizes: the first n numbers of a longer draw with the same seed', async () => {
    const long = await K.randn([13], { seed: 9 }).toArray();
    const short = await K.randn([7], { seed: 9 }).toArray();
    expect(Array.from(short)).toEqual(Array.from(long.slice(0, 7)));
    const r = K.rand([3, 5], { seed: 3, requiresGrad: true });
    expect(r.requiresGrad).toBe(true);
  });
});
