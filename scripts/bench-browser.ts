/**
 * `npm run bench:browser`: LoRA training in Chromium through the Lab's own worker, on each backend
 * choice (wasm with threads, wasm on one thread, webgpu, webgl), against the production build
 * (`vite build` first), served by `vite preview` with COOP/COEP so wasm may use threads. Prints the
 * automatic choice's reason (its measured figures) and, per backend, the last step's ms and tokens/s
 * as the Lab shows them and the wall time per step from the click on Train to the result.
 *   npm run bench:browser -- [--steps 8] [--batch 4] [--seqlen 32] [--gpu-steps 3] [--model peftlab-s]
 * Here WebGPU is SwiftShader (software, ENVIRONMENT.md): its run is cut to --gpu-steps steps.
 */
import { startPreview } from './bench/preview';
import { parseArgs } from 'node:util';
import { chromium } from '@playwright/test';
import type { Page } from '@playwright/test';
import { findChromium } from './chromium-path.mjs';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '8' },
    batch: { type: 'string', default: '4' },
    seqlen: { type: 'string', default: '32' },
    'gpu-steps': { type: 'string', default: '3' },
    model: { type: 'string', default: 'peftlab-s' },
  },
});
const PORT = 4178;
const { base, stop } = await startPreview(PORT);

async function setNumber(page: Page, testId: string, value: string): Promise<void> {
  await page.getByTestId(testId).fill(value);
  await page.getByTestId(testId).blur();
}

const browser = await chromium.launch({
  executablePath: findChromium(),
  args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--enable-unsafe-webgpu'],
});
try {
  // A fresh context: nothing kept, so the automatic choice measures.
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  const t0 = performance.now();
  await page.goto(`${base}/#/lab`);
  await page.getByTestId('backend-reason').waitFor({ timeout: 120_000 });
  const startS = (performance.now() - t0) / 1000;
  const isolated = await page.evaluate(() => crossOriginIsolated);
  console.log(
    `crossOriginIsolated: ${isolated}; hardwareConcurrency: ${await page.evaluate(() => navigator.hardwareConcurrency)}`,
  );
  console.log(
    `auto (first start, ${startS.toFixed(1)} s to the reason): ${await page.getByTestId('backend-name').textContent()}`,
  );
  console.log(`  ${await page.getByTestId('backend-reason').textContent()}`);
  await page.getByTestId('model-select').selectOption(values.model);
  await page.getByTestId('model-facts').waitFor();

  console.log(
    `\nLoRA (the Lab's defaults), ${values.model}, batch ${values.batch} x ${values.seqlen} tokens`,
  );
  console.log(
    '| backend | device | steps | last step ms | tokens/s (last step) | wall ms/step (whole run) |',
  );
  console.log('|---|---|---|---|---|---|');
  // What the header's device line says once each choice runs (backend.ts's descriptions).
  const DEVICE: Record<string, RegExp> = {
    'wasm-threads': /\d+ threads?$/,
    wasm: /1 thread/,
    webgl: /WebGL/,
    webgpu: /swiftshader|adapter|WebGPU|fallback/i,
  };
  for (const [choice, device] of Object.entries(DEVICE)) {
    await page.getByTestId('backend-select').selectOption(choice);
    const error = page.getByTestId('error');
    await page.waitForFunction(
      (re) =>
        new RegExp(re, 'i').test(
          document.querySelector('[data-testid="backend-device"]')?.textContent ?? '',
        ) || document.querySelector('[data-testid="error"]') !== null,
      device.source,
      { timeout: 120_000 },
    );
    if (await error.count()) {
      console.log(`| ${choice} | ${(await error.textContent())?.trim()} | | | | |`);
      continue;
    }
    const steps = choice === 'webgpu' ? values['gpu-steps'] : values.steps;
    await setNumber(page, 'steps', steps);
    await setNumber(page, 'batch', values.batch);
    await setNumber(page, 'seqlen', values.seqlen);
    await setNumber(page, 'eval-every', '0');
    const t1 = performance.now();
    await page.getByTestId('train').click();
    // The last run's result goes when this one starts.
    await page.getByTestId('result').waitFor({ state: 'detached', timeout: 60_000 });
    await page.getByTestId('result').waitFor({ timeout: 600_000 });
    const wall = performance.now() - t1;
    const shown = await page.getByTestId('backend-device').textContent();
    const ms = await page.getByTestId('step-ms').textContent();
    const tps = await page.getByTestId('tokens-per-sec').textContent();
    console.log(
      `| ${choice} | ${shown} | ${steps} | ${ms} | ${tps} | ${(wall / Number(steps)).toFixed(0)} |`,
    );
  }
} finally {
  await browser.close();
  stop();
}
