/**
 * A task's batch source for a Trainer and its held-out score (loss and the task metric), over the
 * tokenized data of data/task-data.ts: the Lab, the CLI, offload trials and every lane of a race are
 * fed and judged by this one code.
 */
import { FileLoadError } from '../errors';
import type { TaskData, TaskScore } from '../data/task-data';
import { EVAL_BATCHES } from '../data/task-data';
import type { DecoderModel } from '../model/decoder';
import type { Adapter } from '../peft/types';
import { clsBatchSource, evaluateClassification } from './classification';
import { evaluateLm, lmBatchSource } from './trainer';
import type { BatchSource } from './trainer';

/** The batches a Trainer draws for this task. */
export function taskBatchSource(data: TaskData, seqLen: number): BatchSource {
  return data.kind === 'lm' ? lmBatchSource(data.train, seqLen) : clsBatchSource(data.train);
}

/** Held-out loss and metric of the model with `adapter` (its head for classification). */
export async function evaluateTask(
  model: DecoderModel,
  adapter: Adapter | null,
  data: TaskData,
  opts: { batchSize: number; seqLen: number; maxBatches?: number },
): Promise<TaskScore> {
  if (data.kind === 'lm') {
    const e = await evaluateLm(model, adapter, data.valid, {
      batchSize: opts.batchSize,
      seqLen: opts.seqLen,
      maxBatches: opts.maxBatches ?? EVAL_BATCHES,
    });
    return { loss: e.loss, metric: e.perplexity, tokens: e.tokens };
  }
  const head = adapter?.head;
  if (!head)
    throw new FileLoadError(`${data.info.id} is a ${data.info.taskType} task: the adapter needs a head`);
  const e = await evaluateClassification(model, adapter, head, data.valid, { batchSize: opts.batchSize });
  return {
    loss: e.loss,
    metric: data.info.taskType === 'TOKEN_CLS' ? (e.tokenAccuracy ?? e.accuracy) : e.accuracy,
    macroF1: e.macroF1,
  };
}
