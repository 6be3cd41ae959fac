// Smoke test for examples/interactive: a few training steps on the real data; the loss must fall.
import { expect, test } from 'vitest';
import { runSmoke } from './smoke';

test('examples/interactive --smoke runs and its loss falls', () => {
  const { stdout, first, last } = runSmoke('interactive');
  expect(last).toBeLessThan(first);
  expect(stdout).toContain('identical predictions');
});
