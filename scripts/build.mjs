// Builds dist/: ESM bundles for Node (Dawn) and browsers, plus type declarations.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
execFileSync(process.execPath, [join(root, 'scripts/gen-kernels.mjs')], { stdio: 'inherit' });
const common = { bundle: true, format: 'esm', sourcemap: true, target: 'es2022', loader: { '.wgsl': 'text' }, logLevel: 'warning', absWorkingDir: root, mainFields: ['module', 'main'] };
await Promise.all([
  build({ ...common, entryPoints: ['src/index.node.ts'], outfile: 'dist/kiln.node.js', platform: 'node', external: ['webgpu'] }),
  build({ ...common, entryPoints: ['src/index.browser.ts'], outfile: 'dist/kiln.browser.js', platform: 'browser' }),
]);
if (!process.argv.includes('--no-types')) {
  rmSync(join(root, 'dist/types'), { recursive: true, force: true });
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
}
