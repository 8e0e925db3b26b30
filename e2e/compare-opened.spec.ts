import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';
import { join } from 'node:path';

/**
 * An adapter Python PEFT 0.21 saved (src/lib/peft/fixtures/peft-0.21-open/lora), opened in the Lab
 * through its file input, joins a finished Compare race as an evaluated lane: scored on the race's
 * held-out data beside the lane trained there, in the results and Try it, never trained itself.
 */
const FIXTURE = ['adapter_config.json', 'adapter_model.safetensors'].map((f) =>
  join('src/lib/peft/fixtures/peft-0.21-open/lora', f),
);

async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

async function pickMethods(page: Page, methods: string[]): Promise<void> {
  for (const box of await page.locator('[data-testid^="pick-"]').all()) {
    const id = ((await box.getAttribute('data-testid')) ?? '').slice('pick-'.length);
    if ((await box.isDisabled()) || (await box.isChecked()) === methods.includes(id)) continue;
    await box.click();
  }
}

test('a PEFT adapter opened in the Lab races in Compare as an evaluated lane', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toContainText('556.9k', { timeout: 90_000 });
  await page.getByTestId('open-adapter-files').setInputFiles(FIXTURE);
  await expect(page.getByTestId('adapter-opened')).toContainText('Opened PEFT adapter: LoRA, CAUSAL_LM');

  await page.getByRole('link', { name: 'Compare' }).click();
  await expect(page.getByTestId('compare-model-facts')).toContainText('peftlab-s', { timeout: 90_000 });
  await page.getByTestId('compare-task').selectOption('moby-dick');
  await pickMethods(page, ['lora']);
  await setNumber(page, 'compare-steps', 3);
  await setNumber(page, 'compare-batch', 2);
  await setNumber(page, 'compare-seqlen', 32);
  await page.getByTestId('compare-start').click();
  await expect(page.locator('[data-testid="lane-row"][data-status="done"]')).toHaveCount(1, {
    timeout: 120_000,
  });

  // The opened adapter is offered (made on the race's model, for its task type), and joins.
  await expect(page.getByTestId('add-saved-select')).toContainText('PEFT adapter (LoRA, opened)');
  await page.getByTestId('add-saved').click();
  await expect(page.getByTestId('lane-row')).toHaveCount(2, { timeout: 60_000 });
  const opened = page.getByTestId('lane-row').nth(1);
  await expect(opened).toHaveAttribute('data-status', 'done', { timeout: 60_000 });
  await expect(opened.getByTestId('lane-status')).toHaveText('evaluated (opened, not trained here)');
  await expect(opened.getByTestId('lane-step')).toHaveText('–');
  // It has no Python project of its own (it was trained elsewhere); the trained lane does.
  await expect(opened.getByTestId('lane-export-python')).toHaveCount(0);
  await expect(page.getByTestId('lane-row').first().getByTestId('lane-export-python')).toHaveCount(1);

  // In the results with a held-out perplexity, and answering in Try it.
  const results = page.getByTestId('results');
  await expect(results).toContainText('PEFT adapter');
  await expect(page.getByTestId('race-metric-chart')).toHaveAttribute('data-series', 'LoRA|PEFT adapter');
  await page.screenshot({ path: 'test-results/screens/compare-opened-lane.png', fullPage: true });
  await page.getByTestId('try-all').click();
  await expect(page.getByTestId('try-answer')).toHaveCount(3, { timeout: 60_000 });
  await expect(page.getByTestId('try-answers')).toContainText('PEFT adapter');
  expect(errors).toEqual([]);
});
