/**
 * The swarm's two other kinds of peers, from the Swarm screen: a second page of the app (a tab in the
 * same browser context) hosting blocks for the first page's swarm, and `peft-lab swarm serve`
 * processes started here, added by their ws:// address and token. Through each kind the screen both
 * generates and trains, with the tokens and the losses of the same run done locally.
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

test('a second page as a tab peer: generation and prompt tuning through it equal local, and closing it is survived', async ({
  context,
}) => {
  test.setTimeout(300_000);
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

  // Prompt tuning through the other tab alone: the same losses as the same run (same seed) in page
  // A's worker, every step's activations and their gradients through page B's blocks.
  await a.getByTestId('swarm-method').selectOption('prompt-tuning');
  await a.getByTestId('swarm-steps').fill('4');
  await a.getByTestId('swarm-train').click();
  await expect(a.getByTestId('swarm-train-verdict')).toBeVisible({ timeout: 120_000 });
  await expect(a.getByTestId('swarm-loss-chart')).toHaveAttribute('data-points', '4,4');
  await expect(a.getByTestId('swarm-train-verdict')).not.toContainText('failure');
  const tabDiff = Number(await a.getByTestId('swarm-train-verdict').getAttribute('data-max-diff'));
  expect(tabDiff).toBeGreaterThanOrEqual(0);
  expect(tabDiff).toBeLessThan(1e-5);
  expect(await a.getByTestId('hop').evaluateAll((r) => r.map((x) => x.getAttribute('data-peer')))).toEqual([
    tabPeer,
  ]);
  await a.screenshot({ path: `${SHOTS}/swarm-tab-trained.png`, fullPage: true });

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

test('swarm serve processes added by address and token: same tokens, and LoRA through them survives one killed mid-training with the local losses', async ({
  page,
}) => {
  test.setTimeout(300_000);
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

    // A second process serving the same blocks, then LoRA through the serve peers (the adapter stays
    // in this tab and travels with each request). On 60 ms links a step takes a visible while: once
    // the swarm's first step is in, the process in the chain is killed mid-run; the step is retried
    // through the other one and every loss still equals the same run's (same seed) in the worker.
    const second = serve(
      ['--blocks', '1:3', '--port', '0', '--token', 'e2e-token', '--peer-id', 'lan-b'],
      started,
    );
    await page.getByTestId('remote-url').fill((await second).url);
    await page.getByTestId('add-remote').click();
    await expect(row).toHaveCount(2, { timeout: 30_000 });
    await page.getByTestId('link-latency').fill('60');
    await page.getByTestId('link-latency').dispatchEvent('change');
    await expect(page.getByText('Latency 60 ms')).toBeVisible();
    await page.getByTestId('swarm-method').selectOption('lora');
    await page.getByTestId('swarm-steps').fill('6');
    await page.getByTestId('swarm-train').click();
    const chart = page.getByTestId('swarm-loss-chart');
    // data-points: the swarm's steps, then the local run's (which runs first).
    await expect
      .poll(async () => Number((await chart.getAttribute('data-points'))?.split(',')[0] ?? 0), {
        timeout: 120_000,
        intervals: [50],
      })
      .toBeGreaterThanOrEqual(1);
    const inChain = await page
      .getByTestId('hop')
      .evaluateAll((r) => r.map((x) => x.getAttribute('data-peer')).filter((p) => p?.startsWith('lan-')));
    expect(inChain).toHaveLength(1);
    const victim = inChain[0]!;
    expect((await chart.getAttribute('data-points'))?.split(',')[0]).not.toBe('6');
    started[victim === 'lan-a' ? 0 : 1]!.kill('SIGKILL');
    await expect(page.locator(`[data-testid="peer-row"][data-peer="${victim}"]`)).toHaveAttribute(
      'data-alive',
      'false',
      { timeout: 30_000 },
    );
    const verdict = page.getByTestId('swarm-train-verdict');
    await expect(verdict).toBeVisible({ timeout: 180_000 });
    await expect(chart).toHaveAttribute('data-points', '6,6');
    await expect(verdict).toContainText(/; \d+ peer failure\(s\) survived/);
    const loraDiff = Number(await verdict.getAttribute('data-max-diff'));
    expect(loraDiff).toBeGreaterThanOrEqual(0);
    expect(loraDiff).toBeLessThan(1e-5);
    const survivor = victim === 'lan-a' ? 'lan-b' : 'lan-a';
    expect(
      await page.getByTestId('hop').evaluateAll((r) => r.map((x) => x.getAttribute('data-peer'))),
    ).toEqual(['w1', survivor]);
    await expect(
      page.getByTestId('log-line').filter({ hasText: `peer ${victim} [1:3] is gone` }),
    ).toHaveCount(1);
    await expect(page.locator('[data-testid="log-line"][data-level="failure"]').first()).toBeVisible();
    await page.screenshot({ path: `${SHOTS}/swarm-serve-trained.png`, fullPage: true });

    // The other process stops too: the screen shows it dead.
    started[survivor === 'lan-a' ? 0 : 1]!.kill('SIGTERM');
    await expect(page.locator(`[data-testid="peer-row"][data-peer="${survivor}"]`)).toHaveAttribute(
      'data-alive',
      'false',
      { timeout: 30_000 },
    );
    await expect(
      page.getByTestId('log-line').filter({ hasText: `peer ${survivor} [1:3] is gone` }),
    ).toHaveCount(1);
    expect(errors).toEqual([]);
  } finally {
    for (const c of started) c.kill('SIGKILL');
  }
});
