// kiln as a user gets it: the package is built (scripts/build.mjs into a temp dir), packed with `npm pack` and unpacked
// into a consumer project's node_modules, with its dependencies linked from this repository (no network). Then:
//   - the declarations typecheck a program in a project made by `tsc --init` (TypeScript 5.9 defaults: nodenext,
//     `types: []`, skipLibCheck), and in the same project switched to `moduleResolution: bundler`;
//   - a page that imports init, randn and scaledDotProductAttention by name and runs causal attention bundles (esbuild,
//     minified, ESM, browser) to at most 64 KiB gzipped, with no PNG encoder, safetensors, training loop or WGSL parser
//     in it; the same page written with the F namespace is measured and printed too (esbuild keeps every member of a
//     re-exported namespace, so it carries all of F: convolution and pooling kernels included), with the same exclusions;
//   - bundles made from the package run: in Node (Dawn) with "sideEffects": false honoured, and in headless Chromium.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build, type Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const LIMIT = 64 * 1024;

let tmp = '';
let consumer = '';

/** Links `name` and its dependencies, as npm would install them, from this repository's node_modules. */
function linkDependency(name: string, into: string, seen = new Set<string>()): void {
  if (seen.has(name)) return;
  seen.add(name);
  const src = join(ROOT, 'node_modules', name);
  if (!existsSync(src)) throw new Error(`dependency ${name} is not installed here`);
  const dst = join(into, name);
  if (!existsSync(dst)) {
    mkdirSync(dirname(dst), { recursive: true });
    symlinkSync(src, dst);
  }
  const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  for (const dep of Object.keys(pkg.dependencies ?? {})) linkDependency(dep, into, seen);
}

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed:\n${err.stdout ?? ''}\n${err.stderr ?? ''}\n${err.message}`);
  }
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'kiln-package-'));
  // What `npm pack` would pack after `prepack` (the build), staged apart from the repository's own dist/.
  const stage = join(tmp, 'stage');
  mkdirSync(stage);
  run(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--outdir', join(stage, 'dist')], ROOT);
  for (const f of ['package.json', 'README.md', 'kernels']) cpSync(join(ROOT, f), join(stage, f), { recursive: true });
  const packed = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], stage)) as { filename: string }[];
  consumer = join(tmp, 'consumer');
  const kiln = join(consumer, 'node_modules/kiln');
  mkdirSync(kiln, { recursive: true });
  run('tar', ['-xzf', join(tmp, packed[0].filename), '-C', kiln, '--strip-components=1'], tmp);
  const pkg = JSON.parse(readFileSync(join(kiln, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(pkg.dependencies)) linkDependency(dep, join(consumer, 'node_modules'));
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
}, 240_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships the modules, the declarations and the standalone bundles, and no WGSL parser', () => {
    const kiln = join(consumer, 'node_modules/kiln');
    for (const f of ['dist/lib/index.node.js', 'dist/lib/index.browser.js', 'dist/lib/experimental.js', 'dist/types/index.d.ts', 'dist/types/experimental.d.ts', 'dist/kiln.browser.js', 'dist/kiln.node.js']) {
      expect(existsSync(join(kiln, f)), f).toBe(true);
    }
    const pkg = JSON.parse(readFileSync(join(kiln, 'package.json'), 'utf8'));
    expect(pkg.sideEffects).toBe(false);
    expect(Object.keys(pkg.dependencies)).not.toContain('wgsl_reflect');
    expect(Object.keys(pkg.dependencies)).toContain('@webgpu/types');
    expect(readFileSync(join(kiln, 'dist/types/index.d.ts'), 'utf8')).toContain('/// <reference types="@webgpu/types"');
  });
});

// A user's program: what the README shows, typed strictly enough that a declaration gone `any` or `unknown` fails.
const PROGRAM = `import { init, nn, optim, F, save, load, KVCache, randn, tidy, type Tensor, type DeviceInfo } from 'kiln';
import { setFlag, gpuDevice } from 'kiln/experimental';

