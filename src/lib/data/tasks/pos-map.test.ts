import { describe, expect, it } from 'vitest';
import { UNIVERSAL_TAGS, brownToUniversal } from './pos-map';

// Lines of en-brown.map (Petrov, Das & McDonald 2012), lower-cased as the corpus writes them.
const KNOWN: [string, string][] = [
  ['at', 'DET'],
  ['nn', 'NOUN'],
  ['nn-tl', 'NOUN'],
  ['nns$-tl-hl', 'NOUN'],
  ['np$', 'NOUN'],
  ['vbd', 'VERB'],
  ['vbd-hl', 'VERB'],
  ['bez*', 'VERB'],
  ['ber*-nc', 'VERB'],
  ['md*-hl', 'VERB'],
  ['*', 'ADV'],
  ['*-hl', 'ADV'],
  ['cd', 'NUM'],
  ['cd$', 'NOUN'],
  ['od', 'ADJ'],
  ['.', '.'],
  ['---hl', '.'],
  ['``', '.'],
  ["''", '.'],
  ['jj', 'ADJ'],
  ['jj$-tl', 'PRT'],
  ['rb', 'ADV'],
  ['ql', 'ADV'],
  ['pps', 'PRON'],
  ['ppss', 'PRON'],
  ['pp$', 'DET'],
  ['pp$$', 'PRON'],
  ['in', 'ADP'],
  ['cs', 'ADP'],
  ['cc', 'CONJ'],
  ['to', 'PRT'],
  ['rp', 'PRT'],
  ['ex', 'PRT'],
  ['abn', 'PRT'],
  ['abx', 'DET'],
  ['wdt', 'DET'],
  ['wps', 'PRON'],
  ['uh', 'PRT'],
  ['nil', 'X'],
  // contractions: the map sends most to PRT ("I'll" is ppss+md)
  ['ppss+md', 'PRT'],
  ['ppss+ber-n', 'PRT'],
  ['nn+bez-tl', 'PRT'],
  ['wrb+dod*', 'PRT'],
  ['md+ppss', 'VERB'],
  ['vb+ppo', 'VERB'],
  ['in+ppo', 'ADP'],
  ['nn+nn-nc', 'NOUN'],
  ['do+ppss', 'X'],
  ['wdt+ber+pp', 'X'],
  // foreign words are X whatever follows
  ['fw-nn', 'X'],
  ['fw-in+at-tl', 'X'],
  ['fw-*', 'X'],
];

describe('brownToUniversal', () => {
  it.each(KNOWN)('%s -> %s', (tag, universal) => {
    expect(brownToUniversal(tag)).toBe(universal);
  });

  it('accepts upper case and sends unknown tags to X, as NLTK does', () => {
    expect(brownToUniversal('NN-TL')).toBe('NOUN');
    expect(brownToUniversal('zz')).toBe('X');
    expect(brownToUniversal('zz+yy')).toBe('X');
  });

  it('has the 12 universal tags', () => {
    expect(UNIVERSAL_TAGS).toHaveLength(12);
    expect(new Set(KNOWN.map(([, u]) => u)).size).toBe(12);
  });
});
