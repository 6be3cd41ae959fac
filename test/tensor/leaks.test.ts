// The leak detector reports tensors garbage-collected without dispose(), with where they were created.
import { describe, expect, it } from 'vitest';
import v8 from 'node:v8';
import vm from 'node:vm';
import { enableLeakDetector, tensor, randn } from '../../src/index.node';

v8.setFlagsFromString('--expose_gc');
const gc = vm.runInNewContext('gc') as () => void;

function makeGarbage(): void {
  // Created and dropped without dispose().
  randn([16], { seed: 1 });
}
function makeDisposed(): void {
  tensor([1, 2, 3]).dispose();
}

describe('leak detector', () => {
  it('is off by default, and when on reports undisposed tensors with their creation site', async () => {
    const reports: string[] = [];
    enableLeakDetector(true, (m) => reports.push(m));
    makeGarbage();
    makeDisposed();
    for (let i = 0; i < 10 && reports.length === 0; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
    }
    enableLeakDetector(false);
    expect(reports.length).toBe(1);
    expect(reports[0]).toMatch(/garbage-collected without dispose\(\)/);
    expect(reports[0]).toMatch(/makeGarbage/);
  });
});
