import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PeftLabError, serializeError } from '../../errors';
import { DataImportError, type DataImportErrorCode } from './errors';
import {
  DOCUMENT_SEPARATOR,
  importClassification,
  importLanguageModel,
  inspectCsv,
  inspectJsonl,
  type ClassificationImportOptions,
} from './import';
import type { ImportProgress } from './table';
import { bytesOf, chunkedStream } from './testing';

async function rejection(p: Promise<unknown>): Promise<DataImportError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DataImportError) return e;
    throw e;
  }
  throw new Error('expected a DataImportError, but the import succeeded');
}

const csvOptions: ClassificationImportOptions = { format: 'csv', textColumn: 'text', labelColumn: 'label' };

function classify(text: string | Uint8Array, options: Partial<ClassificationImportOptions> = {}) {
  return importClassification(text, { ...csvOptions, ...options });
}

async function expectError(
  p: Promise<unknown>,
  code: DataImportErrorCode,
  message: string | RegExp,
  line?: number,
): Promise<DataImportError> {
  const e = await rejection(p);
  expect(e.name).toBe('DataImportError');
  expect(e.code).toBe(code);
  if (typeof message === 'string') expect(e.message).toBe(message);
  else expect(e.message).toMatch(message);
  if (line !== undefined) expect(e.line).toBe(line);
  return e;
}

describe('DataImportError', () => {
  it('is a PeftLabError whose name survives minification and the worker boundary', () => {
    const e = new DataImportError('line 3: bad', 'field-count', 3);
    expect(e).toBeInstanceOf(PeftLabError);
    expect(serializeError(e)).toEqual({
      name: 'DataImportError',
      message: 'line 3: bad',
      fields: { code: 'field-count', line: 3 },
    });
    expect(e.line).toBe(3);
  });
});

describe('inspectCsv and inspectJsonl', () => {
  it('returns the columns and the first rows, and reads no further', async () => {
    const rows = Array.from({ length: 5000 }, (_, i) => `"row, ${i}",${i % 2 ? 'spam' : 'ham'},${i}`);
    const s = chunkedStream(`text,label,id\n\n${rows.join('\n')}\n`, 256);
    const preview = await inspectCsv(s.stream, { maxRows: 3 });
    expect(preview).toEqual({
      columns: ['text', 'label', 'id'],
      sampleRows: [
        ['row, 0', 'ham', '0'],
        ['row, 1', 'spam', '1'],
        ['row, 2', 'ham', '2'],
      ],
      delimiter: ',',
    });
    expect(s.pulled()).toBe(1);
    expect(s.cancelled()).toBe(true);
  });

  it('sniffs the delimiter and trims header names', async () => {
    const preview = await inspectCsv('\uFEFF text ;label\r\nbonjour;fr\r\n');
    expect(preview).toEqual({ columns: ['text', 'label'], sampleRows: [['bonjour', 'fr']], delimiter: ';' });
    expect((await inspectCsv('a\tb\n1\t2\n')).delimiter).toBe('\t');
  });

  it('lists every key of the sampled JSONL objects, in the order first seen', async () => {
    const preview = await inspectJsonl('{"text":"a","label":1}\n\n{"label":0,"text":"b","meta":{"x":1}}\n');
    expect(preview).toEqual({
      columns: ['text', 'label', 'meta'],
      sampleRows: [
        ['a', '1', ''],
        ['b', '0', '{"x":1}'],
      ],
    });
  });

  it('throws for an empty file', async () => {
    await expectError(inspectCsv(''), 'empty', /^the file is empty: a CSV file needs a header row/);
    await expectError(
      inspectJsonl('\n\n'),
      'empty',
      /^the file is empty: a \.jsonl file needs one JSON object/,
    );
  });
});

