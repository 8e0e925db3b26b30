/**
 * `peft-lab eval`: scores a saved adapter (or the base model, for a language-modelling task) on a
 * task's validation split with the same evaluation `train` reports: held-out loss and perplexity
 * for CAUSAL_LM, the head's accuracy (token accuracy) and macro-F1 for SEQ_CLS / TOKEN_CLS.
 */
import { join } from 'node:path';
import { resolveModelArg } from '../hub';
import { UsageError } from '../../lib/errors';
import { int, requiredStr, str } from '../args';
import type { Command } from '../command';
import { GLOBAL_HELP, print, startBackend } from '../command';
import { readAdapterDir, readModelDir, readText } from '../model-dir';
import { DEFAULT_TASK, TASKS, taskByName } from '../tasks';
import { EVAL_EXAMPLES } from '../../lib/data/task-data';

/** As `train`: at most this many batches of held-out text. */
const EVAL_BATCHES = 16;

export const evalCommand: Command = {
  name: 'eval',
  summary: 'score a saved adapter on a task',
  usage: `Usage: peft-lab eval --model DIR --adapter DIR [--task NAME] [options]

Scores the adapter on the task's validation split: loss and perplexity (at most ${EVAL_BATCHES} batches) for
language modelling, accuracy and macro-F1 of its head (first ${EVAL_EXAMPLES} examples) for classification.
Without --adapter, a language-modelling task scores the base model.

Options:
  --model DIR|REPO        model folder, or a Hub repo id (owner/name)
  --adapter DIR           PEFT adapter folder (adapter_config.json, adapter_model.safetensors)
  --task NAME             ${TASKS.map((t) => t.name).join(', ')} (default ${DEFAULT_TASK})
  --batch-size N          sequences per batch (default 8)
  --seq-len N             tokens per sequence (default 64)
  --json                  print the result as one JSON line

${GLOBAL_HELP}`,
  options: {
    model: { type: 'string' },
    adapter: { type: 'string' },
    task: { type: 'string' },
    'batch-size': { type: 'string' },
    'seq-len': { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values, flags) {
    const dir = requiredStr(values, 'model', 'the model folder the adapter was trained on');
    const task = taskByName(str(values, 'task') ?? DEFAULT_TASK);
    const batchSize = int(values, 'batch-size', 8, { min: 1, max: 4096 });
    const seqLen = int(values, 'seq-len', 64, { min: 1 });
    const adapterPath = str(values, 'adapter');
    const isLm = task.info.taskType === 'CAUSAL_LM';
    if (adapterPath === undefined && !isLm) {
      throw new UsageError(
        `--adapter is needed for ${task.name}: a ${task.info.taskType} task is scored by the adapter's head`,
      );
    }
    const modelFiles = readModelDir(await resolveModelArg(dir));
    const adapterFiles = adapterPath === undefined ? null : readAdapterDir(adapterPath);

    await startBackend(flags);
    const { loadModel, needTokenizer } = await import('../load');
    const { loadAdapter } = await import('../../lib/io/peft-format');
    const { checkRunFits } = await import('../../lib/peft/catalog');
    const m = loadModel(modelFiles);
    const tokenizer = needTokenizer(m, 'eval');
    const adapter = adapterFiles ? loadAdapter(m.model, adapterFiles, adapterFiles.source) : null;
    const taskType = adapter?.config.taskType ?? 'CAUSAL_LM';
    if (taskType !== task.info.taskType) {
      throw new UsageError(
        `${adapterFiles?.source ?? 'the base model'} is a ${taskType} adapter; --task ${task.name} is ${task.info.taskType}: pick a ${taskType} task`,
      );
    }
    if (adapter) {
      try {
        checkRunFits(adapter.config, seqLen, m.model.config.nPositions);
      } catch (e) {
        throw new UsageError(`--seq-len: ${(e as Error).message}`);
      }
    }
    const { encodeClsSplit } = await import('../../lib/data/task-data');
    const { evaluateTask } = await import('../../lib/train/task-eval');
    const validFile = join(task.dir, task.info.files.validation);
    let result: Record<string, unknown>;
    if (isLm) {
      const valid = Int32Array.from(tokenizer.encode(readText(validFile)));
      const data = { kind: 'lm' as const, info: task.info, train: new Int32Array(0), valid };
      const e = await evaluateTask(m.model, adapter, data, { batchSize, seqLen, maxBatches: EVAL_BATCHES });
      result = { metric: 'perplexity', loss: e.loss, perplexity: e.metric, tokens: e.tokens };
    } else {
      const head = adapter!.head!;
      if (head.numLabels !== task.info.labels.length) {
        throw new UsageError(
          `the adapter's head has ${head.numLabels} classes; task ${task.name} has ${task.info.labels.length} (${task.info.labels.join(', ')})`,
        );
      }
      const set = encodeClsSplit(task.info, readText(validFile), validFile, tokenizer, seqLen, EVAL_EXAMPLES);
      const data = { kind: 'cls' as const, info: task.info, train: { ...set, examples: [] }, valid: set };
      const e = await evaluateTask(m.model, adapter, data, { batchSize, seqLen });
      const name = taskType === 'TOKEN_CLS' ? 'token accuracy' : 'accuracy';
      result = {
        metric: name,
        [name.replace(' ', '_')]: e.metric,
        macro_f1: e.macroF1,
        loss: e.loss,
        examples: set.examples.length,
      };
    }
    adapter?.dispose();
    m.model.dispose();
    const out: Record<string, unknown> = {
      task: task.name,
      adapter: adapterPath ?? null,
      peft_type: adapter?.config.peftType ?? null,
      ...result,
    };
    if (values.json) return print(JSON.stringify(out));
    print(
      Object.entries(out)
        .map(([k, v]) => `${k.padEnd(12)} ${typeof v === 'number' ? Number(v.toFixed(4)) : String(v)}`)
        .join('\n'),
    );
  },
};
