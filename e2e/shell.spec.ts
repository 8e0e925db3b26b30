import { expect, test } from '@playwright/test';

test('the app shell loads and shows its title', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));

  await page.goto('/');
  await expect(page).toHaveTitle('PEFT Lab');
  await expect(page.getByRole('heading', { name: 'PEFT Lab' })).toBeVisible();
  await page.screenshot({ path: 'test-results/screens/shell.png', fullPage: true });

  expect(errors, 'uncaught errors on the page').toEqual([]);
});
