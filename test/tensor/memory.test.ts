// Memory ownership: tidy, dispose, backward freeing what it saved, and a training-like loop that stays flat.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';

describe('tidy', () => {
  it('disposes intermediates and keeps the returned tensor', async () => {
    const x = K.randn([4, 5], { seed: 1 });
    const before = K.memory().buffers;
    const y = K.tidy(() => {
      const a = K.exp(x);
      const b = K.mul(a, 2);
      return K.sum(b, 1);
    });
    expect(K.memory().buffers).toBe(before + 1);
    expect(y.isDisposed).toBe(false);
    expect((await y.toArray()).length).toBe(4);
    y.dispose();
    expect(K.memory().buffers).toBe(before);
    expect(x.isDisposed).toBe(false);
    x.dispose();
  });

  it('keeps tensors returned in arrays and plain objects (nested), and disposes the rest', () => {
    const before = K.memory().buffers;
    let inner: K.Tensor | null = null;
    const out = K.tidy(() => {
      inner = K.ones([3]);
      const a = K.add(inner, 1);
      const b = K.mul(inner, 3);
      const c = K.neg(b);
      return { list: [a, { deep: b }], c, note: 'not a tensor', n: 3 };
    });
    expect(inner!.isDisposed).toBe(true);
    expect(out.list[0]).toBeInstanceOf(K.Tensor);
    const kept = [out.list[0] as K.Tensor, (out.list[1] as { deep: K.Tensor }).deep, out.c];
    for (const t of kept) expect(t.isDisposed).toBe(false);
    expect(K.memory().buffers).toBe(before + 3);
    for (const t of kept) t.dispose();
    expect(K.memory().buffers).toBe(before);
  });

  it('nested tidy hands kept tensors to the outer scope; keep() escapes every scope', () => {
    const before = K.memory().buffers;
    let escaped: K.Tensor | null = null;
    let fromInner: K.Tensor | null = null;
    K.tidy(() => {
      fromInner = K.tidy(() => K.ones([2]));
      escaped = K.keep(K.zeros([2]));
      expect(fromInner.isDisposed).toBe(false);
    });
    expect(fromInner!.isDisposed).toBe(true);
    expect(escaped!.isDisposed).toBe(false);
    escaped!.dispose();
    expect(K.memory().buffers).toBe(before);
  });

  it('a throwing fn disposes what it made and rethrows', () => {
    const before = K.memory().buffers;
    expect(() =>
      K.tidy(() => {
        K.ones([5]);
        K.zeros([7]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(K.memory().buffers).toBe(before);
  });

  it('keeps gradients accumulated into tensors created outside', async () => {
    const w = K.tensor([1, 2, 3], { requiresGrad: true });
    const before = K.memory().buffers;
    K.tidy(() => {
      K.sum(K.mul(w, w)).backward();
    });
    expect(w.grad).not.toBeNull();
    expect(w.grad!.isDisposed).toBe(false);
    expect(Array.from(await w.grad!.toArray())).toEqual([2, 4, 6]);
    expect(K.memory().buffers).toBe(before + 1);
    w.dispose(); // disposes its gradient too
    expect(K.memory().buffers).toBe(before - 1);
  });
});

describe('dispose', () => {
  it('twice is harmless and views keep their storage alive until the last one goes', () => {
    const before = K.memory().buffers;
    const a = K.ones([4, 4]);
    const v = K.transpose(a, 0, 1);
    a.dispose();
    a.dispose();
    expect(K.memory().buffers).toBe(before + 1);
    v.dispose();
    v.dispose();
    expect(K.memory().buffers).toBe(before);
  });

  it('Symbol.dispose is dispose', () => {
    const before = K.memory().buffers;
    const a = K.ones([3]);
    a[Symbol.dispose]();
    expect(a.isDisposed).toBe(true);
    expect(K.memory().buffers).toBe(before);
  });

  it('memory() counts bytes and peak', () => {
    const m0 = K.memory();
    K.resetPeak();
    const a = K.zeros([1000]);
    const m1 = K.memory();
    expect(m1.buffers).toBe(m0.buffers + 1);
    expect(m1.bytes - m0.bytes).toBeGreaterThanOrEqual(4000);
    expect(m1.peakBytes).toBeGreaterThanOrEqual(m1.bytes);
    a.dispose();
    expect(K.memory().bytes).toBe(m0.bytes);
  });
});

describe('autograd memory', () => {
  it('backward frees the tensors saved for it; dropping an unused graph frees them too', () => {
    const x = K.randn([8, 8], { seed: 3, requiresGrad: true });
    const base = K.memory().buffers; // x
    const loss = K.tidy(() => K.sum(K.exp(K.mul(x, x))));
    // Saved: x (a view, no buffer), x*x's output for exp... whatever the rules saved is still alive here.
    expect(K.memory().buffers).toBeGreaterThan(base + 1);
    loss.backward();
    // After backward only the loss and x.grad remain.
    expect(K.memory().buffers).toBe(base + 2);
    loss.dispose();
    x.grad!.dispose();
    x.grad = null;
    expect(K.memory().buffers).toBe(base);
    // A graph that is never differentiated is released with its output.
    const unused = K.tidy(() => K.sum(K.sigmoid(K.matmul(x, x))));
    expect(K.memory().buffers).toBeGreaterThan(base + 1);
    unused.dispose();
    expect(K.memory().buffers).toBe(base);
    x.dispose();
  });

  it('200 steps of forward + backward of a tiny model keep live buffers flat', async () => {
    const w1 = K.randn([6, 5], { seed: 1, requiresGrad: true });
    const w2 = K.randn([5, 1], { seed: 2, requiresGrad: true });
    const x = K.randn([7, 6], { seed: 3 });
    const counts: number[] = [];
    let lastLoss = 0;
    for (let step = 1; step <= 200; step++) {
      const loss = K.tidy(() => K.sum(K.matmul(K.relu(K.matmul(x, w1)), w2)));
      loss.backward();
      if (step === 200) lastLoss = await loss.item();
      loss.dispose();
      w1.grad!.dispose();
      w1.grad = null;
      w2.grad!.dispose();
      w2.grad = null;
      counts[step] = K.memory().buffers;
    }
    expect(Number.isFinite(lastLoss)).toBe(true);
    expect(counts[200]).toBe(counts[20]);
    expect(counts[200]).toBe(counts[1]);
    for (const t of [w1, w2, x]) t.dispose();
  });
});
