import { readFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import type { Locator, Page } from '@playwright/test';

/**
 * The Storage screen: what the app keeps in this browser, listed with sizes, and deleted only after a
 * confirmation. The adapter and the data set are made through the app itself (trained and saved in the
 * Lab, imported on the Data screen); the service worker's precache is awaited first, so the total does
 * not move under the test while the worker installs.
 */

async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

/** formatBytes back to bytes (to within its rounding). */
function parseBytes(text: string): number {
  const m = /([\d.]+)\s*(GiB|MiB|KiB|B)/.exec(text);
  if (!m) throw new Error(`no size in "${text}"`);
  const unit = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 }[m[2] as 'B' | 'KiB' | 'MiB' | 'GiB'];
  return Number(m[1]) * unit;
}

const sizeOf = async (l: Locator): Promise<number> => parseBytes((await l.textContent()) ?? '');
/** The exact byte count behind a shown size. */
const bytesOf = async (l: Locator): Promise<number> => Number(await l.getAttribute('data-bytes'));

test('Storage lists the saved adapter, the imported data set and the offline copy with sizes; Cancel keeps, Confirm deletes and the total drops', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toContainText('556.9k', { timeout: 60_000 });

  // A small LoRA run, saved.
  await setNumber(page, 'steps', 4);
  await setNumber(page, 'batch', 4);
  await setNumber(page, 'seqlen', 32);
  await setNumber(page, 'eval-every', 0);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 120_000 });
  await page.getByTestId('adapter-name').fill('storage lora');
  await page.getByTestId('save-adapter').click();
  await expect(page.getByTestId('adapter-row')).toContainText('storage lora');

  // A text imported for language modelling.
  await page.getByRole('link', { name: 'Data', exact: true }).click();
  const moby = readFileSync('public/data/moby-dick/validation.txt', 'utf8').slice(0, 12000);
  await page.getByTestId('import-file').setInputFiles({
    name: 'whale.txt',
    mimeType: 'text/plain',
    buffer: Buffer.from(moby, 'utf8'),
  });
  await expect(page.getByTestId('kind-lm')).toBeChecked();
  await page.getByTestId('import-run').click();
  await expect(page.getByTestId('import-done')).toContainText('Imported “whale”');

  // The worker registered once the model loaded; wait until its precache is complete.
  await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);

  await page.getByRole('link', { name: 'Storage', exact: true }).click();
  await expect(page).toHaveURL(/#\/storage/);
  const adapters = page.getByTestId('storage-group-adapters');
  const datasets = page.getByTestId('storage-group-datasets');
  const caches = page.getByTestId('storage-group-caches');
  const adapter = adapters.getByTestId('storage-item').filter({ hasText: 'storage lora' });
  const whale = datasets.getByTestId('storage-item').filter({ hasText: 'whale' });
  const precache = caches.getByTestId('storage-item').filter({ hasText: 'App for offline use' });
  await expect(adapter).toHaveCount(1);
  await expect(adapter).toContainText('lora on peftlab-s, 4 steps');
  await expect(adapter.getByTestId('storage-item-size')).toHaveText(/^[\d.]+ (KiB|MiB)$/);
  await expect(whale.getByTestId('storage-item-size')).toHaveText(/^[\d.]+ KiB$/);
  expect(await sizeOf(whale.getByTestId('storage-item-size'))).toBeGreaterThan(11_000);
  // The offline copy: the shell, wasm, bundled models and data, some 44 MB.
  await expect(precache.getByTestId('storage-item-size')).toHaveText(/MiB$/);
  expect(await sizeOf(precache.getByTestId('storage-item-size'))).toBeGreaterThan(30 * 2 ** 20);
  await expect(page.getByTestId('storage-group-models').getByTestId('storage-group-empty')).toBeVisible();
  await expect(page.getByTestId('storage-usage')).toHaveText(/B$/);
  await expect(page.getByTestId('storage-quota')).toHaveText(/B$/);
  // Headless Chromium never grants persistence; the button asks and the answer is shown.
  await expect(page.getByTestId('storage-persisted')).toContainText('no');
  await page.getByTestId('storage-persist').click();
  await expect(page.getByTestId('storage-persist-answer')).toContainText(/Granted|Refused/);

  const total = page.getByTestId('storage-total');
  const totalBefore = await bytesOf(total);
  const adapterBytes = await bytesOf(adapter.getByTestId('storage-item-size'));
  const whaleBytes = await bytesOf(whale.getByTestId('storage-item-size'));
  expect(Math.abs(adapterBytes - (await sizeOf(adapter.getByTestId('storage-item-size'))))).toBeLessThan(
    0.06 * adapterBytes,
  );

  // Deleting the offline copy warns first; Cancel keeps it.
  await precache.getByTestId('storage-delete').click();
  await expect(precache.getByTestId('storage-warning')).toContainText('needs the network once');
  await precache.getByTestId('storage-cancel').click();
  await expect(precache.getByTestId('storage-confirm')).toHaveCount(0);

  // Cancel: the data set stays.
  await whale.getByTestId('storage-delete').click();
  await expect(whale.getByTestId('storage-confirm-text')).toHaveText(/^Delete whale \([\d.]+ KiB\)\?$/);
  await page.screenshot({ path: 'test-results/screens/storage.png', fullPage: true });
  await whale.getByTestId('storage-cancel').click();
  await expect(whale).toHaveCount(1);
  await expect(whale.getByTestId('storage-confirm')).toHaveCount(0);

  // Confirm: the adapter goes, the total drops by its size.
  await adapter.getByTestId('storage-delete').click();
  await expect(adapter.getByTestId('storage-confirm-text')).toContainText('Delete storage lora (');
  await adapter.getByTestId('storage-confirm-delete').click();
  await expect(adapter).toHaveCount(0);
  await expect(adapters.getByTestId('storage-group-empty')).toBeVisible();
  await expect(whale).toHaveCount(1);
  await expect(total).toHaveAttribute('data-bytes', String(totalBefore - adapterBytes));

  // Then the data set.
  await whale.getByTestId('storage-delete').click();
  await whale.getByTestId('storage-confirm-delete').click();
  await expect(whale).toHaveCount(0);
  await expect(total).toHaveAttribute('data-bytes', String(totalBefore - adapterBytes - whaleBytes));
  await page.screenshot({ path: 'test-results/screens/storage-deleted.png', fullPage: true });

  // The other screens read their lists again: the Lab's saved adapters and the Data screen's data sets.
  await page.getByRole('link', { name: 'Lab', exact: true }).click();
  await expect(page.getByTestId('adapter-row')).toHaveCount(0);
  await page.getByRole('link', { name: 'Data', exact: true }).click();
  await expect(page.getByTestId('no-datasets')).toBeVisible();
  // And a reload finds them gone from IndexedDB.
  await page.goto('/#/storage');
  await expect(page.getByTestId('storage-total')).toBeVisible();
  await expect(page.getByTestId('storage-group-adapters').getByTestId('storage-group-empty')).toBeVisible();
  await expect(page.getByTestId('storage-group-datasets').getByTestId('storage-group-empty')).toBeVisible();
  expect(errors, 'uncaught errors on the page').toEqual([]);
});
