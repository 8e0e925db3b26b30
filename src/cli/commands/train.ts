/**
 * `peft-lab train`: fine-tune a model folder with one registry method on a task, report held-out
 * loss before and after, and optionally save the adapter in PEFT's format.
 */
import { familyDefaults, modelFamily, parseModelConfig } from '../../lib/model/family';
import { resolveModelArg } from '../hub';
import { join } from 'node:path';
import { SettingsError, UsageError } from '../../lib/errors';
import { weightsF16Problem } from '../../lib/train/weights-f16-rules';
import { int, num, requiredStr, str } from '../args';
import type { OptionSpec } from '../args';
import type { Command } from '../command';
import { GLOBAL_HELP, print, startBackend } from '../command';
import { prepareOutDir, readModelDir, readText, writeAdapterDir } from '../model-dir';
import { buildConfig, methodFlagsHelp, methodOptions, pickMethod, validateWithFlags } from '../method-flags';
import {
  METHOD_INFO,
  checkRunFits,
  checkTaskSupported,
  configForRun,
  methodInfo,
} from '../../lib/peft/catalog';
import { formatDuration, formatRate } from '../progress';
import { runSteps } from '../run-steps';
import { SWARM_HELP, SWARM_OPTIONS, swarmClient, swarmFlags } from '../swarm-client';
import { DEFAULT_TASK, TASKS, taskByName } from '../tasks';
import { EVAL_EXAMPLES } from '../../lib/data/task-data';

/** Causal-LM held-out evaluation covers at most this many batches, so it takes seconds, not minutes. */
const EVAL_BATCHES = 16;

