/**
 * `peft-lab compare`: the Compare screen's race in Node. Several methods train on one model, one
 * task, the same seed and batches, in interleaved turns; prints a progress bar per method, then
 * the results table and who won what, and can write every step, evaluation and memory ledger as
 * JSON and the table as CSV.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PeftConfigError, UsageError } from '../../lib/errors';
import { methodRequest } from '../../lib/peft/method-config';
import { isTaskType } from '../../lib/data/tasks/registry';
import { METHOD_INFO, methodInfo } from '../../lib/peft/catalog';
import type { RaceResults } from '../../lib/race/results';
import { formatMetric } from '../../lib/race/results';
import { int, list, num, requiredStr, str } from '../args';
import type { Command } from '../command';
import { GLOBAL_HELP, print, startBackend } from '../command';
import { resolveModelArg } from '../hub';
import { formatBytes, readModelDir, readText } from '../model-dir';
import { formatRate } from '../progress';
import { RaceProgress } from '../race-progress';
import { DEFAULT_TASK, TASKS, taskByName } from '../tasks';

export const compare: Command = {
  name: 'compare',
  summary: 'race several methods on the same model, task, data and seed',
  usage: `Usage: peft-lab compare --model DIR --methods NAME,NAME,... [options]

Trains each method on the same task, seed and batches, one step per method in turn, evaluating on
the validation split before, every --eval-every steps and at the end; then prints a results table.

Options:
  --model DIR|REPO        model folder, or a Hub repo id (owner/name)
  --methods LIST          comma-separated: ${METHOD_INFO.map((m) => m.cliName).join(', ')}; or "all"
                          (every method that trains the task); a method may appear twice
  --task NAME             ${TASKS.map((t) => t.name).join(', ')} (default ${DEFAULT_TASK})
  --steps N               optimizer steps per method (default 100)
  --time-budget SECONDS   also stop each method after this much of its own training time
  --batch-size N          sequences per step (default 8)
  --seq-len N             tokens per sequence (default 64)
  --seed S                seed for init, batches and dropout, the same for every method (default 0)
  --eval-every N          evaluate every N steps (default steps / 5)
  --lr LIST               learning rates per method, e.g. lora=3e-3,prompt-tuning=3e-2 (default: each
                          method's own)
  --config JSON           method settings in PEFT's names, e.g. '{"lora":{"r":4},"p-tuning":
                          {"encoderReparameterizationType":"LSTM"}}'
  --equal-budget          size every method to about the same trainable parameters (LoRA's r,
                          AdaLoRA's initR, virtual tokens, encoder width; IA3 and full keep theirs)
  --budget N              the equal budget's target (default: prompt tuning's default soft prompt)
  --target X              the metric value "steps to target" counts to (default 90% of the best
                          final accuracy, or 110% of the best final perplexity)
  --json FILE             write settings, every step's loss, the evaluations and each memory ledger
  --csv FILE              write the results table

${GLOBAL_HELP}`,
  options: {
    model: { type: 'string' },
    methods: { type: 'string' },
    task: { type: 'string' },
    steps: { type: 'string' },
    'time-budget': { type: 'string' },
    'batch-size': { type: 'string' },
    'seq-len': { type: 'string' },
    seed: { type: 'string' },
    'eval-every': { type: 'string' },
    lr: { type: 'string' },
    config: { type: 'string' },
    'equal-budget': { type: 'boolean' },
    budget: { type: 'string' },
    target: { type: 'string' },
    json: { type: 'string' },
    csv: { type: 'string' },
  },
  async run(values, flags) {
    const dir = requiredStr(values, 'model', 'the model folder to fine-tune');
    const task = taskByName(str(values, 'task') ?? DEFAULT_TASK);
    const methods = pickMethods(list(values, 'methods'), task.info.taskType);
    const steps = int(values, 'steps', 100, { min: 1 });
    const timeBudget = num(values, 'time-budget', undefined, { min: 0, exclusiveMin: true });
    const settings = {
      steps,
      timeBudgetMs: timeBudget === undefined ? undefined : timeBudget * 1000,
      batchSize: int(values, 'batch-size', 8, { min: 1, max: 4096 }),
      seqLen: int(values, 'seq-len', 64, { min: 1 }),
      seed: int(values, 'seed', 0, { min: 0, max: 2 ** 31 - 1 }),
      evalEvery: int(values, 'eval-every', Math.max(1, Math.floor(steps / 5)), { min: 0 }),
    };
    const lrs = parseLrs(list(values, 'lr'), methods);
    const configs = parseConfigs(str(values, 'config'), methods);
    const budget = int(values, 'budget', undefined, { min: 1 });
    const target = num(values, 'target', undefined);
    const files = readModelDir(await resolveModelArg(dir));

    await startBackend(flags);
    const { loadModel, needTokenizer } = await import('../load');
    const { Race } = await import('../../lib/race/race');
    const { loadTaskData } = await import('../../lib/data/task-data');
    const { defaultBudget, sizeToBudget } = await import('../../lib/race/equal-budget');
    const { raceResults, resultsCsv } = await import('../../lib/race/results');
    const m = loadModel(files);
    const tokenizer = needTokenizer(m, 'compare');
    const model = m.model;
    if (settings.seqLen > model.config.nPositions) {
      throw new UsageError(
        `--seq-len ${settings.seqLen} is longer than the model's n_positions ${model.config.nPositions}`,
      );
    }
    process.stderr.write(`tokenizing ${task.name}...\n`);
    const data = await loadTaskData(task.info, tokenizer, async (f) => readText(join(task.dir, f)), {
      seqLen: settings.seqLen,
    });
    const progress = new RaceProgress(steps);
    const race = new Race(model, tokenizer, files.name, data, settings, {
      onStep: (lane, p) => progress.update(lane.id, p.step, p.loss, (1000 * p.tokens) / p.ms),
      onLane: (lane) => {
        if (lane.status === 'failed') progress.note(lane.id, `failed: ${lane.error}`);
      },
    });
    const equal = values['equal-budget'] === true || budget !== undefined;
    const targetParams = equal ? (budget ?? defaultBudget(model, task.info.taskType)) : null;
    try {
      for (const name of methods) {
        let config = configs[name] ?? {};
        if (targetParams !== null) {
          config = sizeToBudget(
            model,
            name,
            config,
            task.info.taskType,
            targetParams,
            settings.seqLen,
          ).config;
        }
        let lane;
        try {
          lane = race.addLane({ ...methodRequest(name, config), lr: lrs[name] });
        } catch (e) {
          if (e instanceof PeftConfigError) throw new UsageError(`${name}: ${e.message}`);
          throw e;
        }
        progress.lane(lane.id, lane.name);
      }
      if (targetParams !== null) {
        process.stderr.write(
          `equal budget: about ${targetParams.toLocaleString('en-US')} adapter parameters each\n`,
        );
      }
      const lanes = await race.run();
      const results = raceResults(race.metric, lanes, target);
      if (values.json !== undefined) {
        const json = {
          model: files.name,
          task: task.name,
          taskType: task.info.taskType,
          metric: race.metric,
          settings: { ...settings, equalBudget: targetParams },
          target: results.target,
          lanes,
          results: results.rows,
          verdicts: results.verdicts,
        };
        writeFileSync(str(values, 'json')!, `${JSON.stringify(json, null, 1)}\n`);
      }
      if (values.csv !== undefined) writeFileSync(str(values, 'csv')!, resultsCsv(results));
      print(formatTable(results));
    } finally {
      race.dispose();
      model.dispose();
    }
  },
};

/** Method names from --methods ("all": every method that trains the task type). */
export function pickMethods(names: string[] | undefined, taskType: string): string[] {
  if (names === undefined) {
    throw new UsageError(
      `--methods is required: a comma-separated list of ${METHOD_INFO.map((m) => m.cliName).join(', ')}, or all`,
    );
  }
  if (names.length === 1 && names[0] === 'all') {
    return METHOD_INFO.filter((m) => isTaskType(taskType) && m.taskTypes.includes(taskType)).map(
      (m) => m.cliName,
    );
  }
  for (const n of names) {
    try {
      methodInfo(n);
    } catch (e) {
      throw new UsageError(`--methods: ${(e as Error).message}`);
    }
  }
  return names;
}

