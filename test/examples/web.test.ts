// The browser demo (examples/web) in headless Chromium over SwiftShader's WebGPU: it loads the sentiment
// checkpoint, classifies a typed sentence and draws the attention heatmap. Trains a smoke checkpoint first
// when examples/sentiment/out/ has none. Saves examples/web/out/screenshot.png.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM without types
import { buildApp, serveExamples } from '../../examples/web/build.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ROOT = resolve(__dirname, '../..');
const CKPT = join(ROOT, 'examples/sentiment/out');
const FLAGS = [
  '--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader',
  '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync',
];

describe.skipIf(!existsSync(CHROMIUM))('examples/web in headless Chromium', () => {
  let server: import('node:http').Server;
  let url: string;
  let browser: import('puppeteer-core').Browser;
  let userDataDir: string;
  const pageErrors: string[] = [];

  // The trained checkpoint when there is one, else a smoke-trained one (out/smoke/).
  let modelQuery = '';

  beforeAll(async () => {
    const has = (dir: string) => existsSync(join(dir, 'sentiment.safetensors')) && existsSync(join(dir, 'vocab.json'));
    if (!has(CKPT)) {
      modelQuery = '?model=/examples/sentiment/out/smoke/';
      if (!has(join(CKPT, 'smoke'))) {
        const r = spawnSync(process.execPath, ['examples/run.mjs', 'sentiment', '--smoke'], { cwd: ROOT, encoding: 'utf8', timeout: 110_000 });
        if (r.status !== 0) throw new Error(`sentiment --smoke failed:\n${r.stdout}\n${r.stderr}`);
      }
    }
    await buildApp();
    ({ server, url } = await serveExamples());
    const { default: puppeteer } = await import('puppeteer-core');
    userDataDir = mkdtempSync(join(tmpdir(), 'kiln-web-'));
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: [...FLAGS, `--user-data-dir=${userDataDir}`], protocolTimeout: 0 });
  }, 150_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    server?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('classifies a typed sentence and draws the heatmap', async () => {
    const page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(String((e as Error).message ?? e)));
    await page.setViewport({ width: 900, height: 640 });
    await page.goto(`${url}/examples/web/index.html${modelQuery}`, { waitUntil: 'load' });
    await page.waitForFunction('document.body.dataset.ready === "1" || document.body.dataset.error !== undefined', { timeout: 60_000 });
    const error = await page.evaluate('document.body.dataset.error ?? null');
    expect(error).toBeNull();
    await page.type('#text', 'The food was great and the service was excellent!');
    await page.waitForFunction(
      'document.querySelector("#prediction").dataset.label && document.querySelector("#heatmap svg") && document.querySelector("#heatmap svg").textContent.includes("excellent")',
      { timeout: 60_000 },
    );
    const label = await page.$eval('#prediction', (el) => (el as HTMLElement).dataset.label);
    const text = await page.$eval('#prediction', (el) => el.textContent ?? '');
    expect(['positive', 'negative']).toContain(label);
    expect(text).toMatch(/^(positive|negative) \(\d+\.\d%\)$/);
    const cells = await page.$$eval('#heatmap svg rect', (els) => els.length);
    expect(cells).toBeGreaterThan(5);
    mkdirSync(join(ROOT, 'examples/web/out'), { recursive: true });
    await page.screenshot({ path: join(ROOT, 'examples/web/out/screenshot.png') as `${string}.png`, fullPage: true });
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
