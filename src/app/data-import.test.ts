import { describe, expect, it } from 'vitest';
import { availableBytes, defaultName, formatOf, guessColumns } from './data-import';

describe('import form choices', () => {
  it('knows the format from the file name', () => {
    expect(formatOf('reviews.CSV')).toBe('csv');
    expect(formatOf('a.tsv')).toBe('csv');
    expect(formatOf('docs.jsonl')).toBe('jsonl');
    expect(formatOf('x.ndjson')).toBe('jsonl');
    expect(formatOf('book.txt')).toBe('txt');
    expect(formatOf('data.json')).toBeNull();
    expect(formatOf('README')).toBeNull();
    expect(defaultName('my reviews.csv')).toBe('my reviews');
    expect(defaultName('.csv')).toBe('.csv');
  });

  it('preselects usual column names, else the longest text and the fewest-valued label', () => {
    expect(guessColumns(['id', 'Text', 'Label'], [])).toEqual({ text: 'Text', label: 'Label' });
    const rows = [
      ['1', 'a long review of a film', 'good'],
      ['2', 'another long review here', 'bad'],
      ['3', 'and a third one to read', 'good'],
    ];
    expect(guessColumns(['n', 'words', 'verdict'], rows)).toEqual({ text: 'words', label: 'verdict' });
    // A single column: the label falls back to it, and the import says to choose two.
    expect(guessColumns(['text'], [['a'], ['b']])).toEqual({ text: 'text', label: 'text' });
  });

  it('gives the storage left, or nothing where the browser has no estimate', () => {
    expect(availableBytes({ usageBytes: 100, quotaBytes: 1000 })).toBe(900);
    expect(availableBytes({ usageBytes: 2000, quotaBytes: 1000 })).toBe(0);
    expect(availableBytes(null)).toBeUndefined();
  });
});
