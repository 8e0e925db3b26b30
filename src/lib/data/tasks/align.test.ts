import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX, alignWordLabels } from './align';

describe('alignWordLabels', () => {
  it('labels the first sub-token of each word and ignores the rest', () => {
    // "The" -> [464], "unbelievable" -> [555, 6, 77], "." -> [13]
    const out = alignWordLabels([[464], [555, 6, 77], [13]], [5, 2, 10]);
    expect(out.ids).toEqual([464, 555, 6, 77, 13]);
    expect(out.labels).toEqual([5, 2, IGNORE_INDEX, IGNORE_INDEX, 10]);
    expect(IGNORE_INDEX).toBe(-100);
  });

  it('skips a word with no tokens, and its label', () => {
    expect(alignWordLabels([[1, 2], [], [3]], [7, 8, 9])).toEqual({ ids: [1, 2, 3], labels: [7, -100, 9] });
  });

  it('handles an empty sentence and rejects mismatched lengths', () => {
    expect(alignWordLabels([], [])).toEqual({ ids: [], labels: [] });
    expect(() => alignWordLabels([[1]], [1, 2])).toThrow(RangeError);
  });
});
