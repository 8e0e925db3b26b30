import { expect, test } from '@playwright/test';

test('the Data screen shows each built-in task’s splits, labels and first examples on demand', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const dataRequests: string[] = [];
  page.on('request', (r) => {
    if (/\/data\/[^/]+\/[^/]+\.(jsonl|txt)$/.test(r.url())) dataRequests.push(r.url());
  });

  await page.goto('/');
  await page.getByRole('link', { name: 'Data', exact: true }).click();
  await expect(page).toHaveURL(/#\/data/);
  await expect(page.getByTestId('task-spam')).toBeVisible();
  await expect(page.getByText('Importing your own CSV or JSONL data is coming')).toBeVisible();
  // Nothing is fetched until a task is opened.
  expect(dataRequests).toEqual([]);

  const spam = page.getByTestId('task-spam');
  await spam.locator('summary').click();
  await expect(spam.getByTestId('source')).toContainText('SpamAssassin');
  const labels = spam.getByTestId('label-count');
  await expect(labels).toHaveCount(2);
  await expect(labels.nth(0)).toContainText('ham');
  await expect(labels.nth(1)).toContainText('spam');
  for (const value of await spam.getByTestId('label-count-value').allTextContents()) {
    expect(Number(value.replace(/,/g, ''))).toBeGreaterThan(0);
  }
  await expect(spam.getByTestId('preview-row')).toHaveCount(5);
  await expect(spam.getByTestId('split-row')).toHaveCount(3);
  await expect(spam.getByTestId('split-row').first()).toContainText(/KiB|MiB/);
  expect(dataRequests.every((url) => url.includes('/data/spam/'))).toBe(true);

  const pos = page.getByTestId('task-brown-pos');
  await pos.locator('summary').click();
  await expect(pos.getByTestId('preview-row')).toHaveCount(5);
  await expect(pos.getByTestId('preview-row').first()).toContainText(/\/(NOUN|VERB|DET|PRON|ADP|\.)/);
  await expect(pos.getByTestId('label-count')).toHaveCount(0);

  const moby = page.getByTestId('task-moby-dick');
  await moby.locator('summary').click();
  await expect(moby.getByTestId('preview-row')).toContainText('Call me Ishmael');

  await page.screenshot({ path: 'test-results/screens/data.png', fullPage: true });
  expect(errors, 'uncaught errors on the page').toEqual([]);
});
