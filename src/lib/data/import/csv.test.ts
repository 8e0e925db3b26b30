import { describe, expect, it } from 'vitest';
import { CsvParser, parseCsv, sniffDelimiter, type CsvDelimiter } from './csv';
import { DataImportError } from './errors';

/** Feeds `text` to a parser in pieces of `size` characters. */
function parseInPieces(text: string, size: number, delimiter?: CsvDelimiter) {
  const records: string[][] = [];
  const lines: number[] = [];
  const parser = new CsvParser((fields, line) => {
    records.push(fields);
    lines.push(line);
  }, delimiter);
  for (let i = 0; i < text.length; i += size) parser.push(text.slice(i, i + size));
  parser.end();
  return { records, lines };
}

function errorOf(f: () => unknown): DataImportError {
  try {
    f();
  } catch (e) {
    if (e instanceof DataImportError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('CSV after RFC 4180', () => {
  it('reads plain fields, LF and CRLF line ends, with or without a final line break', () => {
    expect(parseCsv('a,b\n1,2\n').records).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
    expect(parseCsv('a,b\r\n1,2\r\n').records).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
    expect(parseCsv('a,b\r\n1,2').records).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
    expect(parseCsv('a,b\r1,2\r').records).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
  });

  it('keeps commas, doubled quotes and line breaks inside quoted fields', () => {
    const text =
      'text,label\n"Hello, world",pos\n"She said ""hi""",neg\n"two\nlines",pos\n"crlf\r\ninside",neg\n';
    const { records, lines } = parseCsv(text);
    expect(records).toEqual([
      ['text', 'label'],
      ['Hello, world', 'pos'],
      ['She said "hi"', 'neg'],
      ['two\nlines', 'pos'],
      ['crlf\r\ninside', 'neg'],
    ]);
    // Each record's line is where it starts; a quoted line break moves the next record down.
    expect(lines).toEqual([1, 2, 3, 4, 6]);
  });

  it('handles empty fields, empty quoted fields, a trailing delimiter and empty lines', () => {
    expect(parseCsv('a,b,c\n,,\n"",x,""\n1,2,\n\nlast,,1').records).toEqual([
      ['a', 'b', 'c'],
      ['', '', ''],
      ['', 'x', ''],
      ['1', '2', ''],
      [''],
      ['last', '', '1'],
    ]);
    expect(parseCsv('').records).toEqual([]);
    expect(parseCsv('\n').records).toEqual([['']]);
    expect(parseCsv('a\n\n').records).toEqual([['a'], ['']]);
  });

  it('keeps a quote inside an unquoted field as a character', () => {
    expect(parseCsv('size,x\n5" screen,1\n').records[1]).toEqual(['5" screen', '1']);
  });

  it('reads a quoted field at the very end of the file', () => {
    expect(parseCsv('a,b\n1,"x ""y"""').records[1]).toEqual(['1', 'x "y"']);
    expect(parseCsv('a\n""').records).toEqual([['a'], ['']]);
  });

  it('gives the same records whatever the pieces the text comes in', () => {
    const text =
      'text;label\r\n"a;b ""q""\r\nnext";1\r\n\r\nplain;2\r\n"";3\n"x\ry";4\rend;5\r\n"tail"";""";6';
    const whole = parseInPieces(text, text.length);
    expect(whole.records).toEqual([
      ['text', 'label'],
      ['a;b "q"\r\nnext', '1'],
      [''],
      ['plain', '2'],
      ['', '3'],
      ['x\ry', '4'],
      ['end', '5'],
      ['tail";"', '6'],
    ]);
    expect(whole.lines).toEqual([1, 2, 4, 5, 6, 7, 9, 10]);
    for (const size of [1, 2, 3, 5, 7]) expect(parseInPieces(text, size)).toEqual(whole);
  });

  it('stops when the handler says so', () => {
    const seen: string[][] = [];
    const parser = new CsvParser((f) => {
      seen.push(f);
      return seen.length < 2;
    });
    expect(parser.push('a\n1\n2\n3\n')).toBe(false);
    parser.end();
    expect(seen).toEqual([['a'], ['1']]);
    expect(parser.isStopped).toBe(true);
  });
});

describe('delimiter sniffing', () => {
  it('takes ; or tab when the header clearly uses it, else a comma', () => {
    expect(sniffDelimiter('text,label')).toBe(',');
    expect(sniffDelimiter('text;label;id')).toBe(';');
    expect(sniffDelimiter('text\tlabel')).toBe('\t');
    expect(sniffDelimiter('text')).toBe(',');
    expect(sniffDelimiter('a;b,c')).toBe(',');
    expect(sniffDelimiter('"a,b";c;d')).toBe(';'); // commas inside quotes do not count
  });

  it('parses semicolon and tab files, the header arriving in pieces', () => {
    expect(parseInPieces('text;label\n"a;b";1\n', 1).records).toEqual([
      ['text', 'label'],
      ['a;b', '1'],
    ]);
    expect(parseInPieces('text\tlabel\na,b\t1\n', 2).records).toEqual([
      ['text', 'label'],
      ['a,b', '1'],
    ]);
    // A given delimiter wins over sniffing.
    expect(parseCsv('a;b\n1;2\n', ',').records).toEqual([['a;b'], ['1;2']]);
  });
});

describe('CSV quoting errors', () => {
  it('names the line where an unterminated quoted field started', () => {
    const e = errorOf(() => parseCsv('text,label\nok,1\n"never closed,1\nmore,2\nrows,3\n'));
    expect(e.code).toBe('unterminated-quote');
    expect(e.line).toBe(3);
    expect(e.message).toMatch(/^line 3: a quoted field starts here but its closing quote never comes/);
    expect(e.message).toContain('two quotes ("")');
    // The same when fed one character at a time.
    expect(errorOf(() => parseInPieces('a\n\n"x\r\n', 1)).line).toBe(3);
  });

  it('refuses text after a closing quote, naming the line and where the field started', () => {
    const e = errorOf(() => parseCsv('text,label\n"He said "hi" to me",1\n'));
    expect(e.code).toBe('bad-quote');
    expect(e.message).toMatch(/^line 2: a quoted field has text right after its closing quote: "hi/);
    const multi = errorOf(() => parseCsv('text,label\n"one\ntwo" x,1\n'));
    expect(multi.message).toMatch(/^line 3: a quoted field \(the field started on line 2\)/);
  });
});
