// Smoke test for examples/additive: a few training steps on the real data; the loss must fall.
import { expect, test } from 'vitest';
import { runSmoke } from './smoke';

test('examples/additive --smoke runs and its loss falls', () => {
  const { stdout, first, last } = runSmoke('additive');
  expect(last).toBeLessThan(first);
  expect(stdout).toContain('identical predictions');
});
