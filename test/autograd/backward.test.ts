// backward() semantics: accumulation, shared subgraphs, retainGraph, noGrad, detach, explicit gradients, errors.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { expectThrows } from '../helpers';

describe('backward', () => {
  it('accumulates into .grad across calls and through shared subgraphs', async () => {
    const x = K.tensor([1, 2, 3], { requiresGrad: true });
    const y = K.tidy(() => {
      const s = K.mul(x, x); // used twice below
      return K.sum(K.add(s, K.mul(s, 2)));
    });
    y.backward();
    expect(Array.from(await x.grad!.toArray())).toEqual([6, 12, 18]);
    const y2 = K.tidy(() => K.sum(K.mul(x, 3)));
    y2.backward();
    expect(Array.from(await x.grad!.toArray())).toEqual([9, 15, 21]);
    for (const t of [x, y, y2]) t.dispose();
  });

  it('takes an explicit gradient for non-scalar outputs, and checks its shape', async () => {
    const x = K.tensor([[1, 2], [3, 4]], { requiresGrad: true });
    const y = K.mul(x, 2);
    const g = K.tensor([[1, 0], [0.5, -1]]);
    y.backward(g);
    expect(Array.from(await x.grad!.toArray())).toEqual([2, 0, 1, -2]);
    const bad = K.ones([3]);
    const y3 = K.mul(x, 1);
    expect(() => y3.backward(bad)).toThrow(K.ShapeError);
    expect(() => y3.backward(bad)).toThrow(/\[3\].*\[2,2\]/);
    for (const t of [x, y, g, bad, y3]) t.dispose();
  });

  it('a second backward through a freed graph is an error unless retainGraph', async () => {
    const x = K.tensor([1, 2], { requiresGrad: true });
    const y = K.tidy(() => K.sum(K.exp(x)));
    y.backward(undefined, { retainGraph: true });
    y.backward();
    const e = await x.grad!.toArray();
    expect(e[0]).toBeCloseTo(2 * Math.E, 5);
    expect(() => y.backward()).toThrow(/retainGraph/);
    x.dispose();
    y.dispose();
  });

  it('noGrad records nothing; detach cuts the graph; a tensor without requiresGrad cannot backward', () => {
    const x = K.tensor([1, 2], { requiresGrad: true });
    const y = K.noGrad(() => K.mul(x, 2));
    expect(y.requiresGrad).toBe(false);
    expect(K.isGradEnabled()).toBe(true);
    const d = K.detach(x);
    expect(d.requiresGrad).toBe(false);
    const z = K.sum(K.mul(d, 3));
    expect(() => z.backward()).toThrow(K.ValueError);
    expect(() => z.backward()).toThrow(/does not require grad/);
    for (const t of [x, y, d, z]) t.dispose();
  });

  it('gradients flow only to inputs that require them', async () => {
    const a = K.tensor([1, 2, 3], { requiresGrad: true });
    const b = K.tensor([4, 5, 6]);
    K.tidy(() => K.sum(K.mul(a, b)).backward());
    expect(Array.from(await a.grad!.toArray())).toEqual([4, 5, 6]);
    expect(b.grad).toBeNull();
    a.dispose();
    b.dispose();
  });

  it('a long chain (500 ops) runs without recursion problems', async () => {
    const x = K.tensor([0.5], { requiresGrad: true });
    const y = K.tidy(() => {
      let t = x;
      for (let i = 0; i < 500; i++) t = K.add(t, 0.001);
      return K.sum(t);
    });
    y.backward();
    expect(await x.grad!.item()).toBe(1);
    x.dispose();
    y.dispose();
  });
});

describe('backward checks before any GPU work', () => {
  it('a second backward through a freed graph and a non-float gradient fail cleanly', () => {
    const x = K.ones([2], { requiresGrad: true });
    const y = K.mul(x, 3);
    const s = K.sum(y);
    s.backward();
    expectThrows(() => s.backward(), K.ValueError, 'already freed', 'retainGraph');
    const y2 = K.mul(x, 2);
    const g = K.ones([2], { dtype: 'i32' });
    expectThrows(() => y2.backward(g), K.DTypeError, 'float');
    expectThrows(() => y2.backward(null, { retain: true } as never), K.ValueError, "'retain'", 'retainGraph');
    for (const t of [x, y, s, y2, g]) t.dispose();
  });
});
