// Bundles examples/web/app.ts (with kiln from src/index.browser.ts) into examples/web/out/app.js.
//   node examples/web/build.mjs          build
//   node examples/web/build.mjs --serve  build, then serve the repository on http://127.0.0.1:8080/examples/web/
import { build } from 'esbuild';
import { createServer } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

export async function buildApp() {
  await build({
    entryPoints: [join(here, 'app.ts')],
    outfile: join(here, 'out', 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    loader: { '.wgsl': 'text' },
    mainFields: ['module', 'main'],
    alias: { kiln: join(root, 'src/index.browser.ts'), 'kiln/experimental': join(root, 'src/experimental.ts') },
    logLevel: 'warning',
    absWorkingDir: root,
  });
  return join(here, 'out', 'app.js');
}

const TYPES = { '.js': 'text/javascript', '.html': 'text/html', '.json': 'application/json', '.map': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png' };

/** Serves the repository's examples/ folder (only) on 127.0.0.1. Resolves to { server, url }. */
export function serveExamples(port = 0) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(root, path));
    if (!file.startsWith(join(root, 'examples') + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(readFileSync(file));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${server.address().port}` }));
  });
}

if (process.argv[1] && normalize(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildApp();
  console.log(`web: built ${out}`);
  if (process.argv.includes('--serve')) {
    const { url } = await serveExamples(8080);
    console.log(`web: open ${url}/examples/web/index.html (needs examples/sentiment/out/ from npm run example -- sentiment)`);
  }
}
