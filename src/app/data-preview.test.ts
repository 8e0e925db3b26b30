import { describe, expect, it } from 'vitest';
import { taskById } from '../lib/data/tasks/registry';
import {
  countExamples,
  countLabels,
  DataLoadError,
  jsonlLines,
  loadTaskData,
  previewExamples,
  sourceLine,
  textBlocks,
  truncate,
} from './data-preview';

const spamJsonl = [
  '{"text":"Subject: hi\\nFrom: a.org\\nlunch?","label":"ham","id":"1"}',
  '{"text":"WIN MONEY NOW","label":"spam","id":"2"}',
  '{"text":"minutes attached","label":"ham","id":"3"}',
  '',
].join('\n');

const posJsonl =
  '{"words":["He","took","out","a","packet","."],"tags":["PRON","VERB","PRT","DET","NOUN","."],"doc":"cb22"}\n' +
  '{"words":["All","is","well"],"tags":["DET","VERB","ADV"],"doc":"cb22"}\n';

const mobyTxt =
  'CHAPTER 1. Loomings.\n\nCall me Ishmael.\nSome years ago.\n\n\n\nCHAPTER 2.\n  \n\t\nThe end.\n';

describe('counting', () => {
  it('counts jsonl records, not a blank last line', () => {
    expect(jsonlLines(spamJsonl)).toHaveLength(3);
    expect(countExamples(spamJsonl, 'seq-cls-jsonl')).toBe(3);
    expect(countExamples(`${posJsonl}\n\n`, 'token-cls-jsonl')).toBe(2);
    expect(countExamples('', 'seq-cls-jsonl')).toBe(0);
  });

  it('counts .txt documents as blocks between one or more blank lines', () => {
    expect(textBlocks(mobyTxt)).toEqual([
      'CHAPTER 1. Loomings.',
      'Call me Ishmael.\nSome years ago.',
      'CHAPTER 2.',
      'The end.',
    ]);
    expect(countExamples(mobyTxt, 'text')).toBe(4);
    expect(countExamples('\n\n', 'text')).toBe(0);
    expect(countExamples('one\r\n\r\ntwo', 'text')).toBe(2);
  });

  it('counts labels in the given order, with zeros and unknown labels after', () => {
    expect(countLabels(spamJsonl, ['ham', 'spam'])).toEqual([
      { label: 'ham', count: 2 },
      { label: 'spam', count: 1 },
    ]);
    expect(countLabels(spamJsonl, ['spam', 'phish', 'ham'])).toEqual([
      { label: 'spam', count: 1 },
      { label: 'phish', count: 0 },
      { label: 'ham', count: 2 },
    ]);
    expect(countLabels(spamJsonl, [])).toEqual([
      { label: 'ham', count: 2 },
      { label: 'spam', count: 1 },
    ]);
  });
});

describe('previews', () => {
  it('truncates with an ellipsis only when needed', () => {
    expect(truncate('short', 10)).toBe('short');
    expect(truncate('abcdefghij', 5)).toBe('abcd…');
    expect(truncate('abcdefghij', 5)).toHaveLength(5);
  });

  it('shows the first examples of a classification file with their labels', () => {
    const rows = previewExamples(spamJsonl, 'seq-cls-jsonl', { rows: 2, maxChars: 8 });
    expect(rows).toEqual([
      { kind: 'text', text: 'Subject…', label: 'ham' },
      { kind: 'text', text: 'WIN MON…', label: 'spam' },
    ]);
    expect(previewExamples(spamJsonl, 'seq-cls-jsonl')).toHaveLength(3);
  });

  it('shows word/tag pairs of a tagging file, cut at about maxChars of words', () => {
    const [first, second] = previewExamples(posJsonl, 'token-cls-jsonl', { maxChars: 12 });
    expect(first).toEqual({
      kind: 'tagged',
      words: [
        { word: 'He', tag: 'PRON' },
        { word: 'took', tag: 'VERB' },
        { word: 'out', tag: 'PRT' },
      ],
      truncated: true,
    });
    expect(second).toMatchObject({ kind: 'tagged', truncated: false });
  });

  it('shows the start of a .txt file as one row', () => {
    expect(previewExamples(mobyTxt, 'text', { textChars: 20 })).toEqual([
      { kind: 'text', text: 'CHAPTER 1. Loomings…' },
    ]);
    expect(previewExamples('\n\n', 'text')).toEqual([]);
  });

  it('joins the manifest’s source and licence', () => {
    expect(sourceLine({ source: 'npm x', licence: 'CC0' })).toBe('npm x — CC0');
    expect(sourceLine({ source: 'npm moby' })).toBe('npm moby');
    expect(sourceLine({})).toMatch(/No source/);
  });
});

describe('loadTaskData', () => {
  const spam = taskById('spam')!;
  const files: Record<string, string> = {
    '/base/data/spam/manifest.json': JSON.stringify({ source: 'npm spam', licence: 'PDDL' }),
    '/base/data/spam/train.jsonl': spamJsonl,
    '/base/data/spam/validation.jsonl': spamJsonl,
    '/base/data/spam/test.jsonl': '{"text":"é","label":"spam"}\n',
  };
  const fakeFetch = (async (url: string) =>
    url in files ? new Response(files[url]) : new Response('', { status: 404 })) as typeof fetch;

  it('summarises every split from the fetched files', async () => {
    const data = await loadTaskData(spam, '/base/', fakeFetch);
    expect(data.source).toBe('npm spam — PDDL');
    expect(data.splits.train).toEqual({ bytes: new TextEncoder().encode(spamJsonl).length, examples: 3 });
    // Bytes, not characters.
    expect(data.splits.test).toEqual({ bytes: 29, examples: 1 });
    expect(data.labelCounts).toEqual([
      { label: 'ham', count: 2 },
      { label: 'spam', count: 1 },
    ]);
    expect(data.preview).toHaveLength(3);
  });

  it('fails with a message naming the missing file', async () => {
    const missing = { ...files };
    delete missing['/base/data/spam/test.jsonl'];
    const fetch404 = (async (url: string) =>
      url in missing ? new Response(missing[url]) : new Response('', { status: 404 })) as typeof fetch;
    await expect(loadTaskData(spam, '/base/', fetch404)).rejects.toThrow(DataLoadError);
    await expect(loadTaskData(spam, '/base/', fetch404)).rejects.toThrow(
      'Could not load /base/data/spam/test.jsonl: HTTP 404',
    );
  });
});
