import { describe, expect, it } from 'vitest';
import { CancelledError } from '../../errors';
import { decodeStream, findUtf8Error, formatSize, incompleteTail, MB, type ImportSource } from './decode';
import { DataImportError } from './errors';
import { bytesOf, chunkedStream } from './testing';

async function decodeAll(source: ImportSource, options = {}): Promise<{ text: string; pieces: number }> {
  let text = '';
  let pieces = 0;
  await decodeStream(
    source,
    (t) => {
      text += t;
      pieces++;
    },
    options,
  );
  return { text, pieces };
}

async function rejection(p: Promise<unknown>): Promise<DataImportError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof DataImportError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('UTF-8 checks', () => {
  it('finds the first ill-formed sequence and ignores one cut off at the end', () => {
    expect(findUtf8Error(bytesOf('café ☕ 😀'))).toBe(-1);
    expect(findUtf8Error(bytesOf('caf', [0xe9], ' au lait'))).toBe(3); // Latin-1 é
    expect(findUtf8Error(bytesOf('a', [0xc0, 0x80]))).toBe(1); // overlong
    expect(findUtf8Error(bytesOf('a', [0xed, 0xa0, 0x80]))).toBe(1); // surrogate
    expect(findUtf8Error(bytesOf('a', [0xf5, 0x80, 0x80, 0x80]))).toBe(1); // above U+10FFFF
    expect(findUtf8Error(bytesOf('ab', [0x80]))).toBe(2); // stray continuation byte
    expect(findUtf8Error(bytesOf('a', [0xf0, 0x9f, 0x98]))).toBe(-1); // incomplete: maybe the next chunk
  });

  it('finds the bytes of a character cut off at the end', () => {
    expect(Array.from(incompleteTail(bytesOf('a', [0xf0, 0x9f, 0x98])))).toEqual([0xf0, 0x9f, 0x98]);
    expect(Array.from(incompleteTail(bytesOf('a', [0xe2])))).toEqual([0xe2]);
    expect(incompleteTail(bytesOf('a☕')).length).toBe(0);
    expect(incompleteTail(bytesOf('abc')).length).toBe(0);
  });
});

describe('decodeStream', () => {
  const text = '\uFEFFcafé ☕\r\n😀 naïve 中文\nend';
  const bytes = bytesOf(text);

  it('decodes the same text from one chunk, 1-byte chunks and odd sizes; drops the BOM', async () => {
    const whole = await decodeAll(chunkedStream(bytes, bytes.length).stream);
    expect(whole.text).toBe(text.slice(1));
    for (const size of [1, 2, 3, [1, 4, 2]]) {
      expect((await decodeAll(chunkedStream(bytes, size).stream)).text).toBe(whole.text);
    }
    expect((await decodeAll(text)).text).toBe(whole.text);
    expect((await decodeAll(bytes)).text).toBe(whole.text);
  });

  it('names the line of a byte that is not UTF-8, however the bytes are chunked', async () => {
    const bad = bytesOf('text,label\r\nok,1\r\n\r\ncaf', [0xe9], ',2\r\n');
    for (const size of [bad.length, 1, 2, 5]) {
      const e = await rejection(decodeAll(chunkedStream(bad, size).stream));
      expect(e.code).toBe('not-utf8');
      expect(e.line).toBe(4);
      expect(e.message).toMatch(/^line 4: the file is not valid UTF-8 \(byte 0xE9 at byte offset 23 /);
      expect(e.message).toContain('re-save it as UTF-8');
    }
    // A lone CR counts as a line break, as in the CSV parser; CRLF split across chunks counts once.
    const cr = bytesOf('a\rb\r\nc\n', [0xff]);
    expect((await rejection(decodeAll(chunkedStream(cr, 1).stream))).line).toBe(4);
  });

  it('names the line when an ill-formed sequence straddles two chunks', async () => {
    // E2 82 is the start of '€' (E2 82 AC); E2 82 41 is broken, across the chunk boundary.
    const bad = bytesOf('x\ny\n', [0xe2, 0x82], 'A\n');
    const e = await rejection(decodeAll(chunkedStream(bad, [5, 100]).stream));
    expect(e.line).toBe(3);
    expect(e.message).toContain('byte 0xE2 at byte offset 4');
  });

  it('reports a file that ends inside a character', async () => {
    const e = await rejection(decodeAll(chunkedStream(bytesOf('a\nb', [0xf0, 0x9f]), 1).stream));
    expect(e.code).toBe('not-utf8');
    expect(e.message).toMatch(/^line 2: the file ends in the middle of a UTF-8 character/);
  });

  it('refuses a file over maxBytes before reading when its size is known, else once past it', async () => {
    const known = chunkedStream(new Uint8Array(3 * MB), MB);
    const e = await rejection(decodeAll(known.stream, { maxBytes: 2 * MB, totalBytes: 3 * MB }));
    expect(e.code).toBe('too-large');
    expect(e.message).toBe(
      "3 MB is more than the 2 MB this browser's storage quota allows; import a smaller part of it (fewer rows), " +
        'or free space by deleting saved adapters (Lab), cached models (Models) or imported data sets (Data) and try again.',
    );
    expect(known.pulled()).toBe(0);

    const unknown = chunkedStream(new Uint8Array(5 * MB), MB);
    const e2 = await rejection(decodeAll(unknown.stream, { maxBytes: 2.5 * MB }));
    expect(e2.message).toMatch(/^This file \(at least 3 MB\) is more than the 2\.5 MB /);
    expect(unknown.pulled()).toBe(3); // stopped at the chunk that crossed the limit
    expect(unknown.cancelled()).toBe(true);
    await expect(decodeAll(new Uint8Array(10), { maxBytes: 10 })).resolves.toBeDefined();
  });

  it('stops and cancels the stream when the sink says so', async () => {
    const s = chunkedStream('a\nb\nc\nd\n', 2);
    let seen = '';
    const read = await decodeStream(s.stream, (t) => {
      seen += t;
      return seen.length < 4;
    });
    expect(seen).toBe('a\nb\n');
    expect(read).toBe(4);
    expect(s.cancelled()).toBe(true);
  });

  it('cancels the stream when the sink throws, and when aborted', async () => {
    const s = chunkedStream('abcdef', 1);
    await expect(
      decodeStream(s.stream, () => {
        throw new DataImportError('bad', 'empty');
      }),
    ).rejects.toThrow('bad');
    expect(s.cancelled()).toBe(true);

    const controller = new AbortController();
    const s2 = chunkedStream('abcdef', 1);
    const p = decodeStream(
      s2.stream,
      (t) => {
        if (t === 'c') controller.abort();
      },
      { signal: controller.signal },
    );
    await expect(p).rejects.toBeInstanceOf(CancelledError);
    expect(s2.cancelled()).toBe(true);
  });

  it('reports progress after each chunk', async () => {
    const seen: number[] = [];
    await decodeStream(
      chunkedStream('abcdefg', 3).stream,
      () => undefined,
      {},
      (n) => seen.push(n),
    );
    expect(seen).toEqual([3, 6, 7]);
  });

  it('formats sizes', () => {
    expect(formatSize(12.34 * MB)).toBe('12.3 MB');
    expect(formatSize(5 * MB)).toBe('5 MB');
    expect(formatSize(250.4 * MB)).toBe('250 MB');
    expect(formatSize(800 * 1024)).toBe('800 KB');
    expect(formatSize(900)).toBe('900 bytes');
  });
});
