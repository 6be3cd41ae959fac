// Browser entry: WebGPU through navigator.gpu.
import { setPlatform } from './gpu/platform.js';
import { DeviceError } from './errors.js';
setPlatform({
  name: 'browser',
  async getGPU() {
    const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
    if (!nav?.gpu) {
      throw new DeviceError('kiln: this browser has no navigator.gpu (WebGPU). Use a browser with WebGPU enabled, on a secure page (https or http://127.0.0.1).');
    }
    return { gpu: nav.gpu, info: { name: 'browser' } };
  },
  now: () => performance.now(),
});
export * from './index.js';