const info: DeviceInfo = await init();
const software: boolean = info.isSoftware;

class Net extends nn.Module {
  proj = new nn.Linear(16, 32);
  attn = new nn.MultiheadAttention(32, 4, { kvHeads: 2 });
  blocks = new nn.ModuleList([new nn.Linear(32, 32), new nn.Linear(32, 32)]);
  override forward(x: Tensor): Tensor {
    let h = this.attn.forward(this.proj.forward(x), undefined, undefined, { isCausal: true });
    for (const block of this.blocks) {
      const w: Tensor = block.weight;
      const width: number = block.outFeatures + w.shape[0]!;
      h = block.forward(h).add(width * 0);
    }
    return h;
  }
}

const net = new Net();
const opt = new optim.AdamW(net.parameters(), { lr: 1e-3, weightDecay: 0.01 });
const x = randn([2, 5, 16], { seed: 1 });
const loss = tidy(() => net.forward(x).pow(2).mean());
loss.backward();
opt.step();
opt.zeroGrad();

const q = randn([1, 4, 8, 16]);
const k = randn([1, 2, 8, 16]);
const out: Tensor = F.scaledDotProductAttention(q, k, k, { isCausal: true, scale: 0.25 });
const values = await out.toArray();
const count: number = values.length;

const cache = new KVCache(64);
const step = cache.append(k, k);
const cached: Tensor = step.k;

await save(net.stateDict(), 'net.safetensors');
const state: Record<string, Tensor> = await load('net.safetensors');
net.loadStateDict(state);

setFlag('attention.subgroups', false);
const device: GPUDevice = gpuDevice();

// @ts-expect-error a Linear takes numbers
new nn.Linear('16', 32);
// @ts-expect-error ModuleList items are typed (not any): a Linear has no such member
for (const block of net.blocks) block.noSuchMember;

