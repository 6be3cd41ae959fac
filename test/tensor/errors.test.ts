// Bad inputs: each error is typed, names the values at fault, and leaves live memory as it was (also after the inputs
// are disposed, which catches views an op made before failing and never released).
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { encodedWork, expectThrows } from '../helpers';

type Cls = new (...args: never[]) => Error;

/** Creates inputs, runs the failing call, disposes the inputs: the error must match and memory must be back at baseline. */
function failsCleanly<T extends K.Tensor[]>(make: () => [...T], call: (...ts: T) => unknown, cls: Cls, ...patterns: (RegExp | string)[]): void {
  const baseline = K.memory().buffers;
  const inputs = make();
  const withInputs = K.memory().buffers;
  const work = encodedWork();
  let caught: unknown = null;
  try {
    call(...inputs);
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${cls.name}`).toBeInstanceOf(cls);
  expect(caught).toBeInstanceOf(K.KilnError);
  const msg = (caught as Error).message;
  for (const p of patterns) {
    if (typeof p === 'string') expect(msg).toContain(p);
    else expect(msg).toMatch(p);
  }
  expect(K.memory().buffers, `buffers changed by the failing call: ${msg}`).toBe(withInputs);
  expect(encodedWork(), `GPU work encoded by the failing call: ${msg}`).toBe(work);
  for (const t of inputs) t.dispose();
  expect(K.memory().buffers, `buffers kept alive after the inputs were disposed: ${msg}`).toBe(baseline);
}

const f = (shape: number[]) => K.zeros(shape);
const i32 = (shape: number[]) => K.zeros(shape, { dtype: 'i32' });

describe('shape errors', () => {
  it('matmul inner dimensions', () => {
    failsCleanly(() => [f([2, 3]), f([4, 5])], (a, b) => K.matmul(a, b), K.ShapeError, '[2,3]', '[4,5]', '(3 vs 4)');
    failsCleanly(() => [f([3]), f([4])], (a, b) => K.matmul(a, b), K.ShapeError, '[3]', '[4]', '(3 vs 4)');
    failsCleanly(() => [f([2, 2, 3]), f([3, 3, 1])], (a, b) => K.matmul(a, b), K.ShapeError, '[2]', '[3]', /broadcast/);
    failsCleanly(() => [f([]), f([3])], (a, b) => K.matmul(a, b), K.ShapeError, '[]', '[3]');
    failsCleanly(() => [f([2, 3]), f([5, 4])], (x, w) => K.linear(x, w), K.ShapeError, '[2,3]', '[5,4]', '3', '4');
    failsCleanly(() => [f([2, 3]), f([5, 3]), f([4])], (x, w, b) => K.linear(x, w, b), K.ShapeError, '[4]', '[5]');
  });

  it('non-broadcastable shapes in binary ops and where', () => {
    failsCleanly(() => [f([2, 3]), f([4])], (a, b) => K.add(a, b), K.ShapeError, '[2,3]', '[4]', '3 vs 4');
    failsCleanly(() => [f([5, 1, 3]), f([2, 2])], (a, b) => K.mul(a, b), K.ShapeError, '[5,1,3]', '[2,2]');
    failsCleanly(() => [f([2, 3]), f([3, 3])], (a, b) => K.lt(a, b), K.ShapeError, '[2,3]', '[3,3]');
    failsCleanly(() => [K.zeros([4], { dtype: 'bool' }), f([3]), f([3])], (c, a, b) => K.where(c, a, b), K.ShapeError, '[4]', '[3]');
    failsCleanly(() => [f([2, 3])], (a) => K.expand(a, [2, 4]), K.ShapeError, '[2,3]', '[2,4]');
    failsCleanly(() => [f([2, 3])], (a) => K.expand(a, [3]), K.ShapeError, '[2,3]', '[3]');
  });

  it('dims out of range', () => {
    failsCleanly(() => [f([2, 3])], (a) => K.sum(a, 2), K.ShapeError, 'dim 2', '[2,3]');
    failsCleanly(() => [f([2, 3])], (a) => K.mean(a, -3), K.ShapeError, 'dim -3', '[2,3]');
    failsCleanly(() => [f([2, 3])], (a) => K.amax(a, [0, 0]), K.ShapeError, '[0,0]');
    failsCleanly(() => [f([2, 3])], (a) => K.argmax(a, 5), K.ShapeError, 'dim 5');
    failsCleanly(() => [f([2, 3])], (a) => K.softmax(a, 2), K.ShapeError, 'dim 2', '[2,3]');
    failsCleanly(() => [f([2, 3])], (a) => K.logSoftmax(a, -3), K.ShapeError, 'dim -3');
    failsCleanly(() => [f([2, 3])], (a) => K.transpose(a, 0, 2), K.ShapeError, 'dim 2');
    failsCleanly(() => [f([2, 3])], (a) => K.permute(a, [0]), K.ShapeError, '[0]', '[2,3]');
    failsCleanly(() => [f([2, 3])], (a) => K.permute(a, [1, 1]), K.ShapeError, '[1,1]');
    failsCleanly(() => [f([2, 3])], (a) => K.unsqueeze(a, 4), K.ShapeError, 'dim 4');
    failsCleanly(() => [f([2, 3])], (a) => K.squeeze(a, 2), K.ShapeError, 'dim 2');
    failsCleanly(() => [f([2, 3])], (a) => K.select(a, 1, 3), K.ShapeError, 'index 3', '[2,3]');
    failsCleanly(() => [f([2, 3])], (a) => K.slice(a, 2, 0, 1), K.ShapeError, 'dim 2');
    failsCleanly(() => [f([2, 3]), f([2, 3])], (a, b) => K.concat([a, b], 2), K.ShapeError, 'dim 2');
    failsCleanly(() => [f([2, 3]), f([2, 3])], (a, b) => K.stack([a, b], 3), K.ShapeError, 'dim 3');
    failsCleanly(() => [f([2, 3])], (a) => K.flatten(a, 0, 2), K.ShapeError, 'dim 2');
  });

  it('limits and empty reductions fail without leaking (also views made before the failure)', () => {
    failsCleanly(() => [f([1, 1, 1, 1, 1, 2, 3]), f([3, 2])], (a, b) => K.matmul(a, b), K.ShapeError, '4 batch dims', '[1,1,1,1,1]');
    failsCleanly(() => [f([1, 1, 1, 1, 1, 2, 3]), f([3])], (a, b) => K.matmul(a, b), K.ShapeError, '4 batch dims');
    failsCleanly(() => [f([0, 3])], (a) => K.max(a, 0), K.ShapeError, '[0,3]');
    failsCleanly(() => [f([0, 3])], (a) => K.argmax(a), K.ShapeError, '[0]');
    failsCleanly(() => [f([0, 3])], (a) => K.argmin(a, 0), K.ShapeError, '[0,3]');
  });

  it('concat / stack with mismatched shapes', () => {
    failsCleanly(() => [f([2, 3]), f([2, 4])], (a, b) => K.concat([a, b], 0), K.ShapeError, '[2,3]', '[2,4]');
    failsCleanly(() => [f([2, 3]), f([3])], (a, b) => K.concat([a, b], 0), K.ShapeError, '[2,3]', '[3]');
    failsCleanly(() => [f([2, 3]), f([3, 2])], (a, b) => K.stack([a, b], 0), K.ShapeError, '[2,3]', '[3,2]');
  });

  it('negative, non-integer and inconsistent sizes', () => {
    expectThrows(() => K.zeros([2, -1]), K.ShapeError, '-1');
    expectThrows(() => K.ones([1.5, 2]), K.ShapeError, '1.5');
    expectThrows(() => K.randn([3, NaN]), K.ShapeError, 'null');
    expectThrows(() => K.full([-3], 1), K.ShapeError, '-3');
    expectThrows(() => K.tensor([1, 2], { shape: [-2] }), K.ShapeError, '-2');
    failsCleanly(() => [f([2, 3])], (a) => K.reshape(a, [4, -1]), K.ShapeError, '[2,3]', '[4,-1]');
    failsCleanly(() => [f([2, 3])], (a) => K.reshape(a, [7]), K.ShapeError, '[2,3]', '[7]', '6');
    failsCleanly(() => [f([2, 3])], (a) => K.reshape(a, [-1, -1]), K.ShapeError, '[-1,-1]');
    failsCleanly(() => [f([2, 3])], (a) => K.reshape(a, [2, 1.5, 2]), K.ShapeError, '1.5');
    failsCleanly(() => [f([2, 3])], (a) => K.reshape(a, [-2, -3]), K.ShapeError, '-2');
    failsCleanly(() => [f([2, 3])], (a) => K.slice(a, 1, 0, 3, 0), K.ValueError, 'step', '0');
  });

  it('data length vs shape, and ragged nested arrays', () => {
    expectThrows(() => K.tensor([1, 2, 3], { shape: [2, 2] }), K.ShapeError, '3 elements', '[2,2]', '4');
    expectThrows(() => K.tensor(Float32Array.from([1, 2, 3, 4, 5]), { shape: [2, 3] }), K.ShapeError, '5', '[2,3]', '6');
    expectThrows(() => K.tensor([[1, 2], [3]]), K.ShapeError, 'ragged', '[1]', '1', '2');
    expectThrows(() => K.tensor([[1, 2], 3] as never), K.ShapeError, 'ragged', '[1]');
    expectThrows(() => K.tensor([[[1], [2]], [[3], [4, 5]]]), K.ShapeError, 'ragged', '[1][1]');
    expectThrows(() => K.tensor([1, [2, 3]] as never), K.ShapeError, 'ragged', '[1]');
    // Data that does not fit the dtype is rejected before any buffer is taken.
    expectThrows(() => K.tensor([1, 2.5], { dtype: 'i32' }), K.ValueError, 'element 1', '2.5');
    expectThrows(() => K.arange(0, 1, 0.25, { dtype: 'i32' }), K.ValueError, '0.25', 'i32');
  });

  it('item on more than one element, backward on a non-scalar', async () => {
    const a = f([2, 3]);
    await expect(a.item()).rejects.toBeInstanceOf(K.ShapeError);
    await expect(a.item()).rejects.toThrow(/\[2,3\].*6 elements/);
    a.dispose();
    // The failing call is backward(): it must encode nothing (the product is made before it).
    failsCleanly(
      () => {
        const a = K.ones([2, 3], { requiresGrad: true });
        return [a, K.mul(a, 2)];
      },
      (_a, y) => y.backward(),
      K.ShapeError,
      '[2,3]',
    );
  });
});

describe('dtype errors', () => {
  it('f32 mixed with i32 in arithmetic and matmul', () => {
    failsCleanly(() => [f([2, 3]), i32([2, 3])], (a, b) => K.add(a, b), K.DTypeError, 'f32', 'i32');
    failsCleanly(() => [i32([3]), f([3])], (a, b) => K.mul(a, b), K.DTypeError, 'i32', 'f32');
    failsCleanly(() => [f([3]), i32([3])], (a, b) => K.sub(a, b), K.DTypeError, 'f32', 'i32');
    failsCleanly(() => [f([3]), i32([3])], (a, b) => K.div(a, b), K.DTypeError, 'f32', 'i32');
    failsCleanly(() => [f([3]), i32([3])], (a, b) => K.maximum(a, b), K.DTypeError, 'f32', 'i32');
    failsCleanly(() => [f([3]), i32([3])], (a, b) => K.eq(a, b), K.DTypeError, 'f32', 'i32');
    failsCleanly(() => [f([2, 3]), i32([3, 2])], (a, b) => K.matmul(a, b), K.DTypeError, 'f32', 'i32');
    failsCleanly(() => [K.zeros([3], { dtype: 'bool' }), f([3]), i32([3])], (c, a, b) => K.where(c, a, b), K.DTypeError, 'f32', 'i32');
    failsCleanly(() => [f([3]), f([3]), f([3])], (c, a, b) => K.where(c, a, b), K.DTypeError, 'cond', 'f32');
    failsCleanly(() => [f([2]), i32([2])], (a, b) => K.concat([a, b]), K.DTypeError, 'f32', 'i32');
  });

  it('float-only ops reject integers, with the dtype named', () => {
    failsCleanly(() => [i32([3])], (a) => K.exp(a), K.DTypeError, 'exp', 'i32');
    failsCleanly(() => [i32([3])], (a) => K.softmax(a, 0), K.DTypeError, 'softmax', 'i32');
    failsCleanly(() => [i32([3])], (a) => K.mean(a), K.DTypeError, 'mean', 'i32');
    failsCleanly(() => [f([3])], (a) => K.logicalNot(a), K.DTypeError, 'f32');
    expectThrows(() => K.tensor([1, 2], { dtype: 'i32', requiresGrad: true }), K.DTypeError, 'i32');
  });

  it('embedding needs i32 indices', () => {
    failsCleanly(() => [f([3]), f([5, 2])], (i, w) => K.embedding(i, w), K.DTypeError, 'indices', 'i32', 'f32');
    failsCleanly(() => [i32([3]), f([5])], (i, w) => K.embedding(i, w), K.ShapeError, 'weight', '[5]');
  });

  it('layerNorm shape mismatches', () => {
    failsCleanly(() => [f([2, 5])], (x) => K.layerNorm(x, [4]), K.ShapeError, '[4]', '[2,5]');
    failsCleanly(() => [f([2, 5])], (x) => K.layerNorm(x, [3, 2, 5]), K.ShapeError, '[3,2,5]', '[2,5]');
    failsCleanly(() => [f([2, 5]), f([4])], (x, w) => K.layerNorm(x, [5], w), K.ShapeError, 'weight', '[4]', '[5]');
    failsCleanly(() => [f([2, 5]), f([1, 5])], (x, b) => K.layerNorm(x, [5], null, b), K.ShapeError, 'bias', '[1,5]', '[5]');
  });
});

describe('disposed tensors', () => {
  it('every use of a disposed tensor is a DisposedError naming the op and the shape', async () => {
    const a = K.zeros([2, 3]);
    const b = K.zeros([2, 3]);
    const baseline = K.memory().buffers;
    a.dispose();
    expect(K.memory().buffers).toBe(baseline - 1);
    const uses: [string, () => unknown][] = [
      ['add', () => K.add(a, b)],
      ['add', () => K.add(b, a)],
      ['exp', () => K.exp(a)],
      ['sum', () => K.sum(a)],
      ['matmul', () => K.matmul(a, K.transpose(b, 0, 1))],
      ['reshape', () => K.reshape(a, [6])],
      ['transpose', () => K.transpose(a, 0, 1)],
      ['softmax', () => K.softmax(a, 1)],
      ['contiguous', () => K.contiguous(a)],
      ['where', () => K.where(K.gt(b, 0), a, b)],
    ];
    for (const [name, use] of uses) {
      const before = K.memory().buffers;
      let caught: unknown = null;
      try {
        K.tidy(() => void use());
      } catch (e) {
        caught = e;
      }
      expect(caught, name).toBeInstanceOf(K.DisposedError);
      expect((caught as Error).message).toContain('[2,3]');
      expect((caught as Error).message).toContain('disposed');
      expect(K.memory().buffers, name).toBe(before);
    }
    await expect(a.toArray()).rejects.toThrow(K.DisposedError);
    await expect(a.item()).rejects.toBeInstanceOf(K.KilnError);
    a.dispose(); // twice is harmless
    expect(a.isDisposed).toBe(true);
    expect(K.memory().buffers).toBe(baseline - 1);
    b.dispose();
  });
});

describe('a disposed weight fails cleanly', () => {
  it('layerNorm and embedding with a disposed weight or bias: DisposedError, no buffer left, no GPU work', () => {
    const x = f([2, 4]);
    const w = K.ones([4]);
    const b = K.zeros([4]);
    const table = K.zeros([10, 4]);
    const ids = K.tensor([1, 2, 3], { dtype: 'i32' });
    w.dispose();
    table.dispose();
    expectThrows(() => K.layerNorm(x, [4], w, b), K.DisposedError, 'layerNorm', '[4]');
    expectThrows(() => K.layerNorm(x, [4], null, w), K.DisposedError, 'layerNorm');
    expectThrows(() => K.embedding(ids, table), K.DisposedError, 'embedding', '[10,4]');
    for (const t of [x, b, ids]) t.dispose();
  });

  it('a tensor over the binding limit fails before any buffer exists, every time', () => {
    const limit = K.deviceInfo().limits.maxStorageBufferBindingSize;
    const n = Math.floor(limit / 4) + 1;
    for (let i = 0; i < 3; i++) expectThrows(() => K.zeros([n]), K.KilnError, 'bytes');
  });
});
