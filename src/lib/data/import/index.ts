/** User data import: CSV, JSONL and plain text, streamed, with named errors (see import.ts). */
export { DataImportError, type DataImportErrorCode } from './errors';
export { type ImportSource, type ReadOptions } from './decode';
export { type CsvDelimiter } from './csv';
export { type ImportProgress, type TableFormat } from './table';
export {
  DOCUMENT_SEPARATOR,
  importClassification,
  importLanguageModel,
  inspectCsv,
  inspectJsonl,
  type ClassificationExample,
  type ClassificationImport,
  type ClassificationImportOptions,
  type InspectOptions,
  type LanguageModelImport,
  type LanguageModelImportOptions,
  type SkipReason,
  type SkippedRow,
  type TablePreview,
} from './import';
