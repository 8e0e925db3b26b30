import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';
import { readFileSync } from 'node:fs';

/** Fills a number input the way a person does: select, type, leave. */
async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

test('train LoRA on the bundled model, see the loss fall, generate, save, reload, find the adapter', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');

  // The header always says which backend runs and why: the automatic choice timed a training step on
  // each backend and names the figures (here wasm wins: the WebGPU adapter is software).
  await expect(page.getByTestId('backend-name')).toHaveText(/wasm|webgpu|webgl|cpu/, { timeout: 90_000 });
  await expect(page.getByTestId('backend-reason')).toHaveText(
    /^measured one training step .*wasm(, | threaded build, )\d+ threads? [\d.]+ ms\/step.* -> (wasm|webgpu|webgl)/,
  );
  await expect(page.getByTestId('model-facts')).toContainText('556.9k');
  await page.screenshot({ path: 'test-results/screens/lab-start.png', fullPage: true });

  await setNumber(page, 'steps', 30);
  await setNumber(page, 'batch', 8);
  await setNumber(page, 'seqlen', 48);
  await setNumber(page, 'eval-every', 10);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('step')).toHaveText('30 / 30');
  const chartPoints = Number(await page.getByTestId('loss-chart').getAttribute('data-points'));
  expect(chartPoints).toBe(30);
  // The held-out loss fell.
  const text = (await page.getByTestId('result').textContent()) ?? '';
  const [before, after] = [...text.matchAll(/(\d+\.\d{3})/g)].map((m) => Number(m[1]));
  expect(after).toBeLessThan(before!);
  await page.screenshot({ path: 'test-results/screens/lab-trained.png', fullPage: true });

  await page.getByTestId('generate').click();
  await expect(page.getByTestId('answer-adapted')).not.toHaveText(/–|Train or load/, { timeout: 60_000 });
  await expect(page.getByTestId('answer-base')).toContainText('Call me Ishmael');
  const adaptedAnswer = await page.getByTestId('answer-adapted').textContent();
  await page.screenshot({ path: 'test-results/screens/lab-generated.png', fullPage: true });

  await page.getByTestId('adapter-name').fill('moby lora');
  await page.getByTestId('save-adapter').click();
  await expect(page.getByTestId('adapter-row')).toHaveCount(1);
  await expect(page.getByTestId('adapter-row')).toContainText('moby lora');

  await page.reload();
  await expect(page.getByTestId('adapter-row')).toContainText('moby lora');
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await page.getByTestId('load-adapter').click();
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('answer-adapted')).toHaveText(adaptedAnswer!, { timeout: 60_000 });
  await page.screenshot({ path: 'test-results/screens/lab-reloaded.png', fullPage: true });

  // Download gives PEFT's two files.
  const downloads: string[] = [];
  page.on('download', (d) => downloads.push(d.suggestedFilename()));
  await page.getByTestId('download-adapter').click();
  await expect.poll(() => downloads.sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);

  page.once('dialog', (d) => void d.accept());
  await page.getByTestId('delete-adapter').click();
  await expect(page.getByTestId('no-adapters')).toBeVisible();
  expect(errors).toEqual([]);
});

test('pause holds training where it is, resume goes on, stop ends the run early', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await setNumber(page, 'steps', 2000);
  await setNumber(page, 'batch', 2);
  await setNumber(page, 'seqlen', 16);
  await setNumber(page, 'eval-every', 0);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('step')).toHaveText(/^[1-9]\d* \/ 2000$/, { timeout: 60_000 });
  await page.getByTestId('pause').click();
  await expect(page.getByTestId('status')).toHaveText('paused');
  const held = await page.getByTestId('step').textContent();
  await page.waitForTimeout(1500);
  await expect(page.getByTestId('step')).toHaveText(held!);
  await page.screenshot({ path: 'test-results/screens/lab-paused.png', fullPage: true });
  await page.getByTestId('resume').click();
  await expect(page.getByTestId('step')).not.toHaveText(held!);
  await page.getByTestId('stop').click();
  await expect(page.getByTestId('result')).toContainText('Stopped after');
  const steps = Number(
    /Stopped after (\d+) steps/.exec((await page.getByTestId('result').textContent()) ?? '')?.[1],
  );
  expect(steps).toBeGreaterThan(0);
  expect(steps).toBeLessThan(2000);
});

