// Device loss: pending reads reject with a DeviceError, new calls fail fast with a clear message, and
// init() acquires a new device on which kiln works again. Every tensor of the lost device throws a DeviceError
// naming the loss, work encoded for it is dropped, its pooled buffers are never handed out again, and no read
// returns another tensor's bytes. Own file: it destroys the device.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { DeviceError, init, randn, tensor, memory } from '../../src/index.node';
import { gpuDevice } from '../../src/experimental';

async function values(t: K.Tensor): Promise<number[]> {
  return Array.from(await t.toArray());
}

describe('device loss', () => {
  it('rejects pending reads, fails fast, and recovers through init()', async () => {
    const x = randn([4096], { seed: 1 });
    const y = x.mul(2).exp();
    const pending = y.toArray();
    gpuDevice().destroy();
    await expect(pending).rejects.toBeInstanceOf(DeviceError);
    // The loss is observed asynchronously; give the lost promise a turn.
    await new Promise((r) => setTimeout(r, 50));
    expect(() => randn([3])).toThrow(DeviceError);
    expect(() => randn([3])).toThrow(/device was lost.*call `await init\(\)`/);
    expect(() => x.add(1)).toThrow(DeviceError);
    await expect(x.toArray()).rejects.toBeInstanceOf(DeviceError);
    // Tensors of the lost device can still be disposed without error.
    x.dispose();
    y.dispose();
    const info = await init();
    expect(info.vendor.length + info.description.length).toBeGreaterThan(0);
    const before = memory().buffers;
    const a = tensor([1, 2, 3]);
    const z = a.mul(3);
    expect(Array.from(await z.toArray())).toEqual([3, 6, 9]);
    z.dispose();
    a.dispose();
    expect(memory().buffers).toBe(before);
  });

  it('init() right after destroy() waits for the loss and returns a working new device', async () => {
    const old = gpuDevice();
    const kept = tensor([[1, 2, 3], [4, 5, 6]]);
    old.destroy();
    // No wait: the destroyed device is known at once, and init() must not hand it back.
    await init();
    expect(gpuDevice()).not.toBe(old);
    const t = tensor([1, 2, 3]).mul(2);
    expect(await values(t)).toEqual([2, 4, 6]);
    t.dispose();
    // The old tensor names the loss and what to do, on every use.
    expect(() => kept.add(1)).toThrow(DeviceError);
    expect(() => kept.add(1)).toThrow(/tensor \[2,3\] belongs to a GPU device that was lost \(destroyed\).*await init\(\)/);
    await expect(kept.toArray()).rejects.toThrow(/belongs to a GPU device that was lost \(destroyed\)/);
    expect(() => kept.reshape([6])).toThrow(DeviceError);
    expect(() => K.matmul(kept, kept.transpose(0, 1))).toThrow(DeviceError);
    kept.dispose();
    kept.dispose(); // twice is harmless
  });

  it('old tensors never poison the new device: a failed op leaves unrelated work and reads intact', async () => {
    const olds = [tensor([10, 20, 30, 40]), randn([64], { seed: 3 }), tensor([7, 8, 9, 10])];
    const oldPending = olds[1].mul(2); // encoded for the old device, never submitted
    gpuDevice().destroy();
    await init();
    const before = memory();
    expect(before.buffers).toBe(0); // the new device holds nothing yet; the old tensors' memory is gone
    // New tensors of the same sizes as the old ones (the old pooled buffers must not be reused).
    const a = tensor([1, 2, 3, 4]);
    const b = a.mul(10);
    // An op mixing an old tensor fails before any work is encoded...
    expect(() => K.add(a, olds[0])).toThrow(DeviceError);
    expect(() => K.add(olds[2], a)).toThrow(DeviceError);
    expect(() => oldPending.sum()).toThrow(DeviceError);
    // ...and the new device's work, encoded before and after, reads back exactly, with no error.
    const c = b.add(1);
    expect(await values(b)).toEqual([10, 20, 30, 40]);
    expect(await values(c)).toEqual([11, 21, 31, 41]);
    const fresh = K.zeros([4]);
    expect(await values(fresh)).toEqual([0, 0, 0, 0]);
    // Every old tensor throws on read; none returns another tensor's bytes.
    for (const t of [...olds, oldPending]) await expect(t.toArray()).rejects.toBeInstanceOf(DeviceError);
    // Disposing old tensors does not disturb the new device's accounting.
    const live = memory().buffers;
    for (const t of [...olds, oldPending]) t.dispose();
    expect(memory().buffers).toBe(live);
    for (const t of [a, b, c, fresh]) t.dispose();
    expect(memory().buffers).toBe(before.buffers);
    expect(memory().bytes).toBe(before.bytes);
  });

  it('pooled buffers of the lost device are never handed out again', async () => {
    // Fill the pool with buffers holding a recognisable pattern, then lose the device.
    const pattern = Array.from({ length: 256 }, (_, i) => 1000 + i);
    for (let i = 0; i < 4; i++) tensor(pattern).dispose();
    await K.sync();
    gpuDevice().destroy();
    await init();
    expect(memory().pooledBytes).toBe(0);
    // Same size class: new buffers, zeroed by WebGPU, never the old device's.
    const ids: number[][] = [];
    for (let i = 0; i < 4; i++) {
      const t = K.full([256], 5);
      ids.push(await values(t));
      t.dispose();
    }
    for (const v of ids) expect(v.every((e) => e === 5)).toBe(true);
  });

  it('a batch encoded for a device that is then destroyed is dropped, not submitted to the next one', async () => {
    const x = tensor([1, 2, 3]);
    K.tidy(() => {
      let t = x;
      for (let i = 0; i < 10; i++) t = t.add(1);
      return t;
    }).dispose(); // pending, never read
    gpuDevice().destroy();
    await init();
    const y = tensor([4, 5, 6]).mul(2);
    expect(await values(y)).toEqual([8, 10, 12]);
    await K.sync();
    y.dispose();
    x.dispose();
  });
});
