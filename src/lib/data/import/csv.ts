/**
 * An incremental CSV parser after RFC 4180: feed it text in pieces of any size (a quoted field, a
 * CRLF or a doubled quote may be split between pieces) and it emits each record once it is complete,
 * with the line it started on. It holds only the record being read, never the file.
 *
 * - Fields are separated by the delimiter (`,` unless told otherwise; `;` or tab when the first line
 *   clearly uses it) and records end at CRLF, LF or a lone CR (old Mac exports).
 * - A field that starts with `"` is quoted: it may hold delimiters, line breaks and quotes written
 *   as `""`. After its closing quote only a delimiter, a line break or the end of the file may come.
 * - A `"` inside an unquoted field is kept as a literal character (5" screens), as most tools do.
 * - A line break at the very end of the file does not start another record; an empty line anywhere
 *   else is a record with one empty field, which the importers skip as an empty row.
 */
import { DataImportError } from './errors';
import { InternalError } from '../../errors';

export type CsvDelimiter = ',' | ';' | '\t';

const QUOTE = 0x22;
const CR = 0x0d;
const LF = 0x0a;

/** How much of the first line is looked at to choose the delimiter. */
const SNIFF_LIMIT = 64 * 1024;

/**
 * The delimiter a header line uses: `;` or tab when it has more of them than commas (outside quotes),
 * else `,`. A header with one column has none of them and gets `,`, which is right for any one-column file.
 */
export function sniffDelimiter(firstLine: string): CsvDelimiter {
  let commas = 0;
  let semicolons = 0;
  let tabs = 0;
  let quoted = false;
  for (const ch of firstLine) {
    if (ch === '"') quoted = !quoted;
    else if (quoted) continue;
    else if (ch === ',') commas++;
    else if (ch === ';') semicolons++;
    else if (ch === '\t') tabs++;
  }
  if (tabs > commas && tabs >= semicolons) return '\t';
  if (semicolons > commas) return ';';
  return ',';
}

/** Receives each record and the 1-based line it starts on; returning `false` stops the parser. */
export type CsvRecordHandler = (fields: string[], line: number) => boolean | void;

/** Parser states (plain numbers: a switch over them stays a jump table). */
const State = {
  /** At the start of a field (nothing of it read yet). */
  FieldStart: 0,
  /** Inside an unquoted field. */
  Unquoted: 1,
  /** Inside a quoted field. */
  Quoted: 2,
  /** Just after a quote inside a quoted field: a second quote, or the end of the field, must follow. */
  QuoteInQuoted: 3,
} as const;
type State = (typeof State)[keyof typeof State];

export class CsvParser {
  private delim: number | undefined;
  private delimiterChar: CsvDelimiter | undefined;
  /** Text held back until the first line is complete, to choose the delimiter. */
  private head = '';
  private state: State = State.FieldStart;
  private field = '';
  private fields: string[] = [];
  /** Current line (1-based) at the read position. */
  private line = 1;
  private recordLine = 1;
  private quoteLine = 1;
  /** The last character was a CR: an LF right after it belongs to the same line break. */
  private afterCR = false;
  private stopped = false;
  private ended = false;

  constructor(
    private readonly onRecord: CsvRecordHandler,
    delimiter?: CsvDelimiter,
  ) {
    if (delimiter !== undefined) this.setDelimiter(delimiter);
  }

  /** The delimiter in use: given, or sniffed from the first line (undefined until that line is read). */
  get delimiter(): CsvDelimiter | undefined {
    return this.delimiterChar;
  }

  /** Whether a handler asked to stop; later input is ignored. */
  get isStopped(): boolean {
    return this.stopped;
  }

  private setDelimiter(d: CsvDelimiter): void {
    this.delimiterChar = d;
    this.delim = d.charCodeAt(0);
  }

  /** Parses the next piece of text. Returns false once a handler has asked to stop. */
  push(text: string): boolean {
    if (this.stopped) return false;
    if (this.ended) throw new InternalError('CsvParser.push after end');
    if (this.delim === undefined) {
      this.head += text;
      const nl = this.head.search(/[\r\n]/);
      if (nl < 0 && this.head.length < SNIFF_LIMIT) return true;
      this.setDelimiter(sniffDelimiter(nl < 0 ? this.head : this.head.slice(0, nl)));
      text = this.head;
      this.head = '';
    }
    this.scan(text);
    return !this.stopped;
  }

