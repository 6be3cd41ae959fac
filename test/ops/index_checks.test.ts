// Device-side index checks: an out-of-range embedding id or class target is found by the kernel, which records the
// first one in the device's error flag and never reads outside a tensor; the next sync (a readback or sync()) throws an
// IndexError naming the op, the position and the value, and clears the flag, as PyTorch's device-side asserts do.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { F, IndexError, KilnError, tensor } from '../../src/index.node';

const ids = (data: number[][] | number[]) => tensor(data, { dtype: 'i32' });

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the read to throw');
}

describe('embedding index checks', () => {
  it('an id past the table raises IndexError at the next read, naming the position; valid rows are right', async () => {
    const weight = K.randn([10, 4], { seed: 1 });
    const idx = ids([[0, 1, 2, 3], [4, 5, 6, 12]]);
    const out = F.embedding(idx, weight);
    const err = await rejection(out.toArray());
    expect(err).toBeInstanceOf(IndexError);
    expect(err).toBeInstanceOf(KilnError);
    expect(err.message).toBe('embedding: index 12 at position [1, 3] is out of range for 10 rows');
    // The flag was cleared: the same output reads back now, with the good rows intact and the bad row NaN
    // (no row of another tensor, nothing read outside the table).
    const got = await out.toArray();
    const w = await weight.toArray();
    for (let r = 0; r < 7; r++) {
      const id = [0, 1, 2, 3, 4, 5, 6][r];
      expect(Array.from(got.slice(r * 4, r * 4 + 4))).toEqual(Array.from(w.slice(id * 4, id * 4 + 4)));
    }
    expect(Array.from(got.slice(28, 32)).every(Number.isNaN)).toBe(true);
    for (const t of [weight, idx, out]) t.dispose();
  });

  it('a negative id is out of range too; sync() also reports it', async () => {
    const weight = K.randn([5, 3], { seed: 2 });
    const idx = ids([2, -1, 0]);
    const out = F.embedding(idx, weight);
    const err = await rejection(K.sync());
    expect(err).toBeInstanceOf(IndexError);
    expect(err.message).toBe('embedding: index -1 at position [1] is out of range for 5 rows');
    await K.sync(); // cleared
    for (const t of [weight, idx, out]) t.dispose();
  });

  it('the first bad index is reported (one error per sync), and any readback reports it', async () => {
    const weight = K.randn([4, 2], { seed: 3 });
    const a = ids([1, 7]);
    const b = ids([9, 0]);
    const ya = F.embedding(a, weight);
    const yb = F.embedding(b, weight);
    const other = K.ones([3]).mul(2); // an unrelated tensor: reading it is the sync that reports
    const err = await rejection(other.toArray());
    expect(err).toBeInstanceOf(IndexError);
    expect(err.message).toMatch(/^embedding: index (7|9) at position \[(1|0)\] is out of range for 4 rows$/);
    expect(Array.from(await other.toArray())).toEqual([2, 2, 2]);
    for (const t of [weight, a, b, ya, yb, other]) t.dispose();
  });

  it('backward: a bad id drops no gradient silently (embedding.backward raises too)', async () => {
    const weight = K.randn([6, 3], { seed: 4, requiresGrad: true });
    const idx = ids([[1, 2], [8, 1]]);
    const out = F.embedding(idx, weight);
    await expect(out.toArray()).rejects.toBeInstanceOf(IndexError); // the forward's report
    const loss = out.sum();
    loss.backward();
    const err = await rejection(weight.grad!.toArray());
    expect(err).toBeInstanceOf(IndexError);
    expect(err.message).toBe('embedding.backward: index 8 at position [1, 0] is out of range for 6 rows');
    for (const t of [weight, idx, out, loss]) t.dispose();
  });

  it('valid ids raise nothing and match the table, with the gradient accumulated over repeats', async () => {
    const weight = K.randn([7, 5], { seed: 5, requiresGrad: true });
    const idx = ids([[6, 0, 3], [3, 3, 6]]);
    const out = F.embedding(idx, weight);
    const w = await weight.toArray();
    const got = await out.toArray();
    [6, 0, 3, 3, 3, 6].forEach((id, r) => expect(Array.from(got.slice(r * 5, r * 5 + 5))).toEqual(Array.from(w.slice(id * 5, id * 5 + 5))));
    out.sum().backward();
    const g = await weight.grad!.toArray();
    const counts = [1, 0, 0, 3, 0, 0, 2];
    for (let v = 0; v < 7; v++) for (let c = 0; c < 5; c++) expect(g[v * 5 + c]).toBe(counts[v]);
    await K.sync();
    for (const t of [weight, idx, out]) t.dispose();
  });
});

describe('crossEntropy target checks', () => {
  it('a target outside [0, C) that is not ignoreIndex raises IndexError naming it', async () => {
    const logits = K.randn([3, 4], { seed: 6 });
    const targets = ids([0, 4, 2]);
    const loss = F.crossEntropy(logits, targets);
    const err = await rejection(loss.item());
    expect(err).toBeInstanceOf(IndexError);
    expect(err.message).toBe('crossEntropy: target 4 at position [1] is out of range for 4 classes');
    // The loss itself is NaN (no logit was read for the bad row), and the flag is clear now.
    expect(Number.isNaN(await loss.item())).toBe(true);
    for (const t of [logits, targets, loss]) t.dispose();
  });

  it('reduction none and negative targets; ignoreIndex itself is fine', async () => {
    const logits = K.randn([4, 3], { seed: 7 });
    const ok = F.crossEntropy(logits, ids([0, -100, 2, 1]), { reduction: 'none' });
    const v = await ok.toArray();
    expect(v[1]).toBe(0);
    expect(Array.from(v).every(Number.isFinite)).toBe(true);
    const bad = F.crossEntropy(logits, ids([0, -5, 2, 1]), { reduction: 'none', ignoreIndex: 1 });
    const err = await rejection(bad.toArray());
    expect(err).toBeInstanceOf(IndexError);
    expect(err.message).toBe('crossEntropy: target -5 at position [1] is out of range for 3 classes');
    for (const t of [logits, ok, bad]) t.dispose();
  });

  it('backward reports a bad target too, and its gradient row is NaN, not silently zero', async () => {
    const logits = K.randn([2, 3], { seed: 8, requiresGrad: true });
    const targets = ids([1, 3]);
    const loss = F.crossEntropy(logits, targets);
    await expect(loss.item()).rejects.toBeInstanceOf(IndexError);
    loss.backward();
    const err = await rejection(logits.grad!.toArray());
    expect(err.message).toBe('crossEntropy.backward: target 3 at position [1] is out of range for 3 classes');
    const g = await logits.grad!.toArray();
    expect(Array.from(g.slice(3)).every(Number.isNaN)).toBe(true);
    for (const t of [logits, targets, loss]) t.dispose();
  });

  it('an ignoreIndex outside the i32 range is a ValueError before any work (2**32 must not wrap to 0)', () => {
    const logits = K.randn([2, 3], { seed: 9 });
    const targets = ids([0, 1]);
    expect(() => F.crossEntropy(logits, targets, { ignoreIndex: 2 ** 32 })).toThrow(K.ValueError);
    expect(() => F.crossEntropy(logits, targets, { ignoreIndex: -(2 ** 31) - 1 })).toThrow(K.ValueError);
    for (const t of [logits, targets]) t.dispose();
  });
});
