import { readFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';

const DIR = 'public/models/peftlab-s';
const file = (name: string, buffer: Buffer) => ({ name, mimeType: 'application/octet-stream', buffer });

test('a bundled model’s card renders as HTML, with its heading, table and loss curve', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/models');
  const rows = page.getByTestId('bundled-row');
  await expect(rows).toHaveCount(4);
  await expect(rows.filter({ hasText: 'PEFT Lab M, Llama' })).toHaveCount(1);
  const s = rows.filter({ hasText: 'PEFT Lab S' });
  // Size, parameters and tokenizer, read from the folder's files.
  await expect(s.getByTestId('model-params')).toHaveText('556.9k');
  await expect(s.getByTestId('model-tokenizer')).toHaveText('byte-level BPE, 2,048 tokens (1 special)');
  await expect(s).toContainText('2.1 MiB');

  await s.getByTestId('show-card').click();
  const card = page.getByTestId('model-card');
  await expect(card.getByRole('heading', { level: 1, name: 'peftlab-s' })).toBeVisible();
  await expect(card.getByRole('heading', { level: 2, name: 'How it was made' })).toBeVisible();
  await expect(card.locator('table')).toContainText('1.950 bits per byte');
  const img = card.getByRole('img', { name: 'loss curve' });
  await expect(img).toBeVisible();
  await expect(img).toHaveAttribute('src', /\/models\/peftlab-s\/loss-curve\.svg$/);
  // The image really loaded from the model's folder (not a broken link).
  await expect
    .poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth))
    .toBeGreaterThan(0);
  await expect(card).not.toContainText('![loss curve]'); // rendered, not raw markdown
  await card.scrollIntoViewIfNeeded();
  await page.screenshot({ path: 'test-results/screens/models-card.png', fullPage: true });

  // Another model's card replaces it; the button closes it again.
  const l = rows.filter({ hasText: 'PEFT Lab L' });
  await l.getByTestId('show-card').click();
  await expect(card.getByRole('heading', { level: 1, name: 'peftlab-l' })).toBeVisible();
  await l.getByTestId('show-card').click();
  await expect(card).toHaveCount(0);
  expect(errors, 'uncaught errors on the page').toEqual([]);
});

test('a GPT-2 folder kept from local files is listed after a reload, opens in the Lab without the network, and deletes with confirmation; bad files are named and not kept', async ({
  page,
  context,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/models');
  await expect(page.getByTestId('current-model')).toContainText('peftlab-s', { timeout: 60_000 });
  await expect(page.getByTestId('no-cached-models')).toBeVisible();
  const keepFiles = page.getByTestId('keep-files');
  const banner = page.getByTestId('error');

  // Two of the three files: the missing one is named.
  await keepFiles.setInputFiles([`${DIR}/config.json`, `${DIR}/tokenizer.json`]);
  await expect(banner).toContainText(
    "the chosen files lack model.safetensors: pick a model folder's config.json",
  );
  await page.getByRole('button', { name: 'Dismiss' }).click();
  // A broken safetensors file: the engine's SafetensorsError, and nothing kept.
  await keepFiles.setInputFiles([
    file('config.json', readFileSync(`${DIR}/config.json`)),
    file('tokenizer.json', readFileSync(`${DIR}/tokenizer.json`)),
    file('model.safetensors', Buffer.from([1, 2, 3])),
  ]);
  await expect(banner).toContainText('SafetensorsError');
  await expect(banner).toContainText('model.safetensors');
  await expect(page.getByTestId('no-cached-models')).toBeVisible();
  await page.getByRole('button', { name: 'Dismiss' }).click();
  // A config of another architecture.
  const bert = JSON.stringify({ model_type: 'bert', architectures: ['BertForMaskedLM'], vocab_size: 10 });
  await keepFiles.setInputFiles([
    file('config.json', Buffer.from(bert)),
    file('tokenizer.json', readFileSync(`${DIR}/tokenizer.json`)),
    file('model.safetensors', readFileSync(`${DIR}/model.safetensors`)),
  ]);
  await expect(banner).toContainText('model_type "bert"');
  await expect(banner).toContainText('is not supported');
  await expect(page.getByTestId('no-cached-models')).toBeVisible();
  await page.getByRole('button', { name: 'Dismiss' }).click();

  // The real folder: loaded in the Lab and kept, with size, parameters and tokenizer.
  await page.getByTestId('keep-name').fill('my small gpt2');
  await keepFiles.setInputFiles([`${DIR}/config.json`, `${DIR}/model.safetensors`, `${DIR}/tokenizer.json`]);
  await expect(page.getByTestId('kept')).toHaveText(
    'local: my small gpt2 is kept in this browser and loaded in the Lab.',
    { timeout: 60_000 },
  );
  await expect(page.getByTestId('current-model')).toContainText('local: my small gpt2');
  const row = page.getByTestId('cached-row');
  await expect(row).toHaveCount(1);
  await expect(row).toContainText('your files');
  await expect(row).toContainText('2.2 MiB'); // the three files as stored
  await expect(row.getByTestId('model-params')).toHaveText('556.9k');
  await expect(row.getByTestId('model-tokenizer')).toHaveText('byte-level BPE, 2,048 tokens (1 special)');
  await page.screenshot({ path: 'test-results/screens/models-local.png', fullPage: true });

  // Next visit: still listed; with the network off it opens in the Lab from IndexedDB and answers.
  await page.reload();
  await expect(page.getByTestId('current-model')).toContainText('peftlab-s', { timeout: 60_000 });
  await expect(row).toHaveCount(1);
  await expect(row.getByTestId('model-params')).toHaveText('556.9k');
  await context.setOffline(true);
  await row.getByTestId('open-cached').click();
  await expect(page).toHaveURL(/#\/lab/);
  await expect(page.getByTestId('model-select')).toHaveValue('local: my small gpt2', { timeout: 60_000 });
  await expect(page.getByTestId('model-facts')).toContainText('556.9k');
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('answer-base')).toContainText('Call me Ishmael', { timeout: 60_000 });
  await context.setOffline(false);

  // Delete asks first: dismissing keeps it, accepting removes it.
  await page.getByRole('link', { name: 'Models' }).click();
  page.once('dialog', (d) => {
    expect(d.message()).toContain('Delete local: my small gpt2 (2.2 MiB) from this browser?');
    void d.dismiss();
  });
  await row.getByTestId('delete-cached').click();
  await expect(row).toHaveCount(1);
  page.once('dialog', (d) => void d.accept());
  await row.getByTestId('delete-cached').click();
  await expect(page.getByTestId('no-cached-models')).toBeVisible();
  await page.reload();
  await expect(page.getByTestId('no-cached-models')).toBeVisible();
  expect(errors, 'uncaught errors on the page').toEqual([]);
});
