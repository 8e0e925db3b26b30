/**
 * JSON Lines, incrementally: text in pieces of any size is cut into lines (LF or CRLF), and each
 * non-blank line must be one JSON object. Only the line being read is held.
 */
import { DataImportError } from './errors';

const JSONL_SHAPE =
  'Each line of a .jsonl file must be one JSON object, like {"text": "a fine film", "label": "pos"}; ' +
  'a file that is one JSON array is .json, not .jsonl: write one object per line.';

/** Receives each line (without its line break) and its 1-based number; `false` stops the splitter. */
export type LineHandler = (text: string, line: number) => boolean | void;

/** Cuts text into lines at LF, dropping a CR before it; holds only the unfinished last line. */
export class LineSplitter {
  private rest = '';
  private line = 1;
  private stopped = false;

  constructor(private readonly onLine: LineHandler) {}

  push(text: string): boolean {
    if (this.stopped) return false;
    let start = 0;
    let nl = text.indexOf('\n');
    if (nl < 0) {
      this.rest += text;
      return true;
    }
    let first = true;
    while (nl >= 0) {
      const piece = text.slice(start, nl);
      const full = first ? this.rest + piece : piece;
      first = false;
      this.rest = '';
      if (this.emit(full) === false) return false;
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    this.rest = text.slice(start);
    return true;
  }

  /** Emits the last line when the text does not end with a line break. */
  end(): void {
    if (this.stopped) return;
    if (this.rest !== '') this.emit(this.rest);
    this.rest = '';
  }

  private emit(raw: string): boolean {
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const line = this.line++;
    if (this.onLine(text, line) === false) {
      this.stopped = true;
      return false;
    }
    return true;
  }
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  return typeof v;
}

/**
 * One JSONL line -> its object; null for a blank line. Throws DataImportError naming the line when
 * it is not JSON, or is JSON but not an object.
 */
export function parseJsonlLine(text: string, line: number): Record<string, unknown> | null {
  if (text.trim() === '') return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new DataImportError(
      `line ${line} is not valid JSON (${why.length > 120 ? `${why.slice(0, 117)}...` : why}). ${JSONL_SHAPE}`,
      'not-json',
      line,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DataImportError(
      `line ${line} is ${kindOf(value)} in JSON, not an object. ${JSONL_SHAPE}`,
      'not-object',
      line,
    );
  }
  return value as Record<string, unknown>;
}
