// Runs `npm run example -- <name> --smoke` in a child process (its own GPU device), with outputs in a
// temporary folder, and returns what it printed and the first and last losses it reported.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

export function runSmoke(name: string, extraArgs: string[] = []): { stdout: string; first: number; last: number } {
  const out = mkdtempSync(join(tmpdir(), `kiln-${name}-`));
  try {
    const run = spawnSync(process.execPath, ['examples/run.mjs', name, '--smoke', ...extraArgs], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, KILN_EXAMPLES_OUT: out },
      timeout: 110_000,
    });
    expect(run.status, `exit ${run.status}\n${run.stdout}\n${run.stderr}`).toBe(0);
    const m = new RegExp(`^${name}: loss (\\S+) -> (\\S+)$`, 'm').exec(run.stdout);
    expect(m, run.stdout).not.toBeNull();
    const [first, last] = [Number(m![1]), Number(m![2])];
    expect(Number.isFinite(first) && Number.isFinite(last), run.stdout).toBe(true);
    return { stdout: run.stdout, first, last };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