console.log(software, count, cached.shape, device.label);
`;

function tsProject(name: string, edit: (tsconfig: string) => string): string {
  const dir = join(consumer, name);
  mkdirSync(dir, { recursive: true });
  run(process.execPath, [TSC, '--init'], dir);
  const file = join(dir, 'tsconfig.json');
  writeFileSync(file, edit(readFileSync(file, 'utf8')));
  writeFileSync(join(dir, 'main.ts'), PROGRAM);
  return dir;
}

describe('type declarations in a fresh TypeScript project', () => {
  it('typecheck under tsc --init defaults (module nodenext, types [], skipLibCheck)', () => {
    const dir = tsProject('ts-nodenext', (t) => t);
    expect(readFileSync(join(dir, 'tsconfig.json'), 'utf8')).toMatch(/"module": "nodenext"/);
    run(process.execPath, [TSC, '-p', dir, '--noEmit'], dir);
    // kiln's own declarations check too (no Node types needed), not only the program that uses them.
    run(process.execPath, [TSC, '-p', dir, '--noEmit', '--skipLibCheck', 'false'], dir);
  }, 120_000);

  it('typecheck with moduleResolution bundler', () => {
    const dir = tsProject('ts-bundler', (t) => t.replace('"module": "nodenext",', '"module": "esnext",\n    "moduleResolution": "bundler",'));
    expect(readFileSync(join(dir, 'tsconfig.json'), 'utf8')).toMatch(/"moduleResolution": "bundler"/);
    run(process.execPath, [TSC, '-p', dir, '--noEmit'], dir);
  }, 120_000);
});

// The page the size budget is about: import init, randn and scaledDotProductAttention by name; run causal attention.
const PAGE = `import { init, randn, scaledDotProductAttention } from 'kiln';
export async function run() {
  await init();
  const q = randn([1, 2, 9, 8], { seed: 1 }), k = randn([1, 2, 9, 8], { seed: 2 }), v = randn([1, 2, 9, 8], { seed: 3 });
  const out = scaledDotProductAttention(q, k, v, { isCausal: true });
  const [o, qa, ka, va] = await Promise.all([out.toArray(), q.toArray(), k.toArray(), v.toArray()]);
  return { o: Array.from(o), q: Array.from(qa), k: Array.from(ka), v: Array.from(va) };
}
`;

interface Bundle {
  code: Uint8Array;
  gzip: number;
  inputs: [string, number][];
}

async function bundle(entry: string, platform: 'browser' | 'node', minify: boolean): Promise<Bundle> {
  const r = await build({
    entryPoints: [entry], bundle: true, format: 'esm', platform, minify, write: false, metafile: true,
    absWorkingDir: consumer, external: platform === 'node' ? ['webgpu'] : [], logLevel: 'silent',
  });
  const meta = r.metafile as Metafile;
  const inputs = Object.entries(Object.values(meta.outputs)[0].inputs).map(([f, v]) => [f.replace(/^node_modules\/kiln\/dist\/lib\//, ''), v.bytesInOutput] as [string, number]);
  const code = r.outputFiles[0].contents;
  return { code, gzip: gzipSync(code).length, inputs: inputs.sort((a, b) => b[1] - a[1]) };
}

/** Causal attention in float64, q k v [H, N, D] flattened. */
function causalReference(q: number[], k: number[], v: number[], H: number, N: number, D: number): number[] {
  const out: number[] = [];
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < N; i++) {
      const s: number[] = [];
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(h * N + i) * D + d] * k[(h * N + j) * D + d];
        s.push(dot / Math.sqrt(D));
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let d = 0; d < D; d++) out.push(e.reduce((acc, w, j) => acc + (w / z) * v[(h * N + j) * D + d], 0));
    }
  }
  return out;
}

function maxError(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

describe('bundles made from the package', () => {
  let page: Bundle;
  let namespacePage: Bundle;

  beforeAll(async () => {
    writeFileSync(join(consumer, 'page.js'), PAGE);
    page = await bundle('page.js', 'browser', true);
    writeFileSync(join(consumer, 'page-f.js'), PAGE.replace('scaledDotProductAttention }', 'F }').replace('= scaledDotProductAttention(', '= F.scaledDotProductAttention('));
    namespacePage = await bundle('page-f.js', 'browser', true);
  });

  function describeBundle(name: string, b: Bundle): string[] {
    const top = b.inputs.slice(0, 15).map(([f, n]) => `  ${(n / 1024).toFixed(1).padStart(6)} KiB  ${f}`).join('\n');
    const kernels = b.inputs.filter(([f]) => f.startsWith('launch/kernels/')).reduce((a, [, n]) => a + n, 0);
    console.log(
      `${name} (esbuild, minified, ESM, browser): ${(b.code.length / 1024).toFixed(1)} KiB, ` +
        `${(b.gzip / 1024).toFixed(1)} KiB gzipped; kernel modules ${(kernels / 1024).toFixed(1)} KiB of it\n` +
        `largest inputs (minified bytes in the bundle):\n${top}`,
    );
    return b.inputs.map(([f]) => f);
  }

  const heavy = ['wgsl_reflect', 'fast-png', 'io/safetensors.js', 'train/fit.js', 'viz/heatmap.js', 'optim/optimizer.js'];

  it(`an attention-only page is at most ${LIMIT / 1024} KiB gzipped`, () => {
    const files = describeBundle('attention page, named imports', page);
    for (const absent of heavy) expect(files.some((f) => f.includes(absent)), `${absent} is not in the page`).toBe(false);
    // Named imports keep only what the page reaches: no convolution or pooling kernels.
    for (const absent of ['launch/kernels/conv.js', 'launch/kernels/pool.js']) {
      expect(files.some((f) => f.includes(absent)), `${absent} is not in the page`).toBe(false);
    }
    expect(page.gzip).toBeLessThanOrEqual(LIMIT);
  });

  it('the same page through the F namespace carries all of F but nothing heavier (size printed)', () => {
    const files = describeBundle('attention page, F namespace', namespacePage);
    for (const absent of heavy) expect(files.some((f) => f.includes(absent)), `${absent} is not in the page`).toBe(false);
    expect(namespacePage.gzip).toBeGreaterThanOrEqual(page.gzip);
  });

  it('a Node program bundled from the package runs (methods, autograd and nn survive tree-shaking)', async () => {
    writeFileSync(
      join(consumer, 'node-main.js'),
      `import { init, randn, nn, F } from 'kiln';
