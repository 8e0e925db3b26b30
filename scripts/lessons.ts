/**
 * Runs every lesson's experiments at their defaults on wasm in Node, one after another, and prints
 * each verdict with its wall time: the figures the Learn section's `cost` lines and the closing
 * note quote. `npm run bench:lessons -- [--lesson lora] [--step DoRA] [--set steps=80] [--json FILE]`
 * (--step: only the experiments whose title contains it; --set: a knob's value for every experiment
 * that has it). Each race lane is listed too, with its steps and macro-F1, so a lane that learned only
 * the class balance (macro-F1 near 1 / classes) shows whatever the verdict says.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { initNodeBackend } from '../src/lib/backend/node';
import { CompareEngine } from '../src/lib/engine/compare-engine';
import { publicFetch } from '../src/lib/engine/testing';
import { LESSONS } from '../src/lib/learn/lessons';
import { runExperiment } from '../src/lib/learn/runner';
import type { LessonRun } from '../src/lib/learn/types';

/** The held-out examples the race `id` scored each lane on. */
function evalExamplesOf(runs: LessonRun[], id: string): number | undefined {
  const r = runs.find((x) => x.id === id);
  return r?.kind === 'race' ? r.request.evalExamples : undefined;
}

const { values } = parseArgs({
  options: {
    lesson: { type: 'string' },
    step: { type: 'string' },
    json: { type: 'string' },
    set: { type: 'string', multiple: true },
  },
});
const given = Object.fromEntries(
  (values.set ?? []).map((kv) => {
    const [k, v] = kv.split('=') as [string, string];
    return [k, Number.isFinite(Number(v)) ? Number(v) : v];
  }),
);
await initNodeBackend('wasm');
const engine = new CompareEngine(publicFetch);
const out: unknown[] = [];
let loaded: string | null = null;
for (const lesson of LESSONS.filter((l) => !values.lesson || l.id === values.lesson)) {
  for (const step of lesson.steps.filter((s) => s.run && (!values.step || s.title.includes(values.step)))) {
    const cpu0 = process.cpuUsage();
    const o = await runExperiment(step, given, engine, { loadedModel: loaded });
    const { user, system } = process.cpuUsage(cpu0);
    // CPU seconds of this process: unlike the wall time, barely moved by other work on a shared machine.
    const cpu = (user + system) / 1e6;
    loaded = o.model;
    if (!o.verdict) throw new Error(`${lesson.id}: ${o.reason}`);
    console.log(`\n## ${lesson.number}. ${lesson.title} — ${step.title}`);
    // The machine's 1-minute load beside the wall time: on a shared machine it explains most of a time's spread.
    const load = loadavg()[0]!;
    console.log(
      `${(o.ms / 1000).toFixed(1)} s (${cpu.toFixed(1)} s of CPU, load ${load.toFixed(1)}) · ${o.verdict.outcome}`,
    );
    console.log(o.verdict.text);
    if (o.verdict.table) {
      console.log(`| ${o.verdict.table.columns.join(' | ')} |`);
      for (const r of o.verdict.table.rows) console.log(`| ${r.join(' | ')} |`);
    }
    const runs = step.run?.(o.values) ?? [];
    const lanes = Object.entries(o.results).flatMap(([run, r]) =>
      r.kind !== 'race'
        ? []
        : r.snapshot.lanes.map((l) => ({
            run,
            lane: l.name,
            steps: l.steps.length,
            evalExamples: evalExamplesOf(runs, run),
            metric: l.evals.at(-1)?.metric,
            macroF1: l.evals.at(-1)?.macroF1,
          })),
    );
    for (const l of lanes)
      console.log(
        `  ${l.run} / ${l.lane}: ${l.steps} steps, ${l.evalExamples} held out, ${l.metric?.toFixed(3)} after, macro-F1 ${l.macroF1?.toFixed(3)}`,
      );
    out.push({
      lesson: lesson.id,
      step: step.title,
      seconds: o.ms / 1000,
      cpuSeconds: cpu,
      load,
      values: o.values,
      lanes,
      verdict: o.verdict,
    });
  }
}
if (values.json) writeFileSync(values.json, JSON.stringify(out, null, 2));
