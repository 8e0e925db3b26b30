/**
 * The Data screen's import form and its list of imported data sets, as one runes class. The file is
 * read by the import library (src/lib/data/import) and stored by src/lib/data/imported.ts; this
 * class only holds what the form shows. Nothing is stored unless the whole import succeeds.
 */
import { inspectCsv, inspectJsonl, type ImportProgress, type TablePreview } from '../lib/data/import';
import {
  importDataset,
  newDatasetId,
  type DatasetMeta,
  type ImportFormat,
  type ImportedTaskType,
} from '../lib/data/imported';
import { deleteDataset, listDatasets } from '../lib/storage/datasets';
import { storageEstimate } from '../lib/storage/quota';
import { availableBytes, defaultName, formatOf, guessColumns } from './data-import';
import { formatBytes } from '../ui/kit/format';

/** Rows of the file shown while choosing columns. */
const PREVIEW_ROWS = 5;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class DataImportState {
  /** The file picked or dropped, not yet imported. */
  file = $state<File | null>(null);
  format = $state<ImportFormat | null>(null);
  /** CSV/JSONL: the columns and first rows, read with the import library's inspect functions. */
  preview = $state<TablePreview | null>(null);
  inspecting = $state(false);
  kind = $state<ImportedTaskType>('SEQ_CLS');
  textColumn = $state('');
  labelColumn = $state('');
  name = $state('');
  importing = $state(false);
  progress = $state<ImportProgress | null>(null);
  /** The import library's message (line and fault), or storage's; the form stays as it was. */
  error = $state<string | null>(null);
  /** One line after a successful import. */
  done = $state<string | null>(null);
  datasets = $state<DatasetMeta[]>([]);
  /** Set once the list has been read. */
  listed = $state(false);
  private abort: AbortController | null = null;

  async refresh(): Promise<void> {
    try {
      this.datasets = await listDatasets();
    } catch (e) {
      this.error = message(e);
    } finally {
      this.listed = true;
    }
  }

  /** A file was picked or dropped: find its format and, for CSV and JSONL, read its columns. */
  async choose(file: File): Promise<void> {
    this.cancel();
    this.error = null;
    this.done = null;
    this.preview = null;
    this.progress = null;
    const format = formatOf(file.name);
    if (!format) {
      this.file = null;
      this.format = null;
      this.error = `${file.name}: PEFT Lab imports .csv, .jsonl and .txt files; save the data in one of those formats.`;
      return;
    }
    this.file = file;
    this.format = format;
    this.name = defaultName(file.name);
    if (format === 'txt') {
      this.kind = 'CAUSAL_LM';
      return;
    }
    // A file with columns is most often labelled data; the user can switch to language modelling.
    this.kind = 'SEQ_CLS';
    this.inspecting = true;
    try {
      const inspect = format === 'csv' ? inspectCsv : inspectJsonl;
      const preview = await inspect(file.stream(), { maxRows: PREVIEW_ROWS, totalBytes: file.size });
      if (this.file !== file) return; // another file was chosen meanwhile
      this.preview = preview;
      const guess = guessColumns(preview.columns, preview.sampleRows);
      this.textColumn = guess.text;
      this.labelColumn = guess.label;
    } catch (e) {
      if (this.file === file) this.error = `${file.name}: ${message(e)}`;
    } finally {
      if (this.file === file) this.inspecting = false;
    }
  }

  /** Reads the whole file with progress, splits and stores it; on any fault nothing is stored. */
  async runImport(): Promise<DatasetMeta | null> {
    const file = this.file;
    const format = this.format;
    if (!file || !format || this.importing) return null;
    this.error = null;
    this.done = null;
    this.importing = true;
    this.progress = { bytesRead: 0, totalBytes: file.size, records: 0 };
    const abort = new AbortController();
    this.abort = abort;
    try {
      const meta = await importDataset(file.stream(), {
        id: newDatasetId(),
        name: this.name,
        fileName: file.name,
        format,
        bytes: file.size,
        taskType: this.kind,
        textColumn: format === 'txt' ? undefined : this.textColumn,
        labelColumn: this.kind === 'SEQ_CLS' ? this.labelColumn : undefined,
        delimiter: this.preview?.delimiter,
        maxBytes: availableBytes(await storageEstimate()),
        signal: abort.signal,
        onProgress: (p) => (this.progress = p),
      });
      const n = meta.records.toLocaleString('en');
      this.done =
        meta.taskType === 'SEQ_CLS'
          ? `Imported “${meta.name}”: ${n} examples in ${meta.labels.length} classes.`
          : `Imported “${meta.name}”: ${meta.source.format === 'txt' ? 'the text' : `${n} documents`}, ${formatBytes(meta.sizeBytes)}.`;
      this.file = null;
      this.format = null;
      this.preview = null;
      await this.refresh();
      return meta;
    } catch (e) {
      this.error = `${file.name}: ${message(e)}`;
      return null;
    } finally {
      this.importing = false;
      if (this.abort === abort) this.abort = null;
    }
  }

  /** Stops a running import (it then stores nothing). */
  cancel(): void {
    this.abort?.abort();
  }

  /** Clears the form. */
  reset(): void {
    this.cancel();
    this.file = null;
    this.format = null;
    this.preview = null;
    this.progress = null;
    this.error = null;
  }

  async remove(id: string): Promise<void> {
    this.error = null;
    this.done = null;
    try {
      await deleteDataset(id);
    } catch (e) {
      this.error = message(e);
    }
    await this.refresh();
  }
}
