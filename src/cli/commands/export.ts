/**
 * `peft-lab export`: the run `peft-lab train` would make, written as a Python project (train.py for
 * transformers + PEFT, accelerate and DeepSpeed configs, the task data as JSONL, the tokenizer,
 * pinned requirements, a README) for a person to run on bigger machines. The writer is the lib's
 * (src/lib/export/python-project.ts); this command reads the files and checks the settings.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { FileLoadError, PeftConfigError, UsageError } from '../../lib/errors';
import { int, num, requiredStr, str } from '../args';
import type { OptionSpec } from '../args';
import type { Command } from '../command';
import { GLOBAL_HELP, print, startBackend } from '../command';
import { resolveModelArg } from '../hub';
import { prepareOutDir, readModelDir, readText } from '../model-dir';
import { buildConfig, pickMethod, validateWithFlags } from '../method-flags';
import { checkRunFits, checkTaskSupported, configForRun, methodInfo } from '../../lib/peft/catalog';
import { DEFAULT_OFFLOAD, mapDeepSpeedConfig } from '../../lib/offload/deepspeed';
import type { OffloadSettings, OffloadTarget } from '../../lib/offload/deepspeed';
import { writePythonProject } from '../../lib/export/python-project';
import { familyDefaults, modelFamily, parseModelConfig } from '../../lib/model/family';
import { DEFAULT_TASK, taskByName } from '../tasks';
import { train } from './train';

const TARGETS: readonly OffloadTarget[] = ['none', 'cpu', 'nvme'];

function target(v: string | undefined, flag: string, fallback: OffloadTarget): OffloadTarget {
  if (v === undefined) return fallback;
  if (!(TARGETS as readonly string[]).includes(v))
    throw new UsageError(`--${flag} must be one of ${TARGETS.join(', ')}, got ${JSON.stringify(v)}`);
  return v as OffloadTarget;
}

export const exportCommand: Command = {
  name: 'export',
  summary:
    'write the run `train` would make as a Python project (transformers + PEFT, accelerate, DeepSpeed)',
  get usage(): string {
    return `Usage: peft-lab export --model DIR --method NAME --out DIR [train's options] [options]

Writes a folder to run elsewhere: train.py (transformers + PEFT: the same base model, method config,
task data as JSONL, tokenizer, hyperparameters, schedule and seed; "python train.py --max-steps N"
overrides the steps; the adapter is saved to output/), settings.json, pinned requirements.txt,
accelerate configs for several GPUs and for DeepSpeed, ds_config.json and a README with the commands.
Nothing is trained here.

Takes every option of "peft-lab train" (see peft-lab train --help); --out is the project folder.
Also:
  --grad-accum N            micro-batches per optimizer step (default 1)
  --max-grad-norm X         gradient clipping (default 1; 0 turns it off)
  --zero-stage 0|1|2|3      DeepSpeed ZeRO stage for ds_config.json (default 0)
  --offload-optimizer none|cpu|nvme   where ZeRO puts optimizer state (stage 1 or more)
  --offload-param none|cpu|nvme       where ZeRO puts parameters (stage 3)
  --gradient-checkpointing  recompute activations in the backward (the model's switch in train.py)
  --ds-config FILE          start from a DeepSpeed ds.json (the flags above override it)

${GLOBAL_HELP}`;
  },
  get options(): OptionSpec {
    return {
      ...train.options,
      'grad-accum': { type: 'string' },
      'max-grad-norm': { type: 'string' },
      'zero-stage': { type: 'string' },
      'offload-optimizer': { type: 'string' },
      'offload-param': { type: 'string' },
      'gradient-checkpointing': { type: 'boolean' },
      'ds-config': { type: 'string' },
    };
  },
  async run(values, flags) {
    const modelArg = requiredStr(values, 'model', 'the base model folder or Hub repo id');
    const out = requiredStr(values, 'out', 'the folder to write the Python project to');
    const method = pickMethod(values, await import('../../lib/peft/registry'));
    const task = taskByName(str(values, 'task') ?? DEFAULT_TASK);
    try {
      checkTaskSupported(method.cliName, task.info.taskType);
    } catch (e) {
      throw new UsageError(`--method ${method.cliName} --task ${task.name}: ${(e as Error).message}`);
    }
    // The same defaults as `peft-lab train`.
    const steps = int(values, 'steps', 200, { min: 1 });
    const run = {
      steps,
      lr: num(values, 'lr', methodInfo(method.cliName).defaultLr, { min: 0, exclusiveMin: true }),
      warmupSteps: int(values, 'warmup-steps', Math.min(100, Math.floor(steps / 10)), { min: 0 }),
      batchSize: int(values, 'batch-size', 8, { min: 1, max: 4096 }),
      seqLen: int(values, 'seq-len', 64, { min: 1 }),
      seed: int(values, 'seed', 0, { min: 0, max: 2 ** 31 - 1 }),
      weightDecay: 0,
    };
    let offload: OffloadSettings = { ...DEFAULT_OFFLOAD };
    const dsPath = str(values, 'ds-config');
    if (dsPath !== undefined) {
      try {
        offload = mapDeepSpeedConfig(readText(dsPath)).settings;
      } catch (e) {
        if (e instanceof PeftConfigError) throw new UsageError(`--ds-config ${dsPath}: ${e.message}`);
        throw e;
      }
    }
    const stage = int(values, 'zero-stage', offload.stage, { min: 0, max: 3 }) as OffloadSettings['stage'];
    offload = {
      stage,
      offloadOptimizer: target(
        str(values, 'offload-optimizer'),
        'offload-optimizer',
        offload.offloadOptimizer,
      ),
      offloadParam: target(str(values, 'offload-param'), 'offload-param', offload.offloadParam),
      gradientAccumulationSteps: int(values, 'grad-accum', offload.gradientAccumulationSteps, { min: 1 }),
      maxGradNorm: num(values, 'max-grad-norm', offload.maxGradNorm, { min: 0 }),
      gradientCheckpointing: values['gradient-checkpointing'] === true || offload.gradientCheckpointing,
    };
    if (offload.offloadParam !== 'none' && stage < 3)
      throw new UsageError(`--offload-param needs --zero-stage 3 (ZeRO moves parameters at stage 3 only)`);
    if (offload.offloadOptimizer !== 'none' && stage < 1)
      throw new UsageError(`--offload-optimizer needs --zero-stage 1 or more`);

    const localDir = await resolveModelArg(modelArg);
    const files = readModelDir(localDir);
    // A folder given on the command line is written as its absolute path; a Hub id stays an id.
    const baseModel = existsSync(modelArg) ? resolve(modelArg) : modelArg;
    const defaults = method.defaults(task.info.taskType);
    // PEFT's target modules for the folder's family, as `train` takes them (GPT-2's are the defaults).
    const family = modelFamily(parseModelConfig(files.files.config, `${files.dir}/config.json`));
    const config = configForRun(
      buildConfig(values, method, {
        ...defaults,
        ...familyDefaults(defaults.peftType, family),
        baseModelNameOrPath: baseModel,
      }),
      steps,
    );

    // The settings are checked on the model itself, as `train` checks them, before anything is written.
    await startBackend(flags);
    const { loadModel, needTokenizer } = await import('../load');
    const m = loadModel(files);
    const tokenizer = needTokenizer(m, 'export');
    try {
      if (run.seqLen > m.model.config.nPositions) {
        throw new UsageError(
          `--seq-len ${run.seqLen} is longer than the model's n_positions ${m.model.config.nPositions}`,
        );
      }
      validateWithFlags(method, config, m.model);
      try {
        checkRunFits(config, run.seqLen, m.model.config.nPositions);
      } catch (e) {
        throw new UsageError(`--seq-len: ${(e as Error).message}`);
      }
    } finally {
      m.model.dispose();
    }

    const projectFiles = writePythonProject({
      baseModel,
      tokenizerJson: JSON.stringify(files.tokenizerJson),
      padTokenId: tokenizer.eosTokenId ?? 0,
      method: { cliName: method.cliName, label: method.label, peftType: method.peftType },
      config,
      task: {
        id: task.info.id,
        title: task.info.title,
        taskType: task.info.taskType,
        labels: task.info.labels,
        format: task.info.format === 'text' ? 'text' : 'jsonl',
      },
      splits: {
        train: readText(join(task.dir, task.info.files.train)),
        validation: readText(join(task.dir, task.info.files.validation)),
      },
      run,
      offload,
      template: null,
      source: `peft-lab export --model ${modelArg} --method ${method.cliName} --task ${task.name} --steps ${steps}`,
    });
    prepareOutDir(out);
    for (const f of projectFiles) {
      const path = join(out, f.path);
      try {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, f.content);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw new FileLoadError(`${err.path ?? path}: cannot write (${err.code ?? err.message})`);
      }
    }
    if (values.json) {
      return print(
        JSON.stringify({
          out,
          files: projectFiles.map((f) => f.path),
          method: method.cliName,
          task: task.name,
        }),
      );
    }
    print(
      `wrote ${out}: ${projectFiles.map((f) => f.path).join(', ')}\n` +
        `run: cd ${out} && pip install -r requirements.txt && python train.py   (see README.md)`,
    );
  },
};
