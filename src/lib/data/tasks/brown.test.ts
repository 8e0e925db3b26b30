import { describe, expect, it } from 'vitest';
import { isHeldOut } from '../holdout';
import { brownDocumentSplits, packPassages, parseBrownCategories, parseBrownFile } from './brown';
import { BROWN_CATEGORIES, GENRE_LABELS, GENRE_OF } from './genre';

describe('brown helpers', () => {
  it('parses cats.txt and tagged files', () => {
    const cats = parseBrownCategories('ca01 news\ncr09 humor\n');
    expect([...cats]).toEqual([
      ['ca01', 'news'],
      ['cr09', 'humor'],
    ]);
    expect(() => parseBrownCategories('ca01 poetry\n')).toThrow(/unexpected line/);
    const sentences = parseBrownFile("\n\n\tThe/at jury/nn said/vbd ./.\n\n\n\tI'll/ppss+md go/vb ./.\n");
    expect(sentences).toEqual([
      { words: ['The', 'jury', 'said', '.'], tags: ['at', 'nn', 'vbd', '.'] },
      { words: ["I'll", 'go', '.'], tags: ['ppss+md', 'vb', '.'] },
    ]);
  });

  it('packs sentences into passages of about min-max characters', () => {
    const s = (n: number, c: string): string => c.repeat(n);
    expect(packPassages([s(30, 'a'), s(30, 'b'), s(50, 'c'), s(10, 'd')], 60, 90)).toEqual([
      `${s(30, 'a')} ${s(30, 'b')}`, // 61 >= min
      // 50 + 1 + 10 = 61: closes at min
      `${s(50, 'c')} ${s(10, 'd')}`,
    ]);
    // a sentence that would pass max starts a new passage; a short tail (< min/2) is dropped
    expect(packPassages([s(40, 'a'), s(55, 'b'), s(20, 'c')], 60, 90)).toEqual([
      s(40, 'a'),
      `${s(55, 'b')} ${s(20, 'c')}`,
    ]);
    expect(packPassages([s(80, 'a'), s(10, 'b')], 60, 90)).toEqual([s(80, 'a')]);
  });

  it('groups every category into one of the 4 genre labels', () => {
    expect(Object.keys(GENRE_OF).sort()).toEqual([...BROWN_CATEGORIES].sort());
    expect(new Set(Object.values(GENRE_OF))).toEqual(new Set(GENRE_LABELS));
  });

  it('splits documents: held-out -> test, about a tenth of each category -> validation', () => {
    const cats = new Map(
      BROWN_CATEGORIES.flatMap((c, i) =>
        Array.from(
          { length: 20 },
          (_, j) => [`c${String.fromCharCode(97 + i)}${String(j).padStart(2, '0')}`, c] as const,
        ),
      ),
    );
    const split = brownDocumentSplits(cats);
    for (const [file, name] of split) expect(name === 'test').toBe(isHeldOut('brown', file));
    for (const c of BROWN_CATEGORIES) {
      const files = [...cats].filter(([, cat]) => cat === c).map(([f]) => f);
      const rest = files.filter((f) => !isHeldOut('brown', f)).length;
      const validation = files.filter((f) => split.get(f) === 'validation').length;
      expect(validation).toBe(Math.max(1, Math.round(rest / 10)));
    }
    expect(brownDocumentSplits(cats)).toEqual(split);
  });
});
