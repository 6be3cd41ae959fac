// The vision example in smoke mode on the UCI digits: it runs end to end (conv, batch norm, pooling, attention,
// checkpoint round trip, attention picture) and its training loss falls.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

describe('examples/vision --smoke --data digits', () => {
  it('runs, the loss falls, the checkpoint reloads, the picture is drawn, and it ends with the report line', () => {
    const r = spawnSync(process.execPath, ['examples/run.mjs', 'vision', '--smoke', '--data', 'digits'], { cwd: ROOT, encoding: 'utf8', timeout: 280_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.status, out).toBe(0);
    const m = /^vision: loss (\S+) -> (\S+)$/m.exec(out);
    expect(m, out).not.toBeNull();
    const [first, last] = [Number(m![1]), Number(m![2])];
    expect(Number.isFinite(first) && Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first);
    expect(out).toContain('identical test predictions');
    expect(existsSync(join(ROOT, 'examples/vision/out/smoke/digits-attention.png'))).toBe(true);
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^vision: accuracy \d\.\d+$/);
  }, 300_000);
});
