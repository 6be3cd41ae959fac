// Smoke test for examples/pooling: a few training steps on the real data; the loss must fall.
import { expect, test } from 'vitest';
import { runSmoke } from './smoke';

test('examples/pooling --smoke runs and its loss falls', () => {
  const { stdout, first, last } = runSmoke('pooling');
  expect(last).toBeLessThan(first);
  expect(stdout).toContain('identical predictions');
});
