import { expect, test } from '@playwright/test';

/**
 * Try it streams: the answer grows token by token while Stop is offered, Stop ends it early, and
 * the sampling settings (top-k, top-p, repetition penalty, temperature, new tokens, seed) live in
 * the address like the task and the method, through the nav links and a reload.
 */
test('generation streams with top-k, top-p and repetition penalty, stops on Stop, and keeps its settings', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/lab?task=moby-dick&temperature=0.8&topK=20&repetitionPenalty=1.3');
  await expect(page.getByTestId('model-facts')).toBeVisible({ timeout: 90_000 });
  // The link's settings are in the form.
  await expect(page.getByTestId('temperature')).toHaveValue('0.8');
  await expect(page.getByTestId('gen-top-k')).toHaveValue('20');
  await expect(page.getByTestId('gen-repetition-penalty')).toHaveValue('1.3');
  await expect(page.getByTestId('gen-top-p')).toHaveValue('0.95');

  // A change is written into the address at once.
  await page.getByTestId('gen-top-p').fill('0.9');
  await page.getByTestId('gen-max-new-tokens').fill('400');
  await expect(page).toHaveURL(/topP=0\.9/);
  await expect(page).toHaveURL(/maxNewTokens=400/);
  // An out-of-range value is named and Generate waits for a good one.
  await page.getByTestId('gen-repetition-penalty').fill('0');
  await expect(page.getByTestId('gen-problem')).toContainText('repetition penalty');
  await expect(page.getByTestId('generate')).toBeDisabled();
  await page.getByTestId('gen-repetition-penalty').fill('1.3');
  await expect(page.getByTestId('gen-problem')).toHaveCount(0);

  // Streams: the base answer is seen at several lengths before it is done, with Stop offered.
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('generate-stop')).toBeVisible();
  const answer = page.getByTestId('answer-base');
  const live = page.getByTestId('answer-base-live');
  const lengths = new Set<number>();
  await expect
    .poll(
      async () => {
        // The final answer stays hidden (and "–") while the streamed text grows beside it.
        if ((await answer.getAttribute('data-done')) === 'false' && (await live.count()) === 1) {
          const text = (await live.textContent()) ?? '';
          if (text.length > 1) lengths.add(text.length);
        }
        return lengths.size;
      },
      { timeout: 60_000, intervals: [50] },
    )
    .toBeGreaterThanOrEqual(3);
  await page.screenshot({ path: 'test-results/screens/lab-generate-streaming.png', fullPage: true });
  await page.getByTestId('generate-stop').click();
  await expect(page.getByTestId('gen-stopped')).toBeVisible({ timeout: 30_000 });
  await expect(answer).toHaveAttribute('data-done', 'true');
  await expect(answer).toBeVisible();
  await expect(live).toHaveCount(0);
  await expect(page.getByTestId('generate')).toBeEnabled();
  const stopped = ((await answer.textContent()) ?? '').replace('Call me Ishmael. Some years ago', '');
  // 400 tokens of about 4 characters would be some 1,600 characters: Stop ended it well before.
  expect(stopped.length).toBeGreaterThan(0);
  expect(stopped.length).toBeLessThan(1200);
  await page.screenshot({ path: 'test-results/screens/lab-generate-stopped.png', fullPage: true });

  // The settings travel with the nav links and survive a reload.
  await page.getByRole('link', { name: 'Data' }).click();
  await page.getByRole('link', { name: 'Lab' }).click();
  await expect(page.getByTestId('gen-top-p')).toHaveValue('0.9');
  await page.reload();
  await expect(page.getByTestId('model-facts')).toBeVisible({ timeout: 90_000 });
  await expect(page.getByTestId('gen-top-k')).toHaveValue('20');
  await expect(page.getByTestId('gen-top-p')).toHaveValue('0.9');
  await expect(page.getByTestId('gen-repetition-penalty')).toHaveValue('1.3');

  // The same settings and seed answer the same text, to the end this time.
  await page.getByTestId('gen-max-new-tokens').fill('12');
  await page.getByTestId('generate').click();
  await expect(answer).toHaveAttribute('data-done', 'true', { timeout: 60_000 });
  const first = await answer.textContent();
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('generate-stop')).toHaveCount(0, { timeout: 60_000 });
  await expect(answer).toHaveAttribute('data-done', 'true');
  expect(await answer.textContent()).toBe(first);
  await expect(page.getByTestId('gen-stopped')).toHaveCount(0);
  expect(errors).toEqual([]);
});
