/// <reference types="@webgpu/types" preserve="true" />
// Node entry: WebGPU through Dawn (npm 'webgpu'), with a software Vulkan fallback.
import { init as initDevice, type DeviceInfo, type InitOptions } from './gpu/device.js';
import { setPlatform } from './gpu/platform.js';
import { nodePlatform } from './gpu/platform_node.js';
import { enableMatrixAttention } from './attention/matrix.js';
import { enableRowsAttention } from './attention/rows.js';

export * from './index.js';

/**
 * Picks an adapter (a hardware GPU when there is one, else a software one: lavapipe or SwiftShader through Dawn),
 * requests a device, and reports what it chose.
 */
export function init(options?: InitOptions): Promise<DeviceInfo> {
  // Installed here rather than when the module loads, so importing kiln runs nothing (package.json "sideEffects").
  setPlatform(nodePlatform);
  // Node's Dawn exposes subgroup matrices (the toggles of platform_node.ts): plan attention on them where init's probe
  // trusts a config.
  enableMatrixAttention();
  // lavapipe (the software adapter Node falls back to) runs the register-tiled attention forward fastest.
  enableRowsAttention();
  return initDevice(options);
}
