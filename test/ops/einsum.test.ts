// einsum against a brute-force float64 einsum: matmul, batched, outer, trace, diagonal, transposes, sums, three
// operands, implicit output, '...', broadcasting size-1 dims; gradients; bad equations.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { einsum as refEinsum } from '../reference/einsum';
import { checkGradVsRef, expectThrows, expectTensorClose, fromRef, rnd } from '../helpers';

const cases: [string, number[][]][] = [
  ['ij,jk->ik', [[3, 5], [5, 7]]],
  ['bij,bjk->bik', [[2, 3, 4], [2, 4, 5]]],
  ['i,j->ij', [[4], [3]]],
  ['ii->', [[5, 5]]],
  ['ii->i', [[4, 4]]],
  ['ij->ji', [[3, 7]]],
  ['ij->', [[3, 7]]],
  ['ijk->kj', [[2, 3, 5]]],
  ['ij,ij->ij', [[3, 4], [3, 4]]],
  ['ij,ij->', [[3, 4], [3, 4]]],
  ['ij,jk,kl->il', [[2, 3], [3, 4], [4, 5]]],
  ['bhqd,bhkd->bhqk', [[2, 3, 5, 4], [2, 3, 7, 4]]],
  ['ij,jk', [[3, 2], [2, 4]]],
  ['ba', [[3, 2]]],
  ['ij,kj->ikj', [[1, 4], [3, 4]]],
  ['iij,jk->ik', [[3, 3, 2], [2, 5]]],
  ['i,i->', [[13], [13]]],
];

describe('einsum', () => {
  it('matches the brute-force float64 einsum', async () => {
    for (const [ci, [eq, shapes]] of cases.entries()) {
      const refs = shapes.map((s, i) => rnd(s, 10 * ci + i));
      const out = K.einsum(eq, ...refs.map((r) => fromRef(r)));
      await expectTensorClose(out, refEinsum(eq, ...refs), 1e-5, 1e-5, eq);
    }
  });

  it("'...' broadcasts leading dims, explicit and implicit output", async () => {
    const a = rnd([2, 3, 4, 5], 1), b = rnd([5, 6], 2);
    await expectTensorClose(K.einsum('...ij,jk->...ik', fromRef(a), fromRef(b)), refEinsum('wxij,jk->wxik', a, b), 1e-5, 1e-5, 'ellipsis');
    await expectTensorClose(K.einsum('...ij,jk', [fromRef(a), fromRef(b)]), refEinsum('wxij,jk->wxik', a, b), 1e-5, 1e-5, 'implicit ellipsis');
    const c = rnd([3, 1, 4], 3), d = rnd([2, 4], 4);
    await expectTensorClose(K.einsum('...k,...k->...', fromRef(c), fromRef(d)), refEinsum('xyk,yk->xy', c, d), 1e-5, 1e-5, 'ellipsis broadcast');
  });

  it('gradients through contractions, diagonals and sums', async () => {
    for (const [eq, shapes] of [['ij,jk->ik', [[3, 4], [4, 2]]], ['bij,bjk->bik', [[2, 3, 4], [2, 4, 3]]], ['ii->i', [[4, 4]]], ['ij,jk,kl->il', [[2, 3], [3, 2], [2, 3]]], ['iij,jk->ik', [[3, 3, 2], [2, 5]]], ['i,j->ij', [[3], [4]]]] as [string, number[][]][]) {
      await checkGradVsRef((...xs) => K.einsum(eq, ...xs), (...xs) => refEinsum(eq, ...xs), shapes.map((s, i) => rnd(s, 40 + i)), { label: eq });
    }
  });

  it('bad equations fail before any work', () => {
    const a = K.ones([2, 3]), b = K.ones([4, 5]), ai = K.ones([2], { dtype: 'i32' });
    expectThrows(() => K.einsum('ij,jk->ik', a, b), K.ShapeError, "'j' has sizes 3 and 4");
    expectThrows(() => K.einsum('ijk->i', a), K.ShapeError, "'ijk'", '[2,3]');
    expectThrows(() => K.einsum('ij->iz', a), K.ValueError, "'z'");
    expectThrows(() => K.einsum('ij,jk->ik', a), K.ValueError, '2 operand terms but 1');
    expectThrows(() => K.einsum('i1->i', a), K.ValueError, "'1'");
    expectThrows(() => K.einsum('ij->ii', a), K.ValueError, 'repeats');
    expectThrows(() => K.einsum('i->i', ai), K.DTypeError, 'i32');
    for (const t of [a, b, ai]) t.dispose();
  });

  it('live memory returns to its baseline', () => {
    const before = K.memory().buffers;
    K.tidy(() => {
      const x = K.randn([3, 4], { seed: 1, requiresGrad: true });
      const y = K.randn([4, 4], { seed: 2, requiresGrad: true });
      K.einsum('ij,jk,kk->i', x, y, y).sum().backward();
      x.dispose();
      y.dispose();
    });
    expect(K.memory().buffers).toBe(before);
  });
});
