import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';

/** Screenshots for a person to look at (the lead's review), beside the usual test-results ones. */
const SHOTS = process.env.SWARM_SHOTS ?? 'test-results/screens';
mkdirSync(SHOTS, { recursive: true });

async function addPeer(page: Page, start: number, end: number, count: number): Promise<void> {
  await page.getByTestId('peer-start').selectOption(String(start));
  await page.getByTestId('peer-end').selectOption(String(end));
  await page.getByTestId('add-peer').click();
  await expect(page.getByTestId('peer-row')).toHaveCount(count, { timeout: 60_000 });
  await expect(page.getByTestId('add-peer')).toBeEnabled();
}

test('three worker peers generate; one killed mid-generation is routed around with the same text', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/swarm');
  await expect(page.getByRole('link', { name: 'Swarm' })).toHaveClass(/active/);
  await expect(page.getByTestId('swarm-status')).toContainText('peftlab-s: 3 blocks', { timeout: 60_000 });

  // Every span held twice: 0:2 and 2:3, and one peer with the whole model.
  await addPeer(page, 0, 2, 1);
  await addPeer(page, 2, 3, 2);
  await addPeer(page, 0, 3, 3);
  await expect(page.getByTestId('log-line').filter({ hasText: 'joined' })).toHaveCount(3);

  // A slow network (40 ms each way on every link) makes a token take a visible while.
  await page.getByTestId('link-latency').fill('40');
  await page.getByTestId('link-latency').dispatchEvent('change');
  await expect(page.getByText('Latency 40 ms')).toBeVisible();

  await page.getByTestId('swarm-tokens').fill('16');
  await page.getByTestId('swarm-generate').click();
  await expect(page.getByTestId('swarm-verdict')).toContainText('Same tokens', { timeout: 120_000 });
  const clean = (await page.getByTestId('swarm-text').textContent())!;
  const hops = page.getByTestId('hop');
  await expect(hops.first()).toBeVisible();
  const firstChain = await hops.evaluateAll((rows) => rows.map((r) => r.getAttribute('data-peer')));
  // Each hop shows a round trip of at least the emulated 80 ms and the bytes it moved.
  await expect(hops.first()).toContainText(/\d+\.\d ms/);
  await page.screenshot({ path: `${SHOTS}/swarm-generated.png`, fullPage: true });

  // Again, and kill the chain's first peer after the third token.
  await page.getByTestId('swarm-generate').click();
  await expect
    .poll(async () => Number((await page.getByTestId('swarm-token-count').textContent())?.split(' ')[0]), {
      timeout: 60_000,
      intervals: [50],
    })
    .toBeGreaterThanOrEqual(3);
  const victim = firstChain[0]!;
  await page.locator(`[data-testid="kill-peer"][data-peer="${victim}"]`).click();
  await expect(page.locator(`[data-testid="peer-row"][data-peer="${victim}"]`)).toHaveAttribute(
    'data-alive',
    'false',
  );
  await expect(page.getByTestId('swarm-verdict')).toContainText('Same tokens', { timeout: 120_000 });
  await expect(page.getByTestId('swarm-verdict')).toContainText('failure(s) survived');
  expect(await page.getByTestId('swarm-text').textContent()).toBe(clean);
  // The log tells the story: the peer is lost, its request failed, its blocks were rerouted and replayed.
  await expect(page.getByTestId('log-line').filter({ hasText: `peer ${victim} [` })).toContainText('is gone');
  await expect(page.locator('[data-testid="log-line"][data-level="recovery"]').first()).toContainText(
    /rerouted blocks 0:\d to .* and replayed \d+ positions/,
  );
  const after = await hops.evaluateAll((rows) => rows.map((r) => r.getAttribute('data-peer')));
  expect(after).not.toContain(victim);
  await page.screenshot({ path: `${SHOTS}/swarm-recovered.png`, fullPage: true });

  // Prompt tuning through the two peers left: its loss curve beside the local run's, the same losses.
  await page.getByTestId('swarm-method').selectOption('prompt-tuning');
  await page.getByTestId('swarm-steps').fill('6');
  await page.getByTestId('swarm-train').click();
  await expect(page.getByTestId('swarm-train-verdict')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('swarm-loss-chart')).toHaveAttribute('data-points', '6,6');
  const diff = Number(await page.getByTestId('swarm-train-verdict').getAttribute('data-max-diff'));
  expect(diff).toBeGreaterThanOrEqual(0);
  expect(diff).toBeLessThan(1e-5);
  // The chain the training went through, without the dead peer.
  expect(await hops.evaluateAll((rows) => rows.map((r) => r.getAttribute('data-peer')))).not.toContain(
    victim,
  );
  await expect(hops.first()).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/swarm-trained.png`, fullPage: true });
  expect(errors).toEqual([]);
});
