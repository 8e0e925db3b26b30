import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Opening adapters Python PEFT 0.21 saved (src/lib/peft/fixtures/peft-0.21-open, made by
 * scripts/reference/adapter_open/make_fixtures.py) through the inputs a person uses: they answer
 * with PEFT's own greedy text, and one made on another base is refused with a named error.
 */
const FIXTURES = 'src/lib/peft/fixtures/peft-0.21-open';
const SHOTS = '/tmp/shots-adapter-open';

const fixture = (c: string): string[] =>
  ['adapter_config.json', 'adapter_model.safetensors'].map((f) => join(FIXTURES, c, f));
const greedy = (c: string): string =>
  (JSON.parse(readFileSync(join(FIXTURES, c, 'expected.json'), 'utf8')) as { greedy_text: string })
    .greedy_text;

async function ready(page: Page): Promise<void> {
  await expect(page.getByTestId('model-facts')).toContainText('556.9k', { timeout: 90_000 });
}

/** Generates greedily (the Try-it box's default prompt and length are PEFT's fixture's) and waits. */
async function generate(page: Page): Promise<void> {
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('answer-adapted')).not.toHaveText(/–|Train or load/, { timeout: 60_000 });
}

test('open PEFT adapters from files and a folder, generate PEFT’s greedy text, evaluate, keep, download, delete', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await ready(page);
  await expect(page.getByTestId('open-adapter')).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/open-before.png`, fullPage: true });

  // The two files chosen together.
  await page.getByTestId('open-adapter-files').setInputFiles(fixture('lora'));
  await expect(page.getByTestId('adapter-opened')).toContainText('Opened PEFT adapter: LoRA, CAUSAL_LM');
  await expect(page.getByTestId('adapter-row')).toHaveCount(1);
  await expect(page.getByTestId('resident-adapter')).toHaveCount(1);
  await generate(page);
  await expect(page.getByTestId('answer-adapted')).toContainText(greedy('lora'));
  await expect(page.getByTestId('answer-base')).not.toContainText(greedy('lora'));
  await page.screenshot({ path: `${SHOTS}/open-lora-generated.png`, fullPage: true });

  await page.getByTestId('evaluate-adapter').click();
  await expect(page.getByTestId('evaluation')).toHaveText(/held-out loss \d+\.\d{3}, perplexity \d+\.\d{2}/, {
    timeout: 90_000,
  });
  await page.getByTestId('evaluation').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${SHOTS}/open-evaluated.png`, fullPage: true });

  // A folder, as save_pretrained wrote it (webkitdirectory): prompt tuning this time.
  const dir = join(tmpdir(), `adapter-open-${Date.now()}`, 'my-prompt-tuning');
  mkdirSync(dir, { recursive: true });
  for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
    writeFileSync(join(dir, f), readFileSync(join(FIXTURES, 'prompt_tuning', f)));
  await page.getByTestId('open-adapter-folder').setInputFiles(dir);
  await expect(page.getByTestId('adapter-opened')).toContainText('Opened my-prompt-tuning: Prompt tuning');
  await expect(page.getByTestId('resident-adapter')).toHaveCount(2);
  await generate(page);
  await expect(page.getByTestId('answer-adapted')).toContainText(greedy('prompt_tuning'));
  await page.screenshot({ path: `${SHOTS}/open-folder-prompt-tuning.png`, fullPage: true });

  // Kept in IndexedDB: after a reload it loads from the list and answers the same.
  await expect(page.getByTestId('adapter-row')).toHaveCount(2);
  await page.reload();
  await ready(page);
  await page
    .getByTestId('adapter-row')
    .filter({ hasText: 'PEFT adapter' })
    .getByTestId('load-adapter')
    .click();
  await generate(page);
  await expect(page.getByTestId('answer-adapted')).toContainText(greedy('lora'));

  const downloads: string[] = [];
  page.on('download', (d) => downloads.push(d.suggestedFilename()));
  await page
    .getByTestId('adapter-row')
    .filter({ hasText: 'PEFT adapter' })
    .getByTestId('download-adapter')
    .click();
  await expect.poll(() => downloads.sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);

  page.on('dialog', (d) => void d.accept());
  await page.getByTestId('delete-adapter').first().click();
  await expect(page.getByTestId('adapter-row')).toHaveCount(1);
  await page.getByTestId('delete-adapter').first().click();
  await expect(page.getByTestId('no-adapters')).toBeVisible();
  expect(errors).toEqual([]);
});

