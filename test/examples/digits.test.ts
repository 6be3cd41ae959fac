// The digits example in smoke mode: it runs end to end and its training loss falls.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

describe('examples/digits --smoke', () => {
  it('runs, the loss falls, and it ends with the report line', () => {
    const r = spawnSync(process.execPath, ['examples/run.mjs', 'digits', '--smoke'], { cwd: ROOT, encoding: 'utf8', timeout: 110_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.status, out).toBe(0);
    const m = /^digits: loss (\S+) -> (\S+)$/m.exec(out);
    expect(m, out).not.toBeNull();
    const [first, last] = [Number(m![1]), Number(m![2])];
    expect(Number.isFinite(first) && Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first);
    expect(out).toContain('identical test predictions');
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^digits: test accuracy \d\.\d+$/);
  }, 120_000);
});
