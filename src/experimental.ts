/// <reference types="@webgpu/types" preserve="true" />
// kiln/experimental: what may change without notice. Flags, attention tile choices, raw kernel access, the GPU device,
// and GPU counters and timers. It shares kiln's state (one device, one buffer pool): call kiln's init() first.
import { compileKernel as compileModule, kernelByName, type KernelModule } from './gpu/kernels.js';
import { KERNELS } from './launch/kernels/index.js';

export { setFlag, getFlag, listFlags, KNOWN_FLAGS, chooseTiles } from './attention/index.js';
export { enableMatrixAttention } from './attention/matrix.js';
export { enableRowsAttention } from './attention/rows.js';
export { stats as gpuStats, resetStats as resetGpuStats } from './gpu/queue.js';
export { PASS_NAMES as compilePasses } from './compile/index.js';
export { startGpuTimer, hasTimestampQuery, gpuDevice, recordFunction, type GpuTiming } from './gpu/profiler.js';
export { kernelCode, kernelVariant, type KernelModule, type KernelEntry, type KernelBinding, type KernelVariant, type ParamsLayout, type ParamsField } from './gpu/kernels.js';

/**
 * Compiles a kernel now and throws its compile errors with file and line: a module from kiln's kernels, or a file name
 * in kernels/ with optional variant tags ('attention_forward.wgsl#f16,subgroups').
 */
export function compileKernel(kernel: KernelModule | string): Promise<void> {
  return compileModule(typeof kernel === 'string' ? kernelByName(kernel, KERNELS) : kernel);
}

/** The file names of kiln's kernels (kernels/*.wgsl), include-only files among them. */
export function kernelFiles(): string[] {
  return Object.keys(KERNELS);
}

/** kiln's kernel modules by file name. */
export function kernelModule(file: string): KernelModule {
  return kernelByName(file, KERNELS);
}
