import { describe, expect, it } from 'vitest';
import { accuracy, binaryF1, macroF1, tokenAccuracy } from './metrics';

describe('metrics', () => {
  // gold 0 0 0 1 1 2, pred 0 0 1 1 2 2:
  // class 0: tp 2, fp 0, fn 1 -> F1 4/5; class 1: tp 1, fp 1, fn 1 -> 2/4; class 2: tp 1, fp 1, fn 0 -> 2/3
  const gold = [0, 0, 0, 1, 1, 2];
  const pred = [0, 0, 1, 1, 2, 2];

  it('accuracy', () => {
    expect(accuracy(pred, gold)).toBeCloseTo(4 / 6, 12);
    expect(accuracy(Int32Array.from([1, 1]), [1, 1])).toBe(1);
    expect(() => accuracy([1], [1, 2])).toThrow(RangeError);
    expect(accuracy([], [])).toBeNaN();
  });

  it('macroF1 averages per-class F1 over classes seen in gold or predictions', () => {
    expect(macroF1(pred, gold)).toBeCloseTo((4 / 5 + 1 / 2 + 2 / 3) / 3, 12);
    // a class only predicted (3) counts with F1 0; class 0: tp 1, fn 1 -> 2/3
    expect(macroF1([0, 3], [0, 0])).toBeCloseTo((2 / 3 + 0) / 2, 12);
    expect(macroF1([2, 2], [2, 2])).toBe(1);
  });

  it('binaryF1 of the positive class', () => {
    // positive 1: tp 1 (index 3), fp 1 (index 2), fn 1 (index 4) -> 2/4
    expect(binaryF1(pred, gold, 1)).toBeCloseTo(0.5, 12);
    // spam = 1: gold 1 1 0 0 1, pred 1 0 0 1 1 -> tp 2, fp 1, fn 1 -> 4/6
    expect(binaryF1([1, 0, 0, 1, 1], [1, 1, 0, 0, 1])).toBeCloseTo(2 / 3, 12);
    expect(binaryF1([0, 0], [0, 0])).toBe(0); // no positives anywhere: 0, as scikit-learn
  });

  it('tokenAccuracy skips -100', () => {
    // counted: positions 0, 2, 3, 5 -> right at 0, 3 -> 2/4
    expect(tokenAccuracy([4, 9, 1, 2, 7, 3], [4, -100, 2, 2, -100, 0])).toBe(0.5);
    expect(tokenAccuracy([5, 5], [-1, 5], -1)).toBe(1);
  });
});
