import { describe, expect, it } from 'vitest';
import { TextStream } from './text-stream';

// A byte-level decoder over a tiny table: ids are UTF-8 bytes, as in a byte-level BPE's base vocabulary.
const bytes = new TextDecoder('utf-8');
const decode = (ids: number[]): string => bytes.decode(Uint8Array.from(ids));
const utf8 = (s: string): number[] => [...new TextEncoder().encode(s)];

describe('TextStream', () => {
  it('releases each whole piece once, and holds a split character until its last byte', () => {
    const s = new TextStream(decode);
    const ids = utf8('a€b'); // € is three bytes
    const pieces = ids.map((id) => s.push(id));
    expect(pieces).toEqual(['a', '', '', '€', 'b']);
    expect(s.text).toBe('a€b');
    expect(s.flush()).toBe('');
  });

  it('flushes a character that never completed as U+FFFD at the end', () => {
    const s = new TextStream(decode);
    s.push(utf8('x')[0]!);
    s.push(utf8('é')[0]!);
    expect(s.text).toBe('x');
    expect(s.flush()).toBe('\uFFFD');
    expect(s.text).toBe('x\uFFFD');
  });
});
