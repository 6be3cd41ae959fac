// The gpt example in smoke mode: fit stops halfway and a freshly built model resumes from the checkpoint file; the
// resumed run matches an uninterrupted one, the loss falls, and temperature/top-k sampling through the KV cache runs.
import { describe, expect, it } from 'vitest';
import { runSmoke } from './smoke';

describe('examples/gpt --smoke', () => {
  it('trains, stops, resumes to the uninterrupted run, and samples on the GPU', () => {
    const { stdout, first, last } = runSmoke('gpt');
    expect(last).toBeLessThan(first);
    expect(stdout).toMatch(/^gpt: the resumed run matches the uninterrupted run/m);
    expect(stdout).toMatch(/^gpt: sample \(temperature 0\.8, top-k 10, KV cache/m);
    expect(stdout).toMatch(/^gpt: validation bits\/char \d+\.\d{3}$/m);
  }, 120_000);
});
