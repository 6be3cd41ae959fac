// The schedule pass (src/compile/schedule.ts): commands reordered by dependency level. Independent work moves up
// beside the work it can run with; dependent pairs keep their order (a reader after its writer, a writer after the
// readers before it), so results equal the trace's order and eager, bit for bit.
import { describe, expect, it } from 'vitest';
import { compile, memory, tensor, tidy, type Tensor } from '../../src/index.node';

function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

async function arrays(ts: Tensor[]): Promise<Float32Array[]> {
  return Promise.all(ts.map(async (t) => (await t.toArray()) as Float32Array));
}

describe('compile: level scheduling', () => {
  it('independent chains interleave by level; writes after reads stay after them; results equal eager', async () => {
    const x = tensor(values(7 * 5, 1), { shape: [7, 5] });
    const y = tensor(values(7 * 5, 2), { shape: [7, 5] });
    const w = tensor(values(5 * 5, 3), { shape: [5, 5] });
    // Chain 1: three dependent matmuls on x; chain 2: three on y, independent of chain 1 (traced after it). The
    // schedule pairs them level by level: a1 b1, a2 b2, a3 b3.
    const fn = (a: Tensor, b: Tensor): Tensor[] =>
      tidy(() => {
        const a3 = a.matmul(w).tanh().matmul(w).matmul(w);
        const b3 = b.matmul(w).sigmoid().matmul(w).matmul(w);
        return [a3, b3, a3.add(b3)];
      });
    const want = await arrays(fn(x, y));
    const base = memory().buffers;
    const explains: string[] = [];
    // (Horizontal fusion off: the command list shows the order this pass made, before merging.)
    for (const fuse of [{ schedule: false, horizontal: false }, { horizontal: false }] as const) {
      const step = compile(fn, { fuse });
      for (let k = 0; k < 4; k++) {
        const got = step(x, y);
        const a = await arrays(got);
        a.forEach((v, i) => expect(Array.from(v), `output ${i} fuse=${JSON.stringify(fuse)} call ${k}`).toEqual(Array.from(want[i])));
        got.forEach((t) => t.dispose());
      }
      expect(step.stats.replays).toBe(2);
      explains.push(step.explain());
      step.dispose();
    }
    expect(explains[0]).not.toContain('schedule:');
    expect(explains[1]).toMatch(/schedule: \d+ commands moved into dependency-level order/);
    // The scheduled plan's command list alternates the chains: the first command of chain 2 right after chain 1's.
    const list = explains[1].slice(explains[1].indexOf('commands:')).split('\n').slice(1).map((l) => l.trim().replace(/^\d+\s+/, ''));
    expect(list.slice(0, 2).every((l) => /^matmul/.test(l)) || /^matmul\s+x2/.test(list[0]), list.join(' | ')).toBe(true);
    expect(memory().buffers).toBe(base);
    for (const t of [x, y, w]) t.dispose();
  });
});
