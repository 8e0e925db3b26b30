import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

async function trainAndSave(page: Page, name: string, r: number): Promise<void> {
  await setNumber(page, 'field-r', r);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('step')).toHaveText('4 / 4');
  await page.getByTestId('adapter-name').fill(name);
  await page.getByTestId('save-adapter').click();
  await expect(page.getByTestId('adapter-row').filter({ hasText: name })).toHaveCount(1);
}

/**
 * Two LoRA adapters trained and saved here combine into a third through add_weighted_adapter: a
 * type that needs equal ranks refuses adapters of r 8 and r 4 by name, cat takes them, and the result
 * is saved, in use, and answers in Try it at once.
 */
test('combine two saved LoRA adapters, see a rank mismatch named, and try the result', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/lab?task=moby-dick&method=lora');
  await expect(page.getByTestId('model-facts')).toBeVisible({ timeout: 90_000 });
  await setNumber(page, 'steps', 4);
  await setNumber(page, 'batch', 2);
  await setNumber(page, 'seqlen', 32);
  await setNumber(page, 'eval-every', 0);
  await setNumber(page, 'lr', 0.05);
  await trainAndSave(page, 'alpha', 8);
  await trainAndSave(page, 'beta', 4);

  await page.getByTestId('combine-adapters').locator('summary').click();
  await expect(page.getByTestId('combine-row')).toHaveCount(2);
  const row = (name: string) => page.getByTestId('combine-row').filter({ hasText: name });
  await row('alpha').getByTestId('combine-pick').check();
  await expect(page.getByTestId('combine')).toBeDisabled(); // one is not a combination
  await row('beta').getByTestId('combine-pick').check();
  await row('beta').getByTestId('combine-weight').fill('-0.5');

  // ties elects signs entry by entry on A and B: equal ranks only, and the refusal says so.
  await page.getByTestId('combine-type').selectOption('ties');
  await expect(page.getByTestId('combine-density')).toBeVisible();
  await expect(page.getByTestId('combine-sign')).toBeVisible();
  await page.getByTestId('combine').click();
  await expect(page.getByTestId('combine-error')).toContainText('AdapterCombineError');
  await expect(page.getByTestId('combine-error')).toContainText(
    /needs equal ranks, got r = (8, 4|4, 8): use "cat" or "svd"/,
  );
  await page.screenshot({ path: 'test-results/screens/lab-combine-refused.png', fullPage: true });
  await expect(page.getByTestId('adapter-row')).toHaveCount(2);

  // cat adds the ranks: r 12, the exact weighted sum of the two updates.
  await page.getByTestId('combine-type').selectOption('cat');
  await expect(page.getByTestId('combine-density')).toHaveCount(0);
  await page.getByTestId('combine-name').fill('alpha minus half beta');
  await page.getByTestId('combine').click();
  await expect(page.getByTestId('combine-note')).toContainText('r 12', { timeout: 60_000 });
  await expect(page.getByTestId('combine-error')).toHaveCount(0);
  await expect(page.getByTestId('adapter-row')).toHaveCount(3);
  await expect(page.getByTestId('adapter-row').filter({ hasText: 'alpha minus half beta' })).toHaveCount(1);
  await expect(page.getByTestId('adapter-label').first()).toContainText('alpha minus half beta');

  // Tried at once: the combined adapter answers beside the base.
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('answer-adapted')).toHaveAttribute('data-done', 'true', { timeout: 60_000 });
  await expect(page.getByTestId('answer-adapted')).toContainText('Call me Ishmael');
  await page.screenshot({ path: 'test-results/screens/lab-combined.png', fullPage: true });
  expect(errors).toEqual([]);
});
