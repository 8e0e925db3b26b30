/**
 * Brown corpus tags -> the 12-tag universal part-of-speech set of Petrov, Das & McDonald (2012),
 * "A Universal Part-of-Speech Tagset", LREC 2012 (arXiv:1104.2086), as its `en-brown.map` file
 * gives it (github.com/slavpetrov/universal-pos-tags; the same file is NLTK's `brown` -> `universal`
 * mapping). That file lists all 472 tags that occur in the Brown corpus one by one; the tables below
 * say the same thing by rule:
 * - `fw-` (foreign word) tags are X, whatever follows;
 * - the suffixes `-hl` (headline), `-tl` (title), `-nc` (cited word) and a trailing `*` (negation,
 *   as in `bez*` "isn't") do not change the class, except that `*` alone (the word "not") is ADV;
 * - a contraction (`ppss+md` "I'll", `nn+bez` "John's" = "John is") has its own entry in COMPOUND:
 *   the map sends most of them to PRT, so `ppss+md` is PRT, not PRON.
 * These rules were checked against every line of en-brown.map when they were written (all 472 agree);
 * pos-map.test.ts keeps a sample of those lines.
 */

/** The universal tags, in the order used for label ids. */
export const UNIVERSAL_TAGS = [
  'NOUN',
  'VERB',
  'ADJ',
  'ADV',
  'PRON',
  'DET',
  'ADP',
  'NUM',
  'CONJ',
  'PRT',
  '.',
  'X',
] as const;
export type UniversalTag = (typeof UNIVERSAL_TAGS)[number];

/** Simple Brown tags (upper case, without -HL/-TL/-NC or a trailing negation `*`). */
const SIMPLE: Readonly<Record<string, UniversalTag>> = {
  // punctuation
  "'": '.',
  "''": '.',
  '``': '.',
  '(': '.',
  ')': '.',
  ',': '.',
  '--': '.',
  '.': '.',
  ':': '.',
  // `*` is the word "not" (and n't when split off)
  '*': 'ADV',
  // pre-qualifiers / pre-quantifiers (quite, half, all, both): the map says PRT for ABL/ABN, DET for ABX
  ABL: 'PRT',
  ABN: 'PRT',
  ABX: 'DET',
  AP: 'ADJ',
  AP$: 'PRT',
  AT: 'DET',
  // be, do, have, modals and main verbs
  BE: 'VERB',
  BED: 'VERB',
  BEDZ: 'VERB',
  BEG: 'VERB',
  BEM: 'VERB',
  BEN: 'VERB',
  BER: 'VERB',
  BEZ: 'VERB',
  DO: 'VERB',
  DOD: 'VERB',
  DOZ: 'VERB',
  HV: 'VERB',
  HVD: 'VERB',
  HVG: 'VERB',
  HVN: 'VERB',
  HVZ: 'VERB',
  MD: 'VERB',
  VB: 'VERB',
  VBD: 'VERB',
  VBG: 'VERB',
  VBN: 'VERB',
  VBZ: 'VERB',
  CC: 'CONJ',
  CS: 'ADP',
  CD: 'NUM',
  CD$: 'NOUN',
  OD: 'ADJ',
  DT: 'DET',
  DT$: 'DET',
  DTI: 'DET',
  DTS: 'DET',
  DTX: 'DET',
  EX: 'PRT',
  IN: 'ADP',
  JJ: 'ADJ',
  JJ$: 'PRT',
  JJR: 'ADJ',
  JJS: 'ADJ',
  JJT: 'ADJ',
  NIL: 'X',
  NN: 'NOUN',
  NN$: 'NOUN',
  NNS: 'NOUN',
  NNS$: 'NOUN',
  NP: 'NOUN',
  NP$: 'NOUN',
  NPS: 'NOUN',
  NPS$: 'NOUN',
  NR: 'NOUN',
  NR$: 'NOUN',
  NRS: 'NOUN',
  PN: 'NOUN',
  PN$: 'NOUN',
  PP$: 'DET',
  PP$$: 'PRON',
  PPL: 'PRON',
  PPLS: 'PRON',
  PPO: 'PRON',
  PPS: 'PRON',
  PPSS: 'PRON',
  QL: 'ADV',
  QLP: 'ADV',
  RB: 'ADV',
  RB$: 'PRT',
  RBR: 'ADV',
  RBT: 'ADV',
  RN: 'ADV',
  RP: 'PRT',
  TO: 'PRT',
  UH: 'PRT',
  WDT: 'DET',
  WP$: 'DET',
  WPO: 'PRON',
  WPS: 'PRON',
  WQL: 'ADV',
  WRB: 'ADV',
};

