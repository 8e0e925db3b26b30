/**
 * Imported data sets: the user's CSV, JSONL or .txt file read by the import library (./import),
 * split deterministically into train/validation/test, stored in IndexedDB (lib/storage/db.ts), and
 * seen by the rest of the app as one more TaskInfo whose split files live under an `idb:` URL. The
 * engine reads those URLs through `readImportedFile`, so training an imported set is the same code
 * path as a built-in task.
 *
 * The split rule (SPLIT_RULE, shown on the Data screen):
 * - classification: the examples are shuffled with a fixed seed (mulberry32, seed 20240611), then
 *   split per class: a class of n examples gives round(n/10) (at least 1 when n >= 2) to validation,
 *   as many (at least 1 when n >= 3) to test, and the rest to train; so every class with two or more
 *   examples is in validation. At least MIN_CLS_EXAMPLES examples and two classes are needed.
 * - language modelling: the corpus is cut in file order, the first 80% of its characters for train,
 *   the next 10% for validation and the last 10% for test, each cut moved forward to the next line
 *   break (so no line is split; a text without line breaks is cut at 80% and 90% exactly); held-out
 *   text never overlaps training text. At least
 *   MIN_LM_CHARS characters are needed.
 * The same file with the same choices always gives the same splits.
 */
import { DataImportError } from './import/errors';
import {
  importClassification,
  importLanguageModel,
  type ClassificationExample,
  type ClassificationImport,
  type ImportProgress,
  type ImportSource,
  type LanguageModelImport,
} from './import';
import type { CsvDelimiter } from './import/csv';
import { SPLIT_NAMES, taskById, type SplitName, type TaskInfo } from './tasks/registry';
import { Rng } from '../util/rng';
import { FileLoadError } from '../errors';
import { getDataset, getDatasetFile, listDatasets, saveDataset } from '../storage/datasets';

/** The task types an import can be. */
export type ImportedTaskType = 'SEQ_CLS' | 'CAUSAL_LM';
export type ImportFormat = 'csv' | 'jsonl' | 'txt';

export interface DatasetSplitInfo {
  /** Examples (classification) or documents, blocks between blank lines (language modelling). */
  examples: number;
  bytes: number;
  /** Examples per label (classification; empty for language modelling). */
  labelCounts: Record<string, number>;
}

export interface DatasetPreviewRow {
  text: string;
  label?: string;
}

/** An imported data set as IndexedDB keeps it (the split files are stored beside it). */
export interface DatasetMeta {
  /** Also its task id in the Lab: IMPORTED_PREFIX + a random suffix. */
  id: string;
  name: string;
  /** Milliseconds since the epoch. */
  addedAt: number;
  taskType: ImportedTaskType;
  /** The file it came from and the choices made. */
  source: {
    fileName: string;
    format: ImportFormat;
    bytes: number;
    textColumn?: string;
    labelColumn?: string;
  };
  /** Class names in label-id order (sorted as the import library sorts them); empty for CAUSAL_LM. */
  labels: string[];
  /** The stored file of each split. */
  files: Record<SplitName, string>;
  splits: Record<SplitName, DatasetSplitInfo>;
  /** Examples (classification) or documents (language modelling: rows, 1 for a .txt) read from the file. */
  records: number;
  /** Rows left out for being empty or lacking a text or a label. */
  skippedRows: number;
  /** First validation examples (classification) or the start of the validation text. */
  preview: DatasetPreviewRow[];
  /** Stored bytes per split file and together (computed by the storage layer). */
  fileSizes: Record<string, number>;
  sizeBytes: number;
}

/** Task ids of imported data sets start with this, so a link can tell them from built-in ones. */
export const IMPORTED_PREFIX = 'data-';
/** URL scheme of an imported data set's files: `idb:<id>/<file>`. */
export const IDB_SCHEME = 'idb:';
export const SPLIT_SEED = 20240611;
export const MIN_CLS_EXAMPLES = 10;
export const MIN_LM_CHARS = 2000;
export const SPLIT_RULE =
  'Classification: shuffled with a fixed seed, then per class about 80% train, 10% validation (at least one ' +
  'example of every class that has two) and 10% test. Language modelling: the text in file order, the first ' +
  '80% for train, the next 10% validation, the last 10% test, cut at line breaks.';

