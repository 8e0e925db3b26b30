/**
 * The choices the Data screen's import form offers, as pure functions (tested on small inputs):
 * which format a file name means, which columns probably hold the text and the label, and how
 * many bytes the browser's storage still takes.
 */
import type { ImportFormat } from '../lib/data/imported';
import type { StorageEstimate } from '../lib/storage/quota';

/** The import format a file name stands for, or null for a kind the importer does not read. */
export function formatOf(fileName: string): ImportFormat | null {
  const ext = /\.([^./]+)$/.exec(fileName.toLowerCase())?.[1];
  if (ext === 'csv' || ext === 'tsv') return 'csv';
  if (ext === 'jsonl' || ext === 'ndjson') return 'jsonl';
  if (ext === 'txt' || ext === 'text') return 'txt';
  return null;
}

/** The data set's name offered for a file: its name without the extension. */
export function defaultName(fileName: string): string {
  return fileName.replace(/\.[^./]+$/, '').trim() || fileName;
}

const TEXT_NAMES = ['text', 'sentence', 'review', 'content', 'body', 'message', 'document', 'comment'];
const LABEL_NAMES = ['label', 'labels', 'class', 'category', 'sentiment', 'target', 'tag', 'y'];

/**
 * The columns to preselect: a column with a usual name (text, review, ...; label, class, ...),
 * else for the text the one with the longest sample values and for the label the other one with
 * the fewest distinct sample values. The user can change both.
 */
export function guessColumns(
  columns: readonly string[],
  sampleRows: readonly (readonly string[])[],
): { text: string; label: string } {
  const named = (names: string[]): string | undefined =>
    names.map((n) => columns.find((c) => c.trim().toLowerCase() === n)).find((c) => c !== undefined);
  const values = (i: number): string[] => sampleRows.map((r) => r[i] ?? '');
  const meanLength = (i: number): number =>
    values(i).reduce((n, v) => n + v.length, 0) / Math.max(1, sampleRows.length);
  let text = named(TEXT_NAMES);
  if (text === undefined) {
    let best = -1;
    columns.forEach((c, i) => {
      const len = meanLength(i);
      if (len > best) [best, text] = [len, c];
    });
  }
  let label = named(LABEL_NAMES);
  if (label === undefined || label === text) {
    let fewest = Infinity;
    label = undefined;
    columns.forEach((c, i) => {
      if (c === text) return;
      const distinct = new Set(values(i)).size;
      if (distinct < fewest) [fewest, label] = [distinct, c];
    });
  }
  return { text: text ?? '', label: label ?? text ?? '' };
}

/** The storage a new import may use (quota minus what is used), or undefined where unknown. */
export function availableBytes(estimate: StorageEstimate | null): number | undefined {
  if (!estimate) return undefined;
  return Math.max(0, estimate.quotaBytes - estimate.usageBytes);
}
