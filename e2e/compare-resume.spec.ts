import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

/** Fills a number input the way a person does: select, type, leave. */
async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

const SHOTS = process.env.SHOTS_DIR ?? 'test-results/screens';

test("the compare worker dies mid-race: the screen says so and resumes the race from its lanes' checkpoints", async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/compare?model=peftlab-s&task=spam&methods=lora,ia3');
  await expect(page.getByTestId('compare-model-facts')).toBeVisible({ timeout: 60_000 });
  // Checkpoints are on by default (every 2 minutes); here every second, so one is written soon.
  await expect(page.getByTestId('compare-checkpoint-every')).toHaveValue('120');
  await setNumber(page, 'compare-checkpoint-every', 1);
  await setNumber(page, 'compare-steps', 2000);
  await setNumber(page, 'compare-batch', 2);
  await setNumber(page, 'compare-seqlen', 16);
  await setNumber(page, 'compare-eval', 0);
  await page.getByTestId('compare-start').click();
  await expect(page.getByTestId('compare-checkpoint')).toHaveText(/^checkpoint at step \d+$/, {
    timeout: 90_000,
  });

  // The compare worker ends itself, as the browser ends one out of memory.
  let killed = false;
  for (const w of page.workers()) {
    if (!(await w.evaluate(() => self.name.startsWith('compare')).catch(() => false))) continue;
    await w.evaluate(() => setTimeout(() => self.close(), 0)).catch(() => undefined);
    killed = true;
  }
  expect(killed).toBe(true);

  const error = page.getByTestId('compare-error');
  await expect(error).toContainText(
    /WorkerCrashedError: the compare worker stopped .*A fresh worker has started: resume the race from its lanes' checkpoints \(step \d+ of 2000\) below\./,
    { timeout: 60_000 },
  );
  const k = Number(/checkpoints \(step (\d+) of/.exec((await error.textContent()) ?? '')![1]);
  expect(k).toBeGreaterThan(0);
  const banner = page.getByTestId('compare-resume-banner');
  await expect(banner).toContainText(`LoRA (step ${k}), IA3 (step ${k}) of 2000 steps on spam stopped`);
  await page.screenshot({ path: `${SHOTS}/compare-worker-crash-resume.png`, fullPage: true });

  await page.getByTestId('compare-resume-race').click();
  await expect(banner).toHaveCount(0);
  await expect(error).toHaveCount(0);
  // The next checkpoint comes a second later at the earliest: the resumed one shows first.
  await expect(page.getByTestId('compare-checkpoint')).toHaveText(
    `resumed from the checkpoints at step ${k}`,
  );
  // The lanes come back with their history and train on past the checkpoint.
  const steps = page.getByTestId('lane-step');
  await expect(steps).toHaveCount(2);
  await expect
    .poll(async () => Number(((await steps.first().textContent()) ?? '').split(' / ')[0]), {
      timeout: 60_000,
    })
    .toBeGreaterThan(k + 2);
  await page.screenshot({ path: `${SHOTS}/compare-worker-resumed.png`, fullPage: true });
  await page.getByTestId('compare-stop').click();
  await expect(page.getByTestId('compare-status')).toHaveText('stopped', { timeout: 60_000 });
  expect(errors).toEqual([]);
});
