/**
 * The user's own data for PEFT Lab: CSV or JSONL for classification (a text column and a label column
 * the user chooses), and CSV, JSONL or plain text for language modelling. Each function reads a byte
 * stream record by record and keeps only what it returns; bad input throws DataImportError with the
 * line, the fault and the fix, and nothing is returned in part.
 */
import type { CsvDelimiter } from './csv';
import { decodeStream, sourceBytes, type ImportSource, type ReadOptions } from './decode';
import { DataImportError } from './errors';
import { closestName, listNames } from './suggest';
import { readTable, type ImportProgress, type TableFormat, type TableRow } from './table';

/** What a UI needs to offer column choices. */
export interface TablePreview {
  /** Column names: the CSV header, or every key seen in the sampled JSONL objects (first seen first). */
  columns: string[];
  /** The first non-empty rows, each aligned with `columns` ('' where a JSONL object lacks the key). */
  sampleRows: string[][];
  /** CSV only: the delimiter found (or given). */
  delimiter?: CsvDelimiter;
}

export interface InspectOptions extends ReadOptions {
  /** Rows to sample (default 20); reading stops after them. */
  maxRows?: number;
  /** CSV only: the delimiter; by default sniffed from the header line. */
  delimiter?: CsvDelimiter;
}

/** Why a row was left out; it is counted, not fatal. */
export type SkipReason = 'empty row' | 'empty text' | 'empty label';

export interface SkippedRow {
  /** 1-based line the row starts on. */
  line: number;
  reason: SkipReason;
}

export interface ClassificationExample {
  text: string;
  label: string;
}

export interface ClassificationImportOptions extends ReadOptions {
  format: TableFormat;
  /** The column (CSV) or field (JSONL) holding the text. */
  textColumn: string;
  /** The column or field holding the class. */
  labelColumn: string;
  /** CSV only: the delimiter; by default sniffed from the header line. */
  delimiter?: CsvDelimiter;
  /** Called after each chunk and once at the end; bytesRead and records never go down. */
  onProgress?: (progress: ImportProgress) => void;
}

export interface ClassificationImport {
  /** In file order. Texts are trimmed, with line breaks as \n; labels are trimmed. */
  examples: ClassificationExample[];
  /** The distinct labels, sorted (numerically when every label is a number). */
  labels: string[];
  /** Examples per label. */
  counts: Record<string, number>;
  /** Rows left out, in file order. */
  skipped: SkippedRow[];
  /** All columns of the file, for showing the choice made. */
  columns: string[];
}

export interface LanguageModelImportOptions extends ReadOptions {
  format: TableFormat | 'txt';
  /**
   * CSV and JSONL: the column or field holding the text. By default the one named 'text', or the
   * only one there is.
   */
  textColumn?: string;
  /** CSV only: the delimiter; by default sniffed from the header line. */
  delimiter?: CsvDelimiter;
  /** Called after each chunk and once at the end; bytesRead and records never go down. */
  onProgress?: (progress: ImportProgress) => void;
}

export interface LanguageModelImport {
  /**
   * The corpus: a .txt file as it is (line breaks as \n); for CSV and JSONL the rows' texts (trimmed,
   * line breaks as \n) joined by a blank line, as the built-in corpora join their documents.
   */
  text: string;
  /** Rows that went into `text` (1 for a .txt file). */
  documents: number;
  /** Rows left out for having no text (CSV and JSONL). */
  skipped: SkippedRow[];
}

/** Between documents of a language-modelling corpus, as scripts/prepare-data.ts writes public/data. */
export const DOCUMENT_SEPARATOR = '\n\n';

/** Above this many labels, and more than half as many as examples, a label column is taken for free text. */
const MAX_FREE_LABELS = 50;

function normalizeText(s: string): string {
  return s.replace(/\r\n?/g, '\n').trim();
}