test('an adapter made on another base is refused with a named error and changes nothing; a .bin is named', async ({
  page,
}) => {
  await page.goto('/');
  await ready(page);
  await page.getByTestId('open-adapter-files').setInputFiles(fixture('prompt_tuning'));
  await expect(page.getByTestId('resident-adapter')).toHaveCount(1);
  await expect(page.getByTestId('adapter-row')).toHaveCount(1);

  await page.getByTestId('open-adapter-files').setInputFiles(fixture('lora_other_base'));
  await expect(page.getByTestId('error')).toContainText(
    /AdapterMismatchError: .*has shape \[2,64\] but this model needs \[2,96\]; open it on the base model it was made for/,
  );
  await expect(page.getByTestId('adapter-base-note')).toContainText('made on tiny-gpt2-64');
  await page.screenshot({ path: `${SHOTS}/open-refused.png`, fullPage: true });
  // Nothing changed: the same adapter is in use and stored, and it still answers as PEFT's.
  await expect(page.getByTestId('resident-adapter')).toHaveCount(1);
  await expect(page.getByTestId('adapter-row')).toHaveCount(1);
  await page.getByTestId('error').getByRole('button', { name: 'Dismiss' }).click();
  await generate(page);
  await expect(page.getByTestId('answer-adapted')).toContainText(greedy('prompt_tuning'));

  const bin = {
    name: 'adapter_model.bin',
    mimeType: 'application/octet-stream',
    buffer: Buffer.from('pickle'),
  };
  await page.getByTestId('open-adapter-files').setInputFiles([
    {
      name: 'adapter_config.json',
      mimeType: 'application/json',
      buffer: readFileSync(fixture('lora')[0]!),
    },
    bin,
  ]);
  await expect(page.getByTestId('error')).toContainText(
    /AdapterFormatError: .*reads adapter_model\.safetensors only.*safe_serialization=True/,
  );
  await expect(page.getByTestId('adapter-row')).toHaveCount(1);
});

test('open a PEFT adapter repo from the Hub: its base_model_name_or_path picks the bundled base', async ({
  page,
}) => {
  await page.goto('/?hub=http://127.0.0.1:4174');
  await ready(page);
  // Start on another bundled model: the adapter names peftlab-s, which is loaded for it.
  await page.getByTestId('model-select').selectOption('peftlab-m');
  await expect(page.getByTestId('model-facts')).not.toContainText('556.9k');
  await page.getByTestId('hub-adapter-repo').fill('peftlab/lora-peftlab-s');
  await page.getByTestId('hub-adapter-open').click();
  await expect(page.getByTestId('adapter-opened')).toContainText(
    'names peftlab-s, so peftlab-s was loaded first',
    { timeout: 60_000 },
  );
  await expect(page.getByTestId('model-facts')).toContainText('556.9k');
  await generate(page);
  await expect(page.getByTestId('answer-adapted')).toContainText(greedy('lora'));
  await page.screenshot({ path: `${SHOTS}/open-hub.png`, fullPage: true });

  await page.getByTestId('hub-adapter-repo').fill('old/bin-adapter');
  await page.getByTestId('hub-adapter-open').click();
  await expect(page.getByTestId('error')).toContainText(
    /AdapterFormatError: old\/bin-adapter has no adapter_model\.safetensors/,
  );
});

test('drop an adapter’s two files on the Open panel', async ({ page }) => {
  await page.goto('/');
  await ready(page);
  const files = fixture('lora').map((p) => ({
    name: p.split('/').at(-1)!,
    bytes: [...readFileSync(p)],
  }));
  // A drop as the browser makes it: a DataTransfer holding the files, on the panel a person drops onto.
  const dt = await page.evaluateHandle((list) => {
    const t = new DataTransfer();
    for (const f of list) t.items.add(new File([new Uint8Array(f.bytes)], f.name));
    return t;
  }, files);
  await page.getByTestId('open-adapter').dispatchEvent('drop', { dataTransfer: dt });
  await expect(page.getByTestId('adapter-opened')).toContainText('Opened PEFT adapter: LoRA, CAUSAL_LM');
  await generate(page);
  await expect(page.getByTestId('answer-adapted')).toContainText(greedy('lora'));
});