/** `lora=3e-3,prompt-tuning=3e-2` -> learning rate per method. */
export function parseLrs(items: string[] | undefined, methods: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items ?? []) {
    const [name, value] = item.split('=');
    const lr = Number(value);
    if (!name || value === undefined || !Number.isFinite(lr) || lr <= 0) {
      throw new UsageError(
        `--lr: each item is METHOD=RATE with a rate > 0, e.g. lora=3e-3; got ${JSON.stringify(item)}`,
      );
    }
    if (!methods.includes(name))
      throw new UsageError(`--lr: ${name} is not one of --methods (${methods.join(', ')})`);
    out[name] = lr;
  }
  return out;
}

/** `{"lora": {"r": 4}}` -> settings per method; unknown methods and fields are named. */
export function parseConfigs(
  raw: string | undefined,
  methods: string[],
): Record<string, Record<string, unknown>> {
  if (raw === undefined) return {};
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new UsageError(`--config is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UsageError('--config must be a JSON object of method name -> settings, e.g. {"lora":{"r":4}}');
  }
  const out: Record<string, Record<string, unknown>> = {};
  for (const [name, cfg] of Object.entries(json)) {
    if (!methods.includes(name)) {
      throw new UsageError(`--config: ${name} is not one of --methods (${methods.join(', ')})`);
    }
    if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) {
      throw new UsageError(`--config: the settings of ${name} must be an object`);
    }
    const fields = methodInfo(name).fields.map((f) => f.field);
    for (const k of Object.keys(cfg)) {
      if (!fields.includes(k)) {
        throw new UsageError(
          `--config: ${name} has no setting "${k}"${fields.length ? `; its settings are ${fields.join(', ')}` : ''}`,
        );
      }
    }
    out[name] = cfg as Record<string, unknown>;
  }
  return out;
}

/** The results as an aligned text table, then the verdicts. */
export function formatTable(r: RaceResults): string {
  const head = [
    'method',
    'trainable',
    '%',
    'peak memory',
    'ms/step',
    'tok/s',
    'final loss',
    r.metric,
    'steps to target',
  ];
  const rows = r.rows.map((x) => [
    x.name + (x.status === 'failed' ? ' (failed)' : x.status === 'stopped' ? ' (stopped)' : ''),
    x.trainableParams.toLocaleString('en-US'),
    x.trainablePercent < 1 ? x.trainablePercent.toFixed(3) : x.trainablePercent.toFixed(1),
    formatBytes(x.peakBytes) + (x.peakMeasured ? '' : ' (pred.)'),
    Number.isFinite(x.msPerStep) ? x.msPerStep.toFixed(0) : '-',
    Number.isFinite(x.tokensPerSec) ? formatRate(x.tokensPerSec) : '-',
    Number.isFinite(x.finalLoss) ? x.finalLoss.toFixed(4) : '-',
    `${formatMetric(r.metric, x.metricBefore)} -> ${formatMetric(r.metric, x.metric)}`,
    x.stepsToTarget === null ? '-' : String(x.stepsToTarget),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    `target: ${formatMetric(r.metric, r.target)}`,
    ...r.verdicts,
  ].join('\n');
}
