// Profiler rows carry the module path each dispatch ran in ('layers.0.self_attn'), as PyTorch's profiler shows
// record_function scopes: set by Module.forward, nested by recordFunction, inclusive totals per scope.
import { describe, expect, it } from 'vitest';
import { nn, tidy, type Tensor } from '../../src/index.node';
import { hasTimestampQuery, recordFunction, startGpuTimer } from '../../src/experimental';
import { fromRef, rnd } from '../helpers';

class Tiny extends nn.Module {
  layers = new nn.ModuleList([0, 1].map((i) => new nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16, dropout: 0, seed: i })));
  head = new nn.Linear(8, 3, { seed: 5 });
  override forward(x: Tensor): Tensor {
    let h = x;
    for (const layer of this.layers) h = layer.forward(h);
    return recordFunction('logits', () => this.head.forward(h).mul(2));
  }
}

describe('profiler scopes', () => {
  it('rows and byScope carry module paths; scopes nest and totals are inclusive', async () => {
    if (!hasTimestampQuery()) return;
    const m = new Tiny();
    const x = fromRef(rnd([1, 4, 8], 1));
    const timer = startGpuTimer();
    const y = tidy(() => m.forward(x));
    await y.toArray();
    const t = await timer.stop();
    const scopes = new Set(t.rows.map((r) => r.scope));
    for (const s of ['layers.0.self_attn', 'layers.0.self_attn.out_proj', 'layers.1.linear1', 'layers.1.norm2', 'logits.head', 'logits']) expect(scopes, s).toContain(s);
    // Inclusive totals: a layer counts its attention's dispatches, and everything is under ''.
    expect(t.byScope['layers.0'].count).toBeGreaterThan(t.byScope['layers.0.self_attn'].count);
    expect(t.byScope['layers'].count).toBe(t.byScope['layers.0'].count + t.byScope['layers.1'].count);
    expect(t.byScope[''].count).toBe(t.dispatches);
    expect(t.rows.reduce((s, r) => s + r.count, 0)).toBe(t.dispatches);
    const mulRow = t.rows.find((r) => r.scope === 'logits' && r.label.includes('mul'));
    expect(mulRow, JSON.stringify(t.rows.filter((r) => r.scope === 'logits'))).toBeTruthy();
    // Outside a timer nothing is tracked, and results are the same.
    const y2 = tidy(() => m.forward(x));
    expect(Array.from(await y2.toArray())).toEqual(Array.from(await y.toArray()));
    for (const z of [x, y, y2]) z.dispose();
    m.dispose();
    expect(() => recordFunction('', () => 1)).toThrow(/name/);
  });
});