function sortLabels(labels: string[]): string[] {
  const numeric = labels.every((l) => /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(l));
  return numeric
    ? labels.sort((a, b) => Number(a) - Number(b) || (a < b ? -1 : a > b ? 1 : 0))
    : labels.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Checks that `name` is a column of `columns` exactly once; throws DataImportError listing the
 * columns found and suggesting the closest name otherwise.
 */
function checkColumn(
  role: string,
  name: string,
  columns: readonly string[],
  line: number,
  format: TableFormat,
): void {
  const where = format === 'csv' ? `the header (line ${line})` : `the first object (line ${line})`;
  const what = format === 'csv' ? 'column' : 'field';
  const found = columns.filter((c) => c === name).length;
  if (found === 1) return;
  if (found > 1) {
    const positions = columns.flatMap((c, i) => (c === name ? [i + 1] : []));
    throw new DataImportError(
      `line ${line}: the header has ${found} columns named '${name}' (columns ${positions.join(' and ')}), ` +
        `so the ${role} column is ambiguous; rename all but one of them.`,
      'duplicate-column',
      line,
    );
  }
  const guess = closestName(name, columns);
  let hint: string;
  if (guess === undefined) hint = `Choose the ${role} ${what} from those.`;
  else if (guess.toLowerCase() === name.toLowerCase())
    hint = `Did you mean '${guess}'? ${format === 'csv' ? 'Column' : 'Field'} names are case-sensitive.`;
  else hint = `Did you mean '${guess}'?`;
  throw new DataImportError(
    `line ${line}: there is no ${role} ${what} '${name}' in ${where}; the ${what}s found are ${listNames(columns)}. ${hint}`,
    'missing-column',
    line,
  );
}

/** A field a JSONL row lacks although the first object had it. */
function missingInRow(role: string, name: string, row: TableRow): DataImportError {
  return new DataImportError(
    `line ${row.line}: this object has no ${role} field '${name}' (its fields are ${listNames(row.names)}). ` +
      `Every line needs the same fields: add '${name}' to it, or remove the line.`,
    'bad-value',
    row.line,
  );
}

async function inspect(
  source: ImportSource,
  format: TableFormat,
  options: InspectOptions,
): Promise<TablePreview> {
  const maxRows = options.maxRows ?? 20;
  let columns: string[] = [];
  const known = new Set<string>();
  const rows: { names: readonly string[]; cells: string[] }[] = [];
  const { delimiter } = await readTable(
    source,
    { ...options, format },
    {
      columns: (names) => {
        columns = names.slice();
        for (const n of names) known.add(n);
      },
      row: (row) => {
        if (row.empty) return true;
        if (rows.length >= maxRows) return false;
        rows.push({ names: row.names, cells: row.cells() });
        for (const n of row.names) {
          if (!known.has(n)) {
            known.add(n);
            columns.push(n);
          }
        }
        return rows.length < maxRows;
      },
    },
  );
  const sampleRows =
    format === 'csv'
      ? rows.map((r) => r.cells)
      : rows.map((r) => {
          const byName = new Map(r.names.map((n, i) => [n, r.cells[i] ?? '']));
          return columns.map((c) => byName.get(c) ?? '');
        });
  return format === 'csv' ? { columns, sampleRows, delimiter } : { columns, sampleRows };
}

/**
 * The header and the first rows of a CSV file, reading no further than that. Throws DataImportError
 * for an empty file and for faults within the rows read (bad quoting, a wrong number of fields, bytes
 * that are not UTF-8).
 */
export function inspectCsv(source: ImportSource, options: InspectOptions = {}): Promise<TablePreview> {
  return inspect(source, 'csv', options);
}

/** The fields and first objects of a JSONL file, reading no further than that. */
export function inspectJsonl(source: ImportSource, options: InspectOptions = {}): Promise<TablePreview> {
  return inspect(source, 'jsonl', options);
}

function checkMaxBytes(options: ReadOptions): void {
  const { maxBytes } = options;
  if (maxBytes !== undefined && !(maxBytes >= 0)) {
    throw new DataImportError(`maxBytes must be a number of bytes, 0 or more; got ${String(maxBytes)}.`);
  }
}

/**
 * Text and label pairs from a CSV or JSONL file. Rows that are empty, or lack a text or a label, are
 * skipped and listed in `skipped`. Throws DataImportError when a chosen column is missing, when no
 * example is left, when there is only one label or the label column looks like free text, when
 * the file is larger than `maxBytes`, and for malformed input.
 */
export async function importClassification(
  source: ImportSource,
  options: ClassificationImportOptions,
): Promise<ClassificationImport> {
  const { format, textColumn, labelColumn } = options;
  checkMaxBytes(options);
  if (textColumn === labelColumn) {
    throw new DataImportError(
      `the text and the label are both set to the ${format === 'csv' ? 'column' : 'field'} '${textColumn}'; choose a different one for each.`,
    );
  }
  const examples: ClassificationExample[] = [];
  const counts = new Map<string, number>();
  const skipped: SkippedRow[] = [];
  let columns: string[] = [];
  let headerLine = 1;
  const { records } = await readTable(source, options, {
    columns: (names, line) => {
      checkColumn('text', textColumn, names, line, format);
      checkColumn('label', labelColumn, names, line, format);
      columns = names;
      headerLine = line;
    },
    row: (row) => {
      if (row.empty) {
        skipped.push({ line: row.line, reason: 'empty row' });
        return;
      }
      const rawText = row.get(textColumn);
      if (rawText === undefined) throw missingInRow('text', textColumn, row);
      const rawLabel = row.get(labelColumn);
      if (rawLabel === undefined) throw missingInRow('label', labelColumn, row);
      const text = normalizeText(rawText);
      const label = rawLabel.trim();
      if (text === '') skipped.push({ line: row.line, reason: 'empty text' });
      else if (label === '') skipped.push({ line: row.line, reason: 'empty label' });
      else {
        examples.push({ text, label });
        counts.set(label, (counts.get(label) ?? 0) + 1);
      }
    },
  });

  const where = format === 'csv' ? 'column' : 'field';
  if (records === 0) {
    throw new DataImportError(
      `the file has ${format === 'csv' ? `a header (line ${headerLine})` : 'fields'} but no examples: add one row per example, with its text in '${textColumn}' and its label in '${labelColumn}'.`,
      'empty',
    );
  }
  if (examples.length === 0) {
    const first = skipped[0]!;
    throw new DataImportError(
      `all ${records} rows were skipped (empty, or without a text or a label; the first is line ${first.line}, ${first.reason}): ` +
        `check that '${textColumn}' and '${labelColumn}' are the right ${where}s and that the rows are filled in.`,
      'empty',
      first.line,
    );
  }
  const labels = sortLabels([...counts.keys()]);
  if (labels.length === 1) {
    throw new DataImportError(
      `only one label, '${labels[0]!}', was found: classification needs at least two. ` +
        `Check that '${labelColumn}' is the label ${where}, or add examples of the other classes.`,
      'single-label',
    );
  }
  if (labels.length > MAX_FREE_LABELS && labels.length > examples.length / 2) {
    throw new DataImportError(
      `the label ${where} '${labelColumn}' has ${labels.length} different values in ${examples.length} examples, so it looks ` +
        `like free text rather than classes: choose the ${where} that holds the class (${listNames(columns)}).`,
      'too-many-labels',
    );
  }
  return {
    examples,
    labels,
    counts: Object.fromEntries(labels.map((l) => [l, counts.get(l)!])),
    skipped,
    columns,
  };
}

/** The text column a language-modelling import uses when none is named: 'text', or the only column. */
function defaultTextColumn(columns: readonly string[], line: number, format: TableFormat): string {
  if (columns.includes('text')) return 'text';
  if (columns.length === 1) return columns[0]!;
  const what = format === 'csv' ? 'column' : 'field';
  throw new DataImportError(
    `line ${line}: there is no ${what} named 'text' and there are ${columns.length} ${what}s (${listNames(columns)}); choose the one that holds the text.`,
    'missing-column',
    line,
  );
}

/**
 * A corpus for causal language modelling: a plain .txt file as it is, or the texts of a CSV column
 * or JSONL field joined by blank lines. Throws DataImportError when the text column is missing, when
 * there is no text at all, when the file is larger than `maxBytes`, and for malformed input.
 */
export async function importLanguageModel(
  source: ImportSource,
  options: LanguageModelImportOptions,
): Promise<LanguageModelImport> {
  checkMaxBytes(options);
  if (options.format === 'txt') return importPlainText(source, options);
  const format = options.format;
  let column = options.textColumn ?? '';
  let text = '';
  let documents = 0;
  const skipped: SkippedRow[] = [];
  let headerLine = 1;
  const { records } = await readTable(
    source,
    { ...options, format },
    {
      columns: (names, line) => {
        headerLine = line;
        if (options.textColumn === undefined) column = defaultTextColumn(names, line, format);
        else checkColumn('text', column, names, line, format);
      },
      row: (row) => {
        if (row.empty) {
          skipped.push({ line: row.line, reason: 'empty row' });
          return;
        }
        const raw = row.get(column);
        if (raw === undefined) throw missingInRow('text', column, row);
        const doc = normalizeText(raw);
        if (doc === '') {
          skipped.push({ line: row.line, reason: 'empty text' });
          return;
        }
        text += documents === 0 ? doc : DOCUMENT_SEPARATOR + doc;
        documents++;
      },
    },
  );
  if (documents === 0) {
    throw new DataImportError(
      records === 0
        ? `the file has ${format === 'csv' ? `a header (line ${headerLine})` : 'fields'} but no rows of text below it: add one row per document.`
        : `all ${records} rows have an empty '${column}': check that it is the text ${format === 'csv' ? 'column' : 'field'} and that the rows are filled in.`,
      'empty',
    );
  }
  return { text, documents, skipped };
}

async function importPlainText(
  source: ImportSource,
  options: LanguageModelImportOptions,
): Promise<LanguageModelImport> {
  const totalBytes = options.totalBytes ?? sourceBytes(source);
  let text = '';
  let lines = 0;
  let afterCR = false;
  const bytesRead = await decodeStream(
    source,
    (piece) => {
      // CRLF and lone CR -> LF; a CRLF split between pieces must not become two line breaks.
      let s = afterCR && piece.startsWith('\n') ? piece.slice(1) : piece;
      afterCR = piece.endsWith('\r');
      s = s.replace(/\r\n?/g, '\n');
      for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) lines++;
      text += s;
    },
    { ...options, totalBytes },
    (bytes) => options.onProgress?.({ bytesRead: bytes, totalBytes, records: lines }),
  );
  if (text.trim() === '') {
    throw new DataImportError(
      bytesRead === 0
        ? 'the file is empty: a .txt corpus needs some text to train on.'
        : 'the file holds only blank lines and spaces: a .txt corpus needs some text to train on.',
      'empty',
    );
  }
  const records = lines + (text.endsWith('\n') ? 0 : 1);
  options.onProgress?.({ bytesRead, totalBytes, records });
  return { text, documents: 1, skipped: [] };
}
