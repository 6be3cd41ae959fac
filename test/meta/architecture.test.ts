// The layer map of docs/architecture.md, checked: a file imports (at run time; `import type` is erased) only from its own layer
// or earlier ones, and the run-time imports have no cycle.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const src = join(root, 'src');

/** Layers in order; a file may import from its own layer and the ones before it. */
const LAYERS: [string, RegExp][] = [
  ['shared', /^errors\.ts$/],
  ['gpu', /^gpu\//],
  ['tensor', /^tensor\//],
  ['launch', /^launch\//],
  ['autograd', /^autograd\//],
  ['ops', /^ops\//],
  // Checkpoint files need only tensors; training (fit's checkpoints) builds on them.
  ['io', /^io\//],
  ['attention', /^attention\//],
  ['nn', /^nn\//],
  ['optim', /^optim\//],
  ['train', /^train\//],
  // compile() traces and replays steps made of everything above (its recorder hooks into the gpu layer).
  ['compile', /^compile\//],
  ['viz', /^viz\//],
  ['entry', /^(index|index\.node|index\.browser|experimental|experimental\.node|experimental\.browser|functional)\.ts$/],
];

function layerOf(file: string): number {
  const i = LAYERS.findIndex(([, re]) => re.test(file));
  if (i < 0) throw new Error(`src/${file} is in no layer of the map`);
  return i;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** The run-time imports of a source file (relative ones), resolved to src-relative paths. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(join(src, file), 'utf8');
  const out: string[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s+['"](\.[^'"]+)['"]/gm;
  for (const m of text.matchAll(re)) {
    if (m[2]) continue; // import type / export type
    const names = m[3].trim();
    // `import { type A, type B } from` is erased too.
    if (/^\{[^}]*\}$/.test(names)) {
      const parts = names.slice(1, -1).split(',').map((s) => s.trim()).filter(Boolean);
      if (parts.length && parts.every((p) => p.startsWith('type '))) continue;
    }
    out.push(m[4]);
  }
  for (const m of text.matchAll(/^\s*import\s+['"](\.[^'"]+)['"]/gm)) out.push(m[1]);
  return out.map((spec) => relative(src, resolve(dirname(join(src, file)), spec.replace(/\.js$/, '.ts'))));
}

const files = walk(src).map((p) => relative(src, p));
const graph = new Map(files.map((f) => [f, runtimeImports(f).filter((d) => d.startsWith('..') === false && files.includes(d))]));

describe('layer map', () => {
  it('every file imports only from its own layer or earlier ones', () => {
    const bad: string[] = [];
    for (const [f, deps] of graph) {
      for (const d of deps) if (layerOf(d) > layerOf(f)) bad.push(`${f} (${LAYERS[layerOf(f)][0]}) imports ${d} (${LAYERS[layerOf(d)][0]})`);
    }
    expect(bad).toEqual([]);
  });

  it('run-time imports have no cycle', () => {
    // Tarjan's strongly connected components.
    let index = 0;
    const idx = new Map<string, number>(), low = new Map<string, number>(), on = new Set<string>(), stack: string[] = [];
    const cycles: string[][] = [];
    const strong = (v: string): void => {
      idx.set(v, index);
      low.set(v, index++);
      stack.push(v);
      on.add(v);
      for (const w of graph.get(v) ?? []) {
        if (!idx.has(w)) {
          strong(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
      if (low.get(v) === idx.get(v)) {
        const comp: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          on.delete(w);
          comp.push(w);
        } while (w !== v);
        if (comp.length > 1) cycles.push(comp.sort());
      }
    };
    for (const f of graph.keys()) if (!idx.has(f)) strong(f);
    expect(cycles).toEqual([]);
  });

  it('only the launch layer calls dispatch()', () => {
    const callers = files.filter((f) => !f.startsWith('launch/') && !f.startsWith('gpu/') && /\bdispatch\(/.test(readFileSync(join(src, f), 'utf8')));
    expect(callers).toEqual([]);
  });

  it('no module patches a prototype', () => {
    const patch = /\.prototype(\.\w+|\[[^\]]+\])\s*=[^=]|(?<![=!<>])=\s*\w+\.prototype\b|Object\.(assign|defineProperty|defineProperties)\(\s*\w+\.prototype/;
    const patchers = files.filter((f) => patch.test(readFileSync(join(src, f), 'utf8')));
    expect(patchers).toEqual([]);
  });
});
