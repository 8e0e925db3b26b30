/**
 * The classification half of `peft-lab train` (SEQ_CLS and TOKEN_CLS tasks): reads the task's
 * JSONL splits, tokenizes, gives the adapter its head (score or classifier, as HF names them),
 * trains, and reports the task's metric on the validation split before and after.
 */
import { join } from 'node:path';
import { UsageError } from '../../lib/errors';
import type { Gpt2Model } from '../../lib/model/gpt2';
import type { Adapter } from '../../lib/peft/types';
import type { TextTokenizer } from '../../lib/tokenizer/tokenizer';
import type { TrainerOptions } from '../../lib/train/trainer';
import { readText } from '../model-dir';
import { runSteps } from '../run-steps';
import type { CliTask } from '../tasks';

/** Validation is scored on at most this many examples, so it takes seconds. */
const EVAL_EXAMPLES = 256;

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

export async function trainClassification(
  task: CliTask,
  model: Gpt2Model,
  tokenizer: TextTokenizer,
  adapter: Adapter,
  s: TrainerOptions,
): Promise<ClsRunResult> {
  const { headFor } = await import('../../lib/peft/task-head');
  const { encodeSeqCls, encodeTokenCls } = await import('../../lib/data/cls-data');
  const { Trainer } = await import('../../lib/train/trainer');
  const { clsBatchSource, evaluateClassification } = await import('../../lib/train/classification');
  const info = task.info;
  const labelId = new Map(info.labels.map((l, i) => [l, i]));
  const id = (l: unknown, where: string): number => {
    const i = labelId.get(String(l));
    if (i === undefined) throw new UsageError(`${where}: unknown label ${JSON.stringify(l)}`);
    return i;
  };
  const padId = tokenizer.eosTokenId ?? 0;
  const encode = (split: 'train' | 'validation', cap = Infinity) => {
    const path = join(task.dir, info.files[split]);
    const rows = readJsonl(path).slice(0, cap);
    return info.taskType === 'SEQ_CLS'
      ? encodeSeqCls(
          tokenizer,
          rows.map((r) => ({ text: String(r.text), label: id(r.label, path) })),
          padId,
          s.seqLen,
        )
      : encodeTokenCls(
          tokenizer,
          rows.map((r) => ({
            words: r.words as string[],
            tags: (r.tags as string[]).map((t) => id(t, path)),
          })),
          padId,
          s.seqLen,
        );
  };
  const trainSet = encode('train');
  const evalSet = encode('validation', EVAL_EXAMPLES);
  const head = headFor(
    model,
    adapter.config,
    info.taskType as 'SEQ_CLS' | 'TOKEN_CLS',
    info.labels.length,
    s.seed + 1,
  );
  adapter.attachHead!(head);
  const score = async () => {
    const e = await evaluateClassification(model, adapter, head, evalSet, { batchSize: s.batchSize });
    return {
      loss: e.loss,
      metric: info.taskType === 'TOKEN_CLS' ? (e.tokenAccuracy ?? e.accuracy) : e.accuracy,
    };
  };
  const before = await score();
  const { last, tokens, seconds } = await runSteps(
    new Trainer(model, adapter, clsBatchSource(trainSet), s),
    s.steps,
  );
  return {
    metric: info.taskType === 'TOKEN_CLS' ? 'token accuracy' : 'accuracy',
    before,
    after: await score(),
    last,
    tokens,
    seconds,
    trainExamples: trainSet.examples.length,
    evalExamples: evalSet.examples.length,
  };
}
