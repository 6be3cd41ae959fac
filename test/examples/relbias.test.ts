// Smoke test for examples/relbias: a learned relative-position bias (a captured tensor of a scoreMod) trains through
// the fused attention kernel; the loss must fall and the table's report must be printed.
import { expect, test } from 'vitest';
import { runSmoke } from './smoke';

test('examples/relbias --smoke runs and its loss falls', () => {
  const { stdout, first, last } = runSmoke('relbias');
  expect(last).toBeLessThan(first);
  expect(stdout).toMatch(/^relbias: the learned bias peaks at kvIdx - qIdx = /m);
});
