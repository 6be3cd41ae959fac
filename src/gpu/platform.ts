// The platform hook: the Node and browser entry points each install how to obtain a GPU object.
// Kept tiny so that nothing in the shared code imports Node modules.

export interface PlatformInfo {
  name: 'node' | 'browser';
  /** Software Vulkan driver chosen for Dawn, if any. */
  icd?: string;
}

export interface Platform {
  name: 'node' | 'browser';
  getGPU(options: { forceSoftware?: boolean; dawnToggles?: string[] }): Promise<{ gpu: GPU; info: PlatformInfo }>;
  /** Reads a kernel file at run time, for kernels not bundled (tests, development). */
  now(): number;
}

let current: Platform | null = null;

export function setPlatform(p: Platform): void {
  current = p;
}

export function platform(): Platform {
  if (!current) {
    // A browser-like environment without an explicit entry point: use navigator.gpu.
    const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
    if (nav?.gpu) {
      current = {
        name: 'browser',
        getGPU: async () => ({ gpu: nav.gpu as GPU, info: { name: 'browser' } }),
        now: () => performance.now(),
      };
    } else {
      throw new Error('kiln: no platform installed (import kiln through its package entry)');
    }
  }
  return current;
}