  /** Ends the input: emits the last record, or throws if a quoted field is still open. */
  end(): void {
    if (this.stopped || this.ended) return;
    if (this.delim === undefined) {
      this.setDelimiter(sniffDelimiter(this.head));
      const text = this.head;
      this.head = '';
      this.scan(text);
      if (this.stopped) return;
    }
    this.ended = true;
    if (this.state === State.Quoted) {
      throw new DataImportError(
        `line ${this.quoteLine}: a quoted field starts here but its closing quote never comes (the file ends inside it). ` +
          'Add the missing closing quote ("), and write any quote inside a quoted field as two quotes ("").',
        'unterminated-quote',
        this.quoteLine,
      );
    }
    // A file that ends with a line break has no record after it.
    if (this.state === State.FieldStart && this.fields.length === 0) return;
    this.endRecord();
  }

  private endRecord(): void {
    this.fields.push(this.field);
    const fields = this.fields;
    this.fields = [];
    this.field = '';
    this.state = State.FieldStart;
    const line = this.recordLine;
    this.recordLine = this.line;
    if (this.onRecord(fields, line) === false) this.stopped = true;
  }

  private endField(): void {
    this.fields.push(this.field);
    this.field = '';
    this.state = State.FieldStart;
  }

  private scan(s: string): void {
    const d = this.delim!;
    const n = s.length;
    let i = 0;
    while (i < n && !this.stopped) {
      switch (this.state) {
        case State.FieldStart:
        case State.Unquoted: {
          if (this.state === State.FieldStart && s.charCodeAt(i) === QUOTE) {
            this.state = State.Quoted;
            this.quoteLine = this.line;
            this.afterCR = false;
            i++;
            break;
          }
          let j = i;
          while (j < n) {
            const c = s.charCodeAt(j);
            if (c === d || c === CR || c === LF) break;
            j++;
          }
          if (j > i) {
            this.field += s.slice(i, j);
            this.state = State.Unquoted;
            this.afterCR = false;
          }
          i = j;
          if (j === n) break;
          const c = s.charCodeAt(j);
          i = j + 1;
          if (c === d) {
            this.afterCR = false;
            this.endField();
          } else if (c === CR) {
            this.line++;
            this.afterCR = true;
            this.endRecord();
          } else if (this.afterCR) {
            this.afterCR = false; // the LF of a CRLF whose CR already ended the record
          } else {
            this.line++;
            this.endRecord();
          }
          break;
        }
        case State.Quoted: {
          const q = s.indexOf('"', i);
          const end = q < 0 ? n : q;
          for (let k = i; k < end; k++) {
            const c = s.charCodeAt(k);
            if (c === CR) {
              this.line++;
              this.afterCR = true;
            } else if (c === LF) {
              if (!this.afterCR) this.line++;
              this.afterCR = false;
            } else {
              this.afterCR = false;
            }
          }
          this.field += s.slice(i, end);
          if (q < 0) {
            i = n;
            break;
          }
          this.afterCR = false;
          this.state = State.QuoteInQuoted;
          i = q + 1;
          break;
        }
        case State.QuoteInQuoted: {
          const c = s.charCodeAt(i);
          i++;
          if (c === QUOTE) {
            this.field += '"';
            this.state = State.Quoted;
          } else if (c === d) {
            this.endField();
          } else if (c === CR) {
            this.line++;
            this.afterCR = true;
            this.endRecord();
          } else if (c === LF) {
            this.line++;
            this.endRecord();
          } else {
            const started =
              this.quoteLine === this.line ? '' : ` (the field started on line ${this.quoteLine})`;
            const after = JSON.stringify(s.slice(i - 1, i + 19));
            throw new DataImportError(
              `line ${this.line}: a quoted field${started} has text right after its closing quote: ${after}. ` +
                `Inside a quoted field write a quote as two quotes (""), and end the field with a closing quote followed by ` +
                `${describeDelimiter(this.delimiterChar!)} or a line break.`,
              'bad-quote',
              this.line,
            );
          }
          break;
        }
      }
    }
  }
}

export function describeDelimiter(d: CsvDelimiter): string {
  return d === '\t' ? 'a tab' : `'${d}'`;
}

/** Parses a whole CSV text into records (a convenience for small texts and tests). */
export function parseCsv(text: string, delimiter?: CsvDelimiter): { records: string[][]; lines: number[] } {
  const records: string[][] = [];
  const lines: number[] = [];
  const parser = new CsvParser((fields, line) => {
    records.push(fields);
    lines.push(line);
  }, delimiter);
  parser.push(text);
  parser.end();
  return { records, lines };
}
