/**
 * The swarm's two other kinds of peers, from the Swarm screen: a second page of the app (a tab in the
 * same browser context) hosting blocks for the first page's swarm, and a `peft-lab swarm serve`
 * process started here, added by its ws:// address and token.
 */
import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SHOTS = process.env.SWARM_SHOTS ?? 'test-results/screens';
mkdirSync(SHOTS, { recursive: true });
const ROOT = fileURLToPath(new URL('../', import.meta.url));

async function openSwarm(page: Page): Promise<void> {
  await page.goto('/#/swarm');
  await expect(page.getByTestId('swarm-status')).toContainText('peftlab-s: 3 blocks', { timeout: 60_000 });
}

async function generate(page: Page, tokens: number): Promise<void> {
  await page.getByTestId('swarm-tokens').fill(String(tokens));
  await page.getByTestId('swarm-generate').click();
}

test('a second page as a tab peer: generation through it equals local, and closing it is survived', async ({
  context,
}) => {
  const errors: string[] = [];
  const a = await context.newPage();
  const b = await context.newPage();
  for (const p of [a, b]) p.on('pageerror', (e) => errors.push(e.message));
  await openSwarm(a);
  await openSwarm(b);

  // Page B offers blocks 0:3 (the span picker's default: the whole model) to another tab.
  await b.getByTestId('offer-tab').click();
  await expect(b.getByTestId('hosted')).toHaveAttribute('data-joined', 'false');
  // Page A sees the offer and takes it: the peer appears as another tab's.
  await a.getByTestId('join-tab').click();
  const tabRow = a.locator('[data-testid="peer-row"][data-kind="tab"]');
  await expect(tabRow).toHaveCount(1, { timeout: 60_000 });
  const tabPeer = (await tabRow.getAttribute('data-peer'))!;
  await expect(a.getByTestId('peer-kind')).toHaveText('other tab');
  await expect(b.getByTestId('hosted')).toHaveAttribute('data-joined', 'true');
  await expect(a.getByTestId('log-line').filter({ hasText: 'joined in another tab' })).toHaveCount(1);
  await b.screenshot({ path: `${SHOTS}/swarm-tab-hosting.png`, fullPage: true });

  // Through the other tab alone: the same tokens as the whole model in page A's worker.
  await generate(a, 64);
  await expect(a.getByTestId('swarm-verdict')).toContainText('Same tokens', { timeout: 120_000 });
  const clean = (await a.getByTestId('swarm-text').textContent())!;
  expect(await a.getByTestId('hop').evaluateAll((r) => r.map((x) => x.getAttribute('data-peer')))).toEqual([
    tabPeer,
  ]);
  await a.screenshot({ path: `${SHOTS}/swarm-tab-peer.png`, fullPage: true });

  // Again on a slow network, with a worker of page A joining mid-generation; then page B closes:
  // the client routes around the dead tab to the new worker and replays, with the same tokens.
  // 150 ms each way: 64 tokens take 20 s at least, time enough to start a worker meanwhile.
  await a.getByTestId('link-latency').fill('150');
  await a.getByTestId('link-latency').dispatchEvent('change');
  await expect(a.getByText('Latency 150 ms')).toBeVisible();
  await generate(a, 64);
  await expect
    .poll(async () => Number((await a.getByTestId('swarm-token-count').textContent())?.split(' ')[0]), {
      timeout: 60_000,
      intervals: [50],
    })
    .toBeGreaterThanOrEqual(1);
  await a.getByTestId('add-peer').click();
  await expect(a.locator('[data-testid="peer-row"][data-kind="worker"]')).toHaveCount(1, { timeout: 60_000 });
  await expect(a.getByTestId('swarm-verdict')).toHaveCount(0);
  await b.close();
  await expect(a.locator(`[data-testid="peer-row"][data-peer="${tabPeer}"]`)).toHaveAttribute(
    'data-alive',
    'false',
  );
  await expect(a.getByTestId('swarm-verdict')).toContainText('failure(s) survived', { timeout: 120_000 });
  await expect(a.getByTestId('swarm-verdict')).toContainText('Same tokens');
  expect(await a.getByTestId('swarm-text').textContent()).toBe(clean);
  await expect(a.getByTestId('log-line').filter({ hasText: `peer ${tabPeer} [` })).toContainText('is gone');
  await expect(a.locator('[data-testid="log-line"][data-level="recovery"]').first()).toContainText(
    /rerouted blocks 0:3 to w1\[0:3\] and replayed \d+ positions/,
  );
  await a.screenshot({ path: `${SHOTS}/swarm-tab-closed.png`, fullPage: true });
  expect(errors).toEqual([]);
});

