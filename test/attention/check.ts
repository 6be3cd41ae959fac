// A shared check of the attention tests: kiln's scaledDotProductAttention (forward, and dq, dk, dv of sum(out * dO))
// against the float64 reference, with no buffer left behind.
import { expect } from 'vitest';
import { F, memory, tidy } from '../../src/index.node';
import { type Ref, allClose } from '../reference/core';
import { type SdpaOptions, sdpa, sdpaBackward } from '../reference/attention';
import { fromRef, rnd } from '../helpers';

export interface AttentionCheck {
  q: Ref;
  k: Ref;
  v: Ref;
  /** The reference's options (isCausal, masks). */
  ref?: SdpaOptions;
  /** kiln's options. */
  kiln?: Parameters<typeof F.scaledDotProductAttention>[3];
  atol?: number;
  gradAtol?: number;
  seed?: number;
}

export async function expectMatchesReference(c: AttentionCheck): Promise<void> {
  const before = memory().buffers;
  const want = sdpa(c.q, c.k, c.v, c.ref);
  const dOr = rnd(want.out.shape, c.seed ?? 4);
  const wantG = sdpaBackward(c.q, c.k, c.v, dOr, c.ref);
  const q = fromRef(c.q, { requiresGrad: true }), k = fromRef(c.k, { requiresGrad: true }), v = fromRef(c.v, { requiresGrad: true });
  const out = F.scaledDotProductAttention(q, k, v, c.kiln);
  const r = allClose(Array.from(await out.toArray()), want.out.data, { atol: c.atol ?? 2e-5, rtol: 1e-4 });
  expect(r.ok, `forward: ${r.message}`).toBe(true);
  const dO = fromRef(dOr);
  const loss = tidy(() => out.mul(dO).sum());
  loss.backward();
  for (const [name, t, w] of [['dq', q, wantG.dq], ['dk', k, wantG.dk], ['dv', v, wantG.dv]] as const) {
    const rr = allClose(Array.from(await t.grad!.toArray()), w.data, { atol: c.gradAtol ?? 1e-4, rtol: 1e-3 });
    expect(rr.ok, `${name}: ${rr.message}`).toBe(true);
  }
  for (const t of [q, k, v, out, dO, loss]) t.dispose();
  expect(memory().buffers, 'leaked buffers').toBe(before);
}
