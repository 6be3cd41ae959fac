// Builds dist/ (or --outdir DIR):
//   lib/          the package as ES modules, one per src/ module (package.json "exports" points here): bundlers see
//                 kiln's module graph and keep only what a page uses ("sideEffects": false).
//   types/        type declarations (tsc); the entry points reference @webgpu/types, a dependency.
//   kiln.node.js, kiln.browser.js, experimental.node.js, experimental.browser.js, chunks/
//                 standalone bundles, for a page or a script without a bundler (bench, browser tests, the GPU
//                 machine). Each experimental bundle shares its chunk with kiln's, so there is one device and one pool.
// Kernel modules (src/launch/kernels/) are generated from kernels/*.wgsl first. --no-types skips the declarations.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { generateKernels } from './gen-kernels.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const outIndex = argv.indexOf('--outdir');
const out = outIndex >= 0 ? resolve(argv[outIndex + 1]) : join(root, 'dist');

generateKernels();
rmSync(out, { recursive: true, force: true });

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

const common = { format: 'esm', target: 'es2022', logLevel: 'warning', absWorkingDir: root };
const standalone = { ...common, bundle: true, splitting: true, sourcemap: true, outdir: out, mainFields: ['module', 'main'] };
await Promise.all([
  build({ ...common, entryPoints: sources(join(root, 'src')).map((p) => relative(root, p)), outdir: join(out, 'lib'), outbase: 'src', platform: 'neutral', sourcemap: true }),
  build({ ...standalone, entryPoints: { 'kiln.node': 'src/index.node.ts', 'experimental.node': 'src/experimental.ts' }, chunkNames: 'chunks/node-[hash]', platform: 'node', external: ['webgpu'] }),
  build({ ...standalone, entryPoints: { 'kiln.browser': 'src/index.browser.ts', 'experimental.browser': 'src/experimental.ts' }, chunkNames: 'chunks/browser-[hash]', platform: 'browser' }),
]);
if (!argv.includes('--no-types')) {
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json'), '--outDir', join(out, 'types')], { stdio: 'inherit' });
}
