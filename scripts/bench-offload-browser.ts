/**
 * `npm run bench:offload:browser`: what ZeRO stage 3 costs in Chromium, through the Lab's own worker
 * and its IndexedDB page store, against the production build (`vite build` first) served by
 * `vite preview`. One tab trains LoRA (the Lab's defaults) resident (stage 0), then at stage 3 under a
 * budget of a quarter of the model's layer bytes, from IndexedDB (float32 and int8 pages, int8 being
 * the automatic choice there) and from page memory (float32, the automatic choice there); each run's
 * every step time is read off the page as it trains and the median of the steps after the first
 * (which pages out and records the prefetch trace) is reported, with its share of the resident run's
 * speed, and, from the Offload screen, the time per step spent waiting for pages, the bytes moved and
 * the share of layer page-ins whose record had been read ahead.
 *   npm run bench:offload:browser -- [--model peftlab-l] [--steps 8] [--batch 8] [--seqlen 64]
 *     [--backend wasm] [--share 0.25] [--port 4179]
 */
import { startPreview } from './bench/preview';
import { parseArgs } from 'node:util';
import { chromium } from '@playwright/test';
import type { Page } from '@playwright/test';
import { findChromium } from './chromium-path.mjs';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'peftlab-l' },
    steps: { type: 'string', default: '8' },
    batch: { type: 'string', default: '8' },
    seqlen: { type: 'string', default: '64' },
    backend: { type: 'string', default: 'wasm' },
    share: { type: 'string', default: '0.25' },
    port: { type: 'string', default: '4179' },
  },
});
const PORT = Number(values.port);
const { base, stop } = await startPreview(PORT);

async function setNumber(page: Page, testId: string, value: string | number): Promise<void> {
  await page.getByTestId(testId).fill(String(value));
  await page.getByTestId(testId).blur();
}

