import { describe, expect, it } from 'vitest';
import { accuracy, confusionMatrix, precisionRecallF1, classificationReport, batches, permutation, ShapeError } from '../../src/index';

describe('metrics', () => {
  const yTrue = [0, 1, 2, 2, 2, 1, 0, 1];
  const yPred = [0, 2, 2, 2, 1, 1, 0, 0];
  it('accuracy and confusion matrix', () => {
    expect(accuracy(yTrue, yPred)).toBe(5 / 8);
    expect(confusionMatrix(yTrue, yPred)).toEqual([
      [2, 0, 0],
      [1, 1, 1],
      [0, 1, 2],
    ]);
    expect(confusionMatrix(yTrue, yPred, [2, 0])).toEqual([[2, 0], [0, 2]]);
    expect(() => accuracy([1], [1, 2])).toThrow(ShapeError);
  });
  it('precision / recall / F1 per class, macro, micro, weighted (sklearn values)', () => {
    const r = precisionRecallF1(yTrue, yPred);
    // sklearn: precision [0.667, 0.5, 0.667], recall [1, 0.333, 0.667]
    expect(r.perClass.map((c) => +c.precision.toFixed(4))).toEqual([0.6667, 0.5, 0.6667]);
    expect(r.perClass.map((c) => +c.recall.toFixed(4))).toEqual([1, 0.3333, 0.6667]);
    expect(r.perClass.map((c) => +c.f1.toFixed(4))).toEqual([0.8, 0.4, 0.6667]);
    expect(r.perClass.map((c) => c.support)).toEqual([2, 3, 3]);
    expect(r.macro.f1).toBeCloseTo((0.8 + 0.4 + 2 / 3) / 3, 10);
    expect(r.micro.f1).toBeCloseTo(5 / 8, 10);
    expect(r.micro.precision).toBeCloseTo(5 / 8, 10);
    expect(r.weighted.f1).toBeCloseTo((0.8 * 2 + 0.4 * 3 + (2 / 3) * 3) / 8, 10);
    // A class never predicted: precision 0 (zero_division=0).
    const z = precisionRecallF1([0, 1], [0, 0]);
    expect(z.perClass[1].precision).toBe(0);
  });
  it('classificationReport prints a table', () => {
    const s = classificationReport(yTrue, yPred, undefined, { names: ['cat', 'dog', 'eel'] });
    expect(s).toMatch(/precision\s+recall\s+f1-score\s+support/);
    expect(s).toMatch(/cat\s+0\.67\s+1\.00\s+0\.80\s+2/);
    expect(s).toMatch(/accuracy\s+0\.63\s+8/);
    expect(s).toMatch(/macro avg\s+0\.61\s+0\.67\s+0\.62\s+8/);
  });
});

describe('batches', () => {
  it('covers every index once, is reproducible from a seed and differs by epoch', () => {
    const a = [...batches(10, 3, { seed: 4 })];
    expect(a.map((b) => b.length)).toEqual([3, 3, 3, 1]);
    expect(a.flat().sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
    expect([...batches(10, 3, { seed: 4 })]).toEqual(a);
    expect([...batches(10, 3, { seed: 5 })]).not.toEqual(a);
    expect([...batches(10, 3, { seed: 4, epoch: 1 })]).not.toEqual(a);
    expect([...batches(10, 3, { shuffle: false })][0]).toEqual([0, 1, 2]);
    expect([...batches(10, 3, { dropLast: true, seed: 1 })].length).toBe(3);
    expect(permutation(1000, 1).sort((x, y) => x - y)).toEqual([...Array(1000).keys()]);
    expect(() => [...batches(10, 0)]).toThrow(/batchSize/);
  });
});
