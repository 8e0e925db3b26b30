/**
 * Lesson 9 through clicks: open it from the Learn list, run its experiment at the fewest steps, and
 * read a verdict computed from that run (offloading against the swarm at each latency, then a peer
 * killed mid-run with the losses unchanged).
 */
import { expect, test } from '@playwright/test';
import { mkdirSync } from 'node:fs';

const SHOTS = process.env.SWARM_SHOTS ?? 'test-results/screens';
mkdirSync(SHOTS, { recursive: true });

test('lesson 9 runs its swarm-or-offload experiment and shows the computed verdict', async ({ page }) => {
  // Offloaded steps, then the swarm at four latencies and once with a failure: about 35 s alone, more
  // on a busy 2-core machine.
  test.setTimeout(360_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/learn');
  const item = page.locator('[data-testid="lesson-item"][data-lesson="swarm"]');
  await expect(item).toContainText('One model, many machines');
  await item.getByTestId('lesson-link').click();
  await expect(page).toHaveURL(/#\/learn\?lesson=swarm$/);
  await expect(page.getByTestId('lesson')).toHaveAttribute('data-lesson', 'swarm');

  const steps = page.getByTestId('knob-steps');
  await steps.fill('2');
  await steps.blur();
  await expect(steps).toHaveValue('2');
  await page.getByTestId('experiment-run').click();
  await expect(page.getByTestId('experiment-stop')).toBeVisible();

  const outcome = page.getByTestId('verdict-outcome');
  await expect(outcome).toHaveText(/^(holds|does not hold|mixed)$/i, { timeout: 300_000 });
  await expect(page.getByTestId('experiment-error')).toHaveCount(0);
  const text = page.getByTestId('verdict-text');
  // Figures of this run: the offloaded step, the swarm's at the first and last latency, the kill.
  await expect(text).toContainText(/offloaded to IndexedDB at stage 3 it took \d+ ms/);
  await expect(text).toContainText(/it took \d+ ms at 0 ms of latency and \d+ ms at 100 ms/);
  await expect(text).toContainText(/peer \S+ died as step 2 began: the client rerouted its blocks/);
  await expect(text).toContainText(/Its losses equal those of the run without a failure/);
  // Worker alone, offloaded, the swarm at 0, 10, 30 and 100 ms, and the run with the kill.
  const rows = page.getByTestId('verdict-table').locator('tbody tr');
  await expect(rows).toHaveCount(7);
  await expect(rows.nth(6)).toContainText(/Swarm, 20 ms, peer killed/);
  await page.getByTestId('verdict').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${SHOTS}/learn-swarm.png`, fullPage: true });
  expect(errors).toEqual([]);
});
