// tidy() scopes: what a result holds is kept at any depth; an async fn is refused before it runs.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';

describe('tidy', () => {
  it('keeps tensors returned at any depth of arrays, objects and Maps', async () => {
    const before = K.memory().buffers;
    const out = K.tidy(() => {
      K.ones([2]);
      const deep = { a: [[[{ b: [K.full([1], 7)] }]]], m: new Map([['k', [K.full([1], 8)]]]) };
      return deep;
    });
    const t = out.a[0][0][0].b[0];
    const u = out.m.get('k')![0];
    expect(K.memory().buffers).toBe(before + 2);
    expect(Array.from(await t.toArray())).toEqual([7]);
    expect(Array.from(await u.toArray())).toEqual([8]);
    t.dispose();
    u.dispose();
    expect(K.memory().buffers).toBe(before);
  });

  it('follows a cyclic result once', () => {
    const before = K.memory().buffers;
    const r = K.tidy(() => {
      const o: { self?: unknown; t: K.Tensor } = { t: K.zeros([1]) };
      o.self = o;
      return o;
    });
    expect(K.memory().buffers).toBe(before + 1);
    r.t.dispose();
  });

  it('refuses an async function before running it, and disposes what a Promise-returning fn made', () => {
    const before = K.memory().buffers;
    let ran = false;
    expect(() =>
      K.tidy((async () => {
        ran = true;
        return K.zeros([1]);
      }) as never),
    ).toThrow(K.ValueError);
    expect(ran).toBe(false);
    expect(() => K.tidy(() => (K.zeros([3]), Promise.resolve(1)) as never)).toThrow(K.KilnError);
    expect(K.memory().buffers).toBe(before);
  });
});
