/**
 * The built-in tasks: one explicit table from task id to what the trainer and the UI need to know
 * (task type, metrics, labels, where the data lives). The data itself is prepared from npm packages
 * by scripts/prepare-data.ts (moby-dick) and scripts/prepare-tasks.ts (the rest) into
 * public/data/<id>/, each folder with a manifest.json whose shape is `TaskManifest` (moby-dick's
 * older manifest has only the split documents and bytes).
 */
import { GENRE_LABELS } from './genre';
import { UNIVERSAL_TAGS } from './pos-map';

/** PEFT's TaskType names: what a task asks of the model (its head, its loss, its metric). */
export type TaskType = 'CAUSAL_LM' | 'SEQ_CLS' | 'TOKEN_CLS';
export const TASK_TYPES: readonly TaskType[] = ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS'];

/** Whether a value read from a file or a flag is one of PEFT's task types. */
export const isTaskType = (x: unknown): x is TaskType => (TASK_TYPES as readonly unknown[]).includes(x);

export type SplitName = 'train' | 'validation' | 'test';
export const SPLIT_NAMES: readonly SplitName[] = ['train', 'validation', 'test'];

/** Metric names, as functions of the same names in metrics.ts compute them (perplexity: the trainer's evaluate). */
export type MetricName = 'perplexity' | 'accuracy' | 'macroF1' | 'binaryF1' | 'tokenAccuracy';

/** How a split file is laid out. */
export type DataFormat =
  /** `<split>.txt`: plain text, documents separated by a blank line. */
  | 'text'
  /** `<split>.jsonl`: one `{"text", "label"}` object a line (plus a source key, `doc` or `id`). */
  | 'seq-cls-jsonl'
  /** `<split>.jsonl`: one `{"words": [...], "tags": [...], "doc"}` object a line. */
  | 'token-cls-jsonl';

export interface TaskInfo {
  id: string;
  title: string;
  description: string;
  taskType: TaskType;
  /** The first metric is the one to rank runs by. */
  metrics: readonly MetricName[];
  /** Class names in label-id order; empty for CAUSAL_LM. */
  labels: readonly string[];
  /** binaryF1's positive class. */
  positiveLabel?: string;
  /** Folder under public/ (so also the URL path under the app's base). */
  dataDir: string;
  format: DataFormat;
  /** File names of the splits inside dataDir. */
  files: Readonly<Record<SplitName, string>>;
}

const jsonlFiles = { train: 'train.jsonl', validation: 'validation.jsonl', test: 'test.jsonl' } as const;

export const TASKS = [
  {
    id: 'moby-dick',
    title: 'Moby-Dick (Herman Melville, 1851)',
    description: 'Causal-LM fine-tuning on Moby-Dick chapters; held-out chapters are validation and test.',
    taskType: 'CAUSAL_LM',
    metrics: ['perplexity'],
    labels: [],
    dataDir: 'data/moby-dick',
    format: 'text',
    files: { train: 'train.txt', validation: 'validation.txt', test: 'test.txt' },
  },
  {
    id: 'brown-genre',
    title: 'Brown corpus genre (4 classes)',
    description:
      'Which kind of writing a ~500-character Brown passage comes from: press, general non-fiction, learned or fiction.',
    taskType: 'SEQ_CLS',
    metrics: ['macroF1', 'accuracy'],
    labels: GENRE_LABELS,
    dataDir: 'data/brown-genre',
    format: 'seq-cls-jsonl',
    files: jsonlFiles,
  },
  {
    id: 'spam',
    title: 'SpamAssassin spam vs ham',
    description: 'Is an e-mail (subject, sender domain and the start of its body) spam?',
    taskType: 'SEQ_CLS',
    metrics: ['binaryF1', 'accuracy'],
    labels: ['ham', 'spam'],
    positiveLabel: 'spam',
    dataDir: 'data/spam',
    format: 'seq-cls-jsonl',
    files: jsonlFiles,
  },
  {
    id: 'brown-pos',
    title: 'Brown corpus part-of-speech tagging (universal tags)',
    description: 'Tag every word of a Brown sentence with one of the 12 universal part-of-speech tags.',
    taskType: 'TOKEN_CLS',
    metrics: ['tokenAccuracy'],
    labels: UNIVERSAL_TAGS,
    dataDir: 'data/brown-pos',
    format: 'token-cls-jsonl',
    files: jsonlFiles,
  },
] as const satisfies readonly TaskInfo[];

export type TaskId = (typeof TASKS)[number]['id'];

export function taskById(id: string): TaskInfo | undefined {
  return TASKS.find((t) => t.id === id);
}

/** Counts and sizes of one split, as manifest.json records them. */
export interface SplitManifest {
  /** Examples in the file (sentences for TOKEN_CLS). */
  examples: number;
  /** Examples available before a cap was applied (equal to `examples` when uncapped). */
  available: number;
  bytes: number;
  /** Examples per label (SEQ_CLS) or tokens per tag (TOKEN_CLS). */
  labels: Record<string, number>;
  /** TOKEN_CLS: words in the file. */
  tokens?: number;
  /** Source documents in this split (Brown file ids), sorted. */
  documents?: string[];
}

/** manifest.json of a classification task. */
export interface TaskManifest {
  id: string;
  title: string;
  taskType: TaskType;
  labels: string[];
  metrics: MetricName[];
  format: DataFormat;
  source: string;
  licence: string;
  splitRule: string;
  preprocessing: string;
  caps: string;
  splits: Record<SplitName, SplitManifest>;
  /** Anything else worth knowing (label grouping, duplicates dropped). */
  notes?: Record<string, unknown>;
}
