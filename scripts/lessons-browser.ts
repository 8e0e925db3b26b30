/**
 * `npm run bench:lessons:browser`: every lesson's experiments at their defaults in Chromium, through
 * the Learn screen's own buttons (a click on Run, then the verdict read off the page), one after
 * another in one tab, against the production build (`vite build` first). Prints each verdict and
 * the wall time from the click to the verdict, model loading included.
 *   npm run bench:lessons:browser -- [--lesson lora] [--step DoRA] [--set knob=value ...] [--json FILE]
 * --step runs only the experiments whose title contains it.
 * --set fills a knob of every experiment that has it (e.g. --lesson offload --set layers=7) before Run,
 * and the whole verdict table is printed too.
 */
import { startPreview } from './bench/preview';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { chromium } from '@playwright/test';
import { findChromium } from './chromium-path.mjs';
import { LESSONS } from '../src/lib/learn/lessons';

const { values } = parseArgs({
  options: {
    lesson: { type: 'string' },
    step: { type: 'string' },
    json: { type: 'string' },
    set: { type: 'string', multiple: true },
  },
});
const sets = (values.set ?? []).map((kv) => kv.split('=') as [string, string]);
const PORT = 4177;
const { base, stop } = await startPreview(PORT);
const browser = await chromium.launch({
  executablePath: findChromium(),
  args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--enable-unsafe-webgpu'],
});
const out: { lesson: string; step: string; seconds: number; outcome: string; text: string }[] = [];
try {
  const page = await browser.newPage();
  for (const lesson of LESSONS.filter((l) => !values.lesson || l.id === values.lesson)) {
    await page.goto(`${base}/#/learn?lesson=${lesson.id}`);
    const steps = page.getByTestId('lesson-step');
    for (const [i, step] of lesson.steps.entries()) {
      if (!step.run || (values.step && !step.title.includes(values.step))) continue;
      const el = steps.nth(i);
      for (const [knob, value] of sets) {
        if (!step.setup?.some((k) => k.id === knob)) continue;
        await el.getByTestId(`knob-${knob}`).fill(value);
        await el.getByTestId(`knob-${knob}`).blur();
      }
      await el.getByTestId('experiment-run').click();
      const t0 = performance.now();
      // The verdict, or the error that stopped the experiment.
      await el
        .locator('[data-testid="verdict-outcome"], [data-testid="experiment-error"]')
        .first()
        .waitFor({ timeout: 600_000 });
      const seconds = (performance.now() - t0) / 1000;
      const outcome = (await el.getByTestId('verdict-outcome').textContent())?.trim() ?? '';
      const text = (await el.getByTestId('verdict-text').textContent())?.trim() ?? '';
      const err = await el.getByTestId('experiment-error').count();
      if (err) throw new Error(`${lesson.id}: ${await el.getByTestId('experiment-error').textContent()}`);
      console.log(
        `\n## ${lesson.number}. ${lesson.title}: ${step.title}\n${seconds.toFixed(1)} s · ${outcome}\n${text}`,
      );
      const table = el.getByTestId('verdict-table').locator('tr');
      const rows = await table.evaluateAll((trs) =>
        trs.map((tr) => [...tr.children].map((c) => (c.textContent ?? '').trim()).join(' | ')),
      );
      for (const r of rows) console.log(`| ${r} |`);
      out.push({ lesson: lesson.id, step: step.title, seconds, outcome, text });
    }
  }
} finally {
  await browser.close();
  stop();
}
if (values.json) writeFileSync(values.json, JSON.stringify(out, null, 2));
