import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // src/launch/kernels/ is generated from kernels/*.wgsl; regenerate it (when stale) before any test runs.
    globalSetup: ['scripts/vitest-setup.mjs'],
    // One GPU device per worker process; the software adapter is slow, so give tests room.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    setupFiles: ['test/setup.ts'],
  },
});
