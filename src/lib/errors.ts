/**
 * Named errors. Every failure a user can cause has its own class, so the UI, the CLI and the
 * worker protocol can tell them apart; the message is one line that says what is wrong and what to do.
 * Errors cross the worker boundary as {name, message} and are rebuilt with `rebuildError`.
 */
export class PeftLabError extends Error {
  // Names are spelled out, not taken from the constructor: a minified build renames classes.
  override name: string = 'PeftLabError';
}

/** A safetensors file whose header or data does not hold together. */
export class SafetensorsError extends PeftLabError {
  override name = 'SafetensorsError';
}
/** A config.json that is missing a field, has a bad value, or does not fit the weights. */
export class ModelConfigError extends PeftLabError {
  override name = 'ModelConfigError';
}
/** Weights missing, extra, or of the wrong shape for the config. */
export class WeightsMismatchError extends PeftLabError {
  override name = 'WeightsMismatchError';
}
/** A tokenizer.json we cannot use (not byte-level BPE, malformed). */
export class TokenizerError extends PeftLabError {
  override name = 'TokenizerError';
}
/** A PEFT config field with a value that is out of range or does not fit the model. */
export class PeftConfigError extends PeftLabError {
  override name = 'PeftConfigError';
}
/** An adapter folder that does not belong to this model or is malformed. */
export class AdapterError extends PeftLabError {
  override name = 'AdapterError';
}
/** A file that is missing or cannot be read. */
export class FileLoadError extends PeftLabError {
  override name = 'FileLoadError';
}
/** Training diverged (NaN or infinite loss). */
export class NonFiniteLossError extends PeftLabError {
  override name = 'NonFiniteLossError';
}
/** Bad command-line usage. */
export class UsageError extends PeftLabError {
  override name = 'UsageError';
}
/** The storage quota is exhausted, or IndexedDB refused a write. */
export class StorageError extends PeftLabError {
  override name = 'StorageError';
}
/** The compute backend could not be initialised or was lost. */
export class BackendError extends PeftLabError {
  override name = 'BackendError';
}
/** A training or generation request was cancelled. */
export class CancelledError extends PeftLabError {
  override name = 'CancelledError';
}

/** What went wrong, for code that wants to react to a kind of fault (the message is for people). */
export type DataImportErrorCode =
  /** Options that cannot work together (the same column for text and label, a bad maxBytes). */
  | 'bad-options'
  /** A chosen column is not in the header (CSV) or the first object (JSONL). */
  | 'missing-column'
  /** The chosen column's name appears more than once in the header. */
  | 'duplicate-column'
  /** No header, no rows, or only empty rows. */
  | 'empty'
  /** Classification data with a single label. */
  | 'single-label'
  /** A label column with about as many values as rows: free text, not classes. */
  | 'too-many-labels'
  /** Bytes that are not UTF-8. */
  | 'not-utf8'
  /** A quoted CSV field whose closing quote never comes. */
  | 'unterminated-quote'
  /** Text right after the closing quote of a quoted CSV field. */
  | 'bad-quote'
  /** A CSV row whose number of fields differs from the header's. */
  | 'field-count'
  /** A JSONL line that is not JSON. */
  | 'not-json'
  /** A JSONL line that is JSON but not an object. */
  | 'not-object'
  /** A JSONL value that is an object or array where text is needed, or a field missing from a row. */
  | 'bad-value'
  /** The file is larger than the caller's byte budget. */
  | 'too-large';

/**
 * User data that cannot be imported. The message is one sentence for the user: the line (when there
 * is one), the fault, and what to do about it. `code` and `line` are for the UI (highlighting a
 * line, say); across the worker boundary only {name, message} survive, which is enough to show it.
 */
export class DataImportError extends PeftLabError {
  // Spelled out: a minified build renames classes.
  override name = 'DataImportError';
  readonly code: DataImportErrorCode;
  /** 1-based line of the file where the fault is, when it is on one line. */
  readonly line: number | undefined;

  constructor(message: string, code: DataImportErrorCode = 'bad-options', line?: number) {
    super(message);
    this.code = code;
    this.line = line;
  }
}

const ERROR_CLASSES = {
  PeftLabError,
  SafetensorsError,
  ModelConfigError,
  WeightsMismatchError,
  TokenizerError,
  PeftConfigError,
  AdapterError,
  FileLoadError,
  NonFiniteLossError,
  UsageError,
  StorageError,
  BackendError,
  CancelledError,
  DataImportError,
} as const;

export type ErrorName = keyof typeof ERROR_CLASSES;

/** Plain form of an error, safe to post between threads. */
export interface SerializedError {
  name: string;
  message: string;
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

/** Rebuilds the named class from {name, message}; unknown names become a plain Error with that name. */
export function rebuildError(s: SerializedError): Error {
  const cls = (ERROR_CLASSES as Record<string, typeof PeftLabError | undefined>)[s.name];
  if (cls) return new cls(s.message);
  const e = new Error(s.message);
  e.name = s.name;
  return e;
}
