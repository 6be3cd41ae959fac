// The tagging example in smoke mode: a few training steps on Brown news sentences; the loss falls.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

describe('examples/tagging --smoke', () => {
  it('runs and its training loss falls', () => {
    const r = spawnSync(process.execPath, ['examples/run.mjs', 'tagging', '--smoke'], { cwd: ROOT, encoding: 'utf8', timeout: 110_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.status, out).toBe(0);
    const m = /^tagging: loss (\S+) -> (\S+)$/m.exec(out);
    expect(m, out).not.toBeNull();
    const [first, last] = [Number(m![1]), Number(m![2])];
    expect(Number.isFinite(first) && Number.isFinite(last), out).toBe(true);
    expect(last).toBeLessThan(first);
    expect(out).toMatch(/^tagging: train \[=+\] 12\/12/m);
  }, 120_000);
});
