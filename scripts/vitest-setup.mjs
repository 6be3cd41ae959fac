// vitest globalSetup: the kernel modules (src/launch/kernels/, generated from kernels/*.wgsl) exist and are current
// before any test file imports them. A kernel wgsl_reflect cannot read gets a module that carries the error, so the
// tests that launch it fail with it and the others run.
import { generateKernels } from './gen-kernels.mjs';

export default function setup() {
  generateKernels({ lenient: true });
}
