/**
 * The classification half of `peft-lab train` (SEQ_CLS and TOKEN_CLS tasks): reads the task's
 * JSONL splits, tokenizes, gives the adapter its head (score or classifier, as HF names them),
 * trains, and reports the task's metric on the validation split before and after.
 */
import { join } from 'node:path';
import { UsageError } from '../../lib/errors';
import type { Gpt2Model } from '../../lib/model/gpt2';
import type { Adapter } from '../../lib/peft/types';
import type { TaskHead } from '../../lib/model/heads';
import type { EncodedSet } from '../../lib/data/cls-data';
import type { TextTokenizer } from '../../lib/tokenizer/tokenizer';
import type { TrainerOptions } from '../../lib/train/trainer';
import { readText } from '../model-dir';
import { runSteps } from '../run-steps';
import type { CliTask } from '../tasks';

/** Validation is scored on at most this many examples, so it takes seconds. */
export const EVAL_EXAMPLES = 256;

export interface ClsRunResult {
  metric: string;
  before: { loss: number; metric: number };
  after: { loss: number; metric: number };
  last: number;
  tokens: number;
  seconds: number;
  trainExamples: number;
  evalExamples: number;
}

function readJsonl(path: string): Record<string, unknown>[] {
  return readText(path)
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new UsageError(`${path}:${i + 1}: not a JSON object`);
      }
    });
}

/** A task's JSONL split tokenized to at most seqLen tokens (the first `cap` examples); unknown labels are named. */
export async function encodeClsSplit(
  task: CliTask,
  tokenizer: TextTokenizer,
  split: 'train' | 'validation' | 'test',
  seqLen: number,
  cap = Infinity,
): Promise<EncodedSet> {
  const { encodeSeqCls, encodeTokenCls } = await import('../../lib/data/cls-data');
  const info = task.info;
  const labelId = new Map(info.labels.map((l, i) => [l, i]));
  const id = (l: unknown, where: string): number => {
    const i = labelId.get(String(l));
    if (i === undefined) throw new UsageError(`${where}: unknown label ${JSON.stringify(l)}`);
    return i;
  };
  const padId = tokenizer.eosTokenId ?? 0;
  const path = join(task.dir, info.files[split]);
  const rows = readJsonl(path).slice(0, cap);
  return info.taskType === 'SEQ_CLS'
    ? encodeSeqCls(
        tokenizer,
        rows.map((r) => ({ text: String(r.text), label: id(r.label, path) })),
        padId,
        seqLen,
      )
    : encodeTokenCls(
        tokenizer,
        rows.map((r) => ({ words: r.words as string[], tags: (r.tags as string[]).map((t) => id(t, path)) })),
        padId,
        seqLen,
      );
}

/** Loss and the task's metric (accuracy, or token accuracy for TOKEN_CLS) of the adapter's head on a set. */
export async function scoreClassification(
  model: Gpt2Model,
  adapter: Adapter,
  head: TaskHead,
  set: EncodedSet,
  batchSize: number,
): Promise<{ loss: number; metric: number; macroF1: number }> {
  const { evaluateClassification } = await import('../../lib/train/classification');
  const e = await evaluateClassification(model, adapter, head, set, { batchSize });
  return {
    loss: e.loss,
    metric: set.task === 'TOKEN_CLS' ? (e.tokenAccuracy ?? e.accuracy) : e.accuracy,
    macroF1: e.macroF1,
  };
}

export const metricName = (taskType: string): string =>
  taskType === 'TOKEN_CLS' ? 'token accuracy' : 'accuracy';

export async function trainClassification(
  task: CliTask,
  model: Gpt2Model,
  tokenizer: TextTokenizer,
  adapter: Adapter,
  s: TrainerOptions,
): Promise<ClsRunResult> {
  const { headFor } = await import('../../lib/peft/task-head');
  const { Trainer } = await import('../../lib/train/trainer');
  const { clsBatchSource } = await import('../../lib/train/classification');
  const info = task.info;
  const trainSet = await encodeClsSplit(task, tokenizer, 'train', s.seqLen);
  const evalSet = await encodeClsSplit(task, tokenizer, 'validation', s.seqLen, EVAL_EXAMPLES);
  const head = headFor(
    model,
    adapter.config,
    info.taskType as 'SEQ_CLS' | 'TOKEN_CLS',
    info.labels.length,
    s.seed + 1,
  );
  adapter.attachHead!(head);
  const score = async (): Promise<{ loss: number; metric: number }> => {
    const { loss, metric } = await scoreClassification(model, adapter, head, evalSet, s.batchSize);
    return { loss, metric };
  };
  const before = await score();
  const { last, tokens, seconds } = await runSteps(
    new Trainer(model, adapter, clsBatchSource(trainSet), s),
    s.steps,
  );
  return {
    metric: metricName(info.taskType),
    before,
    after: await score(),
    last,
    tokens,
    seconds,
    trainExamples: trainSet.examples.length,
    evalExamples: evalSet.examples.length,
  };
}
