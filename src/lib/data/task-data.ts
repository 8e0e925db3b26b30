/**
 * A task's training and validation data, tokenized once with the model's tokenizer, whatever reads
 * the split files (fetch in the browser, the file system in the CLI): next-token streams for
 * CAUSAL_LM, encoded examples for SEQ_CLS / TOKEN_CLS, and the metric the task is judged by. No
 * tfjs: the UI reads the metric helpers. Batching and scoring with a model live in
 * train/task-eval.ts, so the Lab, the CLI and every lane of a race are fed and judged by one code.
 */
import { FileLoadError, PeftConfigError } from '../errors';
import { encodeSeqCls, encodeTokenCls, parseTemplate } from './cls-data';
import type { EncodedSet, PromptTemplate } from './cls-data';
import type { TaskInfo } from './tasks/registry';
import type { TextTokenizer } from '../tokenizer/tokenizer';

/** Reads one split file of the task (a name from `TaskInfo.files`) as text. */
export type ReadSplit = (file: string) => Promise<string>;

/** The number a task is judged by: perplexity (lower is better) or an accuracy in 0..1. */
export type TaskMetric = 'perplexity' | 'accuracy' | 'tokenAccuracy';

/** A held-out score of the model with an adapter (train/task-eval.ts computes it). */
export interface TaskScore {
  /** Mean cross-entropy: per token (CAUSAL_LM), per example (SEQ_CLS) or per word (TOKEN_CLS). */
  loss: number;
  /** The task metric's value (metricOf): perplexity = exp(loss), accuracy or token accuracy. */
  metric: number;
  /** Classification only: macro-F1 over the same predictions. */
  macroF1?: number;
  /** Causal LM only: tokens scored. */
  tokens?: number;
}

/** A held-out score at an optimizer step: the Lab's eval events and every lane's evaluations. */
export interface EvalPoint extends TaskScore {
  step: number;
}

export type TaskData =
  | { kind: 'lm'; info: TaskInfo; train: Int32Array; valid: Int32Array }
  | { kind: 'cls'; info: TaskInfo; train: EncodedSet; valid: EncodedSet };

/** Classification validation is scored on at most this many examples, so an evaluation takes seconds. */
export const EVAL_EXAMPLES = 256;
/** Causal-LM validation covers at most this many batches. */
export const EVAL_BATCHES = 8;

export function metricOf(info: TaskInfo): TaskMetric {
  if (info.taskType === 'CAUSAL_LM') return 'perplexity';
  return info.taskType === 'TOKEN_CLS' ? 'tokenAccuracy' : 'accuracy';
}

/** Whether a larger value of the metric is better. */
export const higherIsBetter = (m: TaskMetric): boolean => m !== 'perplexity';

/** Parses a JSONL split ({text, label} or {words, tags}) into encoded examples; bad lines are named. */
export function encodeClsSplit(
  info: TaskInfo,
  text: string,
  where: string,
  tokenizer: TextTokenizer,
  maxLength: number,
  cap = Infinity,
  template?: PromptTemplate,
): EncodedSet {
  const labelId = new Map(info.labels.map((l, i) => [l, i]));
  const id = (l: unknown, line: number): number => {
    const i = labelId.get(String(l));
    if (i === undefined) {
      throw new FileLoadError(
        `${where}:${line}: unknown label ${JSON.stringify(l)}; the task's labels are ${info.labels.join(', ')}`,
      );
    }
    return i;
  };
  const rows: Record<string, unknown>[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && rows.length < cap; i++) {
    if (lines[i]!.trim() === '') continue;
    try {
      rows.push(JSON.parse(lines[i]!) as Record<string, unknown>);
    } catch {
      throw new FileLoadError(`${where}:${i + 1}: not a JSON object`);
    }
  }
  const padId = tokenizer.eosTokenId ?? 0;
  if (info.taskType === 'SEQ_CLS') {
    return encodeSeqCls(
      tokenizer,
      rows.map((r, i) => ({ text: String(r.text), label: id(r.label, i + 1) })),
      padId,
      maxLength,
      template,
    );
  }
  return encodeTokenCls(
    tokenizer,
    rows.map((r, i) => {
      if (!Array.isArray(r.words) || !Array.isArray(r.tags) || r.words.length !== r.tags.length) {
        throw new FileLoadError(`${where}:${i + 1}: needs "words" and "tags" arrays of the same length`);
      }
      return { words: r.words as string[], tags: (r.tags as unknown[]).map((t) => id(t, i + 1)) };
    }),
    padId,
    maxLength,
  );
}

/**
 * Reads and tokenizes the train and validation splits. `seqLen` is the window (CAUSAL_LM) or the
 * truncation length (classification).
 */
export async function loadTaskData(
  info: TaskInfo,
  tokenizer: TextTokenizer,
  read: ReadSplit,
  opts: { seqLen: number; evalExamples?: number; template?: string },
): Promise<TaskData> {
  if (opts.template && info.taskType !== 'SEQ_CLS') {
    throw new PeftConfigError(
      `a prompt template wraps a sequence-classification input; ${info.title} is ${info.taskType}: clear the template`,
    );
  }
  // A template without exactly one {text} is refused as a PeftConfigError by parseTemplate.
  const template = opts.template ? parseTemplate(opts.template) : undefined;
  const [trainText, validText] = await Promise.all([read(info.files.train), read(info.files.validation)]);
  if (info.taskType === 'CAUSAL_LM') {
    const train = Int32Array.from(tokenizer.encode(trainText));
    const valid = Int32Array.from(tokenizer.encode(validText));
    // A short (imported) text could hold less than one window: say so rather than score nothing.
    for (const [split, ids] of [
      ['train', train],
      ['validation', valid],
    ] as const) {
      if (ids.length < opts.seqLen + 1) {
        throw new FileLoadError(
          `the ${split} split of ${info.title} is ${ids.length} tokens, shorter than one window of ` +
            `${opts.seqLen + 1}: lower the sequence length below ${Math.max(1, ids.length - 1)}, or use a longer text`,
        );
      }
    }
    return { kind: 'lm', info, train, valid };
  }
  const where = (file: string): string => `${info.id}/${file}`;
  // A template that leaves no room for the input is refused as a PeftConfigError by encodeSeqCls.
  const train = encodeClsSplit(
    info,
    trainText,
    where(info.files.train),
    tokenizer,
    opts.seqLen,
    Infinity,
    template,
  );
  const valid = encodeClsSplit(
    info,
    validText,
    where(info.files.validation),
    tokenizer,
    opts.seqLen,
    opts.evalExamples ?? EVAL_EXAMPLES,
    template,
  );
  if (train.examples.length === 0 || valid.examples.length === 0) {
    throw new FileLoadError(`${info.id}: the train or validation split has no examples`);
  }
  return { kind: 'cls', info, train, valid };
}
