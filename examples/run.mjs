// npm run example -- <name> [--smoke] [--full] [other flags for the example]
// Bundles examples/<name>/main.ts with esbuild ('kiln' resolves to the source tree) and runs its main().
import { build } from 'esbuild';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [name, ...rest] = process.argv.slice(2);
const available = readdirSync(join(root, 'examples'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, 'examples', d.name, 'main.ts')))
  .map((d) => d.name);
if (!name || !available.includes(name)) {
  console.error(`usage: npm run example -- <name> [--smoke] [--full]\nexamples: ${available.join(', ')}`);
  process.exit(2);
}
// One level below the root, as examples/data.ts is: its import.meta.url-relative data paths stay right.
const outDir = join(root, '.build');
mkdirSync(outDir, { recursive: true });
const outfile = join(outDir, `example-${name}.mjs`);
await build({
  entryPoints: [join(root, 'examples', name, 'main.ts')],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'es2022',
  sourcemap: 'inline',
  loader: { '.wgsl': 'text' },
  mainFields: ['module', 'main'],
  alias: { kiln: join(root, 'src/index.node.ts'), 'kiln/experimental': join(root, 'src/experimental.ts') },
  external: ['webgpu'],
  logLevel: 'warning',
  absWorkingDir: root,
});
const mod = await import(pathToFileURL(outfile).href);
const args = { smoke: rest.includes('--smoke'), full: rest.includes('--full'), argv: rest };
try {
  await mod.main(args);
  process.exit(0);
} catch (e) {
  console.error(e);
  process.exit(1);
}
