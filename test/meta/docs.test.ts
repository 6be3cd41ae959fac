// The docs stand alone and stay current: nothing points outside the repository, and docs/api.md names every value
// the public entry exports.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../src/index.node';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function docs(): string[] {
  const out = ['README.md', 'bench/README.md', 'bench/gpu/README.md'];
  for (const f of readdirSync(join(root, 'docs'))) if (f.endsWith('.md')) out.push(`docs/${f}`);
  for (const d of readdirSync(join(root, 'examples'))) {
    const p = join(root, 'examples', d, 'README.md');
    try {
      if (statSync(p).isFile()) out.push(`examples/${d}/README.md`);
    } catch {}
  }
  return out;
}

describe('documentation', () => {
  it('points at nothing outside the repository', () => {
    const bad = docs().filter((f) => /\.\.\/shared|shared\/DESIGN/.test(readFileSync(join(root, f), 'utf8')));
    expect(bad).toEqual([]);
  });

  it('docs/api.md names every value the public entry exports', () => {
    const api = readFileSync(join(root, 'docs/api.md'), 'utf8');
    const missing = Object.keys(kiln).filter((name) => !new RegExp(`\\b${name}\\b`).test(api));
    expect(missing).toEqual([]);
  });
});
