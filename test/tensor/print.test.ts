// Printing: toString and util.inspect show values (as PyTorch: one format, summarised past 1000 elements to the first
// and last 3 of each dim), shape, dtype, requiresGrad and the grad function; values only while the host knows them.
import { describe, expect, it, vi } from 'vitest';
import { inspect } from 'node:util';
import { tensor, zeros, arange, randn, memory, optim, type Tensor } from '../../src/index.node';

describe('printing tensors', () => {
  it('small tensors made from host data print their values, as PyTorch', () => {
    const t = tensor([[0.1, -1.25, 2], [3, 4, 5]]);
    expect(t.toString()).toBe('tensor([[ 0.1000, -1.2500,  2.0000],\n        [ 3.0000,  4.0000,  5.0000]], shape=[2, 3], dtype=f32)');
    expect(tensor([1, 2, 3]).toString()).toBe('tensor([1., 2., 3.], shape=[3], dtype=f32)');
    expect(tensor([1, -20, 300], { dtype: 'i32' }).toString()).toBe('tensor([  1, -20, 300], shape=[3], dtype=i32)');
    expect(tensor([true, false]).toString()).toBe('tensor([ true, false], shape=[2], dtype=bool)');
    expect(tensor([NaN, Infinity, -Infinity, 0.5]).toString()).toBe('tensor([   nan,    inf,   -inf, 0.5000], shape=[4], dtype=f32)');
    expect(tensor([1e-7, 2]).toString()).toBe('tensor([1.0000e-07, 2.0000e+00], shape=[2], dtype=f32)');
    expect(tensor([[2.5]], { requiresGrad: true }).toString()).toBe('tensor([[2.5000]], shape=[1, 1], dtype=f32, requiresGrad=true)');
    expect(tensor(7).toString()).toBe('tensor(7., shape=[], dtype=f32)');
    expect(inspect(t)).toBe(t.toString());
    expect(`${t}`).toBe(t.toString());
  });

  it('GPU results say how to get their values until read back; a write makes the host copy stale again', async () => {
    const a = tensor([1, 2, 3], { requiresGrad: true });
    const b = a.mul(2);
    expect(b.toString()).toBe('tensor(<on the GPU: await t.print() or t.toArray() to see the values>, shape=[3], dtype=f32, requiresGrad=true, gradFn=mul)');
    await b.toArray();
    expect(b.toString()).toBe('tensor([2., 4., 6.], shape=[3], dtype=f32, requiresGrad=true, gradFn=mul)');
    // An optimizer step writes the parameter: its old host copy is not shown.
    const opt = new optim.SGD([a], { lr: 0.5 });
    a.grad = tensor([1, 1, 1]);
    await a.toArray();
    expect(a.toString()).toContain('[1., 2., 3.]');
    opt.step();
    expect(a.toString()).toContain('<on the GPU');
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const text = await a.print();
    expect(text).toBe('tensor([0.5000, 1.5000, 2.5000], shape=[3], dtype=f32, requiresGrad=true)');
    expect(log).toHaveBeenCalledWith(text);
    log.mockRestore();
    opt.dispose();
    for (const t of [a, b]) t.dispose();
    expect(a.toString()).toBe('tensor(<disposed>, shape=[3], dtype=f32, requiresGrad=true)');
  });

  it('large tensors are summarised to the first and last 3 of each dim', async () => {
    const base = memory().buffers;
    const flat = arange(0, 2000);
    const t = flat.reshape([40, 50]);
    flat.dispose();
    await t.toArray();
    const s = t.toString();
    expect(s).toBe(
      'tensor([[   0,    1,    2, ...,   47,   48,   49],\n' +
        '        [  50,   51,   52, ...,   97,   98,   99],\n' +
        '        [ 100,  101,  102, ...,  147,  148,  149],\n' +
        '        ...,\n' +
        '        [1850, 1851, 1852, ..., 1897, 1898, 1899],\n' +
        '        [1900, 1901, 1902, ..., 1947, 1948, 1949],\n' +
        '        [1950, 1951, 1952, ..., 1997, 1998, 1999]], shape=[40, 50], dtype=i32)',
    );
    const r = randn([3, 400, 2], { seed: 1 });
    await r.toArray();
    expect(r.toString().split('\n').length).toBeLessThan(30);
    const z = zeros([0, 3]);
    expect(z.toString()).toBe('tensor([], shape=[0, 3], dtype=f32)');
    for (const x of [t, r, z] as Tensor[]) x.dispose();
    expect(memory().buffers).toBe(base);
  });
});
