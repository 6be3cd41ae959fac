// Runs the bench CLI on a tiny case set and validates the report it writes against bench/SCHEMA.md.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM without types
import { validateReport, SCHEMA_VERSION } from '../../bench/lib/schema.mjs';
// @ts-expect-error plain ESM without types
import { compareReports, toMarkdown, toSvg } from '../../bench/lib/report.mjs';

const ROOT = resolve(__dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!existsSync(join(ROOT, 'dist/kiln.node.js')))('bench report schema', () => {
  const json = join(dir, 'r.json');
  let report: any;

  it('the CLI writes a report that validates', () => {
    execFileSync(process.execPath, ['bench/cli.mjs', '--suite', 'matmul,softmax', '--sizes', '16,33', '--no-probes', '--no-peers', '--json', json], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 90_000,
    });
    report = JSON.parse(readFileSync(json, 'utf8'));
    expect(validateReport(report)).toEqual([]);
    expect(report.schemaVersion).toBe(SCHEMA_VERSION);
    expect(report.cases).toHaveLength(4);
    for (const c of report.cases) {
      expect(c.status).toBe('ok');
      expect(c.runtime).toBe('node');
      expect(c.check.passed).toBe(true);
      expect(c.maxErr).toBeLessThan(1e-4);
      expect(c.runs).toBeGreaterThanOrEqual(20);
    }
    expect(existsSync(join(dir, 'r.md'))).toBe(true);
    expect(readFileSync(join(dir, 'r.svg'), 'utf8')).toMatch(/^<svg/);
  }, 120_000);

  it('the validator rejects broken reports', () => {
    expect(validateReport({})).not.toEqual([]);
    const bad = structuredClone(report);
    bad.cases[0].q1 = bad.cases[0].maxMs + 1;
    delete bad.cases[1].medianMs;
    bad.schemaVersion = 99;
    const errs = validateReport(bad);
    expect(errs.some((e: string) => e.includes('schemaVersion'))).toBe(true);
    expect(errs.some((e: string) => e.includes('cases[0]'))).toBe(true);
    expect(errs.some((e: string) => e.includes('cases[1]: medianMs'))).toBe(true);
  });

  it('compare flags a case more than 10% slower; markdown and svg render', () => {
    const slower = structuredClone(report);
    for (const c of slower.cases) {
      c.medianMs *= 1.5;
      if (c.gpuMs !== undefined) c.gpuMs *= 1.5;
    }
    const cmp = compareReports(report, slower, 10);
    expect(cmp.matched).toBe(4);
    expect(cmp.regressions).toHaveLength(4);
    expect(compareReports(report, report, 10).regressions).toHaveLength(0);
    expect(toMarkdown(slower, cmp)).toContain('REGRESSION');
    const withAttention = structuredClone(report);
    const base = { suite: 'attention', runtime: 'node', dtype: 'f32', status: 'ok', params: { isCausal: false } };
    withAttention.cases.push({ ...base, impl: 'fused', shape: [1, 2, 128, 64], medianMs: 1 }, { ...base, impl: 'reference', shape: [1, 2, 128, 64], medianMs: 2 });
    expect(toSvg(withAttention)).toContain('<polyline');
  });
});
