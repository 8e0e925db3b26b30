/**
 * `peft-lab train`: fine-tune a model folder with one registry method on a task, report held-out
 * loss before and after, and optionally save the adapter in PEFT's format.
 */
import { resolveModelArg } from '../hub';
import { join } from 'node:path';
import { UsageError } from '../../lib/errors';
import { int, num, requiredStr, str } from '../args';
import type { Command } from '../command';
import { GLOBAL_HELP, print, startBackend } from '../command';
import { formatBytes, prepareOutDir, readModelDir, readText, writeAdapterDir } from '../model-dir';
import { METHOD_OPTIONS, buildConfig, methodFlagsHelp, pickMethod, validateWithFlags } from '../method-flags';
import {
  METHOD_INFO,
  checkRunFits,
  checkTaskSupported,
  configForRun,
  methodInfo,
} from '../../lib/peft/catalog';
import { formatDuration, formatRate } from '../progress';
import { runSteps } from '../run-steps';
import { DEFAULT_TASK, TASKS, taskByName } from '../tasks';
import { trainClassification } from './train-cls';

/** Held-out evaluation covers at most this many batches, so it takes seconds, not minutes. */
const EVAL_BATCHES = 16;

export const train: Command = {
  name: 'train',
  summary: 'fine-tune a model with a PEFT method and save the adapter',
  usage: `Usage: peft-lab train --model DIR --method NAME [options]

Fine-tunes on a task (default ${DEFAULT_TASK}: causal LM on its train.txt), printing held-out loss
and perplexity on validation.txt before and after (at most ${EVAL_BATCHES} batches).

Options:
  --model DIR|REPO        model folder (config.json, model.safetensors, tokenizer.json), or a Hub
                          repo id (owner/name), downloaded once into ~/.cache/peft-lab/hub
  --method NAME           ${METHOD_INFO.map((m) => m.cliName).join(', ')}
  --task NAME             ${TASKS.map((t) => `${t.name} (${t.description})`).join('; ')}
  --steps N               optimizer steps (default 200)
  --lr LR                 peak learning rate (default: the method's, e.g. 3e-3 LoRA, 3e-2 prompt
                          tuning, 3e-4 full)
  --warmup-steps N        linear warmup (default min(100, steps / 10))
  --batch-size N          sequences per step (default 8)
  --seq-len N             tokens per sequence (default 64)
  --seed S                seed for init, batches and dropout (default 0)
  --out DIR               write adapter_config.json and adapter_model.safetensors there
  --json                  print the result as one JSON line
Method settings (PEFT's names; defaults are PEFT's; AdaLoRA's totalStep is --steps):
${methodFlagsHelp()}

${GLOBAL_HELP}`,
  options: {
    model: { type: 'string' },
    method: { type: 'string' },
    task: { type: 'string' },
    steps: { type: 'string' },
    lr: { type: 'string' },
    'warmup-steps': { type: 'string' },
    'batch-size': { type: 'string' },
    'seq-len': { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
    ...METHOD_OPTIONS,
  },
  async run(values, flags) {
    const dir = requiredStr(values, 'model', 'the model folder to fine-tune');
    const method = pickMethod(values, await import('../../lib/peft/registry'));
    const task = taskByName(str(values, 'task') ?? DEFAULT_TASK);
    try {
      checkTaskSupported(method.cliName, task.info.taskType);
    } catch (e) {
      throw new UsageError(`--method ${method.cliName} --task ${task.name}: ${(e as Error).message}`);
    }
    const steps = int(values, 'steps', 200, { min: 1 });
    const s = {
      steps,
      lr: num(values, 'lr', methodInfo(method.cliName).defaultLr, { min: 0, exclusiveMin: true }),
      warmupSteps: int(values, 'warmup-steps', undefined, { min: 0 }),
      batchSize: int(values, 'batch-size', 8, { min: 1, max: 4096 }),
      seqLen: int(values, 'seq-len', 64, { min: 1 }),
      seed: int(values, 'seed', 0, { min: 0, max: 2 ** 31 - 1 }),
      maxGradNorm: 1.0,
    };
    const files = readModelDir(await resolveModelArg(dir));
    const config = configForRun(
      buildConfig(values, method, {
        ...method.defaults(task.info.taskType),
        baseModelNameOrPath: files.name,
      }),
      steps,
    );
    const out = str(values, 'out');
    if (out !== undefined) prepareOutDir(out);
    const isLm = task.info.taskType === 'CAUSAL_LM';
    const trainText = isLm ? readText(join(task.dir, 'train.txt')) : '';
    const validText = isLm ? readText(join(task.dir, 'validation.txt')) : '';

    await startBackend(flags);
    const { loadModel, needTokenizer } = await import('../load');
    const { Trainer, evaluateLm } = await import('../../lib/train/trainer');
    const { saveAdapter } = await import('../../lib/io/peft-format');
    const { countParameters } = await import('../../lib/model/config');
    const { countTrainable } = await import('../../lib/peft/state');
    const m = loadModel(files);
    const tokenizer = needTokenizer(m, 'train');
    const { model } = m;
    if (s.seqLen > model.config.nPositions) {
      throw new UsageError(
        `--seq-len ${s.seqLen} is longer than the model's n_positions ${model.config.nPositions}`,
      );
    }
    validateWithFlags(method, config, model);
    try {
      checkRunFits(config, s.seqLen, model.config.nPositions);
    } catch (e) {
      throw new UsageError(`--seq-len: ${(e as Error).message}`);
    }
    if (!isLm) {
      const { withHeadConfig } = await import('../../lib/peft/task-head');
      const encode = (t: string): number[] => tokenizer.encode(t);
      const cfg = withHeadConfig(config, task.info.labels, encode);
      const adapter = method.create(model, cfg as never, s.seed, { tokenize: encode });
      const r = await trainClassification(task, model, tokenizer, adapter, s);
      const trainable = countTrainable(adapter);
      let headParams = 0;
      for (const p of adapter.head?.params().values() ?? []) headParams += p.variable.size;
      const saved = out !== undefined ? writeAdapterDir(out, await saveAdapter(adapter, files.name)) : [];
      adapter.dispose();
      model.dispose();
      const result = {
        method: method.cliName,
        peft_type: method.peftType,
        task: task.name,
        steps,
        trainable_params: trainable,
        // All parameters of the adapted model, its new head included (as PEFT's print_trainable_parameters).
        total_params: countParameters(model.config) + headParams,
        final_loss: r.last,
        metric: r.metric,
        eval_before: r.before,
        eval_after: r.after,
        eval_examples: r.evalExamples,
        seconds: r.seconds,
        tokens_per_sec: r.tokens / r.seconds,
        out: out ?? null,
      };
      if (values.json) return print(JSON.stringify(result));
      print(
        [
          [
            'method',
            `${method.label} (${method.cliName}): ${trainable.toLocaleString('en-US')} trainable parameters (head included)`,
          ],
          [
            'task',
            `${task.name}: ${r.trainExamples} training examples, ${r.evalExamples} validation examples scored`,
          ],
          [
            'steps',
            `${steps} in ${formatDuration(r.seconds)} (${formatRate(r.tokens / r.seconds)} tok/s), last train loss ${r.last.toFixed(4)}`,
          ],
          [
            'held-out',
            `${r.metric} ${r.before.metric.toFixed(4)} -> ${r.after.metric.toFixed(4)}, loss ${r.before.loss.toFixed(4)} -> ${r.after.loss.toFixed(4)}`,
          ],
          ...(saved.length ? [['saved', saved.join(', ')]] : []),
        ]
          .map(([k, v]) => `${k!.padEnd(9)} ${v}`)
          .join('\n'),
      );
      return;
    }

    const log = (line: string): void => void process.stderr.write(`${line}\n`);
    log(
      `tokenizing ${task.name} (${formatBytes(Buffer.byteLength(trainText) + Buffer.byteLength(validText))})...`,
    );
    const trainIds = Int32Array.from(tokenizer.encode(trainText));
    const validIds = Int32Array.from(tokenizer.encode(validText));
    for (const [split, ids] of [
      ['train', trainIds],
      ['validation', validIds],
    ] as const) {
      if (ids.length < s.seqLen + 1) {
        throw new UsageError(
          `${task.dir}${split}.txt has ${ids.length} tokens, fewer than one window (--seq-len ${s.seqLen} + 1)`,
        );
      }
    }

    const adapter = method.create(model, config as never, s.seed, { tokenize: (t) => tokenizer.encode(t) });
    const trainable = countTrainable(adapter);
    const total = countParameters(model.config);
    const evalOpts = { batchSize: s.batchSize, seqLen: s.seqLen, maxBatches: EVAL_BATCHES };
    log(
      `${method.label}: ${trainable.toLocaleString('en-US')} trainable of ${total.toLocaleString('en-US')} parameters; evaluating...`,
    );
    const before = await evaluateLm(model, adapter, validIds, evalOpts);

    const { last, tokens, seconds } = await runSteps(new Trainer(model, adapter, trainIds, s), steps);
    const after = await evaluateLm(model, adapter, validIds, evalOpts);

    let saved: string[] = [];
    if (out !== undefined) saved = writeAdapterDir(out, await saveAdapter(adapter, files.name));
    adapter.dispose();
    model.dispose();

    const result = {
      method: method.cliName,
      peft_type: method.peftType,
      task: task.name,
      steps,
      trainable_params: trainable,
      total_params: total,
      final_loss: last,
      eval_before: { loss: before.loss, perplexity: before.perplexity },
      eval_after: { loss: after.loss, perplexity: after.perplexity },
      seconds,
      tokens_per_sec: tokens / seconds,
      out: out ?? null,
    };
    if (values.json) {
      print(JSON.stringify(result));
      return;
    }
    const pct = ((100 * trainable) / total).toFixed(trainable < total ? 3 : 0);
    const rows: [string, string][] = [
      [
        'method',
        `${method.label} (${method.cliName}): ${trainable.toLocaleString('en-US')} trainable of ${total.toLocaleString('en-US')} parameters (${pct}%)`,
      ],
      [
        'task',
        `${task.name}: ${trainIds.length.toLocaleString('en-US')} training tokens, ${validIds.length.toLocaleString('en-US')} validation tokens`,
      ],
      [
        'steps',
        `${steps} in ${formatDuration(seconds)} (${formatRate(tokens / seconds)} tok/s), last train loss ${last.toFixed(4)}`,
      ],
      [
        'held-out',
        `loss ${before.loss.toFixed(4)} -> ${after.loss.toFixed(4)}, perplexity ${before.perplexity.toFixed(2)} -> ${after.perplexity.toFixed(2)} (${after.tokens.toLocaleString('en-US')} tokens)`,
      ],
    ];
    if (saved.length) rows.push(['saved', saved.join(', ')]);
    print(rows.map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n'));
  },
};