const CLS_FILES: Record<SplitName, string> = {
  train: 'train.jsonl',
  validation: 'validation.jsonl',
  test: 'test.jsonl',
};
const LM_FILES: Record<SplitName, string> = {
  train: 'train.txt',
  validation: 'validation.txt',
  test: 'test.txt',
};
const PREVIEW_ROWS = 5;
const PREVIEW_CHARS = 200;
const PREVIEW_TEXT_CHARS = 400;

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}

/** Fisher-Yates with mulberry32: the same seed gives the same order everywhere. */
function shuffledIndices(n: number, seed: number): number[] {
  const rng = new Rng(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** How many of a class's n examples go to validation and to test (see SPLIT_RULE). */
export function heldOutCounts(n: number): { validation: number; test: number } {
  const tenth = Math.round(n / 10);
  return {
    validation: n >= 2 ? Math.max(1, tenth) : 0,
    test: n >= 3 ? Math.max(1, tenth) : 0,
  };
}

/**
 * Classification examples split by SPLIT_RULE; each split keeps the shuffled order. Throws
 * DataImportError for fewer than MIN_CLS_EXAMPLES examples or fewer than two classes.
 */
export function splitClassification(
  examples: readonly ClassificationExample[],
  seed = SPLIT_SEED,
): Record<SplitName, ClassificationExample[]> {
  const classes = new Set(examples.map((e) => e.label));
  if (classes.size < 2) {
    throw new DataImportError(
      `only one label${classes.size ? `, '${[...classes][0]!}',` : ''} was found: classification needs at least two classes.`,
      'single-label',
    );
  }
  if (examples.length < MIN_CLS_EXAMPLES) {
    throw new DataImportError(
      `only ${examples.length} examples were found; a classification data set needs at least ${MIN_CLS_EXAMPLES}, ` +
        'so that training, validation and test each get some: add more rows.',
      'empty',
    );
  }
  const order = shuffledIndices(examples.length, seed);
  const byLabel = new Map<string, number[]>();
  for (const i of order) {
    const label = examples[i]!.label;
    let list = byLabel.get(label);
    if (!list) byLabel.set(label, (list = []));
    list.push(i);
  }
  const rank = new Map(order.map((i, r) => [i, r]));
  const picked: Record<SplitName, number[]> = { train: [], validation: [], test: [] };
  for (const list of byLabel.values()) {
    const { validation, test } = heldOutCounts(list.length);
    picked.validation.push(...list.slice(0, validation));
    picked.test.push(...list.slice(validation, validation + test));
    picked.train.push(...list.slice(validation + test));
  }
  const out = {} as Record<SplitName, ClassificationExample[]>;
  for (const split of SPLIT_NAMES) {
    out[split] = picked[split].sort((a, b) => rank.get(a)! - rank.get(b)!).map((i) => examples[i]!);
  }
  return out;
}

/** The start of the first line that begins at or after `at` (`at` itself when no line break follows). */
function cutAt(text: string, at: number): number {
  if (at > 0 && text[at - 1] === '\n') return at;
  const nl = text.indexOf('\n', at);
  return nl < 0 ? at : nl + 1;
}

/**
 * A language-modelling corpus split by SPLIT_RULE (contiguous 80/10/10, cut after line breaks).
 * Throws DataImportError when the text is shorter than MIN_LM_CHARS or a split would be empty.
 */
export function splitLanguageModel(text: string): Record<SplitName, string> {
  const n = text.length;
  if (text.trim().length < MIN_LM_CHARS) {
    throw new DataImportError(
      `the text has ${text.trim().length.toLocaleString('en')} characters; language modelling needs at least ` +
        `${MIN_LM_CHARS.toLocaleString('en')}, so that the 10% held out for validation and for test are long enough to measure: add more text.`,
      'empty',
    );
  }
  const a = cutAt(text, Math.floor(n * 0.8));
  let b = cutAt(text, Math.floor(n * 0.9));
  // A last line longer than 10% of the text: cut inside it rather than leave test empty.
  if (b >= n) b = Math.max(a, Math.floor(n * 0.9));
  const splits = { train: text.slice(0, a), validation: text.slice(a, b), test: text.slice(b) };
  for (const split of SPLIT_NAMES) {
    if (splits[split].trim() === '') {
      throw new DataImportError(
        `the ${split} split (10% of the text, cut at a line break) came out empty: the text needs more lines, ` +
          'or fewer very long ones.',
        'empty',
      );
    }
  }
  return splits;
}

/** Blocks between blank lines, as the Data screen counts documents of a .txt split. */
function countBlocks(text: string): number {
  return text.split(/\n[ \t\r]*\n/).filter((b) => b.trim() !== '').length;
}

const encoder = new TextEncoder();

/** What an import stores: the metadata (sizes still to be computed) and the split files' bytes. */
export interface BuiltDataset {
  meta: Omit<DatasetMeta, 'sizeBytes' | 'fileSizes'>;
  files: Record<string, Uint8Array>;
}

export interface DatasetHeader {
  id: string;
  name: string;
  addedAt: number;
  source: DatasetMeta['source'];
}

/** A classification import split and written as the built-in tasks' `{"text","label"}` JSONL. */
export function buildClassificationDataset(head: DatasetHeader, imp: ClassificationImport): BuiltDataset {
  const parts = splitClassification(imp.examples);
  const files: Record<string, Uint8Array> = {};
  const splits = {} as Record<SplitName, DatasetSplitInfo>;
  for (const split of SPLIT_NAMES) {
    const rows = parts[split];
    const bytes = encoder.encode(
      rows.map((e) => `${JSON.stringify({ text: e.text, label: e.label })}\n`).join(''),
    );
    files[CLS_FILES[split]] = bytes;
    const labelCounts: Record<string, number> = Object.fromEntries(imp.labels.map((l) => [l, 0]));
    for (const e of rows) labelCounts[e.label] = (labelCounts[e.label] ?? 0) + 1;
    splits[split] = { examples: rows.length, bytes: bytes.byteLength, labelCounts };
  }
  return {
    meta: {
      ...head,
      taskType: 'SEQ_CLS',
      labels: [...imp.labels],
      files: { ...CLS_FILES },
      splits,
      records: imp.examples.length,
      skippedRows: imp.skipped.length,
      preview: parts.validation
        .slice(0, PREVIEW_ROWS)
        .map((e) => ({ text: truncate(e.text, PREVIEW_CHARS), label: e.label })),
    },
    files,
  };
}

/** A language-modelling import split and written as the built-in corpora's plain text. */
export function buildLanguageModelDataset(head: DatasetHeader, imp: LanguageModelImport): BuiltDataset {
  const parts = splitLanguageModel(imp.text);
  const files: Record<string, Uint8Array> = {};
  const splits = {} as Record<SplitName, DatasetSplitInfo>;
  for (const split of SPLIT_NAMES) {
    const bytes = encoder.encode(parts[split]);
    files[LM_FILES[split]] = bytes;
    splits[split] = { examples: countBlocks(parts[split]), bytes: bytes.byteLength, labelCounts: {} };
  }
  const start = parts.validation.trim();
  return {
    meta: {
      ...head,
      taskType: 'CAUSAL_LM',
      labels: [],
      files: { ...LM_FILES },
      splits,
      records: imp.documents,
      skippedRows: imp.skipped.length,
      preview: [{ text: truncate(start, PREVIEW_TEXT_CHARS) }],
    },
    files,
  };
}

export interface DatasetImportRequest {
  id: string;
  /** Shown in lists and the Lab's task picker. */
  name: string;
  fileName: string;
  format: ImportFormat;
  /** The file's size. */
  bytes: number;
  taskType: ImportedTaskType;
  /** CSV/JSONL: the text column (language modelling: by default 'text' or the only column). */
  textColumn?: string;
  /** Classification: the label column. */
  labelColumn?: string;
  delimiter?: CsvDelimiter;
  /** Refuse files larger than this (the storage left); see ReadOptions. */
  maxBytes?: number;
  signal?: AbortSignal;
  onProgress?: (progress: ImportProgress) => void;
  /** Milliseconds since the epoch; default now. */
  addedAt?: number;
}

/**
 * Reads a file with the import library, splits it and stores it: the whole import or nothing. A
 * fault in the file throws DataImportError (with its line), a full disk StorageError; in either case
 * no data set saved before is touched.
 */
export async function importDataset(source: ImportSource, req: DatasetImportRequest): Promise<DatasetMeta> {
  const name = req.name.trim();
  if (name === '') throw new DataImportError('the data set has no name: give it one.', 'bad-options');
  const read = {
    totalBytes: req.bytes,
    maxBytes: req.maxBytes,
    signal: req.signal,
    onProgress: req.onProgress,
  };
  const head: DatasetHeader = {
    id: req.id,
    name,
    addedAt: req.addedAt ?? Date.now(),
    source: { fileName: req.fileName, format: req.format, bytes: req.bytes },
  };
  let built: BuiltDataset;
  if (req.taskType === 'SEQ_CLS') {
    if (req.format === 'txt') {
      throw new DataImportError(
        'a .txt file has no label column, so it can only be imported for language modelling; for classification use a CSV or JSONL file with a text and a label column.',
        'bad-options',
      );
    }
    if (!req.textColumn || !req.labelColumn) {
      throw new DataImportError('choose the text column and the label column first.', 'bad-options');
    }
    const imp = await importClassification(source, {
      ...read,
      format: req.format,
      textColumn: req.textColumn,
      labelColumn: req.labelColumn,
      delimiter: req.delimiter,
    });
    head.source.textColumn = req.textColumn;
    head.source.labelColumn = req.labelColumn;
    built = buildClassificationDataset(head, imp);
  } else {
    const imp = await importLanguageModel(source, {
      ...read,
      format: req.format,
      textColumn: req.format === 'txt' ? undefined : req.textColumn,
      delimiter: req.delimiter,
    });
    if (req.format !== 'txt' && req.textColumn) head.source.textColumn = req.textColumn;
    built = buildLanguageModelDataset(head, imp);
  }
  return saveDataset(built.meta, built.files);
}

/** The data set as a Lab task: its split files are read from IndexedDB through `idb:` URLs. */
export function importedTaskInfo(meta: DatasetMeta): TaskInfo {
  const cls = meta.taskType === 'SEQ_CLS';
  const n = meta.splits.train.examples + meta.splits.validation.examples + meta.splits.test.examples;
  return {
    id: meta.id,
    title: meta.name,
    description: cls
      ? `Your data from ${meta.source.fileName}: ${n.toLocaleString('en')} examples in ${meta.labels.length} classes.`
      : `Your text from ${meta.source.fileName}: held-out loss and perplexity on its validation 10%.`,
    taskType: meta.taskType,
    metrics: cls ? ['macroF1', 'accuracy'] : ['perplexity'],
    labels: [...meta.labels],
    dataDir: `${IDB_SCHEME}${meta.id}`,
    format: cls ? 'seq-cls-jsonl' : 'text',
    files: { ...meta.files },
  };
}

/** The folder URL a train request names for a task: under the app's base, or `idb:<id>/`. */
export function taskDataUrl(info: TaskInfo, baseUrl: string): string {
  return info.dataDir.startsWith(IDB_SCHEME) ? `${info.dataDir}/` : `${baseUrl}${info.dataDir}/`;
}

export function isImportedUrl(url: string): boolean {
  return url.startsWith(IDB_SCHEME);
}

/** The bytes of `idb:<id>/<file>`; FileLoadError when the data set was deleted. */
export async function readImportedFile(url: string): Promise<ArrayBuffer> {
  const m = /^idb:([^/]+)\/(.+)$/.exec(url);
  if (!m) throw new FileLoadError(`${url} is not a data set file (expected idb:<id>/<file>)`);
  const [, id, file] = m as unknown as [string, string, string];
  const bytes = await getDatasetFile(id, file);
  if (!bytes) {
    throw new FileLoadError(
      `the imported data set ${id} is no longer in this browser (deleted?): import it again, or pick another task`,
    );
  }
  return bytes;
}

/** A built-in task, or an imported data set by its id (read from IndexedDB). */
export async function findTask(id: string): Promise<TaskInfo | undefined> {
  const builtIn = taskById(id);
  if (builtIn) return builtIn;
  if (!id.startsWith(IMPORTED_PREFIX) || typeof indexedDB === 'undefined') return undefined;
  const meta = await getDataset(id);
  return meta ? importedTaskInfo(meta) : undefined;
}

/** Every imported data set as a Lab task, newest first. */
export async function importedTasks(): Promise<TaskInfo[]> {
  if (typeof indexedDB === 'undefined') return [];
  return (await listDatasets()).map(importedTaskInfo);
}

/** A fresh id for an imported data set. */
export function newDatasetId(): string {
  return `${IMPORTED_PREFIX}${crypto.randomUUID().replace(/-/g, '').slice(0, 12)}`;
}
