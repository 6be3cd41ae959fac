import { defineConfig } from 'vitest/config';

export default defineConfig({
  plugins: [
    {
      name: 'kiln-wgsl-text',
      transform(code, id) {
        if (id.endsWith('.wgsl')) return { code: `export default ${JSON.stringify(code)};`, map: null };
        return null;
      },
    },
  ],
  test: {
    include: ['test/**/*.test.ts'],
    // One GPU device per worker process; the software adapter is slow, so give tests room.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    setupFiles: ['test/setup.ts'],
  },
});
