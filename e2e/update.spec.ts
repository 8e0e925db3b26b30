import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';
import { preview } from 'vite';
import type { PreviewServer } from 'vite';

/**
 * The update prompt (src/ui/UpdatePrompt.svelte, src/app/pwa.ts) against the real service worker.
 *
 * The test deploys a new version itself, so it serves its own copy of the build (dist/, copied to a
 * temporary folder, on port 4175 with `vite preview`) and, once the first version's worker is in,
 * replaces that copy's sw.js: the build's own worker with a fetch handler prepended that answers
 * `/__sw-version` with "v2", so the page can tell which worker controls it. That is what a deploy
 * looks like to the browser: the same URL, other bytes. (Playwright's route() does not see the
 * browser's fetch of a worker script, so the bytes must really change on the server; a copy keeps
 * dist/ and the shared preview on 4173 untouched.)
 */

const V2_MARKER = `self.addEventListener('fetch', (e) => {
  if (new URL(e.request.url).pathname === '/__sw-version') e.respondWith(new Response('v2'));
});
`;

const PORT = 4175;
let site = '';
let server: PreviewServer | null = null;

test.beforeAll(async () => {
  site = mkdtempSync(join(tmpdir(), 'peft-lab-update-'));
  cpSync('dist', site, { recursive: true });
  server = await preview({
    configFile: false,
    logLevel: 'silent',
    build: { outDir: site },
    preview: { port: PORT, strictPort: true },
  });
});

test.afterAll(async () => {
  await server?.close();
  if (site) rmSync(site, { recursive: true, force: true });
});

// Each test starts from the first version's worker.
test.beforeEach(() => {
  cpSync(join('dist', 'sw.js'), join(site, 'sw.js'));
});

/** From now on the server's sw.js is the new version's. */
function deployNewVersion(): void {
  writeFileSync(join(site, 'sw.js'), V2_MARKER + readFileSync(join('dist', 'sw.js'), 'utf8'));
}

async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

/** What `/__sw-version` answers: "v2" only from the new worker. */
const workerVersion = (page: Page): Promise<string> =>
  page.evaluate(async () => {
    const res = await fetch('/__sw-version', { cache: 'no-store' });
    const text = await res.text();
    return text === 'v2' ? 'v2' : 'v1';
  });

test('a new version deployed shows the prompt; Reload waits while a run trains, then reloads into the new worker', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  // First visit: the worker installs (precache complete once `ready` resolves).
  await page.goto(`http://localhost:${PORT}/`);
  await expect(page.getByTestId('model-facts')).toBeVisible({ timeout: 60_000 });
  await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
  // The next visit is served by it. Nothing new yet: no prompt.
  await page.reload();
  await expect(page.getByTestId('model-facts')).toBeVisible({ timeout: 60_000 });
  expect(await page.evaluate(() => navigator.serviceWorker.controller?.state)).toBe('activated');
  expect(await workerVersion(page)).toBe('v1');
  await expect(page.getByTestId('update-prompt')).toHaveCount(0);

  // A long run, so it is still on when the new version arrives.
  await setNumber(page, 'steps', 5000);
  await setNumber(page, 'batch', 4);
  await setNumber(page, 'seqlen', 32);
  await setNumber(page, 'eval-every', 0);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('stop')).toBeEnabled();

  // Deploy, and let the browser check (as the app's hourly check or a navigation would).
  deployNewVersion();
  await page.evaluate(async () => {
    const reg = await navigator.serviceWorker.getRegistration();
    await reg?.update();
  });
  const prompt = page.getByTestId('update-prompt');
  await expect(prompt).toBeVisible({ timeout: 60_000 });
  // The run is on: the message says the update waits, and Reload is off.
  await expect(page.getByTestId('update-message')).toHaveText(
    'A new version is ready: it will wait until this training run ends.',
  );
  await expect(page.getByTestId('update-reload')).toBeDisabled();
  // The new worker waits; this page is still the old version's.
  expect(await page.evaluate(async () => !!(await navigator.serviceWorker.getRegistration())?.waiting)).toBe(
    true,
  );
  expect(await workerVersion(page)).toBe('v1');
  await page.screenshot({ path: 'test-results/screens/update-waiting.png', fullPage: true });

  // The run ends: Reload is offered.
  await page.getByTestId('stop').click();
  await expect(page.getByTestId('stop')).toBeDisabled({ timeout: 60_000 });
  await expect(page.getByTestId('update-message')).toHaveText('A new version is ready —');
  await expect(page.getByTestId('update-reload')).toBeEnabled();
  await page.screenshot({ path: 'test-results/screens/update-ready.png', fullPage: true });

  // Reload: the page reloads (the marker set on this window is gone) under the new worker.
  await page.evaluate(() => ((window as unknown as { beforeUpdate: boolean }).beforeUpdate = true));
  await Promise.all([
    page.waitForEvent('load', { timeout: 30_000 }),
    page.getByTestId('update-reload').click(),
  ]);
  await expect(page.getByTestId('model-facts')).toBeVisible({ timeout: 60_000 });
  expect(await page.evaluate(() => 'beforeUpdate' in window)).toBe(false);
  expect(await workerVersion(page)).toBe('v2');
  await expect(page.getByTestId('update-prompt')).toHaveCount(0);
  expect(errors, 'uncaught errors on the page').toEqual([]);
});

test('on the first visit (a page no worker controls yet) Reload still reloads into the new version', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://localhost:${PORT}/`);
  await expect(page.getByTestId('model-facts')).toBeVisible({ timeout: 60_000 });
  await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
  // The worker installed after this page loaded: it does not control it.
  expect(await page.evaluate(() => navigator.serviceWorker.controller)).toBeNull();

  deployNewVersion();
  await page.evaluate(async () => (await navigator.serviceWorker.getRegistration())?.update());
  await expect(page.getByTestId('update-prompt')).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId('update-message')).toHaveText('A new version is ready —');

  await page.evaluate(() => ((window as unknown as { beforeUpdate: boolean }).beforeUpdate = true));
  await Promise.all([
    page.waitForEvent('load', { timeout: 30_000 }),
    page.getByTestId('update-reload').click(),
  ]);
  await expect(page.getByTestId('model-facts')).toBeVisible({ timeout: 60_000 });
  expect(await page.evaluate(() => 'beforeUpdate' in window)).toBe(false);
  expect(await workerVersion(page)).toBe('v2');
  await expect(page.getByTestId('update-prompt')).toHaveCount(0);
  expect(errors, 'uncaught errors on the page').toEqual([]);
});