describe('importClassification', () => {
  it('reads text and label columns, skipping and counting empty rows', async () => {
    const csv =
      '\uFEFFid,text,label\r\n' +
      '1,"Win a prize, now!",spam\r\n' +
      '2,"Lunch at ""noon""?\r\nSee you",ham\r\n' +
      '\r\n' +
      ',,\r\n' +
      '3,   ,ham\r\n' +
      '4,no label here,\r\n' +
      '5,Meeting moved, ham \r\n' +
      '6,Cheap pills,spam\r\n';
    const result = await classify(csv);
    expect(result).toEqual({
      examples: [
        { text: 'Win a prize, now!', label: 'spam' },
        { text: 'Lunch at "noon"?\nSee you', label: 'ham' },
        { text: 'Meeting moved', label: 'ham' },
        { text: 'Cheap pills', label: 'spam' },
      ],
      labels: ['ham', 'spam'],
      counts: { ham: 2, spam: 2 },
      skipped: [
        { line: 5, reason: 'empty row' },
        { line: 6, reason: 'empty row' },
        { line: 7, reason: 'empty text' },
        { line: 8, reason: 'empty label' },
      ],
      columns: ['id', 'text', 'label'],
    });
  });

  it('reads JSONL, writing numbers and booleans as text, and sorts numeric labels as numbers', async () => {
    const jsonl =
      '{"text":"a","label":10}\r\n{"text":"b","label":2}\n\n{"text":"c","label":2,"extra":[1]}\n{"text":"d","label":null}\n{}\n{"text":"e","label":1}';
    const result = await importClassification(jsonl, {
      format: 'jsonl',
      textColumn: 'text',
      labelColumn: 'label',
    });
    expect(result.examples.map((e) => e.label)).toEqual(['10', '2', '2', '1']);
    expect(result.labels).toEqual(['1', '2', '10']);
    expect(result.counts).toEqual({ 1: 1, 2: 2, 10: 1 });
    expect(result.skipped).toEqual([
      { line: 3, reason: 'empty row' },
      { line: 5, reason: 'empty label' },
      { line: 6, reason: 'empty row' },
    ]);
  });

  it('counts blank JSONL lines before the first object as skipped rows', async () => {
    const jsonl = '\uFEFF\n{}\n{"text":"a","label":"x"}\n{"text":"b","label":"y"}\n';
    const result = await importClassification(jsonl, {
      format: 'jsonl',
      textColumn: 'text',
      labelColumn: 'label',
    });
    expect(result.skipped).toEqual([
      { line: 1, reason: 'empty row' },
      { line: 2, reason: 'empty row' },
    ]);
    expect(result.examples).toHaveLength(2);
  });

  it('reads a large in-memory source in chunks, reporting progress as it goes', async () => {
    const csv = `text,label\n${'some words here,a\nother words,b\n'.repeat(10_000)}`;
    const seen: ImportProgress[] = [];
    const result = await classify(csv, { onProgress: (p) => seen.push(p) });
    expect(result.counts).toEqual({ a: 10_000, b: 10_000 });
    expect(seen.length).toBeGreaterThan(5);
    expect(seen.at(-1)).toEqual({ bytesRead: csv.length, totalBytes: csv.length, records: 20_000 });
  });

  it('gives identical results for the same bytes in 1-byte chunks and in one chunk', async () => {
    // Multi-byte characters (2, 3 and 4 bytes) and quoted CRLFs fall on every chunk boundary.
    const csv = 'texte;étiquette\r\n"Très ""bien""\r\nvraiment";😀\r\n"naïve; 中文";☕\r\nplain;😀\r\n\r\n';
    const bytes = bytesOf(csv);
    const options: ClassificationImportOptions = {
      format: 'csv',
      textColumn: 'texte',
      labelColumn: 'étiquette',
    };
    const once = await importClassification(chunkedStream(bytes, bytes.length).stream, options);
    expect(once.examples).toEqual([
      { text: 'Très "bien"\nvraiment', label: '😀' },
      { text: 'naïve; 中文', label: '☕' },
      { text: 'plain', label: '😀' },
    ]);
    for (const size of [1, 2, 3, [1, 5, 2, 7]]) {
      expect(await importClassification(chunkedStream(bytes, size).stream, options)).toEqual(once);
    }
    const jsonl = bytesOf('{"t":"Très\\nbien","l":"😀"}\r\n{"t":"中文 ☕","l":"x"}\n');
    const jOptions: ClassificationImportOptions = { format: 'jsonl', textColumn: 't', labelColumn: 'l' };
    const jOnce = await importClassification(chunkedStream(jsonl, jsonl.length).stream, jOptions);
    expect(await importClassification(chunkedStream(jsonl, 1).stream, jOptions)).toEqual(jOnce);
  });

  it('reports progress that never goes down and ends at the whole file', async () => {
    const rows = Array.from({ length: 200 }, (_, i) => `"text ${i}, with comma",${i % 3}`).join('\n');
    const bytes = bytesOf(`text,label\n${rows}\n`);
    const seen: ImportProgress[] = [];
    const result = await importClassification(chunkedStream(bytes, [7, 300, 1, 64]).stream, {
      ...csvOptions,
      totalBytes: bytes.length,
      onProgress: (p) => seen.push(p),
    });
    expect(result.examples).toHaveLength(200);
    expect(seen.length).toBeGreaterThan(10);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.bytesRead).toBeGreaterThanOrEqual(seen[i - 1]!.bytesRead);
      expect(seen[i]!.records).toBeGreaterThanOrEqual(seen[i - 1]!.records);
    }
    expect(seen.at(-1)).toEqual({ bytesRead: bytes.length, totalBytes: bytes.length, records: 200 });
  });

  it('reads a Node file stream (Readable.toWeb)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-import-'));
    try {
      const file = join(dir, 'data.csv');
      writeFileSync(file, 'text,label\n"a, b",x\nc,y\n');
      const web = Readable.toWeb(createReadStream(file, { highWaterMark: 4 })) as ReadableStream<Uint8Array>;
      expect((await importClassification(web, csvOptions)).examples).toEqual([
        { text: 'a, b', label: 'x' },
        { text: 'c', label: 'y' },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('errors', () => {
    it('a misnamed column: lists the columns found and suggests the closest', async () => {
      await expectError(
        classify('text,label\na,b\n', { labelColumn: 'lable' }),
        'missing-column',
        "line 1: there is no label column 'lable' in the header (line 1); the columns found are 'text', 'label'. Did you mean 'label'?",
        1,
      );
      await expectError(
        classify('\n\nText,Label\na,b\n'),
        'missing-column',
        "line 3: there is no text column 'text' in the header (line 3); the columns found are 'Text', 'Label'. Did you mean 'Text'? Column names are case-sensitive.",
        3,
      );
      await expectError(
        classify('review_body,stars\na,b\n', { textColumn: 'body', labelColumn: 'stars' }),
        'missing-column',
        /Did you mean 'review_body'\?$/,
      );
      await expectError(
        classify('id,score\n1,2\n'),
        'missing-column',
        "line 1: there is no text column 'text' in the header (line 1); the columns found are 'id', 'score'. Choose the text column from those.",
      );
      await expectError(
        importClassification('{"txt":"a","label":"x"}\n', {
          format: 'jsonl',
          textColumn: 'text',
          labelColumn: 'label',
        }),
        'missing-column',
        "line 1: there is no text field 'text' in the first object (line 1); the fields found are 'txt', 'label'. Did you mean 'txt'?",
      );
    });

    it('a column named twice, or the same column for text and label', async () => {
      await expectError(
        classify('text,label,text\na,b,c\n'),
        'duplicate-column',
        "line 1: the header has 2 columns named 'text' (columns 1 and 3), so the text column is ambiguous; rename all but one of them.",
      );
      await expectError(
        classify('text,label\na,b\n', { labelColumn: 'text' }),
        'bad-options',
        "the text and the label are both set to the column 'text'; choose a different one for each.",
      );
    });

    it('only empty rows, or no rows at all', async () => {
      await expectError(
        classify('text,label\n\n , \n,x\n'),
        'empty',
        "all 3 rows were skipped (empty, or without a text or a label; the first is line 2, empty row): check that 'text' and 'label' are the right columns and that the rows are filled in.",
        2,
      );
      await expectError(
        classify('text,label\r\n'),
        'empty',
        "the file has a header (line 1) but no examples: add one row per example, with its text in 'text' and its label in 'label'.",
      );
    });

    it('a single class', async () => {
      await expectError(
        classify('text,label\nhello,ham\nhi,ham\n\n'),
        'single-label',
        "only one label, 'ham', was found: classification needs at least two. Check that 'label' is the label column, or add examples of the other classes.",
      );
    });

    it('a label column that is really free text', async () => {
      const rows = Array.from({ length: 60 }, (_, i) => `a,sentence number ${i}`).join('\n');
      await expectError(
        classify(`text,label\n${rows}\n`),
        'too-many-labels',
        "the label column 'label' has 60 different values in 60 examples, so it looks like free text rather than classes: choose the column that holds the class ('text', 'label').",
      );
    });

    it('bytes that are not UTF-8: the line, and what to do', async () => {
      const latin1 = bytesOf('text,label\nok,a\n"caf', [0xe9], ' au lait",b\n');
      for (const size of [latin1.length, 1]) {
        await expectError(
          importClassification(chunkedStream(latin1, size).stream, csvOptions),
          'not-utf8',
          /^line 3: the file is not valid UTF-8 \(byte 0xE9 at byte offset 20 is not part of a valid UTF-8 character\)\. The file is probably saved in another encoding, such as Windows-1252 or Latin-1: re-save it as UTF-8/,
          3,
        );
      }
    });

    it('an unterminated quote: the line where the quoted field started', async () => {
      await expectError(
        classify('text,label\nfine,a\n"oops,b\nnext,a\nmore,b\n'),
        'unterminated-quote',
        'line 3: a quoted field starts here but its closing quote never comes (the file ends inside it). Add the missing closing quote ("), and write any quote inside a quoted field as two quotes ("").',
        3,
      );
    });

    it('a row with the wrong number of fields: the line, expected and found', async () => {
      await expectError(
        classify('text,label\nfine,a\nnot, quoted,b\n'),
        'field-count',
        "line 3: expected 2 fields, as in the header ('text', 'label'), but found 3. A field that contains ',', a quote or a line break must be in double quotes (\"like, this\"); check the quoting on this line and the one before it.",
        3,
      );
      await expectError(
        classify('text;label\nfine;a\nonly one\n'),
        'field-count',
        /^line 3: expected 2 fields.* but found 1\. A field that contains ';'/,
      );
    });

    it('a JSONL line that is not JSON, or not an object', async () => {
      const o = { format: 'jsonl', textColumn: 'text', labelColumn: 'label' } as const;
      await expectError(
        importClassification('{"text":"a","label":"x"}\n{"text":"b", label:"y"}\n', o),
        'not-json',
        /^line 2 is not valid JSON \(.+\)\. Each line of a \.jsonl file must be one JSON object, like \{"text": "a fine film", "label": "pos"\}; a file that is one JSON array is \.json, not \.jsonl: write one object per line\.$/,
        2,
      );
      await expectError(
        importClassification('[{"text":"a","label":"x"},\n{"text":"b","label":"y"}]\n', o),
        'not-json',
        /^line 1 is not valid JSON/,
        1,
      );
      await expectError(
        importClassification('{"text":"a","label":"x"}\n\n["b","y"]\n', o),
        'not-object',
        /^line 3 is an array in JSON, not an object\. Each line/,
        3,
      );
      await expectError(
        importClassification('"just text"\n', o),
        'not-object',
        /^line 1 is a string in JSON/,
      );
    });

    it('a JSONL row without the field, or with an object in it', async () => {
      const o = { format: 'jsonl', textColumn: 'text', labelColumn: 'label' } as const;
      await expectError(
        importClassification('{"text":"a","label":"x"}\n{"body":"b","label":"y"}\n', o),
        'bad-value',
        "line 2: this object has no text field 'text' (its fields are 'body', 'label'). Every line needs the same fields: add 'text' to it, or remove the line.",
        2,
      );
      await expectError(
        importClassification('{"text":{"en":"a"},"label":"x"}\n', o),
        'bad-value',
        "line 1: field 'text' holds an object, not text. Give it a string value, or choose another field.",
      );
    });

    it('a file larger than maxBytes, and nothing returned in part', async () => {
      const csv = `text,label\n${'hello,a\nbye,b\n'.repeat(1000)}`;
      const s = chunkedStream(csv, 1024);
      let progressed = 0;
      await expectError(
        importClassification(s.stream, {
          ...csvOptions,
          maxBytes: 8 * 1024,
          onProgress: () => progressed++,
        }),
        'too-large',
        /^This file \(at least 9 KB\) is more than the 8 KB this browser's storage quota allows; import a smaller part of it/,
      );
      expect(progressed).toBe(8);
      expect(s.cancelled()).toBe(true);
      await expectError(
        classify(csv, { maxBytes: 1024 * 1024, totalBytes: 3.5 * 1024 * 1024 }),
        'too-large',
        /^3\.5 MB is more than the 1 MB this browser's storage quota allows; /,
      );
    });
  });
});

describe('importLanguageModel', () => {
  it('takes a .txt file as it is, with line breaks as \\n, in any chunking', async () => {
    const txt = '\uFEFFCall me Ishmael.\r\nSome years ago\rnever mind how long\n\n—précisément 😀\r\n';
    const bytes = bytesOf(txt);
    const once = await importLanguageModel(bytes, { format: 'txt' });
    expect(once).toEqual({
      text: 'Call me Ishmael.\nSome years ago\nnever mind how long\n\n—précisément 😀\n',
      documents: 1,
      skipped: [],
    });
    for (const size of [1, 2, 3]) {
      expect(await importLanguageModel(chunkedStream(bytes, size).stream, { format: 'txt' })).toEqual(once);
    }
    const seen: ImportProgress[] = [];
    await importLanguageModel(chunkedStream(bytes, 5).stream, {
      format: 'txt',
      onProgress: (p) => seen.push(p),
    });
    expect(seen.at(-1)).toEqual({ bytesRead: bytes.length, totalBytes: undefined, records: 5 });
    for (let i = 1; i < seen.length; i++)
      expect(seen[i]!.records).toBeGreaterThanOrEqual(seen[i - 1]!.records);
  });

  it('joins the texts of a CSV column or JSONL field with blank lines', async () => {
    const csv = 'title,body\nOne,"First doc\r\nline two"\nTwo,\nThree,Third doc\n';
    const result = await importLanguageModel(csv, { format: 'csv', textColumn: 'body' });
    expect(result).toEqual({
      text: `First doc\nline two${DOCUMENT_SEPARATOR}Third doc`,
      documents: 2,
      skipped: [{ line: 4, reason: 'empty text' }],
    });
    // Without a textColumn: the 'text' column, or the only column.
    expect(
      (await importLanguageModel('{"id":1,"text":"a"}\n{"id":2,"text":"b"}\n', { format: 'jsonl' })).text,
    ).toBe('a\n\nb');
    expect((await importLanguageModel('story\nonce\nupon\n', { format: 'csv' })).documents).toBe(2);
  });

  it('errors: no text column, nothing to train on, not UTF-8, too large', async () => {
    await expectError(
      importLanguageModel('title,body\na,b\n', { format: 'csv' }),
      'missing-column',
      "line 1: there is no column named 'text' and there are 2 columns ('title', 'body'); choose the one that holds the text.",
    );
    await expectError(
      importLanguageModel('title,body\na,b\n', { format: 'csv', textColumn: 'bdy' }),
      'missing-column',
      /Did you mean 'body'\?$/,
    );
    await expectError(
      importLanguageModel('', { format: 'txt' }),
      'empty',
      /^the file is empty: a \.txt corpus/,
    );
    await expectError(
      importLanguageModel(' \r\n\n', { format: 'txt' }),
      'empty',
      /^the file holds only blank lines/,
    );
    await expectError(
      importLanguageModel('text\n""\n \n', { format: 'csv' }),
      'empty',
      "all 2 rows have an empty 'text': check that it is the text column and that the rows are filled in.",
    );
    await expectError(
      importLanguageModel(bytesOf('one\ntwo\nthree ', [0x93], 'quoted', [0x94], '\n'), { format: 'txt' }),
      'not-utf8',
      /^line 3: the file is not valid UTF-8 \(byte 0x93 /,
      3,
    );
    await expectError(
      importLanguageModel('x'.repeat(2000), { format: 'txt', maxBytes: 1000 }),
      'too-large',
      /^2 KB is more than the 1000 bytes this browser's storage quota allows/,
    );
  });
});