test('WebGPU, chosen by hand, trains on the software adapter with f16 weights and agrees with wasm', async ({
  page,
}) => {
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await setNumber(page, 'steps', 3);
  await setNumber(page, 'batch', 2);
  await setNumber(page, 'seqlen', 16);
  await setNumber(page, 'eval-every', 0);

  // The same seed gives the same batches on every backend, so the losses must agree.
  const lossAfterThreeSteps = async (): Promise<number> => {
    await page.getByTestId('train').click();
    await expect(page.getByTestId('result')).toBeVisible({ timeout: 150_000 });
    await expect(page.getByTestId('step')).toHaveText('3 / 3');
    return Number(await page.getByTestId('loss').textContent());
  };
  await expect(page.getByTestId('backend-name')).toHaveText('wasm');
  // f16 weights are for webgpu: on wasm the box is off, with the reason beside it.
  await expect(page.getByTestId('weights-f16')).toBeDisabled();
  await expect(page.getByTestId('weights-f16-reason')).toContainText('wasm is running: pick webgpu');
  const onWasm = await lossAfterThreeSteps();

  await page.getByTestId('backend-select').selectOption('webgpu');
  await expect(page.getByTestId('backend-name')).toHaveText('webgpu');
  await expect(page.getByTestId('backend-reason')).toHaveText('chosen by you');
  // On webgpu the box is on offer: the run holds the frozen weights as f16 (each rounded once), and
  // its loss still agrees with wasm's f32 run.
  await expect(page.getByTestId('weights-f16-reason')).toHaveCount(0);
  await page.getByTestId('weights-f16').check();
  const onWebGpu = await lossAfterThreeSteps();
  expect(onWasm).toBeGreaterThan(1);
  expect(Math.abs(onWebGpu - onWasm)).toBeLessThan(0.01);
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('answer-adapted')).not.toHaveText(/–|Train or load/, { timeout: 120_000 });
  await page.screenshot({ path: 'test-results/screens/lab-webgpu.png', fullPage: true });
});

test('open a GPT-2 folder from local files, and get a named error for an incomplete or broken one', async ({
  page,
}) => {
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toBeVisible();
  const dir = 'public/models/peftlab-s';
  // Only two of the three files: the message names the missing one, and the current model stays.
  await page.getByTestId('open-files').setInputFiles([`${dir}/config.json`, `${dir}/tokenizer.json`]);
  await expect(page.getByTestId('error')).toContainText('lack model.safetensors');
  await expect(page.getByTestId('model-select')).toHaveValue('peftlab-s');
  await page.getByRole('button', { name: 'Dismiss' }).click();

  // A truncated safetensors file: a SafetensorsError naming the file.
  const file = (name: string, buffer: Buffer) => ({ name, mimeType: 'application/octet-stream', buffer });
  await page
    .getByTestId('open-files')
    .setInputFiles([
      file('config.json', readFileSync(`${dir}/config.json`)),
      file('tokenizer.json', readFileSync(`${dir}/tokenizer.json`)),
      file('model.safetensors', Buffer.from([1, 2, 3])),
    ]);
  await expect(page.getByTestId('error')).toContainText('SafetensorsError');
  await expect(page.getByTestId('error')).toContainText('model.safetensors');
  await page.screenshot({ path: 'test-results/screens/lab-local-error.png', fullPage: true });
  await page.getByRole('button', { name: 'Dismiss' }).click();

  // The real three files load, and the model trains and answers like the bundled one.
  await page
    .getByTestId('open-files')
    .setInputFiles([`${dir}/config.json`, `${dir}/model.safetensors`, `${dir}/tokenizer.json`]);
  await expect(page.getByTestId('model-select')).toHaveValue('local: files');
  await expect(page.getByTestId('model-facts')).toContainText('556.9k');
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('answer-base')).toContainText('Call me Ishmael', { timeout: 60_000 });
  await page.screenshot({ path: 'test-results/screens/lab-local.png', fullPage: true });
});

