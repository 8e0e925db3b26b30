/**
 * CSV and JSONL seen the same way: a header (the CSV header row, or the keys of the first JSONL
 * object) and then rows whose fields are looked up by column name. Reads a stream record by record;
 * nothing but the current record and what the visitor keeps is held.
 */
import { CsvParser, describeDelimiter, type CsvDelimiter } from './csv';
import { decodeStream, sourceBytes, type ImportSource, type ReadOptions } from './decode';
import { DataImportError } from './errors';
import { LineSplitter, parseJsonlLine } from './jsonl';
import { listNames } from './suggest';

export type TableFormat = 'csv' | 'jsonl';

/** How far an import has got; both counts only grow. */
export interface ImportProgress {
  bytesRead: number;
  /** The file's size when known (File.size, or a source already in memory). */
  totalBytes: number | undefined;
  /** Records read so far: CSV rows after the header, JSONL lines, or text lines for .txt. */
  records: number;
}

export interface TableOptions extends ReadOptions {
  format: TableFormat;
  /** CSV only: the field delimiter; by default sniffed from the header line. */
  delimiter?: CsvDelimiter;
  onProgress?: (progress: ImportProgress) => void;
}

export interface TableRow {
  /** 1-based line the record starts on. */
  line: number;
  /** Every field is empty or blank (an empty line, `,,`, `{}`): importers skip such rows. */
  empty: boolean;
  /** A column's value as text (numbers and booleans written out, null as ''); undefined when the row has no such field (JSONL only). */
  get(column: string): string | undefined;
  /** The row's field names: the header (CSV) or the object's keys (JSONL). */
  names: readonly string[];
  /** The row's values in the order of `names`, for display (objects and arrays as JSON text). */
  cells(): string[];
}

export interface TableVisitor {
  /** The columns (the CSV header, or the first JSONL object's keys) and their line; called once, before any row. */
  columns(names: string[], line: number): void;
  /** Each record after the header, empty ones included; `false` stops reading. */
  row(row: TableRow): boolean | void;
}

export interface TableSummary {
  /** Records after the header, empty ones included. */
  records: number;
  bytesRead: number;
  /** CSV only: the delimiter used. */
  delimiter: CsvDelimiter | undefined;
  /** Whether a visitor stopped the reading before the end. */
  stopped: boolean;
}

function noHeader(format: TableFormat): DataImportError {
  return format === 'csv'
    ? new DataImportError(
        'the file is empty: a CSV file needs a header row naming its columns (like text,label) and one row per example below it.',
        'empty',
      )
    : new DataImportError(
        'the file is empty: a .jsonl file needs one JSON object per line, like {"text": "a fine film", "label": "pos"}.',
        'empty',
      );
}

function isBlank(s: string): boolean {
  return s.trim() === '';
}

/** A JSONL value as text for a field the importer uses; objects and arrays are refused. */
function jsonValueText(value: unknown, column: string, line: number): string {
  if (value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const kind = Array.isArray(value) ? 'an array' : 'an object';
  throw new DataImportError(
    `line ${line}: field '${column}' holds ${kind}, not text. Give it a string value, or choose another field.`,
    'bad-value',
    line,
  );
}

function jsonDisplay(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/**
 * Reads a CSV or JSONL source to the end (or until the visitor stops it), calling `visitor.columns`
 * once and `visitor.row` for every record. Throws DataImportError for malformed input: bytes that are
 * not UTF-8, broken quoting, a row with the wrong number of fields, a line that is not a JSON object,
 * no header at all.
 */
export async function readTable(
  source: ImportSource,
  options: TableOptions,
  visitor: TableVisitor,
): Promise<TableSummary> {
  let records = 0;
  let sawHeader = false;
  const { onProgress } = options;
  const totalBytes = options.totalBytes ?? sourceBytes(source);

  let push: (text: string) => boolean;
  let end: () => void;
  let delimiter: () => CsvDelimiter | undefined = () => undefined;

  if (options.format === 'csv') {
    let header: string[] = [];
    const index = new Map<string, number>();
    const parser = new CsvParser((fields, line) => {
      const empty = fields.every(isBlank);
      if (!sawHeader) {
        if (empty) return true; // blank lines before the header
        header = fields.map((f) => f.trim());
        header.forEach((name, i) => {
          if (!index.has(name)) index.set(name, i);
        });
        sawHeader = true;
        visitor.columns(header, line);
        return true;
      }
      records++;
      if (!empty && fields.length !== header.length) {
        const d = describeDelimiter(parser.delimiter!);
        throw new DataImportError(
          `line ${line}: expected ${header.length} field${header.length === 1 ? '' : 's'}, as in the header (${listNames(header)}), ` +
            `but found ${fields.length}. A field that contains ${d}, a quote or a line break must be in double quotes ` +
            '("like, this"); check the quoting on this line and the one before it.',
          'field-count',
          line,
        );
      }
      return visitor.row({
        line,
        empty,
        names: header,
        get: (column) => {
          const i = index.get(column);
          return i === undefined ? undefined : (fields[i] ?? '');
        },
        cells: () => fields.slice(),
      });
    }, options.delimiter);
    push = (text) => parser.push(text);
    end = () => parser.end();
    delimiter = () => parser.delimiter;
  } else {
    const emptyBeforeHeader: number[] = [];
    const splitter = new LineSplitter((text, line) => {
      const obj = parseJsonlLine(text, line);
      const names = obj ? Object.keys(obj) : [];
      const empty =
        obj === null ||
        names.every((k) => {
          const v = obj[k];
          return v === null || (typeof v === 'string' && isBlank(v));
        });
      if (!sawHeader) {
        if (names.length === 0) {
          emptyBeforeHeader.push(line); // blank lines and {} before the first object with fields
          return true;
        }
        sawHeader = true;
        visitor.columns(names, line);
        // They are rows like any other blank line, only the columns had to be known first.
        for (const l of emptyBeforeHeader) {
          records++;
          visitor.row({ line: l, empty: true, names: [], get: () => undefined, cells: () => [] });
        }
      }
      records++;
      return visitor.row({
        line,
        empty,
        names,
        get: (column) =>
          obj && Object.hasOwn(obj, column) ? jsonValueText(obj[column], column, line) : undefined,
        cells: () => names.map((k) => jsonDisplay(obj?.[k])),
      });
    });
    push = (text) => splitter.push(text);
    end = () => splitter.end();
  }

  const progress = (bytesRead: number): void => onProgress?.({ bytesRead, totalBytes, records });
  let stopped = false;
  const bytesRead = await decodeStream(
    source,
    (text) => {
      const more = push(text);
      if (!more) stopped = true;
      return more;
    },
    { ...options, totalBytes },
    progress,
  );
  if (!stopped) end();
  if (!sawHeader) throw noHeader(options.format);
  progress(bytesRead);
  return { records, bytesRead, delimiter: delimiter(), stopped };
}
