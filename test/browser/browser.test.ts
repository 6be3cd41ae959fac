// kiln's browser bundle in headless Chromium (WebGPU over SwiftShader): a matmul and a softmax computed in the
// page match a float64 JS computation, and init() reports the adapter. Needs dist/ (npm test builds it first).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM without types
import { launchChromium, serveStatic } from '../../bench/lib/browser.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ROOT = resolve(__dirname, '../..');

describe.skipIf(!existsSync(CHROMIUM))('browser bundle in headless Chromium', () => {
  let server: import('node:http').Server;
  let url: string;
  let chrome: { browser: import('puppeteer-core').Browser; close(): Promise<void> };
  let page: import('puppeteer-core').Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!existsSync(resolve(ROOT, 'dist/kiln.browser.js'))) throw new Error('dist/kiln.browser.js is missing: run `npm run build` (npm test does)');
    ({ server, url } = await serveStatic(ROOT, ['dist']));
    chrome = await launchChromium(CHROMIUM);
    page = await chrome.browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(String((e as Error).message ?? e)));
    // Any page on the same origin will do: the test imports the bundle with a dynamic import.
    await page.goto(`${url}/dist/kiln.browser.js`);
  }, 60_000);

  afterAll(async () => {
    await chrome?.close();
    server?.close();
  });

  it('init() reports a WebGPU adapter', async () => {
    const info = (await page.evaluate(`import('/dist/kiln.browser.js').then((k) => k.init())`)) as Record<string, any>;
    expect(info.platform).toBe('browser');
    expect(typeof info.vendor).toBe('string');
    expect(typeof info.isSoftware).toBe('boolean');
    expect(Object.keys(info.limits).length).toBeGreaterThan(0);
  }, 30_000);

  it('matmul and softmax match float64 JS', async () => {
    // Page code as a string: vitest rewrites import() in functions it transforms, which the page cannot run.
    const r = await page.evaluate(`(async () => {
      const k = await import('/dist/kiln.browser.js');
      await k.init();
      const M = 17, K = 33, N = 9;
      let s = 7;
      const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
      const a = Float32Array.from({ length: M * K }, rnd);
      const b = Float32Array.from({ length: K * N }, rnd);
      const got = await k.matmul(k.tensor(a, { shape: [M, K] }), k.tensor(b, { shape: [K, N] })).toArray();
      let mmErr = 0;
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let acc = 0;
          for (let p = 0; p < K; p++) acc += a[i * K + p] * b[p * N + j];
          mmErr = Math.max(mmErr, Math.abs(acc - got[i * N + j]));
        }
      const R = 5, C = 37;
      const x = Float32Array.from({ length: R * C }, () => rnd() * 6);
      const sm = await k.softmax(k.tensor(x, { shape: [R, C] }), -1).toArray();
      let smErr = 0;
      for (let i = 0; i < R; i++) {
        const row = Array.from(x.subarray(i * C, (i + 1) * C));
        const m = Math.max(...row);
        const e = row.map((v) => Math.exp(v - m));
        const z = e.reduce((p, q) => p + q, 0);
        e.forEach((v, j) => (smErr = Math.max(smErr, Math.abs(v / z - sm[i * C + j]))));
      }
      return { mmErr, smErr, mmLen: got.length, smLen: sm.length };
    })()`) as { mmErr: number; smErr: number; mmLen: number; smLen: number };
    expect(r.mmLen).toBe(17 * 9);
    expect(r.smLen).toBe(5 * 37);
    expect(r.mmErr).toBeLessThan(1e-5);
    expect(r.smErr).toBeLessThan(1e-6);
    expect(pageErrors).toEqual([]);
  }, 30_000);
});
