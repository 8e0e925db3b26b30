import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

/** Fills a number input the way a person does: select, type, leave. */
async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

test('pick the spam task, train a classifier, classify a text; then tag a sentence with brown-pos', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toContainText('556.9k');
  await expect(page.getByTestId('train-title')).toHaveText('Train on Moby-Dick (Herman Melville, 1851)');

  // Spam: the picker names the task, the address carries it, Try-it asks for a classifier.
  await page.getByTestId('task-select').selectOption('spam');
  await expect(page.getByTestId('train-title')).toHaveText('Train on SpamAssassin spam vs ham');
  await expect(page).toHaveURL(/#\/lab\?task=spam$/);
  await expect(page.getByTestId('cls-need-adapter')).toBeVisible();
  await expect(page.getByTestId('classify')).toBeDisabled();
  await setNumber(page, 'steps', 10);
  await setNumber(page, 'batch', 4);
  await setNumber(page, 'seqlen', 32);
  await setNumber(page, 'eval-every', 5);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 150_000 });
  await expect(page.getByTestId('step')).toHaveText('10 / 10');
  await expect(page.getByTestId('result')).toContainText(/Finished after 10 steps\. Validation accuracy/);
  await expect(page.getByTestId('result')).toContainText('on 256 examples');
  await expect(page.getByTestId('eval-after')).toHaveText(/^\d+\.\d%$/);
  const chart = page.getByTestId('loss-chart');
  await expect(chart).toHaveAttribute('data-held-out', 'validation accuracy');
  await expect(chart).toHaveAttribute('data-held-out-points', '3'); // before, step 5, after
  await page.screenshot({ path: 'test-results/screens/tasks-spam-trained.png', fullPage: true });

  await page
    .getByTestId('cls-text')
    .fill('Subject: Cheap meds, no prescription!\nFrom: pills.biz\nBuy now, 90% off');
  await page.getByTestId('classify').click();
  const probs = page.getByTestId('class-prob');
  await expect(probs).toHaveCount(2, { timeout: 60_000 });
  await expect(probs.nth(0)).toHaveAttribute('data-label', 'ham');
  await expect(probs.nth(1)).toHaveAttribute('data-label', 'spam');
  const values = await probs.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-prob'))));
  expect(values.every((p) => p >= 0 && p <= 1)).toBe(true);
  expect(Math.abs(values[0]! + values[1]! - 1)).toBeLessThan(1e-4);
  await page.screenshot({ path: 'test-results/screens/tasks-spam-classified.png', fullPage: true });

  // brown-pos: a token-classification head; every word gets one tag.
  await page.getByTestId('task-select').selectOption('brown-pos');
  await expect(page.getByTestId('train-title')).toContainText('part-of-speech');
  await expect(page).toHaveURL(/#\/lab\?task=brown-pos$/);
  await expect(page.getByTestId('result')).toHaveCount(0);
  await expect(page.getByTestId('tag')).toBeDisabled(); // the spam adapter has no token head
  await setNumber(page, 'steps', 4);
  await setNumber(page, 'eval-every', 0);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toContainText('Validation token accuracy', { timeout: 150_000 });
  await expect(chart).toHaveAttribute('data-held-out', 'validation token accuracy');
  const sentence = 'The old sailor walked slowly down to the harbour .';
  await page.getByTestId('cls-text').fill(sentence);
  await page.getByTestId('tag').click();
  const words = sentence.split(' ');
  await expect(page.getByTestId('tagged-word')).toHaveCount(words.length, { timeout: 60_000 });
  const tags = await page.getByTestId('word-tag').allTextContents();
  expect(tags).toHaveLength(words.length);
  for (const t of tags) expect(t).toMatch(/^(ADJ|ADP|ADV|CONJ|DET|NOUN|NUM|PRT|PRON|VERB|X|\.)$/);
  await expect(page.getByTestId('tagged-word').first()).toContainText('The');
  await page.screenshot({ path: 'test-results/screens/tasks-pos-tagged.png', fullPage: true });
  expect(errors).toEqual([]);
});

test('a link with ?task= opens that task, and the nav keeps it; an unknown task is named', async ({
  page,
}) => {
  await page.goto('/#/lab?task=brown-genre');
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await expect(page.getByTestId('train-title')).toHaveText('Train on Brown corpus genre (4 classes)');
  await expect(page.getByTestId('task-select')).toHaveValue('brown-genre');
  await page.getByRole('link', { name: 'Lab' }).click();
  await expect(page).toHaveURL(/#\/lab\?task=brown-genre$/);
  await expect(page.getByTestId('train-title')).toContainText('Brown corpus genre');

  // Edited in place (a hash change): the task stays; opened fresh: the default task.
  await page.goto('/#/lab?task=nope');
  await expect(page.getByTestId('error')).toContainText('unknown task "nope"');
  await expect(page.getByTestId('train-title')).toContainText('Brown corpus genre');
  await page.goto('about:blank');
  await page.goto('/#/lab?task=nope');
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await expect(page.getByTestId('error')).toContainText('unknown task "nope"');
  await expect(page.getByTestId('train-title')).toContainText('Moby-Dick');
  await page.screenshot({ path: 'test-results/screens/tasks-link-unknown.png', fullPage: true });
});
