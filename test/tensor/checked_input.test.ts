// Checked creation and scalars (issue 11): data that does not fit its dtype, typed arrays kiln does not know, i32
// tensors meeting fractional scalars and unknown option keys raise typed errors before any GPU work, never a wrap.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { expectThrows } from '../helpers';

describe('creation checks', () => {
  it('i32 data outside the i32 range or not integral is a ValueError naming the element', () => {
    expectThrows(() => K.tensor([2 ** 31, 1e10], { dtype: 'i32' }), K.ValueError, 'element 0', '2147483648', 'i32 range');
    expectThrows(() => K.tensor([1, -(2 ** 31) - 1], { dtype: 'i32' }), K.ValueError, 'element 1');
    expectThrows(() => K.tensor([0, 0.5], { dtype: 'i32' }), K.ValueError, 'element 1', '0.5');
    expectThrows(() => K.full([2], 2.5, { dtype: 'i32' }), K.ValueError, '2.5');
    expectThrows(() => K.full([2], 2 ** 40, { dtype: 'i32' }), K.ValueError, 'i32');
  });

  it('the i32 extremes and large integers survive exactly', async () => {
    const t = K.tensor([2 ** 31 - 1, -(2 ** 31), 16777217], { dtype: 'i32' });
    expect(Array.from(await t.toArray())).toEqual([2 ** 31 - 1, -(2 ** 31), 16777217]);
    const f = K.full([3], 16777217, { dtype: 'i32' });
    expect(Array.from(await f.toArray())).toEqual([16777217, 16777217, 16777217]);
    t.dispose();
    f.dispose();
  });

  it('typed arrays: known ones map to a dtype, unknown ones need one, 64-bit integers are refused', async () => {
    expectThrows(() => K.tensor(new Uint8Array([1, 0, 1])), K.DTypeError, 'Uint8Array', "dtype: 'bool'");
    expectThrows(() => K.tensor(new Uint32Array([1])), K.DTypeError, 'Uint32Array');
    expectThrows(() => K.tensor(new BigInt64Array([1n]) as never), K.DTypeError, 'BigInt64Array');
    expectThrows(() => K.tensor(new BigInt64Array([1n]) as never, { dtype: 'i32' }), K.DTypeError, 'BigInt64Array');
    const b = K.tensor(new Uint8Array([1, 0, 2]), { dtype: 'bool' });
    expect(b.dtype).toBe('bool');
    expect(Array.from(await b.toArray())).toEqual([1, 0, 1]);
    const d = K.tensor(new Float64Array([0.1, 2]));
    expect(d.dtype).toBe('f32');
    expect(Array.from(await d.toArray())).toEqual([Math.fround(0.1), 2]);
    const i = K.tensor(new Int16Array([-3, 4]));
    expect(i.dtype).toBe('i32');
    for (const t of [b, d, i]) t.dispose();
  });

  it('other bad data and arguments are typed errors', () => {
    expectThrows(() => K.tensor(['a'] as never), K.ValueError, '"a"');
    expectThrows(() => K.tensor(null as never), K.ValueError, 'null');
    expectThrows(() => K.tensor([1n] as never), K.ValueError, 'BigInt');
    expectThrows(() => K.zeros([2], { dtype: 'i32', requiresGrad: true }), K.DTypeError, 'float');
    expectThrows(() => K.arange(1e10), K.ShapeError, 'buffer limit');
    expectThrows(() => K.arange(1.5e9), K.ShapeError, 'buffer limit');
    expectThrows(() => K.arange(2 ** 31 - 2, 2 ** 31 + 2), K.ValueError, 'i32 range');
    const x = K.zeros([2, 3]);
    expectThrows(() => x.reshape(null as never), K.ShapeError, 'array of sizes');
    expectThrows(() => x.reshape([2, 'a'] as never), K.ShapeError, '"a"');
    expectThrows(() => x.slice(0, 0.5), K.ValueError, 'start');
    x.dispose();
  });

  it('unknown option keys are ValueErrors naming the key and what is allowed', () => {
    expectThrows(() => K.zeros([2], { dtpye: 'f32' } as never), K.ValueError, "'dtpye'", "did you mean 'dtype'", 'allowed');
    expectThrows(() => K.tensor([1], { requires_grad: true } as never), K.ValueError, "'requires_grad'", 'requiresGrad');
    expectThrows(() => K.randn([2], { sed: 1 } as never), K.ValueError, "'sed'", "'seed'");
    expectThrows(() => K.zeros([2], 'f32' as never), K.ValueError, 'options must be an object');
  });
});

describe('scalars meet tensors without promotion', () => {
  it('an i32 tensor meets only integer scalars', async () => {
    const i = K.tensor([1, 2, 3], { dtype: 'i32' });
    expectThrows(() => i.add(2.5), K.DTypeError, 'i32', '2.5');
    expectThrows(() => i.mul(0.5), K.DTypeError, '0.5');
    expectThrows(() => i.sub(1e10), K.DTypeError, '10000000000');
    expectThrows(() => i.add('1' as never), K.ValueError, '"1"');
    // Large integers are exact (not carried as an f32).
    const big = K.tensor([2 ** 30], { dtype: 'i32' });
    const s = big.add(16777217);
    expect(Array.from(await s.toArray())).toEqual([2 ** 30 + 16777217]);
    // Comparisons with a fractional number are exact (the scalar is promoted, as PyTorch's).
    const lt = i.lt(2.5);
    expect(Array.from(await lt.toArray())).toEqual([1, 1, 0]);
    for (const t of [i, big, s, lt]) t.dispose();
  });
});
