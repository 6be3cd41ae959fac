// vitest globalSetup: the kernel modules (src/launch/kernels/, generated from kernels/*.wgsl) exist and are current
// before any test file imports them.
import { generateKernels } from './gen-kernels.mjs';

export default function setup() {
  generateKernels();
}
