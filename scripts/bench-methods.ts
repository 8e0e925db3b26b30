/**
 * Every method on the same model, tasks, steps and seed, through the `peft-lab train` command:
 * trainable parameters (head included) and the task metric on the validation split (first 256
 * examples) before and after. One run of each, one after another, so the numbers come from one run.
 *   npm run bench:methods -- [--model public/models/peftlab-m] [--steps 100] [--tasks spam,brown-pos]
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { METHOD_INFO } from '../src/lib/peft/catalog';
import { TASKS } from '../src/lib/data/tasks/registry';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'public/models/peftlab-m' },
    steps: { type: 'string', default: '100' },
    tasks: { type: 'string', default: 'spam,brown-pos' },
    'batch-size': { type: 'string', default: '8' },
    'seq-len': { type: 'string', default: '64' },
    seed: { type: 'string', default: '0' },
  },
});

interface Result {
  trainable_params: number;
  total_params: number;
  metric: string;
  eval_before: { metric: number };
  eval_after: { metric: number; loss: number };
  seconds: number;
}

const rows: string[] = [];
for (const taskId of values.tasks!.split(',')) {
  const task = TASKS.find((t) => t.id === taskId);
  if (!task) throw new Error(`unknown task ${taskId}`);
  for (const m of METHOD_INFO.filter((x) => x.taskTypes.includes(task.taskType))) {
    const args = [
      'bin/peft-lab.mjs',
      ...['train', '--model', values.model!, '--method', m.cliName, '--task', taskId],
      ...['--steps', values.steps!, '--batch-size', values['batch-size']!, '--seq-len', values['seq-len']!],
      ...['--seed', values.seed!, '--json'],
    ];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) {
      rows.push(`| ${taskId} | ${m.label} | failed: ${r.stderr.trim().split('\n').at(-1)} | | | |`);
      continue;
    }
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Result;
    const pct = ((100 * j.trainable_params) / j.total_params).toFixed(2);
    rows.push(
      `| ${taskId} | ${m.label} | ${j.trainable_params.toLocaleString('en-US')} (${pct}%) | ${j.metric} ${j.eval_before.metric.toFixed(3)} -> **${j.eval_after.metric.toFixed(3)}** | ${j.eval_after.loss.toFixed(3)} | ${j.seconds.toFixed(0)} |`,
    );
    process.stderr.write(`${rows.at(-1)}\n`);
  }
}
console.log(
  `${values.model}, ${values.steps} steps, batch ${values['batch-size']} x ${values['seq-len']} tokens, seed ${values.seed}, each method's default learning rate\n`,
);
console.log('| task | method | trainable (of all) | validation metric before -> after | loss after | s |');
console.log('|---|---|---|---|---|---|');
console.log(rows.join('\n'));