async function setCheck(page: Page, testId: string, on: boolean): Promise<void> {
  if ((await page.getByTestId(testId).isChecked()) !== on) await page.getByTestId(testId).click();
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The last run's totals from the Offload screen (stall, bytes moved), then back to the Lab. */
async function offloadTotals(page: Page): Promise<{ stallMs: number; moved: string; readAhead: string }> {
  await page.goto(`${base}/#/offload`);
  await page.getByTestId('stall-ms').waitFor();
  const stallMs = Number.parseFloat((await page.getByTestId('stall-ms').textContent()) ?? '');
  const moved = (await page.getByTestId('bytes-moved').textContent()) ?? '';
  const readAhead = (await page.getByTestId('read-ahead-rate').textContent())?.trim() ?? '';
  await page.goto(`${base}/#/lab`);
  await page.getByTestId('offload-settings').waitFor();
  return { stallMs, moved, readAhead };
}

async function openOffloadSettings(page: Page): Promise<void> {
  const details = page.getByTestId('offload-settings');
  if ((await details.getAttribute('open')) === null) await page.getByText('Memory and offload').click();
}

/** Trains once with the form as it is; every step's ms as the Lab showed it. */
async function run(page: Page): Promise<{ ms: number[]; loss: string }> {
  // A string, not a function: tsx's transform would name the inner arrow with a helper the page lacks.
  await page.evaluate(`(() => {
    window.__steps = new Map();
    window.__obs?.disconnect();
    window.__obs = new MutationObserver(() => {
      const step = document.querySelector('[data-testid="step"]')?.textContent ?? '';
      const ms = document.querySelector('[data-testid="step-ms"]')?.textContent ?? '';
      if (/^\\d+ \\/ \\d+$/.test(step) && /^\\d+ ms$/.test(ms) && !window.__steps.has(step))
        window.__steps.set(step, Number.parseFloat(ms));
    });
    window.__obs.observe(document.body, { subtree: true, childList: true, characterData: true });
  })()`);
  await page.getByTestId('train').click();
  // The last run's result goes when this one starts.
  await page.getByTestId('result').waitFor({ state: 'detached', timeout: 60_000 });
  await page.getByTestId('result').or(page.getByTestId('error')).waitFor({ timeout: 900_000 });
  if (await page.getByTestId('error').count())
    throw new Error(`the run failed: ${await page.getByTestId('error').textContent()}`);
  const ms = await page.evaluate<number[]>('[...window.__steps.values()]');
  return { ms, loss: (await page.getByTestId('loss').textContent()) ?? '' };
}

const browser = await chromium.launch({
  executablePath: findChromium(),
  args: ['--no-sandbox', '--disable-quic', '--no-first-run'],
});
try {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${base}/#/lab`);
  await page.getByTestId('backend-reason').waitFor({ timeout: 120_000 });
  await page.getByTestId('model-select').selectOption(values.model);
  await page.getByTestId('model-facts').waitFor();
  await page.getByTestId('backend-select').selectOption(values.backend);
  // The switch is asynchronous: train only once the header names the chosen backend's device
  // (backend.ts's descriptions), or the first run would time the automatic choice.
  const device = { 'wasm-threads': 'threads?$', wasm: '1 thread', webgl: 'WebGL', webgpu: 'WebGPU|adapter' }[
    values.backend!
  ];
  if (!device) throw new Error(`--backend ${values.backend}: one of wasm, wasm-threads, webgl, webgpu`);
  await page.waitForFunction(
    `new RegExp(${JSON.stringify(device)}, 'i').test(document.querySelector('[data-testid="backend-device"]')?.textContent ?? '')`,
    undefined,
    { timeout: 120_000 },
  );
  // The new backend reloads the model after the header changes; a click on Train before that ends
  // is refused as busy.
  await page.waitForTimeout(5000);
  await page.getByTestId('model-facts').waitFor();
  if (await page.getByTestId('error').count())
    throw new Error(`setting up failed: ${await page.getByTestId('error').textContent()}`);
  await setNumber(page, 'steps', values.steps);
  await setNumber(page, 'batch', values.batch);
  await setNumber(page, 'seqlen', values.seqlen);
  await setNumber(page, 'eval-every', 0);

  const rows: string[] = [];
  let residentMs = NaN;
  const report = (
    label: string,
    r: { ms: number[]; loss: string },
    paging?: { stallMs: number; moved: string; readAhead: string },
  ): void => {
    const m = median(r.ms.slice(1));
    if (Number.isNaN(residentMs)) residentMs = m;
    const stall = paging ? `${(paging.stallMs / r.ms.length).toFixed(0)}` : '';
    const line = `| ${label} | ${r.ms.length} | ${r.ms[0]?.toFixed(0)} | ${m.toFixed(0)} | ${((100 * residentMs) / m).toFixed(0)}% | ${stall} | ${paging?.moved ?? ''} | ${paging?.readAhead ?? ''} | ${r.loss} |`;
    console.error(line);
    rows.push(line);
  };
  report('resident (stage 0)', await run(page));

  await page.getByText('Memory and offload').click();
  // Recomputation alone (stage 0 with gradient checkpointing): what paging adds is the rest.
  await setCheck(page, 'offload-gc', true);
  report('resident, checkpointed', await run(page));
  await setCheck(page, 'offload-gc', false);
  await page.getByTestId('offload-stage').selectOption('3');
  const sizeText = (await page.getByTestId('offload-layers-size').textContent()) ?? '';
  const layersMB = Number(/about ([\d.]+) MB/.exec(sizeText)?.[1]);
  if (!Number.isFinite(layersMB)) throw new Error(`no layer size in "${sizeText}"`);
  const budget = (layersMB * Number(values.share)).toFixed(3);
  await setNumber(page, 'offload-budget', budget);
  await setNumber(page, 'checkpoint-every', 0);
  for (const [device, pages, label] of [
    ['indexeddb', 'false', 'float32'],
    ['indexeddb', 'auto', 'int8 (automatic)'],
    ['memory', 'auto', 'float32 (automatic)'],
  ] as const) {
    await openOffloadSettings(page);
    await page.getByTestId('offload-device').selectOption(device);
    await setCheck(page, 'offload-prefetch', true);
    await page.getByTestId('offload-pages').selectOption(pages);
    const r = await run(page);
    report(`stage 3, ${budget} MB, ${device}, ${label}`, r, await offloadTotals(page));
  }
  const ua = await page.evaluate(() => navigator.userAgent);
  console.log(
    `${ua.match(/Chrome\/[\d.]+/)?.[0] ?? ua}; backend ${values.backend}; ${values.model} (layers about ${layersMB} MB); LoRA (the Lab's defaults); batch ${values.batch} x ${values.seqlen}; ${values.steps} steps, median of the steps after the first\n`,
  );
  console.log(
    '| run | steps | first step ms | median ms/step | share of resident speed | waiting for pages, ms/step | bytes moved | read ahead | last loss |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
} finally {
  await browser.close();
  stop();
}
