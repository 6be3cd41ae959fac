// Device loss: pending reads reject with a DeviceError, new calls fail fast with a clear message, and
// init() acquires a new device on which kiln works again. Own file: it destroys the device.
import { describe, expect, it } from 'vitest';
import { DeviceError, init, randn, tensor, memory } from '../../src/index.node';
import { gpuDevice } from '../../src/experimental';

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
});
