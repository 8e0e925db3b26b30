/**
 * Counting and previewing the built-in tasks' split files for the Data screen: pure functions over
 * the file's text, so they are tested on small strings and the screen only fetches and renders.
 * The formats are those of `DataFormat` in src/lib/data/tasks/registry.ts.
 */
import { SPLIT_NAMES } from '../lib/data/tasks/registry';
import type { DataFormat, SplitName, TaskInfo } from '../lib/data/tasks/registry';

/** A jsonl file's records, one a non-blank line (a trailing newline or blank last line is no record). */
export function jsonlLines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

/** A .txt file's documents: blocks separated by one or more blank (or whitespace-only) lines. */
export function textBlocks(text: string): string[] {
  return text
    .split(/\n[ \t\r]*\n/)
    .map((block) => block.trim())
    .filter((block) => block !== '');
}

/** Examples in a split file: records for jsonl, blank-line-separated documents for text. */
export function countExamples(text: string, format: DataFormat): number {
  return format === 'text' ? textBlocks(text).length : jsonlLines(text).length;
}

export interface LabelCount {
  label: string;
  count: number;
}

/**
 * Examples per label of a `{"text", "label"}` jsonl file, in the order of `labels` (so classes
 * with no example show a zero); labels not in the list follow in order of first appearance.
 */
export function countLabels(text: string, labels: readonly string[]): LabelCount[] {
  const counts = new Map<string, number>(labels.map((l) => [l, 0]));
  for (const line of jsonlLines(text)) {
    const label = String((JSON.parse(line) as { label?: unknown }).label);
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return [...counts].map(([label, count]) => ({ label, count }));
}

/** `text` cut to at most `max` characters, with an ellipsis when it was cut. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}

export interface TaggedWord {
  word: string;
  tag: string;
}

/** One previewed example: plain text (with its label for classification) or tagged words. */
export type PreviewRow =
  | { kind: 'text'; text: string; label?: string }
  | { kind: 'tagged'; words: TaggedWord[]; truncated: boolean };

export interface PreviewOptions {
  /** Examples to show (jsonl). */
  rows?: number;
  /** Characters of an example's text (for tagged rows: of its words joined by spaces). */
  maxChars?: number;
  /** Characters of a .txt file's start. */
  textChars?: number;
}

/**
 * The first examples of a split file: for seq-cls jsonl the text (truncated) and its label, for
 * token-cls jsonl the word/tag pairs up to about `maxChars` of words, for .txt one row with the
 * file's first `textChars` characters.
 */
export function previewExamples(
  text: string,
  format: DataFormat,
  options: PreviewOptions = {},
): PreviewRow[] {
  const { rows = 5, maxChars = 200, textChars = 400 } = options;
  if (format === 'text') {
    const start = text.trim();
    return start === '' ? [] : [{ kind: 'text', text: truncate(start, textChars) }];
  }
  return jsonlLines(text)
    .slice(0, rows)
    .map((line): PreviewRow => {
      if (format === 'seq-cls-jsonl') {
        const record = JSON.parse(line) as { text?: unknown; label?: unknown };
        return {
          kind: 'text',
          text: truncate(String(record.text ?? ''), maxChars),
          label: String(record.label),
        };
      }
      const record = JSON.parse(line) as { words?: unknown; tags?: unknown };
      const words = Array.isArray(record.words) ? record.words.map(String) : [];
      const tags = Array.isArray(record.tags) ? record.tags.map(String) : [];
      const kept: TaggedWord[] = [];
      let chars = 0;
      for (const [i, word] of words.entries()) {
        if (kept.length > 0 && chars + word.length > maxChars) break;
        kept.push({ word, tag: tags[i] ?? '?' });
        chars += word.length + 1;
      }
      return { kind: 'tagged', words: kept, truncated: kept.length < words.length };
    });
}

/** The `source` and `licence` of a task's manifest.json as one line (moby-dick's has no licence). */
export function sourceLine(manifest: unknown): string {
  const m = (manifest ?? {}) as { source?: unknown; licence?: unknown };
  const parts = [m.source, m.licence].filter((p): p is string => typeof p === 'string' && p !== '');
  return parts.length > 0 ? parts.join(' — ') : 'No source recorded in manifest.json.';
}

/** What the Data screen shows of one split. */
export interface SplitSummary {
  bytes: number;
  examples: number;
}

/** Everything the Data screen shows of one task once its section is opened. */
export interface TaskData {
  source: string;
  splits: Record<SplitName, SplitSummary>;
  /** Train examples per label (SEQ_CLS only). */
  labelCounts: LabelCount[] | null;
  /** The first validation examples. */
  preview: PreviewRow[];
}

/** A failed fetch of one of a task's files, naming the file and what came back. */
export class DataLoadError extends Error {
  override name = 'DataLoadError';
}

async function fetchText(fetchFn: typeof fetch, url: string): Promise<{ text: string; bytes: number }> {
  let response: Response;
  try {
    response = await fetchFn(url);
  } catch (e) {
    throw new DataLoadError(`Could not load ${url}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!response.ok) throw new DataLoadError(`Could not load ${url}: HTTP ${response.status}`);
  const buffer = await response.arrayBuffer();
  return { text: new TextDecoder().decode(buffer), bytes: buffer.byteLength };
}

/** Fetches a task's manifest.json and split files (under `baseUrl`) and summarises them. */
export async function loadTaskData(
  task: TaskInfo,
  baseUrl: string,
  fetchFn: typeof fetch = fetch,
): Promise<TaskData> {
  const dir = `${baseUrl}${task.dataDir}/`;
  const [manifest, ...files] = await Promise.all([
    fetchText(fetchFn, `${dir}manifest.json`),
    ...SPLIT_NAMES.map((split) => fetchText(fetchFn, `${dir}${task.files[split]}`)),
  ]);
  let source: string;
  try {
    source = sourceLine(JSON.parse(manifest!.text));
  } catch {
    throw new DataLoadError(`${dir}manifest.json is not valid JSON`);
  }
  const byName = Object.fromEntries(SPLIT_NAMES.map((split, i) => [split, files[i]!])) as Record<
    SplitName,
    { text: string; bytes: number }
  >;
  const splits = Object.fromEntries(
    SPLIT_NAMES.map((split) => [
      split,
      { bytes: byName[split].bytes, examples: countExamples(byName[split].text, task.format) },
    ]),
  ) as Record<SplitName, SplitSummary>;
  return {
    source,
    splits,
    labelCounts: task.format === 'seq-cls-jsonl' ? countLabels(byName.train.text, task.labels) : null,
    preview: previewExamples(byName.validation.text, task.format),
  };
}
