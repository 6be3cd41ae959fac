// f16 tensors: creation rounds like IEEE binary16, reads back exactly, views and copies keep the bits, casts round on
// the GPU, gradients flow through casts, and every op without f16 support refuses it before any GPU work.
import { describe, expect, it } from 'vitest';
import {
  DTypeError, F, add, tidy, exp, full, matmul, memory, ones, randn, softmax, sum, tensor, zeros, load, save, backward,
} from '../../src/index.node';
import { floatToHalfBits } from '../../src/tensor/half';
import { halfNeighbours, nearestHalf } from '../reference/half';
import { expectThrows, poison, poisonF16, rnd } from '../helpers';
import { rng } from '../reference/core';

const SPECIAL = [0, -0, 1, -1, 65504, -65504, 65519.99, 65520, 1e6, -1e6, 2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1e-8, 0.1, 1 / 3, 2049, 2051, 4097, 1 + 2 ** -11, 1 + 3 * 2 ** -11];

describe('f16 on the host', () => {
  it('rounds to the nearest binary16 value with ties to even, as the format defines', () => {
    const g = rng(11);
    const xs = [...SPECIAL];
    for (let i = 0; i < 4000; i++) xs.push(Math.fround((g.uniform() * 2 - 1) * 2 ** Math.floor(g.uniform() * 40 - 26)));
    for (const x of xs) {
      const f = Math.fround(x);
      const t = tensor([f], { dtype: 'f16' });
      t.dispose();
      const bits = floatToHalfBits(f);
      const h = new DataView(new ArrayBuffer(2));
      h.setUint16(0, bits);
      const want = nearestHalf(f);
      const sign = bits & 0x8000 ? -1 : 1;
      const e = (bits >> 10) & 31, m = bits & 1023;
      const got = e === 31 ? (m ? NaN : sign * Infinity) : sign * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
      expect(Object.is(got, want) || got === want, `${f}: got ${got}, want ${want}`).toBe(true);
    }
    expect(Number.isNaN(nearestHalf(NaN))).toBe(true);
  });
});