export async function run() {
  await init();
  const x = randn([3, 4], { seed: 5, requiresGrad: true });
  const lin = new nn.Linear(4, 2, { seed: 6 });
  lin.forward(x).relu().sum().backward();
  const g = await x.grad.toArray();
  const a = F.softmax(x.detach(), -1).sum(-1);
  return { grad: g.length, rows: Array.from(await a.toArray()) };
}
${PAGE.replace("import { init, randn, scaledDotProductAttention } from 'kiln';", "import { scaledDotProductAttention } from 'kiln';").replace('export async function run()', 'export async function attention()')}`,
    );
    const b = await bundle('node-main.js', 'node', false);
    writeFileSync(join(consumer, 'node-main.bundle.mjs'), b.code);
    const text = run(process.execPath, ['-e', "import('./node-main.bundle.mjs').then(async (m) => console.log(JSON.stringify({ ...(await m.run()), att: await m.attention() })))"], consumer);
    const r = JSON.parse(text.trim().split('\n').pop()!) as { grad: number; rows: number[]; att: { o: number[]; q: number[]; k: number[]; v: number[] } };
    expect(r.grad).toBe(12);
    expect(maxError(r.rows, [1, 1, 1])).toBeLessThan(1e-5);
    expect(maxError(r.att.o, causalReference(r.att.q, r.att.k, r.att.v, 2, 9, 8))).toBeLessThan(1e-5);
  }, 120_000);

  it.skipIf(!existsSync(CHROMIUM))('the attention page runs in headless Chromium', async () => {
    const web = join(consumer, 'web');
    mkdirSync(web, { recursive: true });
    writeFileSync(join(web, 'page.js'), page.code);
    // @ts-expect-error plain ESM without types
    const { launchChromium, serveStatic } = await import('../../bench/lib/browser.mjs');
    const { server, url } = await serveStatic(consumer, ['web']);
    const chrome = await launchChromium(CHROMIUM);
    try {
      const tab = await chrome.browser.newPage();
      const errors: string[] = [];
      tab.on('pageerror', (e: Error) => errors.push(String(e.message ?? e)));
      await tab.goto(`${url}/web/page.js`);
      // Page code as a string: vitest rewrites import() in functions it transforms, which the page cannot run.
      const r = (await tab.evaluate(`import('/web/page.js').then((m) => m.run())`)) as { o: number[]; q: number[]; k: number[]; v: number[] };
      expect(maxError(r.o, causalReference(r.q, r.k, r.v, 2, 9, 8))).toBeLessThan(1e-5);
      expect(errors).toEqual([]);
    } finally {
      await chrome.close();
      server.close();
    }
  }, 120_000);
});

describe('the staged package has what package.json promises', () => {
  it('every export target exists', () => {
    const kiln = join(consumer, 'node_modules/kiln');
    const pkg = JSON.parse(readFileSync(join(kiln, 'package.json'), 'utf8')) as { exports: Record<string, string | Record<string, string>> };
    const targets = Object.values(pkg.exports).flatMap((t) => (typeof t === 'string' ? [t] : Object.values(t)));
    for (const t of targets) expect(existsSync(join(kiln, t)), t).toBe(true);
    expect(readdirSync(join(kiln, 'kernels')).some((f) => f.endsWith('.wgsl'))).toBe(true);
  });
});
