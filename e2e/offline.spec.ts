import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

/**
 * The installable app offline: one visit installs the service worker (precaching the shell, the wasm
 * binaries, the bundled models and data), and with the network off a reload still opens the Lab, runs a
 * lesson to its verdict, trains and saves an adapter. Each test gets a fresh browser context, so it starts with no service worker and
 * an empty Cache Storage (checked below): nothing comes from an earlier test.
 */

async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

/** First visit: no worker controls the page; waits until one is installed (precache done) and active. */
async function installServiceWorker(page: Page): Promise<void> {
  await page.goto('/');
  // A fresh context: no worker from before controls this first page.
  expect(await page.evaluate(() => navigator.serviceWorker.controller)).toBeNull();
  // The app registers its worker once the first model has loaded.
  await expect(page.getByTestId('model-facts')).toBeVisible({ timeout: 60_000 });
  // `ready` resolves once a worker is active, which is after its install step precached every file.
  const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
  expect(scope).toBe('http://localhost:4173/');
}

test('after one visit the app opens offline, runs a lesson to its verdict, trains LoRA on the bundled model and saves the adapter', async ({
  page,
  context,
}) => {
  test.setTimeout(420_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await installServiceWorker(page);
  const precached = await page.evaluate(async () => {
    const urls: string[] = [];
    for (const name of await caches.keys()) {
      for (const req of await (await caches.open(name)).keys()) urls.push(new URL(req.url).pathname);
    }
    return urls;
  });
  for (const path of [
    '/index.html',
    '/wasm/tfjs-backend-wasm-simd.wasm',
    '/models/peftlab-s/model.safetensors',
    '/models/peftlab-l/model.safetensors',
    '/data/moby-dick/train.txt',
    '/data/spam/train.jsonl',
    '/manifest.webmanifest',
  ]) {
    expect(precached, path).toContainEqual(expect.stringContaining(path));
  }

  await context.setOffline(true);
  // The network is really gone: an uncached URL on our own server, and the Hub stand-in, both fail.
  const reachable = await page.evaluate(async () => {
    const tryFetch = (url: string) =>
      fetch(url, { cache: 'no-store' }).then(
        () => true,
        () => false,
      );
    return [await tryFetch(`/not-precached-${Date.now()}`), await tryFetch('http://127.0.0.1:4174/')];
  });
  expect(reachable).toEqual([false, false]);

  await page.reload();
  // The reloaded page is served by the worker.
  expect(await page.evaluate(() => navigator.serviceWorker.controller?.state)).toBe('activated');
  await expect(page).toHaveTitle('PEFT Lab');
  await expect(page.getByTestId('backend-name')).toHaveText(/wasm|webgpu|webgl|cpu/);
  // Generous waits: two shared cores, and the engine starts wasm and loads the model on each load.
  await expect(page.getByTestId('model-facts')).toContainText('556.9k', { timeout: 60_000 });
  await page.screenshot({ path: 'test-results/screens/offline-lab.png', fullPage: true });

  // A lesson runs to its verdict offline (prefix tuning on peftlab-s, cut to 2 steps by its own knob).
  await page.getByRole('link', { name: 'Learn', exact: true }).click();
  await page
    .locator('[data-testid="lesson-item"][data-lesson="prefix-tuning"]')
    .getByTestId('lesson-link')
    .click();
  await setNumber(page, 'knob-steps', 2);
  await page.getByTestId('experiment-run').click();
  await expect(page.getByTestId('verdict-outcome')).toHaveText(/^(holds|does not hold|mixed)$/i, {
    timeout: 240_000,
  });
  await expect(page.getByTestId('verdict-text')).toContainText(/Prefix[^.]* reached accuracy \d/);
  await expect(page.getByTestId('experiment-error')).toHaveCount(0);
  await page.screenshot({ path: 'test-results/screens/offline-lesson.png', fullPage: true });
  await page.getByRole('link', { name: 'Lab', exact: true }).click();
  await expect(page.getByTestId('model-facts')).toContainText('556.9k', { timeout: 60_000 });

  await setNumber(page, 'steps', 8);
  await setNumber(page, 'batch', 4);
  await setNumber(page, 'seqlen', 32);
  await setNumber(page, 'eval-every', 4);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('step')).toHaveText('8 / 8');

  await page.getByTestId('adapter-name').fill('offline lora');
  await page.getByTestId('save-adapter').click();
  await expect(page.getByTestId('adapter-row')).toHaveCount(1);
  await expect(page.getByTestId('adapter-row')).toContainText('offline lora');
  const downloads: string[] = [];
  page.on('download', (d) => downloads.push(d.suggestedFilename()));
  await page.getByTestId('download-adapter').click();
  await expect.poll(() => downloads.sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
  await page.screenshot({ path: 'test-results/screens/offline-trained.png', fullPage: true });

  // Still offline throughout, and no update prompt: nothing new was deployed.
  expect(await page.evaluate(() => navigator.onLine)).toBe(false);
  await expect(page.getByTestId('update-prompt')).toHaveCount(0);
  expect(errors).toEqual([]);
});