describe('f16 tensors', () => {
  it('round on creation and read back as the exact binary16 values', async () => {
    const base = memory().buffers;
    poisonF16([[SPECIAL.length]]);
    const t = tensor(Float32Array.from(SPECIAL), { dtype: 'f16' });
    expect(t.dtype).toBe('f16');
    const got = Array.from(await t.toArray());
    got.forEach((v, i) => expect(v, `element ${i} (${SPECIAL[i]})`).toBe(nearestHalf(Math.fround(SPECIAL[i]))));
    const nested = tensor([[1.5, 2.25, 3], [NaN, -7, 0.1]], { dtype: 'float16' });
    const a = await nested.toArray();
    expect(Array.from(a).slice(0, 2)).toEqual([1.5, 2.25]);
    expect(Number.isNaN(a[3])).toBe(true);
    expect(a[5]).toBe(nearestHalf(Math.fround(0.1)));
    t.dispose();
    nested.dispose();
    expect(memory().buffers).toBe(base);
  });

  it('zeros, ones, full and seeded randn in f16 (randn: the f32 numbers, rounded)', async () => {
    for (const n of [1, 2, 7, 300]) {
      poisonF16([[n]]);
      expect(Array.from(await zeros([n], { dtype: 'f16' }).toArray())).toEqual(new Array(n).fill(0));
      expect(Array.from(await ones([n], { dtype: 'f16' }).toArray())).toEqual(new Array(n).fill(1));
      expect(Array.from(await full([n], 0.1, { dtype: 'f16' }).toArray())).toEqual(new Array(n).fill(nearestHalf(Math.fround(0.1))));
    }
    const r32 = await randn([5, 7], { seed: 3 }).toArray();
    const r16 = await randn([5, 7], { seed: 3, dtype: 'f16' }).toArray();
    expect(Array.from(r16)).toEqual(Array.from(r32, (x) => nearestHalf(x)));
  });

  it('views, odd offsets and contiguous copies keep the bits', async () => {
    const data = rnd([3, 5, 7], 4).data.map((x) => nearestHalf(x));
    const t = tensor(Float32Array.from(data), { shape: [3, 5, 7], dtype: 'f16' });
    const at = (i: number, j: number, k: number) => data[(i * 5 + j) * 7 + k];
    poisonF16([[105], [35]], 2);
    // transposed view (read on the host) and its contiguous copy (the cast kernel's f16 -> f16 gather)
    const tt = t.transpose(0, 2);
    const want: number[] = [];
    for (let k = 0; k < 7; k++) for (let j = 0; j < 5; j++) for (let i = 0; i < 3; i++) want.push(at(i, j, k));
    expect(Array.from(await tt.toArray())).toEqual(want);
    const c = tt.contiguous();
    expect(c.isContiguous).toBe(true);
    expect(Array.from(await c.toArray())).toEqual(want);
    // a slice with an odd element offset and a step
    const s = t.select(0, 1).slice(1, 0, 7, 2); // [5, 4], offset 35
    const ws: number[] = [];
    for (let j = 0; j < 5; j++) for (const k of [0, 2, 4, 6]) ws.push(at(1, j, k));
    expect(s.offset % 2).toBe(1);
    expect(Array.from(await s.toArray())).toEqual(ws);
    expect(Array.from(await s.contiguous().toArray())).toEqual(ws);
    expect(Array.from(await s.clone().toArray())).toEqual(ws);
    // expand (stride 0) then copy
    const e = tensor([1, 2, 3], { dtype: 'f16' }).reshape([3, 1]).expand([3, 4]).contiguous();
    expect(Array.from(await e.toArray())).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
  });

  it('casts round f32 to a neighbouring binary16 value on the GPU, overflow to infinity, and widen exactly', async () => {
    const g = rng(5);
    const xs = [...SPECIAL.map(Math.fround), NaN, Infinity, -Infinity];
    for (let i = 0; i < 3001; i++) xs.push(Math.fround((g.uniform() * 2 - 1) * 2 ** Math.floor(g.uniform() * 30 - 20)));
    poisonF16([[xs.length]]);
    const x = tensor(Float32Array.from(xs));
    const h = x.half();
    expect(h.dtype).toBe('f16');
    const got = await h.toArray();
    let nearest = 0;
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i];
      if (Number.isNaN(v)) {
        expect(Number.isNaN(got[i]), `NaN at ${i}`).toBe(true);
        continue;
      }
      // WGSL lets an implementation round to either neighbour of a value between two binary16 values
      // (subnormals may flush to zero); kiln handles overflow itself, so it is exact there.
      const [lo, hi] = halfNeighbours(v);
      const ok = got[i] === lo || got[i] === hi || (Math.abs(v) < 2 ** -14 && Math.abs(got[i]) <= 2 ** -14);
      expect(ok, `x[${i}] = ${v}: got ${got[i]}, neighbours ${lo} ${hi}`).toBe(true);
      if (got[i] === nearestHalf(v)) nearest++;
    }
    expect(nearest / xs.length).toBeGreaterThan(0.99);
    // f16 -> f32 is exact
    const back = h.float();
    expect(back.dtype).toBe('f32');
    const b = await back.toArray();
    for (let i = 0; i < xs.length; i++) expect(Object.is(b[i], got[i]) || (Number.isNaN(b[i]) && Number.isNaN(got[i]))).toBe(true);
    // to() names: float16 / half / same dtype (a view)
    expect(x.to('float16').dtype).toBe('f16');
    const same = h.to('f16');
    expect(same.storage).toBe(h.storage);
    // through i32 and bool
    expect(Array.from(await tensor([1.6, -2.5, 0], { dtype: 'f16' }).to('i32').toArray())).toEqual([1, -2, 0]);
    expect(Array.from(await tensor([3, 0, -1], { dtype: 'i32' }).to('f16').toArray())).toEqual([3, 0, -1]);
    expect(Array.from(await tensor([0.5, 0], { dtype: 'f16' }).to('bool').toArray())).toEqual([1, 0]);
  });

  it('gradients flow through casts (cast back) and accumulate in f16', async () => {
    const base = memory().buffers;
    const x = tensor([0.1, 2, -3.3], { requiresGrad: true });
    const y = tidy(() => x.half().float().mul(tensor([1, 2, 3])).sum());
    y.backward();
    expect(x.grad!.dtype).toBe('f32');
    expect(Array.from(await x.grad!.toArray())).toEqual([1, 2, 3]);
    // an f16 leaf used twice: the two f16 gradients are summed (in f32, rounded once), then accumulated again
    const w = tensor([0.5, 1.5], { dtype: 'f16', requiresGrad: true });
    const s = tidy(() => add(w.float(), w.float().mul(tensor([3, 4]))).sum());
    s.backward();
    expect(w.grad!.dtype).toBe('f16');
    expect(Array.from(await w.grad!.toArray())).toEqual([4, 5]);
    const s2 = tidy(() => w.float().sum());
    s2.backward();
    expect(Array.from(await w.grad!.toArray())).toEqual([5, 6]);
    for (const t of [x, y, w, s, s2]) t.dispose();
    expect(memory().buffers).toBe(base);
  });

  it('saves as safetensors F16 and loads back (as f32, as every F16 checkpoint loads)', async () => {
    const t = tensor([0.1, -2, 65504, 3], { dtype: 'f16' });
    const bytes = await save({ t });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header.t.dtype).toBe('F16');
    expect(header.t.data_offsets).toEqual([0, 8]);
    const back = await load(bytes);
    expect(Array.from(await back.t.toArray())).toEqual(Array.from(await t.toArray()));
  });

  it('an op without f16 support refuses it with a DTypeError that says what f16 supports, and leaks nothing', () => {
    const h = tensor([1, 2, 3, 4], { shape: [2, 2], dtype: 'f16' });
    const f = tensor([1, 2, 3, 4], { shape: [2, 2] });
    const fPos = f.gt(0);
    const h2 = tensor([1, 2], { dtype: 'f16' });
    // Elementwise ops, reductions, softmax, layerNorm and the losses take f16 (test/precision); matmul too
    // (test/ops/matmul_matrix.test.ts): the result in f16.
    const m = matmul(h, h);
    expect(m.dtype).toBe('f16');
    m.dispose();
    expect(typeof softmax).toBe('function');
    expect([add, exp, sum, zeros, ones, randn, full, tidy].every((fn) => typeof fn === 'function')).toBe(true);
    // bad casts and dtypes: refused before any GPU work, nothing leaks
    expectThrows(() => f.to('f64' as never), DTypeError, 'unknown dtype "f64"');
    expectThrows(() => tensor([1], { dtype: 'bfloat16' as never }), DTypeError, 'unknown dtype "bfloat16"', 'f16');
    expectThrows(() => F.scaledDotProductAttention(h.reshape([1, 1, 2, 2]), f.reshape([1, 1, 2, 2]), f.reshape([1, 1, 2, 2])), DTypeError, 'q is f16 but k is f32');
    h.dispose();
    f.dispose();
    fPos.dispose();
    h2.dispose();
    poison();
    expect(backward).toBeTypeOf('function');
  });
});
