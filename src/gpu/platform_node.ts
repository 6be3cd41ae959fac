// Node platform: Dawn through the npm package `webgpu`. On a machine without a hardware Vulkan driver,
// points the Vulkan loader at a software driver before Dawn loads.
import { existsSync, readdirSync } from 'node:fs';
import { DeviceError } from '../errors.js';
import type { Platform, PlatformInfo } from './platform.js';

const LAVAPIPE = '/usr/share/vulkan/icd.d/lvp_icd.json';
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** Whether this machine shows a GPU device node (DRM render node, NVIDIA device, or WSL's dxg). */
function hasGpuDevice(): boolean {
  try {
    if (existsSync('/dev/dri') && readdirSync('/dev/dri').some((f) => f.startsWith('renderD'))) return true;
  } catch {
    /* unreadable: treat as absent */
  }
  return existsSync('/dev/nvidiactl') || existsSync('/dev/nvidia0') || existsSync('/dev/dxg');
}

/**
 * Picks the Vulkan driver for Dawn. A user's own VK_ICD_FILENAMES / VK_DRIVER_FILES wins. Without a GPU
 * device node, Mesa's hardware ICD files (installed alongside lavapipe) would find nothing, so kiln
 * points the loader at lavapipe, else SwiftShader.
 */
export function chooseIcd(forceSoftware: boolean): string | undefined {
  const env = process.env;
  if (env.VK_ICD_FILENAMES || env.VK_DRIVER_FILES) return env.VK_ICD_FILENAMES ?? env.VK_DRIVER_FILES;
  if (!forceSoftware && env.KILN_FORCE_SOFTWARE !== '1' && hasGpuDevice()) return undefined;
  const order = env.KILN_SOFTWARE_ICD === 'swiftshader' ? [SWIFTSHADER, LAVAPIPE] : [LAVAPIPE, SWIFTSHADER];
  for (const icd of order) {
    if (existsSync(icd)) {
      env.VK_ICD_FILENAMES = icd;
      return icd;
    }
  }
  return undefined;
}

let dawnModule: { create: (flags: string[]) => GPU; globals: Record<string, unknown> } | null = null;

export const nodePlatform: Platform = {
  name: 'node',
  async getGPU({ forceSoftware, dawnToggles }) {
    const icd = chooseIcd(!!forceSoftware);
    if (!dawnModule) {
      try {
        dawnModule = (await import('webgpu')) as unknown as typeof dawnModule;
      } catch (e) {
        throw new DeviceError(`kiln: could not load Dawn (npm package 'webgpu'): ${(e as Error).message}. Run 'npm install webgpu'.`);
      }
      // WebGPU's constants (GPUBufferUsage, ...) are globals in browsers; Dawn exposes them separately.
      for (const [k, v] of Object.entries(dawnModule!.globals)) {
        if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
      }
    }
    const flags = ['disable-dawn-features=timestamp_quantization', ...(dawnToggles ?? [])];
    const gpu = dawnModule!.create(flags);
    const info: PlatformInfo = { name: 'node', icd };
    return { gpu, info };
  },
  now: () => performance.now(),
};

