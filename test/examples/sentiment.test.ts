// The sentiment example in smoke mode: it runs end to end (train a few steps, test report, checkpoint
// round trip, heatmaps) and its training loss falls.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

function runExample(name: string, extra: string[] = [], env: Record<string, string> = {}): { code: number | null; out: string; stdout: string } {
  const r = spawnSync(process.execPath, ['examples/run.mjs', name, '--smoke', ...extra], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 110_000 });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}`, stdout: r.stdout };
}

function lossOf(name: string, out: string): [number, number] {
  const m = new RegExp(`^${name}: loss (\\S+) -> (\\S+)$`, 'm').exec(out);
  if (!m) throw new Error(`no '${name}: loss a -> b' line in:\n${out}`);
  return [Number(m[1]), Number(m[2])];
}

describe('examples/sentiment --smoke', () => {
  it('runs, the loss falls, and it ends with the report line', () => {
    const { code, out, stdout } = runExample('sentiment');
    expect(code, out).toBe(0);
    const [first, last] = lossOf('sentiment', out);
    expect(Number.isFinite(first) && Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first);
    expect(out).toContain('identical test predictions');
    expect(stdout.trim().split('\n').at(-1)).toMatch(/^sentiment: test accuracy \d\.\d+$/);
    expect(out.match(/^sentiment: test accuracy/gm)).toHaveLength(1);
  }, 120_000);
});
