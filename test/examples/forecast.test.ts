// Smoke test for examples/forecast: a few training steps on the real data; the loss must fall.
import { expect, test } from 'vitest';
import { runSmoke } from './smoke';

test('examples/forecast --smoke runs and its loss falls', () => {
  const { stdout, first, last } = runSmoke('forecast');
  expect(last).toBeLessThan(first);
  expect(stdout).toContain('identical predictions');
});
