/**
 * Named errors. Every failure a user can cause has its own class, so the UI, the CLI and the
 * worker protocol can tell them apart; the message is one line that says what is wrong and what to do.
 * Errors cross the worker boundary as {name, message, fields} and are rebuilt with `rebuildError`.
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
/** Which check an opened adapter failed against the loaded model (for the UI; the message is for people). */
export type AdapterMismatchCode =
  /** peft_type names a method PEFT Lab does not implement. */
  | 'peft-type'
  /** task_type is not one the method or the model's heads take. */
  | 'task-type'
  /** A classification adapter without its head, or a head that does not fit the model's width. */
  | 'head'
  /** target_modules name no layer of this model. */
  | 'target-modules'
  /** A tensor whose shape does not fit this model and config. */
  | 'shape'
  /** A tensor the config calls for is not in the file. */
  | 'missing-keys'
  /** The file holds tensors this model and config have no place for. */
  | 'unexpected-keys'
  /** Any other config field this model cannot take (too many virtual tokens, a bad value). */
  | 'config';

/**
 * An adapter that does not fit the loaded model or its own config: refused before it changes
 * anything. `code` says which check failed.
 */
export class AdapterMismatchError extends AdapterError {
  override name = 'AdapterMismatchError';
  readonly code: AdapterMismatchCode;

  constructor(message: string, code: AdapterMismatchCode = 'config') {
    super(message);
    this.code = code;
  }
}
/**
 * Adapter files PEFT Lab does not read: a pickled adapter_model.bin (only safetensors is read, as
 * loading a pickle runs code), or a choice that lacks one of the two files.
 */
export class AdapterFormatError extends AdapterError {
  override name = 'AdapterFormatError';
}
/** Which condition of add_weighted_adapter two or more adapters fail together (for the UI). */
export type AdapterCombineReason =
  /** Not LoRA: only LoRA adapters combine. */
  | 'method'
  /** Made on different base models (base_model_name_or_path). */
  | 'base'
  /** A classification head or trained biases, which have no weighted sum. */
  | 'task'
  /** Different target modules (layers). */
  | 'targets'
  /** Different ranks where the combination type needs them equal. */
  | 'rank';

/**
 * Adapters that cannot be combined with each other by the chosen combination type: refused before
 * anything is written. `reason` says which condition failed.
 */
export class AdapterCombineError extends AdapterError {
  override name = 'AdapterCombineError';
  readonly reason: AdapterCombineReason;

  constructor(message: string, reason: AdapterCombineReason = 'method') {
    super(message);
    this.reason = reason;
  }
}
/** A file that is missing or cannot be read. */
export class FileLoadError extends PeftLabError {
  override name = 'FileLoadError';
}
/**
 * A download from the Hub (or a mirror) that failed. One subclass per thing the user can do about
 * it; all are FileLoadErrors, and none leaves anything of the download cached.
 */
export class HubError extends FileLoadError {
  override name = 'HubError';
}
/** 401 or 403: a private or gated repo; the message says where to accept the licence and how to give a token. */
export class HubAccessError extends HubError {
  override name = 'HubAccessError';
}
/** 404 (or the Hub's 401 "RepoNotFound"): no such repo, revision or file. */
export class HubNotFoundError extends HubError {
  override name = 'HubNotFoundError';
}
/**
 * An answer that is not the file: an HTTP error, a web page (HTML) where a file was asked for, or a
 * body shorter than its Content-Length or than the safetensors header says.
 */
export class HubResponseError extends HubError {
  override name = 'HubResponseError';
}
/** The server sent nothing for longer than the timeout (a stalled or very slow server). */
export class HubTimeoutError extends HubError {
  override name = 'HubTimeoutError';
}
/** The server could not be reached, or the connection broke in the middle of a file. */
export class HubConnectionError extends HubError {
  override name = 'HubConnectionError';
}
/** Training diverged (NaN or infinite loss). */
export class NonFiniteLossError extends PeftLabError {
  override name = 'NonFiniteLossError';
}
/**
 * Weights or optimizer state holding NaN or infinity, refused at saving (an adapter or a
 * checkpoint), so a diverged run never overwrites good files with broken ones.
 */
export class NonFiniteWeightsError extends PeftLabError {
  override name = 'NonFiniteWeightsError';
}
/**
 * The backend could not allocate memory (the wasm heap could not grow, or a GPU buffer was
 * refused). The message says what to lower: batch size, sequence length, the offload budget, or the model.
 */
export class OutOfMemoryError extends PeftLabError {
  override name = 'OutOfMemoryError';
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
/** A training or generation request was cancelled, or a model load that a newer pick superseded. */
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
 * line, say); they cross the worker boundary with the message (see `serializeError`).
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

/** A request that must wait: training or a race is running, and has to pause, stop or finish first. */
export class BusyError extends PeftLabError {
  override name = 'BusyError';
}
/**
 * A request for something that is not there (yet): no model loaded, no adapter trained, no race
 * started, or a lane without the soft prompt or rank history asked for.
 */
export class NotReadyError extends PeftLabError {
  override name = 'NotReadyError';
}
/** Text typed in that cannot be used: an empty prompt, a sentence longer than the model reads, a name taken. */
export class InputError extends PeftLabError {
  override name = 'InputError';
}
/**
 * A run setting the run cannot take: an unknown task, a sequence longer than the model reads, no
 * lanes, gradient accumulation or clipping out of range, an offload budget too small.
 */