test('a picked model whose file cannot be fetched is named, and the menu shows the model still loaded', async ({
  page,
}) => {
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toContainText('556.9k', { timeout: 90_000 });
  // Both tries fail (the engine tries a network failure once more): the first model stays in use.
  let tries = 0;
  await page.route('**/models/peftlab-m/model.safetensors', (route) => {
    tries++;
    return route.abort('failed');
  });
  await page.getByTestId('model-select').selectOption('peftlab-m');
  await expect(page.getByTestId('error')).toContainText(
    /FileLoadError: could not fetch .*models\/peftlab-m\/model\.safetensors \(tried twice\)/,
  );
  expect(tries).toBe(2);
  await expect(page.getByTestId('model-select')).toHaveValue('peftlab-s');
  await expect(page.getByTestId('model-facts')).toContainText('556.9k');
  await expect(page.getByTestId('status')).toContainText('peftlab-m was not loaded');

  // Picked again once the file can be fetched, it loads.
  await page.unroute('**/models/peftlab-m/model.safetensors');
  await page.getByRole('button', { name: 'Dismiss' }).click();
  await page.getByTestId('model-select').selectOption('peftlab-m');
  await expect(page.getByTestId('model-facts')).not.toContainText('556.9k');
  await expect(page.getByTestId('model-select')).toHaveValue('peftlab-m');
});

test('load a GPT-2 repo from the Hub with progress, refuse other models, and load it again offline from the cache', async ({
  page,
}) => {
  await page.goto('/?hub=http://127.0.0.1:4174');
  await expect(page.getByTestId('model-facts')).toBeVisible();

  await page.getByTestId('hub-repo').fill('google-bert/bert-base-uncased');
  await page.getByTestId('hub-load').click();
  await expect(page.getByTestId('error')).toContainText('model_type "bert"');
  await page.getByRole('button', { name: 'Dismiss' }).click();
  await page.getByTestId('hub-repo').fill('nobody/nothing');
  await page.getByTestId('hub-load').click();
  await expect(page.getByTestId('error')).toContainText('nobody/nothing/config.json was not found');
  await page.getByRole('button', { name: 'Dismiss' }).click();

  await page.getByTestId('hub-repo').fill('peftlab/peftlab-s');
  await page.getByTestId('hub-load').click();
  await expect(page.getByTestId('model-select')).toHaveValue('hub: peftlab/peftlab-s', { timeout: 60_000 });
  await expect(page.getByTestId('status')).toHaveText('hub: peftlab/peftlab-s downloaded and cached');
  await page.screenshot({ path: 'test-results/screens/lab-hub.png', fullPage: true });

  // With the Hub unreachable, the same repo loads from this browser's cache.
  await page.goto('/?hub=http://127.0.0.1:9');
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await page.getByTestId('hub-repo').fill('peftlab/peftlab-s');
  await page.getByTestId('hub-load').click();
  await expect(page.getByTestId('status')).toHaveText(
    "hub: peftlab/peftlab-s loaded from this browser's cache",
    {
      timeout: 60_000,
    },
  );
  // And an uncached repo names the unreachable Hub.
  await page.getByTestId('hub-repo').fill('peftlab/other');
  await page.getByTestId('hub-load').click();
  await expect(page.getByTestId('error')).toContainText('could not reach http://127.0.0.1:9');
  await page.getByRole('button', { name: 'Dismiss' }).click();

  // The Models screen lists the bundled models and the one this browser keeps, which can be deleted.
  await page.getByRole('link', { name: 'Models' }).click();
  await expect(page.getByTestId('bundled-row')).toHaveCount(4);
  await expect(page.getByTestId('cached-row')).toHaveCount(1);
  await expect(page.getByTestId('cached-row')).toContainText('hub: peftlab/peftlab-s');
  await expect(page.getByTestId('cached-row')).toContainText('2.2 MiB');
  await expect(page.getByTestId('current-model')).toContainText('hub: peftlab/peftlab-s');
  await page.screenshot({ path: 'test-results/screens/models.png', fullPage: true });
  page.once('dialog', (d) => void d.accept());
  await page.getByTestId('delete-cached').click();
  await expect(page.getByTestId('no-cached-models')).toBeVisible();
  await page
    .getByTestId('bundled-row')
    .filter({ hasText: 'PEFT Lab M (' })
    .getByRole('button', { name: 'Open in the Lab' })
    .click();
  await expect(page).toHaveURL(/#\/lab/);
  await expect(page.getByTestId('model-select')).toHaveValue('peftlab-m', { timeout: 60_000 });
});
