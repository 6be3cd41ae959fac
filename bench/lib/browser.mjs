// Browser runtime: serves the repo's dist/ and bench/ on 127.0.0.1 (node:http), opens bench/page/index.html in
// headless Chromium (puppeteer-core), runs the same suites in the page (runner.mjs), and returns its results.
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';

export const CHROMIUM_FLAGS = [
  '--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader',
  '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync',
  // Chromium quantizes WebGPU timestamps (100 us) unless developer features are on.
  '--enable-webgpu-developer-features',
];
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.wgsl': 'text/plain', '.map': 'application/json', '.json': 'application/json' };

/** Static server for `root`, only under the given top-level folders. Resolves to { server, url }. */
export function serveStatic(root, allow = ['dist', 'bench']) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = normalize(join(root, path));
    const top = path.split('/')[1];
    if (!file.startsWith(root + sep) || !allow.includes(top) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(readFileSync(file));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${server.address().port}` }));
  });
}

export async function launchChromium(executablePath) {
  const { default: puppeteer } = await import('puppeteer-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'kiln-chromium-'));
  const browser = await puppeteer.launch({ executablePath, headless: true, args: [...CHROMIUM_FLAGS, `--user-data-dir=${userDataDir}`], protocolTimeout: 0 });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export async function runInBrowser({ root, opts, chromium, onProgress = () => {}, log = () => {} }) {
  const exe = chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(exe)) throw new Error(`no Chromium at ${exe} (--chromium PATH or $CHROMIUM)`);
  if (!existsSync(join(root, 'dist/kiln.browser.js'))) throw new Error('dist/kiln.browser.js is missing: run `npm run build`');
  const { server, url } = await serveStatic(root);
  const chrome = await launchChromium(exe);
  try {
    const page = await chrome.browser.newPage();
    page.on('pageerror', (e) => log(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') log(`console.${m.type()}: ${m.text()}`); });
    await page.exposeFunction('benchProgress', (p) => onProgress(p));
    await page.exposeFunction('benchLog', (msg) => log(msg));
    await page.goto(`${url}/bench/page/index.html`, { waitUntil: 'load' });
    const part = await page.evaluate(async (o) => window.kilnBench(o), opts);
    part.userAgent = await chrome.browser.version();
    return part;
  } finally {
    await chrome.close();
    server.close();
  }
}
