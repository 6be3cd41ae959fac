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

/**
 * Dawn's flags: timestamp quantization off; the adapter toggles that expose subgroup matrices (`allow_unsafe_apis`:
 * the feature is experimental) and, on NVIDIA's Vulkan driver, shader-f16 and the f16 matrix shapes
 * (`vulkan_enable_f16_on_nvidia`). A caller's own `enable-dawn-features=` / `disable-dawn-features=` lists are merged
 * into kiln's (Dawn reads one list of each), and a toggle the caller disables is not enabled.
 */
export function nodeFlags(extra: readonly string[]): string[] {
  const lists = { enable: ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'], disable: ['timestamp_quantization'] };
  const rest: string[] = [];
  for (const flag of extra) {
    const m = /^(enable|disable)-dawn-features=(.*)$/.exec(flag);
    if (!m) rest.push(flag);
    else for (const t of m[2].split(',').filter(Boolean)) lists[m[1] as 'enable' | 'disable'].push(t);
  }
  const disable = [...new Set(lists.disable)];
  const enable = [...new Set(lists.enable)].filter((t) => !disable.includes(t));
  return [...(enable.length ? [`enable-dawn-features=${enable.join(',')}`] : []), `disable-dawn-features=${disable.join(',')}`, ...rest];
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
    const flags = nodeFlags(dawnToggles ?? []);
    const gpu = dawnModule!.create(flags);
    const info: PlatformInfo = { name: 'node', icd };
    return { gpu, info };
  },
  now: () => performance.now(),
};