export const train: Command = {
  name: 'train',
  summary: 'fine-tune a model with a PEFT method and save the adapter',
  // usage and options list the catalog's methods and their flags as they are when asked.
  get usage(): string {
    return `Usage: peft-lab train --model DIR --method NAME [options]

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
  --weights-f16           hold the frozen linear-layer weights as f16 (half their memory): for the
                          webgpu backend and adapter methods only, so refused on wasm and cpu (the
                          CLI's backends); the Lab offers it on webgpu
  --json                  print the result as one JSON line
${SWARM_HELP}
Method settings (PEFT's names; defaults are PEFT's; AdaLoRA's totalStep is --steps):
${methodFlagsHelp()}

${GLOBAL_HELP}`;
  },
  get options(): OptionSpec {
    return {
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
      'weights-f16': { type: 'boolean' },
      json: { type: 'boolean' },
      ...SWARM_OPTIONS,
      ...methodOptions(),
    };
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
    const swarm = swarmFlags(values);
    if (swarm && method.kind !== 'prompt' && method.kind !== 'prefix' && method.peftType !== 'LORA') {
      throw new UsageError(
        `--swarm trains prompt-tuning, p-tuning, prefix-tuning, p-tuning-v2 and lora; ${method.cliName} is not one yet`,
      );
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
    const defaults = method.defaults(task.info.taskType);
    // PEFT's target modules for the folder's family (GPT-2's are the methods' own defaults).
    const family = modelFamily(parseModelConfig(files.files.config, `${files.dir}/config.json`));
    const config = configForRun(
      buildConfig(values, method, {
        ...defaults,
        ...familyDefaults(defaults.peftType, family),
        baseModelNameOrPath: files.name,
      }),
      steps,
    );
    const weightsF16 = values['weights-f16'] === true;
    if (weightsF16) {
      // Refused before anything loads: the same rule as the Lab's (train/weights-f16-rules.ts).
      const problem = weightsF16Problem({
        backend: flags.backend,
        methodKind: method.kind,
        useDora: (config as { useDora?: boolean }).useDora === true,
        toWebGpu: 'train in the Lab on its webgpu backend (the CLI runs wasm or cpu)',
      });
      if (problem) throw new SettingsError(`--weights-f16: ${problem}`);
    }
    const out = str(values, 'out');
    if (out !== undefined) prepareOutDir(out);

    await startBackend(flags);
    const { loadModel, needTokenizer } = await import('../load');
    const { Trainer } = await import('../../lib/train/trainer');
    const { saveAdapter } = await import('../../lib/io/peft-format');
    const { countParameters } = await import('../../lib/model/family');
    const { countTrainable } = await import('../../lib/peft/state');
    const { createAdapter } = await import('../../lib/train/plan');
    const { loadTaskData } = await import('../../lib/data/task-data');
    const { evaluateTask, taskBatchSource } = await import('../../lib/train/task-eval');
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
    const log = (line: string): void => void process.stderr.write(`${line}\n`);
    log(`tokenizing ${task.name}...`);
    let data;
    try {
      data = await loadTaskData(task.info, tokenizer, async (f) => readText(join(task.dir, f)), {
        seqLen: s.seqLen,
        evalExamples: EVAL_EXAMPLES,
      });
    } catch (e) {
      throw new UsageError(`--task ${task.name}: ${(e as Error).message}`);
    }
    const adapter = createAdapter(model, tokenizer, method, config, task.info, s.seed);
    if (weightsF16) log(`f16 weights: ${((await model.packWeightsF16()) / 2 ** 20).toFixed(2)} MiB freed`);
    const trainable = countTrainable(adapter);
    let headParams = 0;
    for (const p of adapter.head?.params().values() ?? []) headParams += p.variable.size;
    // All parameters of the adapted model, its new head included (as PEFT's print_trainable_parameters).
    const total = countParameters(model.config) + (method.kind === 'full' ? headParams : trainable);
    log(
      `${method.label}: ${trainable.toLocaleString('en-US')} trainable of ${total.toLocaleString('en-US')} parameters; evaluating...`,
    );
    const evalOpts = { batchSize: s.batchSize, seqLen: s.seqLen, maxBatches: EVAL_BATCHES };
    const before = await evaluateTask(model, adapter, data, evalOpts);
    // Through the swarm only the training steps' blocks run on the peers; evaluation stays here.
    const { requireGpt2 } = await import('../../lib/model/decoder');
    const client = swarm ? await swarmClient(requireGpt2(model, 'The swarm'), swarm, log) : null;
    let run;
    try {
      const { swarmGradientFn } = await import('../../lib/swarm/client');
      const gradients = client ? swarmGradientFn(client, adapter) : undefined;
      run = await runSteps(
        new Trainer(model, adapter, taskBatchSource(data, s.seqLen), { ...s, gradients }),
        steps,
      );
    } finally {
      client?.close();
    }
    const { last, tokens, seconds } = run;
    const after = await evaluateTask(model, adapter, data, evalOpts);
    const saved = out !== undefined ? writeAdapterDir(out, await saveAdapter(adapter, files.name)) : [];
    adapter.dispose();
    model.dispose();

    const isLm = data.kind === 'lm';
    const metric = isLm ? 'perplexity' : task.info.taskType === 'TOKEN_CLS' ? 'token accuracy' : 'accuracy';
    const evalJson = (e: typeof before): Record<string, number> => ({
      loss: e.loss,
      metric: e.metric,
      ...(isLm ? { perplexity: e.metric } : { macro_f1: e.macroF1 ?? NaN }),
    });
    const result = {
      method: method.cliName,
      peft_type: method.peftType,
      task: task.name,
      steps,
      trainable_params: trainable,
      total_params: total,
      final_loss: last,
      metric,
      eval_before: evalJson(before),
      eval_after: evalJson(after),
      eval_examples: data.kind === 'lm' ? 0 : data.valid.examples.length,
      seconds,
      tokens_per_sec: tokens / seconds,
      out: out ?? null,
    };
    if (values.json) return print(JSON.stringify(result));
    const pct = ((100 * trainable) / total).toFixed(trainable < total ? 3 : 0);
    const size =
      data.kind === 'lm'
        ? `${data.train.length.toLocaleString('en-US')} training tokens, ${data.valid.length.toLocaleString('en-US')} validation tokens`
        : `${data.train.examples.length} training examples, ${data.valid.examples.length} validation examples scored`;
    const heldOut = isLm
      ? `loss ${before.loss.toFixed(4)} -> ${after.loss.toFixed(4)}, perplexity ${before.metric.toFixed(2)} -> ${after.metric.toFixed(2)}`
      : `${metric} ${before.metric.toFixed(4)} -> ${after.metric.toFixed(4)}, loss ${before.loss.toFixed(4)} -> ${after.loss.toFixed(4)}`;
    const rows: [string, string][] = [
      [
        'method',
        `${method.label} (${method.cliName}): ${trainable.toLocaleString('en-US')} trainable of ${total.toLocaleString('en-US')} parameters (${pct}%${isLm ? '' : ', head included'})`,
      ],
      ['task', `${task.name}: ${size}`],
      [
        'steps',
        `${steps} in ${formatDuration(seconds)} (${formatRate(tokens / seconds)} tok/s), last train loss ${last.toFixed(4)}`,
      ],
      ['held-out', heldOut],
    ];
    if (saved.length) rows.push(['saved', saved.join(', ')]);
    print(rows.map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n'));
  },
};
