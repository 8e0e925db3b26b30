import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';
import { readFileSync } from 'node:fs';

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

/**
 * A finished Compare lane exports the Lab's Python project for its own method, config and rate
 * and the race's settings: the zip (stored, so its text is readable as it is) carries them.
 */
test('export a finished Compare lane as a Python project', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/compare');
  await expect(page.getByTestId('compare-model-facts')).toContainText('peftlab-s', { timeout: 90_000 });
  await page.getByTestId('compare-task').selectOption('moby-dick');
  await pickMethods(page, ['lora', 'ia3']);
  await page.getByTestId('details-lora').locator('summary').click();
  await setNumber(page, 'lr-lora', 0.007);
  await setNumber(page, 'field-lora-r', 2);
  await setNumber(page, 'compare-steps', 4);
  await setNumber(page, 'compare-batch', 2);
  await setNumber(page, 'compare-seqlen', 32);
  await setNumber(page, 'compare-seed', 9);
  await page.getByTestId('compare-start').click();
  // No export on a lane still racing (a 4-step race can end before this looks: only unfinished rows count).
  await expect(page.getByTestId('lane-row').first()).toBeVisible({ timeout: 60_000 });
  await expect(
    page
      .locator('[data-testid="lane-row"]:not([data-status="done"])')
      .filter({ has: page.getByTestId('lane-export-python') }),
  ).toHaveCount(0);
  await expect(page.locator('[data-testid="lane-row"][data-status="done"]')).toHaveCount(2, {
    timeout: 120_000,
  });
  await expect(page.getByTestId('lane-export-python')).toHaveCount(2);

  const lora = page.getByTestId('lane-row').filter({ hasText: 'LoRA' });
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    lora.getByTestId('lane-export-python').click(),
  ]);
  expect(download.suggestedFilename()).toBe('peft-lab-lora-moby-dick.zip');
  await expect(page.getByTestId('lane-export-note')).toContainText('peft-lab-lora-moby-dick.zip');
  await page.screenshot({ path: 'test-results/screens/compare-lane-exported.png', fullPage: true });
  const zip = readFileSync(await download.path()).toString('latin1');
  const at = zip.indexOf('peft-lab-lora-moby-dick/settings.json');
  expect(at).toBeGreaterThan(0);
  const settings = zip.slice(at, at + 3000);
  for (const want of [
    '"method": "lora"',
    '"lr": 0.007',
    '"steps": 4',
    '"batch_size": 2',
    '"seq_len": 32',
    '"seed": 9',
  ])
    expect(settings, want).toContain(want);
  expect(zip).toMatch(/r=2\b/);
  expect(zip).toContain('peft-lab-lora-moby-dick/train.py');
  expect(zip).toContain('peft-lab-lora-moby-dick/ds_config.json');
  expect(zip).toContain('peft-lab-lora-moby-dick/model/model.safetensors');
  expect(errors).toEqual([]);
});
