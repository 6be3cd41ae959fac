/// <reference types="@webgpu/types" preserve="true" />
// Browser entry: WebGPU through navigator.gpu.
import { DeviceError } from './errors.js';
import { init as initDevice, type DeviceInfo, type InitOptions } from './gpu/device.js';
import { setPlatform, type Platform } from './gpu/platform.js';

export * from './index.js';

const browserPlatform: Platform = {
  name: 'browser',
  async getGPU() {
    const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
    if (!nav?.gpu) {
      throw new DeviceError('kiln: this browser has no navigator.gpu (WebGPU). Use a browser with WebGPU enabled, on a secure page (https or http://127.0.0.1).');
    }
    return { gpu: nav.gpu, info: { name: 'browser' } };
  },
  now: () => performance.now(),
};

/** Picks a WebGPU adapter (navigator.gpu), requests a device, and reports what it chose. */
export function init(options?: InitOptions): Promise<DeviceInfo> {
  // Installed here rather than when the module loads, so importing kiln runs nothing (package.json "sideEffects").
  setPlatform(browserPlatform);
  return initDevice(options);
}
