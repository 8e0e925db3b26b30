/**
 * Bytes -> text, incrementally: a stream of Uint8Array chunks is decoded as strict UTF-8 in stream
 * mode (a character split across chunks is carried over, never mangled) and handed on chunk by chunk,
 * so nothing ever holds the whole file. When decoding fails, the bad byte is found again here (the
 * TextDecoder only says "invalid") so the error can name its line.
 */
import { CancelledError } from '../../errors';
import { DataImportError } from './errors';

/** What the importers read: a byte stream (File.stream(), Readable.toWeb), bytes, or text already in memory. */
export type ImportSource = ReadableStream<Uint8Array> | Uint8Array | string;

export interface ReadOptions {
  /** Refuse files larger than this many bytes (the storage budget); checked before each chunk is used. */
  maxBytes?: number;
  /** The file's size when known (File.size): a file over maxBytes then fails before anything is read. */
  totalBytes?: number;
  /** Stops reading; the import then throws CancelledError. */
  signal?: AbortSignal;
}

/** Receives decoded text; returning `false` stops reading (the rest of the stream is cancelled). */
export type TextSink = (text: string) => boolean | void;

export const MB = 1024 * 1024;

/** "12.3 MB", "5 MB", "250 MB"; below 1 MB "800 KB", below 1 KB "900 bytes". */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < MB) return `${Math.round(bytes / 1024)} KB`;
  const mb = bytes / MB;
  const s = mb >= 100 ? mb.toFixed(0) : mb.toFixed(1);
  return `${s.endsWith('.0') ? s.slice(0, -2) : s} MB`;
}

function tooLarge(bytes: number, maxBytes: number, known: boolean): DataImportError {
  const size = known ? formatSize(bytes) : `This file (at least ${formatSize(bytes)})`;
  return new DataImportError(
    `${size} is more than the ${formatSize(maxBytes)} this browser's storage quota allows; ` +
      'import a smaller part of it (fewer rows), or free space by deleting saved adapters (Lab), cached models (Models) or imported data sets (Data) and try again.',
    'too-large',
  );
}

const NOT_UTF8_ADVICE =
  'The file is probably saved in another encoding, such as Windows-1252 or Latin-1: re-save it as UTF-8 ' +
  '(Excel: Save As > "CSV UTF-8"; a text editor: save with encoding UTF-8) and import it again.';

/** Byte length of the UTF-8 sequence a lead byte starts (0: not a lead byte). */
function sequenceLength(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

/** Allowed range of the second byte after a lead byte (Unicode Table 3-7: no overlongs, surrogates or > U+10FFFF). */
function secondByteRange(lead: number): [number, number] {
  if (lead === 0xe0) return [0xa0, 0xbf];
  if (lead === 0xed) return [0x80, 0x9f];
  if (lead === 0xf0) return [0x90, 0xbf];
  if (lead === 0xf4) return [0x80, 0x8f];
  return [0x80, 0xbf];
}

/**
 * Offset of the first byte of the first ill-formed UTF-8 sequence, or -1 when there is none. A
 * sequence cut off by the end of `bytes` is not ill-formed (the next chunk may complete it).
 */
export function findUtf8Error(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    const len = sequenceLength(b);
    if (len === 0) return i;
    const [lo, hi] = secondByteRange(b);
    for (let k = 1; k < len; k++) {
      if (i + k >= n) return -1;
      const c = bytes[i + k]!;
      const ok = k === 1 ? c >= lo && c <= hi : c >= 0x80 && c <= 0xbf;
      if (!ok) return i;
    }
    i += len;
  }
  return -1;
}

