// Smoke test for examples/interactive: a few training steps on the real data; the loss must fall.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('examples/interactive --smoke runs and its loss falls', () => {
  const out = mkdtempSync(join(tmpdir(), 'kiln-interactive-'));
  try {
    const run = spawnSync('node', ['examples/run.mjs', 'interactive', '--smoke'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, KILN_EXAMPLES_OUT: out },
      timeout: 110_000,
    });
    expect(run.status, `exit ${run.status}\n${run.stdout}\n${run.stderr}`).toBe(0);
    const m = /^interactive: loss (\S+) -> (\S+)$/m.exec(run.stdout);
    expect(m, run.stdout).not.toBeNull();
    const [first, last] = [Number(m![1]), Number(m![2])];
    expect(Number.isFinite(first) && Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first);
    expect(run.stdout).toContain('identical predictions');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
