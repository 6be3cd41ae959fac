// The charlm example in smoke mode: a few training steps on Moby-Dick; the loss falls, and greedy
// decoding with the KV cache gives the same tokens as recomputing the whole context each step.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

describe('examples/charlm --smoke', () => {
  it('runs, its training loss falls, and cached and uncached generation agree', () => {
    const r = spawnSync(process.execPath, ['examples/run.mjs', 'charlm', '--smoke'], { cwd: ROOT, encoding: 'utf8', timeout: 110_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.status, out).toBe(0);
    const m = /^charlm: loss (\S+) -> (\S+)$/m.exec(out);
    expect(m, out).not.toBeNull();
    const [first, last] = [Number(m![1]), Number(m![2])];
    expect(Number.isFinite(first) && Number.isFinite(last), out).toBe(true);
    expect(last).toBeLessThan(first);
    expect(out).toMatch(/^charlm: cached and uncached generation agree on \d+ tokens$/m);
  }, 120_000);
});
