import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { beforeEach, describe, expect, it } from 'vitest';
import { DataImportError, FileLoadError, StorageError } from '../errors';
import { listDatasets } from '../storage/datasets';
import { closeLabDb } from '../storage/db';
import {
  MIN_CLS_EXAMPLES,
  findTask,
  heldOutCounts,
  importDataset,
  importedTaskInfo,
  importedTasks,
  readImportedFile,
  splitClassification,
  splitLanguageModel,
  taskDataUrl,
  type DatasetImportRequest,
} from './imported';
import { taskById } from './tasks/registry';

beforeEach(async () => {
  await closeLabDb();
  globalThis.indexedDB = new IDBFactory();
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

/** `n` rows of a CSV with labels cycling through `labels`. */
function csv(n: number, labels: string[]): string {
  const rows = Array.from(
    { length: n },
    (_, i) => `"review number ${i}, fine",${labels[i % labels.length]!}`,
  );
  return `text,label\n${rows.join('\n')}\n`;
}

const clsReq = (over: Partial<DatasetImportRequest> = {}): DatasetImportRequest => ({
  id: 'data-test1',
  name: 'reviews',
  fileName: 'reviews.csv',
  format: 'csv',
  bytes: 0,
  taskType: 'SEQ_CLS',
  textColumn: 'text',
  labelColumn: 'label',
  addedAt: 1000,
  ...over,
});

describe('the split rule', () => {
  it('gives each class about 10% validation and test, at least one validation example from two up', () => {
    expect(heldOutCounts(1)).toEqual({ validation: 0, test: 0 });
    expect(heldOutCounts(2)).toEqual({ validation: 1, test: 0 });
    expect(heldOutCounts(3)).toEqual({ validation: 1, test: 1 });
    expect(heldOutCounts(14)).toEqual({ validation: 1, test: 1 });
    expect(heldOutCounts(15)).toEqual({ validation: 2, test: 2 });
    expect(heldOutCounts(100)).toEqual({ validation: 10, test: 10 });
  });

  it('splits classification per class, deterministically, every example exactly once', () => {
    const examples = [
      ...Array.from({ length: 40 }, (_, i) => ({ text: `a${i}`, label: 'a' })),
      ...Array.from({ length: 9 }, (_, i) => ({ text: `b${i}`, label: 'b' })),
      { text: 'c0', label: 'c' },
      { text: 'd0', label: 'd' },
      { text: 'd1', label: 'd' },
    ];
    const s = splitClassification(examples);
    expect(splitClassification(examples)).toEqual(s);
    const count = (split: keyof typeof s, label: string) => s[split].filter((e) => e.label === label).length;
    expect([count('train', 'a'), count('validation', 'a'), count('test', 'a')]).toEqual([32, 4, 4]);
    expect([count('train', 'b'), count('validation', 'b'), count('test', 'b')]).toEqual([7, 1, 1]);
    expect([count('train', 'c'), count('validation', 'c'), count('test', 'c')]).toEqual([1, 0, 0]);
    expect([count('train', 'd'), count('validation', 'd'), count('test', 'd')]).toEqual([1, 1, 0]);
    const all = [...s.train, ...s.validation, ...s.test].map((e) => e.text).sort();
    expect(all).toEqual(examples.map((e) => e.text).sort());
    // Shuffled, not in file order; another seed gives another order.
    expect(s.train.map((e) => e.text)).not.toEqual(
      examples.filter((e) => s.train.includes(e)).map((e) => e.text),
    );
    expect(splitClassification(examples, 7)).not.toEqual(s);
  });

  it('refuses one class and too few examples', () => {
    const one = Array.from({ length: 20 }, (_, i) => ({ text: `t${i}`, label: 'x' }));
    expect(() => splitClassification(one)).toThrow(/only one label, 'x', was found/);
    const few = Array.from({ length: MIN_CLS_EXAMPLES - 1 }, (_, i) => ({
      text: `t${i}`,
      label: `${i % 2}`,
    }));
    expect(() => splitClassification(few)).toThrow(
      'only 9 examples were found; a classification data set needs at least 10, so that training, validation and test each get some: add more rows.',
    );
  });

  it('cuts a corpus 80/10/10 in file order at line breaks', () => {
    const lines = Array.from(
      { length: 100 },
      (_, i) => `line ${String(i).padStart(2, '0')} ${'x'.repeat(20)}`,
    );
    const text = lines.join('\n') + '\n';
    const s = splitLanguageModel(text);
    expect(s.train + s.validation + s.test).toBe(text);
    for (const part of [s.train, s.validation]) expect(part.endsWith('\n')).toBe(true);
    expect(s.validation.startsWith('line 80')).toBe(true);
    expect(s.test.startsWith('line 90')).toBe(true);
    expect(() => splitLanguageModel('short text\n'.repeat(10))).toThrow(/needs at least 2,000/);
    // One huge line: no line break to cut at, so the cuts fall at 80% and 90% exactly.
    const one = splitLanguageModel('y'.repeat(3000));
    expect([one.train.length, one.validation.length, one.test.length]).toEqual([2400, 300, 300]);
  });
});

describe('importDataset', () => {
  it('imports a CSV for classification, stores the splits, and reads them back as a task', async () => {
    const text = csv(30, ['neg', 'pos']);
    const progress: number[] = [];
    const meta = await importDataset(text, {
      ...clsReq({ bytes: text.length }),
      onProgress: (p) => progress.push(p.bytesRead),
    });
    expect(progress.at(-1)).toBe(text.length);
    expect(meta.labels).toEqual(['neg', 'pos']);
    expect(meta.splits.train.examples + meta.splits.validation.examples + meta.splits.test.examples).toBe(30);
    expect(meta.splits.validation.labelCounts).toEqual({ neg: 2, pos: 2 });
    expect(meta.splits.train.labelCounts).toEqual({ neg: 11, pos: 11 });
    expect(meta.source).toEqual({
      fileName: 'reviews.csv',
      format: 'csv',
      bytes: text.length,
      textColumn: 'text',
      labelColumn: 'label',
    });
    expect(meta.preview).toHaveLength(4);
    expect(meta.preview[0]!.text).toMatch(/^review number \d+, fine$/);
    expect(meta.sizeBytes).toBe(
      meta.splits.train.bytes + meta.splits.validation.bytes + meta.splits.test.bytes,
    );

    const info = await findTask('data-test1');
    expect(info).toEqual(importedTaskInfo(meta));
    expect(info!.taskType).toBe('SEQ_CLS');
    expect(info!.labels).toEqual(['neg', 'pos']);
    const url = taskDataUrl(info!, '/app/');
    expect(url).toBe('idb:data-test1/');
    const validation = new TextDecoder().decode(await readImportedFile(`${url}${info!.files.validation}`));
    const rows = validation
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { text: string; label: string });
    expect(rows).toHaveLength(4);
    expect(rows[0]).toEqual({ text: meta.preview[0]!.text, label: meta.preview[0]!.label });
    expect(taskDataUrl(taskById('spam')!, '/app/')).toBe('/app/data/spam/');
    expect(await findTask('spam')).toBe(taskById('spam'));
    expect(await findTask('data-nothere')).toBeUndefined();
    expect((await importedTasks()).map((t) => t.id)).toEqual(['data-test1']);
  });

  it('imports JSONL and .txt for language modelling', async () => {
    const docs = Array.from({ length: 40 }, (_, i) => ({
      text: `Document ${i}.\n${'Some words here. '.repeat(4)}`,
    }));
    const jsonl = docs.map((d) => JSON.stringify(d)).join('\n');
    const meta = await importDataset(jsonl, {
      ...clsReq({
        id: 'data-lm1',
        name: 'docs',
        fileName: 'docs.jsonl',
        format: 'jsonl',
        taskType: 'CAUSAL_LM',
      }),
      textColumn: undefined,
      labelColumn: undefined,
    });
    expect(meta.taskType).toBe('CAUSAL_LM');
    expect(meta.labels).toEqual([]);
    expect(meta.files.train).toBe('train.txt');
    expect(meta.splits.train.examples).toBeGreaterThan(25);
    const train = new TextDecoder().decode(await readImportedFile('idb:data-lm1/train.txt'));
    expect(train.startsWith('Document 0.\nSome words')).toBe(true);
    expect(importedTaskInfo(meta).format).toBe('text');

    const txt = 'It was a dark and stormy night.\n'.repeat(100);
    const plain = await importDataset(
      txt,
      clsReq({ id: 'data-lm2', name: 'night', fileName: 'night.txt', format: 'txt', taskType: 'CAUSAL_LM' }),
    );
    expect(plain.splits.validation.bytes).toBeGreaterThan(0);
    expect((await listDatasets()).map((d) => d.id)).toEqual(['data-lm2', 'data-lm1']);
  });

  it('stores nothing when the file is bad, and leaves what was stored before', async () => {
    await importDataset(csv(20, ['a', 'b']), clsReq({ id: 'data-keep' }));
    const cases: [string, Partial<DatasetImportRequest>, RegExp][] = [
      [
        csv(20, ['a', 'b']),
        { labelColumn: 'Label' },
        /line 1: there is no label column 'Label'.*Did you mean 'label'/,
      ],
      [csv(20, ['only']), {}, /only one label, 'only', was found/],
      [csv(5, ['a', 'b']), {}, /only 5 examples were found/],
      ['text,label\n"unclosed,a\nb,c\n', {}, /line 2:.*quote/],
      ['x', { format: 'txt' }, /can only be imported for language modelling/],
    ];
    for (const [text, over, message] of cases) {
      const e = await rejection(importDataset(text, clsReq({ id: 'data-bad', ...over })));
      expect(e).toBeInstanceOf(DataImportError);
      expect(e.message).toMatch(message);
    }
    const bad = new Uint8Array([
      ...new TextEncoder().encode('text,label\ncaf'),
      0xe9,
      ...new TextEncoder().encode(',a\n'),
    ]);
    const e = await rejection(importDataset(bad, clsReq({ id: 'data-bad' })));
    expect(e.message).toMatch(/line 2.*UTF-8/);
    expect((await listDatasets()).map((d) => d.id)).toEqual(['data-keep']);
    expect(await findTask('data-bad')).toBeUndefined();
  });

  it('names a deleted data set when its files are read', async () => {
    const e = await rejection(readImportedFile('idb:data-gone/train.jsonl'));
    expect(e).toBeInstanceOf(FileLoadError);
    expect(e.message).toMatch(/data-gone is no longer in this browser/);
  });

  it('maps a full disk to StorageError and keeps the earlier data sets', async () => {
    await importDataset(csv(20, ['a', 'b']), clsReq({ id: 'data-first' }));
    const realPut = IDBObjectStore.prototype.put;
    IDBObjectStore.prototype.put = function () {
      throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    };
    try {
      const e = await rejection(importDataset(csv(20, ['a', 'b']), clsReq({ id: 'data-second' })));
      expect(e).toBeInstanceOf(StorageError);
      expect(e.message).toMatch(/^storage is full.*imported data sets \(Data\)/);
    } finally {
      IDBObjectStore.prototype.put = realPut;
    }
    expect((await listDatasets()).map((d) => d.id)).toEqual(['data-first']);
  });
});