/** Contractions and other joined words (upper case, suffixes and trailing `*` removed). */
const COMPOUND: Readonly<Record<string, UniversalTag>> = {
  // a word doubled or fused with a preposition or conjunction keeps its first part's class
  'AP+AP': 'ADJ',
  'JJ+JJ': 'ADJ',
  'JJR+CS': 'ADJ',
  'NN+NN': 'NOUN',
  'NN+IN': 'NOUN',
  'IN+IN': 'ADP',
  'IN+PPO': 'ADP',
  'RB+CS': 'ADV',
  'RBR+CS': 'ADV',
  'RP+IN': 'PRT',
  'TO+VB': 'PRT',
  // verb + something (gonna, wanna, lemme, hafta, gotta, shouldda...) is VERB
  'HV+TO': 'VERB',
  'MD+HV': 'VERB',
  'MD+PPSS': 'VERB',
  'MD+TO': 'VERB',
  'VB+AT': 'VERB',
  'VB+IN': 'VERB',
  'VB+JJ': 'VERB',
  'VB+PPO': 'VERB',
  'VB+RP': 'VERB',
  'VB+TO': 'VERB',
  'VB+VB': 'VERB',
  'VBG+TO': 'VERB',
  'VBN+TO': 'VERB',
  // word + verb contraction (that's, there's, John's, I'm, we'll, who'd, where's...) is PRT
  'DT+BEZ': 'PRT',
  'DT+MD': 'PRT',
  'DTS+BEZ': 'PRT',
  'EX+BEZ': 'PRT',
  'EX+HVD': 'PRT',
  'EX+HVZ': 'PRT',
  'EX+MD': 'PRT',
  'NN+BEZ': 'PRT',
  'NN+HVD': 'PRT',
  'NN+HVZ': 'PRT',
  'NN+MD': 'PRT',
  'NNS+MD': 'PRT',
  'NP+BEZ': 'PRT',
  'NP+HVZ': 'PRT',
  'NP+MD': 'PRT',
  'NR+MD': 'PRT',
  'PN+BEZ': 'PRT',
  'PN+HVD': 'PRT',
  'PN+HVZ': 'PRT',
  'PN+MD': 'PRT',
  'PPS+BEZ': 'PRT',
  'PPS+HVD': 'PRT',
  'PPS+HVZ': 'PRT',
  'PPS+MD': 'PRT',
  'PPSS+BEM': 'PRT',
  'PPSS+BER': 'PRT',
  'PPSS+BEZ': 'PRT',
  'PPSS+HV': 'PRT',
  'PPSS+HVD': 'PRT',
  'PPSS+MD': 'PRT',
  'PPSS+VB': 'PRT',
  'RB+BEZ': 'PRT',
  'WDT+BER': 'PRT',
  'WDT+BEZ': 'PRT',
  'WDT+DOD': 'PRT',
  'WDT+HVZ': 'PRT',
  'WPS+BEZ': 'PRT',
  'WPS+HVD': 'PRT',
  'WPS+HVZ': 'PRT',
  'WPS+MD': 'PRT',
  'WRB+BER': 'PRT',
  'WRB+BEZ': 'PRT',
  'WRB+DO': 'PRT',
  'WRB+DOD': 'PRT',
  'WRB+DOZ': 'PRT',
  'WRB+IN': 'PRT',
  'WRB+MD': 'PRT',
  // the map leaves these as X
  'DO+PPSS': 'X',
  'WDT+BER+PP': 'X',
  'WDT+DO+PPS': 'X',
};

/**
 * Removes the headline, title and cited-word suffixes (`-hl`, `-tl`, `-nc`; the corpus also has
 * the truncated `-n` and `-t` once each) and a trailing negation `*` from an upper-case tag.
 */
function baseTag(upper: string): string {
  let t = upper;
  for (;;) {
    const next = t.replace(/-(HL|TL|NC|N|T)$/, '');
    if (next === t) break;
    t = next;
  }
  if (t.length > 1 && t.endsWith('*')) t = t.slice(0, -1);
  return t;
}

/** The universal tag of a Brown tag (any case); unknown tags are X, as in NLTK. */
export function brownToUniversal(tag: string): UniversalTag {
  const upper = tag.toUpperCase();
  if (upper.startsWith('FW-')) return 'X';
  const base = baseTag(upper);
  return (base.includes('+') ? COMPOUND[base] : SIMPLE[base]) ?? 'X';
}