/** Starts `peft-lab swarm serve` on the bundled model and resolves with its URL once it listens. */
function serve(args: string[], started: ChildProcess[]): Promise<{ url: string; peer: { peerId: string } }> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'bin/peft-lab.mjs'),
      'swarm',
      'serve',
      '--model',
      join(ROOT, 'public/models/peftlab-s'),
      '--json',
      ...args,
    ],
    { cwd: ROOT },
  );
  started.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n'))
        resolve(JSON.parse(out.split('\n')[0]!) as { url: string; peer: { peerId: string } });
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => reject(new Error(`swarm serve exited with ${code}: ${err}`)));
  });
}

test('a swarm serve process added by its address and token: shown in the chain, same tokens', async ({
  page,
}) => {
  const started: ChildProcess[] = [];
  try {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const served = serve(
      ['--blocks', '1:3', '--port', '0', '--token', 'e2e-token', '--peer-id', 'lan-a'],
      started,
    );
    await openSwarm(page);
    const { url } = await served;

    // A bad address is refused before anything is sent; a wrong token by the peer, with its error.
    await page.getByTestId('remote-url').fill('http://127.0.0.1:1');
    await expect(page.getByTestId('add-remote')).toBeDisabled();
    await page.getByTestId('remote-url').fill(url);
    await page.getByTestId('remote-token').fill('wrong');
    await page.getByTestId('add-remote').click();
    await expect(page.getByTestId('swarm-error')).toContainText('wrong token');
    await page.getByTestId('remote-token').fill('e2e-token');
    await page.getByTestId('add-remote').click();
    const row = page.locator('[data-testid="peer-row"][data-kind="ws"]');
    await expect(row).toHaveCount(1, { timeout: 30_000 });
    await expect(row).toHaveAttribute('data-peer', 'lan-a');
    await expect(row).toContainText('[1:3]');
    await expect(page.getByTestId('swarm-error')).toHaveCount(0);

    // Block 0 in a worker of this tab, blocks 1 and 2 in the serve process.
    await page.getByTestId('peer-start').selectOption('0');
    await page.getByTestId('peer-end').selectOption('1');
    await page.getByTestId('add-peer').click();
    await expect(page.getByTestId('peer-row')).toHaveCount(2, { timeout: 60_000 });
    await generate(page, 12);
    await expect(page.getByTestId('swarm-verdict')).toContainText('Same tokens', { timeout: 120_000 });
    expect(
      await page.getByTestId('hop').evaluateAll((r) => r.map((x) => x.getAttribute('data-peer'))),
    ).toEqual(['w1', 'lan-a']);
    await expect(page.locator('[data-testid="hop"][data-peer="lan-a"]')).toContainText(/\d+\.\d (KiB|MiB)/);
    await page.screenshot({ path: `${SHOTS}/swarm-serve-peer.png`, fullPage: true });

    // The process stops: the screen shows the peer dead.
    started[0]!.kill('SIGTERM');
    await expect(row).toHaveAttribute('data-alive', 'false', { timeout: 30_000 });
    await expect(page.getByTestId('log-line').filter({ hasText: 'peer lan-a [1:3] is gone' })).toHaveCount(1);
    expect(errors).toEqual([]);
  } finally {
    for (const c of started) c.kill('SIGKILL');
  }
});
