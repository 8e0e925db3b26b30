import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

/** Fills a number input the way a person does: select, type, leave. */
async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

const SHOTS = process.env.SHOTS_DIR ?? 'test-results/screens';

/**
 * Ends the page's workers whose name starts with `prefix` (the Lab's is "training#<lock>", Compare's
 * "compare…") the way the browser ends one out of memory: no message, no error event reaches the page.
 */
async function killWorker(page: Page, prefix: string): Promise<boolean> {
  let killed = false;
  for (const w of page.workers()) {
    if (!(await w.evaluate((p) => self.name.startsWith(p), prefix).catch(() => false))) continue;
    await w.evaluate(() => setTimeout(() => self.close(), 0)).catch(() => undefined);
    killed = true;
  }
  return killed;
}

test('the training worker dies mid-run: the Lab says so, starts a fresh one, and resumes from the last checkpoint', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toContainText('556.9k');
  await setNumber(page, 'steps', 40);
  await setNumber(page, 'batch', 2);
  await setNumber(page, 'seqlen', 16);
  await setNumber(page, 'eval-every', 0);
  await page.getByText('Memory and offload').click();
  await setNumber(page, 'checkpoint-every', 4);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('checkpoint-status')).toContainText(/checkpoint at step \d+/, {
    timeout: 120_000,
  });

  expect(await killWorker(page, 'training')).toBe(true);

  const crash = page.getByTestId('crash-banner');
  await expect(crash).toContainText(
    /the training worker stopped .*resume the run from its checkpoint at step \d+ below/,
  );
  const banner = page.getByTestId('resume-banner');
  await expect(banner).toContainText(/A run of LoRA on moby-dick stopped at step \d+\s+of 40/, {
    timeout: 60_000,
  });
  const k = Number(/stopped at step (\d+)/.exec((await banner.textContent()) ?? '')![1]);
  expect(k % 4).toBe(0);
  await expect(crash).toContainText(`checkpoint at step ${k} below`);
  await expect(page.getByTestId('model-facts')).toContainText('556.9k');
  await page.screenshot({ path: `${SHOTS}/faults-worker-crash.png`, fullPage: true });

  await page.getByTestId('resume-run').click();
  await expect(crash).toBeHidden();
  await expect(page.getByTestId('checkpoint-status')).toContainText(
    `resumed from the checkpoint at step ${k}`,
  );
  await expect(page.getByTestId('run-facts')).toHaveAttribute('data-first-step', String(k + 1));
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 150_000 });
  await expect(page.getByTestId('step')).toHaveText('40 / 40');
  await page.screenshot({ path: `${SHOTS}/faults-worker-resumed.png`, fullPage: true });
  expect(errors).toEqual([]);
});

test('the training worker dies while a picked model loads: the fresh worker loads the pick', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toContainText('556.9k', { timeout: 90_000 });
  // peftlab-m's weights are held back until the worker is gone: the pick is still loading when it dies.
  let release = (): void => undefined;
  const held = new Promise<void>((r) => (release = r));
  let requested = false;
  await page.route('**/models/peftlab-m/model.safetensors', async (route) => {
    requested = true;
    await held;
    await route.continue().catch(() => undefined);
  });
  await page.getByTestId('model-select').selectOption('peftlab-m');
  await expect.poll(() => requested).toBe(true);
  expect(await killWorker(page, 'training')).toBe(true);
  release();
  await expect(page.getByTestId('crash-banner')).toContainText('A fresh worker has started.', {
    timeout: 90_000,
  });
  await expect(page.getByTestId('model-select')).toHaveValue('peftlab-m');
  await expect(page.getByTestId('model-facts')).not.toContainText('556.9k', { timeout: 90_000 });
  await expect(page.getByTestId('error')).toHaveCount(0);
  await page.screenshot({ path: `${SHOTS}/faults-crash-while-loading.png`, fullPage: true });
  expect(errors).toEqual([]);
});