/** The bytes at the end of `bytes` that start a character the end cuts off (at most 3). */
export function incompleteTail(bytes: Uint8Array): Uint8Array {
  const n = bytes.length;
  for (let i = n - 1; i >= Math.max(0, n - 3); i--) {
    const b = bytes[i]!;
    if (b >= 0x80 && b < 0xc0) continue; // a continuation byte: look further back for its lead
    const len = sequenceLength(b);
    return len > n - i ? bytes.slice(i) : new Uint8Array(0);
  }
  return new Uint8Array(0);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Counts line breaks as the parsers do: LF, CRLF and a lone CR each end a line. `afterCR` carries a
 * CR at the end of one chunk into the next, so a CRLF split across chunks counts once.
 */
export class LineCounter {
  breaks = 0;
  private afterCR = false;

  clone(): LineCounter {
    const c = new LineCounter();
    c.breaks = this.breaks;
    c.afterCR = this.afterCR;
    return c;
  }

  add(bytes: Uint8Array, end = bytes.length): void {
    for (let i = 0; i < end; i++) {
      const b = bytes[i]!;
      if (b === 0x0a) {
        if (!this.afterCR) this.breaks++;
        this.afterCR = false;
      } else if (b === 0x0d) {
        this.breaks++;
        this.afterCR = true;
      } else {
        this.afterCR = false;
      }
    }
  }
}

interface ChunkReader {
  read(): Promise<{ done: boolean; value?: Uint8Array | undefined }>;
  cancel(): Promise<void>;
}

/** Chunk size for sources already in memory (File.stream() hands out 64 KiB chunks too). */
const IN_MEMORY_CHUNK = 64 * 1024;

function readerOf(source: ImportSource): ChunkReader {
  if (typeof source === 'string' || source instanceof Uint8Array) {
    // In-memory input goes out in views of IN_MEMORY_CHUNK bytes (no copies), as a file would.
    let bytes: Uint8Array | undefined =
      typeof source === 'string' ? new TextEncoder().encode(source) : source;
    let offset = 0;
    return {
      read: async () => {
        if (!bytes || offset >= bytes.length) return { done: true };
        const value = bytes.subarray(offset, offset + IN_MEMORY_CHUNK);
        offset += value.length;
        return { done: false, value };
      },
      cancel: async () => {
        bytes = undefined;
      },
    };
  }
  const reader = source.getReader();
  return {
    read: () => reader.read(),
    cancel: () => reader.cancel(),
  };
}

/** Size in bytes of a source already in memory; undefined for a stream. */
export function sourceBytes(source: ImportSource): number | undefined {
  if (typeof source === 'string') return new TextEncoder().encode(source).length;
  if (source instanceof Uint8Array) return source.length;
  return undefined;
}

/**
 * Reads `source` to the end (or until `sink` returns false), decoding strict UTF-8 incrementally
 * (a leading BOM is dropped) and passing each piece of text to `sink`. `onChunk(bytesRead)` runs after
 * each chunk has been handed on. Returns the number of bytes read. On any error, including one
 * thrown by `sink`, the stream is cancelled and the error rethrown.
 */
export async function decodeStream(
  source: ImportSource,
  sink: TextSink,
  options: ReadOptions = {},
  onChunk?: (bytesRead: number) => void,
): Promise<number> {
  const { maxBytes, signal } = options;
  const totalBytes = options.totalBytes ?? sourceBytes(source);
  if (maxBytes !== undefined && totalBytes !== undefined && totalBytes > maxBytes) {
    throw tooLarge(totalBytes, maxBytes, true);
  }
  const reader = readerOf(source);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const lines = new LineCounter();
  let carry: Uint8Array = new Uint8Array(0); // bytes of a character the previous chunk cut off
  let bytesRead = 0;
  let finished = false;
  try {
    for (;;) {
      if (signal?.aborted) throw new CancelledError('the import was cancelled');
      const { done, value } = await reader.read();
      if (done) break;
      if (!value || value.length === 0) continue;
      if (maxBytes !== undefined && bytesRead + value.length > maxBytes) {
        throw tooLarge(bytesRead + value.length, maxBytes, false);
      }
      let text: string;
      try {
        text = decoder.decode(value, { stream: true });
      } catch {
        throw notUtf8(concat(carry, value), bytesRead - carry.length, lines);
      }
      lines.add(value);
      bytesRead += value.length;
      carry = incompleteTail(value.length >= 3 ? value.subarray(-3) : concat(carry, value).slice(-3));
      const more = text === '' ? true : sink(text);
      onChunk?.(bytesRead);
      if (more === false) {
        finished = true;
        await reader.cancel().catch(() => undefined);
        return bytesRead;
      }
    }
    let rest: string;
    try {
      rest = decoder.decode();
    } catch {
      throw new DataImportError(
        `line ${lines.breaks + 1}: the file ends in the middle of a UTF-8 character ` +
          `(its last ${carry.length} byte${carry.length === 1 ? '' : 's'} start one that never finishes), ` +
          'so it was cut short or is not UTF-8. ' +
          NOT_UTF8_ADVICE,
        'not-utf8',
        lines.breaks + 1,
      );
    }
    finished = true;
    if (rest !== '') sink(rest);
    return bytesRead;
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
  }
}

/** The error for a chunk the decoder refused; `bytes` starts `offset` bytes into the file. */
function notUtf8(bytes: Uint8Array, offset: number, before: LineCounter): DataImportError {
  let at = findUtf8Error(bytes);
  if (at < 0) at = 0; // cannot happen when the decoder threw; keep the error useful anyway
  const counter = before.clone();
  counter.add(bytes, at); // a carried-over partial character holds no line breaks, so this is exact
  const line = counter.breaks + 1;
  const byte = (bytes[at] ?? 0).toString(16).toUpperCase().padStart(2, '0');
  return new DataImportError(
    `line ${line}: the file is not valid UTF-8 (byte 0x${byte} at byte offset ${offset + at} is not part of a valid UTF-8 character). ` +
      NOT_UTF8_ADVICE,
    'not-utf8',
    line,
  );
}
