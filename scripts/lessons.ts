/**
 * Runs every lesson's experiments at their defaults on wasm in Node, one after another, and prints
 * each verdict with its wall time: the figures the Learn section's `cost` lines and the closing
 * note quote. `npm run bench:lessons -- [--lesson lora] [--step DoRA] [--json FILE]` (--step: only
 * the experiments whose title contains it)
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { initNodeBackend } from '../src/lib/backend/node';
import { CompareEngine } from '../src/lib/engine/compare-engine';
import { publicFetch } from '../src/lib/engine/testing';
import { LESSONS } from '../src/lib/learn/lessons';
import { runExperiment } from '../src/lib/learn/runner';

const { values } = parseArgs({
  options: { lesson: { type: 'string' }, step: { type: 'string' }, json: { type: 'string' } },
});
await initNodeBackend('wasm');
const engine = new CompareEngine(publicFetch);
const out: unknown[] = [];
let loaded: string | null = null;
for (const lesson of LESSONS.filter((l) => !values.lesson || l.id === values.lesson)) {
  for (const step of lesson.steps.filter((s) => s.run && (!values.step || s.title.includes(values.step)))) {
    const o = await runExperiment(step, {}, engine, { loadedModel: loaded });
    loaded = o.model;
    if (!o.verdict) throw new Error(`${lesson.id}: ${o.reason}`);
    console.log(`\n## ${lesson.number}. ${lesson.title} — ${step.title}`);
    console.log(`${(o.ms / 1000).toFixed(1)} s · ${o.verdict.outcome}`);
    console.log(o.verdict.text);
    if (o.verdict.table) {
      console.log(`| ${o.verdict.table.columns.join(' | ')} |`);
      for (const r of o.verdict.table.rows) console.log(`| ${r.join(' | ')} |`);
    }
    out.push({ lesson: lesson.id, step: step.title, seconds: o.ms / 1000, verdict: o.verdict });
  }
}
if (values.json) writeFileSync(values.json, JSON.stringify(out, null, 2));
