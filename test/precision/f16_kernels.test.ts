// The two ways kernels take f16 tensors (flag f16.kernels): 'native' reads and writes f16 storage (elementwise.wgsl's *_n entries,
// matmul.wgsl's f16 variant; needs shader-f16, which lavapipe has) and 'packed' reads pairs of halves in 32-bit words
// (any adapter). Both compute in f32 and round once with the same function, so they must agree bit for bit: every
// elementwise entry (unary, binary, both backward rules, in-place accumulation), odd sizes (halves sharing a word),
// strided and broadcast operands and strided outputs, NaN and overflow; matmul on both B layouts (vec4 and strided),
// batched and broadcast, with gradients, against float64 too. A dispatch spy checks which kernel each setting ran.
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as K from '../../src/index.node';
import * as kernels from '../../src/gpu/kernels';
import type { KernelModule } from '../../src/gpu/kernels';
import { setFlag } from '../../src/experimental';
import * as R from '../reference/ops';
import { transpose } from '../reference/core';
import { expectNoLeak } from '../helpers';
import { expectHalfClose, halfOf, rndHalf } from './helpers';

const ran: string[] = [];
const realDispatch = kernels.dispatch;
vi.spyOn(kernels, 'dispatch').mockImplementation(((kernel: KernelModule, entry: string, spec: kernels.DispatchSpec) => {
  ran.push(kernel.file);
  return realDispatch(kernel, entry, spec);
}) as typeof kernels.dispatch);

afterAll(() => setFlag('f16.kernels', undefined));

type Mode = 'native' | 'packed';

/** Every output of `f` (fresh f16 inputs each time) under both settings, as bits, and the kernel files each ran. */
async function bothWays(f: () => K.Tensor[]): Promise<Record<Mode, { values: Float32Array[]; files: Set<string> }>> {
  const out = {} as Record<Mode, { values: Float32Array[]; files: Set<string> }>;
  for (const mode of ['native', 'packed'] as const) {
    setFlag('f16.kernels', mode);
    ran.length = 0;
    const ts = f();
    const files = new Set(ran);
    out[mode] = { values: await Promise.all(ts.map((t) => t.toArray() as Promise<Float32Array>)), files };
    for (const t of ts) t.dispose();
  }
  setFlag('f16.kernels', undefined);
  return out;
}

function sameBits(a: Float32Array[], b: Float32Array[]): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const x = new Uint32Array(a[i].buffer, a[i].byteOffset, a[i].length), y = new Uint32Array(b[i].buffer, b[i].byteOffset, b[i].length);
    let bad = -1;
    for (let k = 0; k < x.length && bad < 0; k++) if (x[k] !== y[k] && !(Number.isNaN(a[i][k]) && Number.isNaN(b[i][k]))) bad = k;
    expect(bad, `output ${i}: element ${bad}: native ${a[i][bad]} vs packed ${b[i][bad]}`).toBe(-1);
  }
}

describe('f16.kernels: native f16 storage and packed pairs agree bit for bit', () => {
  it('the flag is checked against the device; lavapipe has shader-f16, so native is the default here', () => {
    expect(() => setFlag('f16.kernels', 'wide')).toThrow(K.ValueError);
    expect(K.deviceInfo().features).toContain('shader-f16');
  });

  it('unary, binary (broadcast, strided), comparisons, where, and their gradients; odd sizes; NaN and overflow', async () => {
    const x = rndHalf([7, 13], 1, -4, 4), y = rndHalf([13], 2, 0.5, 3), z = rndHalf([13, 7], 3, -4, 4);
    x.data[5] = NaN;
    x.data[6] = 60000;
    const r = await bothWays(() => K.tidy(() => {
      const xt = halfOf(x, true), yt = halfOf(y, true), zl = halfOf(z, true), zt = zl.transpose(0, 1);
      const outs = [
        K.exp(xt), K.gelu(xt), K.mul(xt, xt), K.pow(xt, 3), K.clamp(xt, -1, 2), K.div(xt, yt), K.sub(zt, xt), K.maximum(xt, zt),
        K.mul(xt, 1000), K.add(zt, yt).contiguous(), K.lt(xt, zt).to('f16'), K.where(K.gt(xt, 0), xt, zt), K.neg(zt).contiguous(),
      ];
      const loss = K.sum(K.mul(K.add(K.tanh(xt), K.mul(K.sigmoid(zt), yt)), K.div(xt, yt)));
      loss.backward();
      return [...outs, xt.grad!.clone(), yt.grad!.clone(), zl.grad!.clone()];
    }));
    expect(r.native.files).toContain('elementwise.wgsl#f16');
    expect(r.packed.files).not.toContain('elementwise.wgsl#f16');
    sameBits(r.native.values, r.packed.values);
  });

  it('strided outputs (concat into slices of an odd-length buffer) and accumulated gradients', async () => {
    const r = await bothWays(() => K.tidy(() => {
      const a = K.randn([3, 5], { seed: 4, dtype: 'f16', requiresGrad: true }), b = K.randn([3, 4], { seed: 5, dtype: 'f16' });
      const c = K.concat([K.exp(a), b, K.sqrt(K.abs(a))], 1);
      // a is used three times: its gradient accumulates in place
      K.sum(K.mul(K.add(K.mul(a, a), a), K.mul(a, 0.5))).backward();
      return [c, a.grad!.clone()];
    }));
    sameBits(r.native.values, r.packed.values);
  });

  it('matmul: f16 storage read directly (vec4 and strided B, batched, broadcast), within one f16 rounding of float64, same bits as widening', async () => {
    const cases: [number[], number[], boolean][] = [[[17, 24], [24, 36], false], [[3, 5, 9], [9, 7], false], [[2, 1, 6, 33], [3, 33, 12], true]];
    for (const [as, bs, tb] of cases) {
      const a = rndHalf(as, 6, -2, 2), b = rndHalf(tb ? [...bs.slice(0, -2), bs[bs.length - 1], bs[bs.length - 2]] : bs, 7, -2, 2);
      const bT = (t: K.Tensor) => (tb ? t.transpose(-1, -2) : t);
      const r = await bothWays(() => K.tidy(() => {
        const at = halfOf(a, true), bt = halfOf(b, true);
        const y = K.matmul(at, bT(bt));
        K.sum(K.mul(y, y)).backward();
        return [y, at.grad!.clone(), bt.grad!.clone()];
      }));
      expect(r.native.files).toContain('matmul.wgsl#f16');
      expect(r.packed.files).not.toContain('matmul.wgsl#f16');
      sameBits(r.native.values, r.packed.values);
      const bRef = tb ? transpose(b, b.shape.length - 1, b.shape.length - 2) : b;
      setFlag('f16.kernels', 'native');
      await expectNoLeak(async () => {
        const at = halfOf(a), bt = halfOf(b);
        const y = K.tidy(() => K.matmul(at, bT(bt)));
        await expectHalfClose(y, R.matmul(a, bRef), 1e-6, 1e-5, `matmul ${as} @ ${bs}`);
        for (const t of [at, bt, y]) t.dispose();
      });
      setFlag('f16.kernels', undefined);
    }
  });
});