test('the compare worker dies mid-race: the screen says so, starts a fresh one, and a new race runs', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/compare?model=peftlab-s&task=spam&methods=lora,ia3');
  await expect(page.getByTestId('compare-model-facts')).toBeVisible({ timeout: 60_000 });
  await setNumber(page, 'compare-steps', 2000);
  await setNumber(page, 'compare-batch', 2);
  await setNumber(page, 'compare-seqlen', 16);
  await setNumber(page, 'compare-eval', 0);
  await page.getByTestId('compare-start').click();
  await expect(page.getByTestId('lane-step').first()).toHaveText(/^[1-9]\d* \/ 2000$/, { timeout: 60_000 });
  expect(await killWorker(page, 'compare')).toBe(true);
  const error = page.getByTestId('compare-error');
  await expect(error).toContainText(
    /WorkerCrashedError: the compare worker stopped .*A fresh worker has started; the race was lost: start it again\./,
    { timeout: 60_000 },
  );
  await expect(page.getByTestId('compare-model-facts')).toBeVisible({ timeout: 60_000 });
  await page.screenshot({ path: `${SHOTS}/faults-compare-crash.png`, fullPage: true });
  await setNumber(page, 'compare-steps', 3);
  await page.getByTestId('compare-start').click();
  await expect(page.getByTestId('lane-step').first()).toHaveText('3 / 3', { timeout: 60_000 });
  await expect(error).toHaveCount(0);
  expect(errors).toEqual([]);
});

/** The test Hub (e2e/hub-server.mjs); HUB_URL when a run serves it on another port. */
const HUB = process.env.HUB_URL ?? 'http://127.0.0.1:4174';

test('Hub faults in the browser: a gated repo and a download cut short are named, and nothing of them is cached', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`/?hub=${HUB}`);
  await expect(page.getByTestId('model-facts')).toBeVisible();
  const error = page.getByTestId('error');

  // Gated: the Hub's X-Error-Code reaches the page (CORS exposes it), and the app says what to do
  // without a token.
  await page.getByTestId('hub-repo').fill('gated/model');
  await page.getByTestId('hub-load').click();
  await expect(error).toContainText(
    `HubAccessError: gated/model/config.json: the Hub refused access (HTTP 401); the repo is gated: accept its licence at ${HUB}/gated/model while logged in, then download its files there with your account and open them as a folder under Base model in the Lab (the app sends no token)`,
  );
  await expect(page.getByTestId('status')).toHaveText('gated/model was not downloaded');
  await page.screenshot({ path: `${SHOTS}/faults-hub-gated.png`, fullPage: true });
  await page.getByRole('button', { name: 'Dismiss' }).click();

  // Cut short: Chromium's own fetch errors under a true Content-Length; nothing is kept.
  await page.getByTestId('hub-repo').fill('broken/cut');
  await page.getByTestId('hub-load').click();
  await expect(error).toContainText(
    /HubConnectionError: broken\/cut\/model.safetensors: the connection broke after .* of 2\.1 MiB: try again; nothing of it was kept/,
    { timeout: 60_000 },
  );
  await page.getByRole('button', { name: 'Dismiss' }).click();
  await page.getByRole('link', { name: 'Models' }).click();
  await expect(page.getByTestId('no-cached-models')).toBeVisible();

  // A model cached before stays whole through a failed download of another.
  await page.getByRole('link', { name: 'Lab' }).click();
  await page.getByTestId('hub-repo').fill('peftlab/peftlab-s');
  await page.getByTestId('hub-load').click();
  await expect(page.getByTestId('status')).toHaveText('hub: peftlab/peftlab-s downloaded and cached', {
    timeout: 60_000,
  });
  await page.getByTestId('hub-repo').fill('broken/cut');
  await page.getByTestId('hub-load').click();
  await expect(error).toContainText('HubConnectionError: broken/cut/model.safetensors', { timeout: 60_000 });
  await page.getByRole('link', { name: 'Models' }).click();
  await expect(page.getByTestId('cached-row')).toHaveCount(1);
  await expect(page.getByTestId('cached-row')).toContainText('hub: peftlab/peftlab-s');
  await expect(page.getByTestId('cached-row')).toContainText('2.2 MiB');
  expect(errors).toEqual([]);
});