export class SettingsError extends PeftLabError {
  override name = 'SettingsError';
}
/** A saved checkpoint that is missing, or was made by another model, method or configuration. */
export class CheckpointError extends PeftLabError {
  override name = 'CheckpointError';
}
/** A worker (the Lab's or Compare's engine) died: what it was doing is lost, its last checkpoint is not. */
export class WorkerCrashedError extends PeftLabError {
  override name = 'WorkerCrashedError';
}
/** A run that cannot be written as a Python project (a setting transformers + PEFT has no form for). */
export class ExportError extends PeftLabError {
  override name = 'ExportError';
}
/**
 * A swarm message that cannot be accepted: bad framing, an unknown kind or version, a tensor of the
 * wrong dtype, rank or size, or over a limit. A peer refuses it without running anything.
 */
export class SwarmProtocolError extends PeftLabError {
  override name = 'SwarmProtocolError';
}
/** A swarm peer that refused the token, or a token missing where the peer requires one. */
export class SwarmAuthError extends PeftLabError {
  override name = 'SwarmAuthError';
}
/**
 * A swarm peer that failed a request: it closed, timed out, answered with an error, or sent back a
 * reply of the wrong shape or with non-finite values. `peerId` names it, so the client avoids it.
 */
export class SwarmPeerError extends PeftLabError {
  override name = 'SwarmPeerError';
  readonly peerId: string | undefined;
  constructor(message: string, peerId?: string) {
    super(message);
    this.peerId = peerId;
  }
}
/** No chain of live peers covers the model's blocks (or the part of them asked for). */
export class SwarmRouteError extends PeftLabError {
  override name = 'SwarmRouteError';
}
/** An inference session a peer does not hold (expired, closed) or whose length does not match the step. */
export class SwarmSessionError extends PeftLabError {
  override name = 'SwarmSessionError';
}
/**
 * A broken invariant of the code itself, which nothing a user gives can cause: a bug to report.
 * Deliberately not a PeftLabError, so the CLI calls it unexpected and offers the stack trace.
 */
export class InternalError extends Error {
  override name = 'InternalError';
}

const ERROR_CLASSES = {
  PeftLabError,
  SafetensorsError,
  ModelConfigError,
  WeightsMismatchError,
  TokenizerError,
  PeftConfigError,
  AdapterError,
  AdapterMismatchError,
  AdapterFormatError,
  AdapterCombineError,
  FileLoadError,
  HubError,
  HubAccessError,
  HubNotFoundError,
  HubResponseError,
  HubTimeoutError,
  HubConnectionError,
  NonFiniteLossError,
  NonFiniteWeightsError,
  OutOfMemoryError,
  UsageError,
  StorageError,
  BackendError,
  CancelledError,
  DataImportError,
  BusyError,
  NotReadyError,
  InputError,
  SettingsError,
  CheckpointError,
  WorkerCrashedError,
  ExportError,
  SwarmProtocolError,
  SwarmAuthError,
  SwarmPeerError,
  SwarmRouteError,
  SwarmSessionError,
  InternalError,
} as const;

export type ErrorName = keyof typeof ERROR_CLASSES;

/** A field an error carries besides its name and message; plain values post between threads as they are. */
export type ErrorField = string | number | boolean | null;

/** Plain form of an error, safe to post between threads. */
export interface SerializedError {
  name: string;
  message: string;
  /** The error's own fields (DataImportError's `code` and `line`); absent when it has none. */
  fields?: Record<string, ErrorField>;
}

/** Set by Error itself, or spelled out in the wire form. */
const NOT_FIELDS = new Set(['name', 'message', 'stack', 'cause']);

/**
 * The error's own enumerable fields with plain values are carried generically, so a class that adds
 * a field (a code, a line, a byte count) keeps it across the worker with no change here. Undefined
 * fields are left out (the class's default applies on the other side); objects are not carried,
 * since a structured clone would copy them but a JSON log would not, and no class needs one.
 */
export function serializeError(e: unknown): SerializedError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const out: SerializedError = { name: e.name, message: e.message };
  const fields: Record<string, ErrorField> = {};
  for (const [k, v] of Object.entries(e)) {
    if (NOT_FIELDS.has(k)) continue;
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') fields[k] = v;
  }
  if (Object.keys(fields).length > 0) out.fields = fields;
  return out;
}

/**
 * Rebuilds the named class from its wire form, fields included. An unknown name (a DOMException's
 * QuotaExceededError, a class from a newer worker) becomes a plain Error that keeps the name, the
 * message and the fields, so it reads the same.
 */
export function rebuildError(s: SerializedError): Error {
  const cls = (ERROR_CLASSES as Record<string, (new (message: string) => Error) | undefined>)[s.name];
  const e = cls ? new cls(s.message) : new Error(s.message);
  if (!cls) e.name = s.name;
  // What was sent overwrites the constructor's defaults (DataImportError's code 'bad-options').
  for (const [k, v] of Object.entries(s.fields ?? {})) if (!NOT_FIELDS.has(k)) Object.assign(e, { [k]: v });
  return e;
}
