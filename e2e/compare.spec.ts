import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';
import { readFileSync } from 'node:fs';

/** Fills a number input the way a person does: select, type, leave. */
async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

/** Ticks exactly these methods by clicking their boxes. */
async function pickMethods(page: Page, methods: string[]): Promise<void> {
  for (const box of await page.locator('[data-testid^="pick-"]').all()) {
    const id = ((await box.getAttribute('data-testid')) ?? '').slice('pick-'.length);
    if ((await box.isDisabled()) || (await box.isChecked()) === methods.includes(id)) continue;
    await box.click();
  }
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: `test-results/screens/${name}.png`, fullPage: true });

test('race three methods, watch the curves, read the results, try them, see where they train, share and save', async ({
  page,
  context,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await page.getByRole('link', { name: 'Compare' }).click();
  await expect(page).toHaveURL(/#\/compare/);

  // The compare worker says which backend it runs on, as the Lab's header does.
  await expect(page.getByTestId('compare-backend-name')).toHaveText(/wasm|webgpu|webgl|cpu/, {
    timeout: 60_000,
  });
  await expect(page.getByTestId('compare-model-facts')).toContainText('peftlab-s', { timeout: 60_000 });
  await page.getByTestId('compare-model').selectOption('peftlab-s');
  await page.getByTestId('compare-task').selectOption('moby-dick');
  await pickMethods(page, ['lora', 'prompt-tuning', 'adalora']);
  await expect(page.getByTestId('pick-p-tuning-v2')).toBeDisabled();
  // Each method's settings fold out, with its own learning rate from the catalog.
  await page.getByTestId('details-prompt-tuning').locator('summary').click();
  await expect(page.getByTestId('lr-prompt-tuning')).toHaveValue('0.03');
  await expect(page.getByTestId('field-prompt-tuning-numVirtualTokens')).toBeVisible();
  await setNumber(page, 'compare-steps', 6);
  await setNumber(page, 'compare-batch', 2);
  await setNumber(page, 'compare-seqlen', 32);
  await setNumber(page, 'compare-eval', 3);
  await expect(page.getByTestId('race-empty')).toBeVisible();
  await shot(page, 'compare-setup');

  await page.getByTestId('compare-start').click();
  // Curves appear, one series per method, while the lanes train.
  const loss = page.getByTestId('race-loss-chart');
  await expect(loss).toHaveAttribute('data-series', 'LoRA|Prompt tuning|AdaLoRA', { timeout: 60_000 });
  await expect(loss).toHaveAttribute('data-points', /[1-9]/, { timeout: 60_000 });
  await shot(page, 'compare-racing');

  await expect(page.getByTestId('result-row')).toHaveCount(3, { timeout: 120_000 });
  await expect(loss).toHaveAttribute('data-points', '6,6,6');
  await expect(page.getByTestId('race-metric-chart')).toHaveAttribute('data-points', '3,3,3');
  await expect(page.getByTestId('lane-step')).toHaveText(['6 / 6', '6 / 6', '6 / 6']);
  // Every lane measured its memory after its second step.
  await expect(page.locator('[data-testid="ledger-row"][data-measured="yes"]')).toHaveCount(3);
  const verdicts = page.getByTestId('verdicts').locator('li');
  await expect(verdicts.first()).toContainText(/won on held-out perplexity|tied on/);
  await expect(verdicts.filter({ hasText: 'trained the fewest parameters' })).toHaveCount(1);
  await shot(page, 'compare-results');
  await page.getByTestId('race').screenshot({ path: 'test-results/screens/compare-race-panel.png' });
  await page.getByTestId('lanes').screenshot({ path: 'test-results/screens/compare-lanes-panel.png' });

  // Sorting by trainable parameters, then the other way round.
  const methodsInOrder = () =>
    page.getByTestId('result-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-method')));
  const trainableInOrder = () =>
    page
      .getByTestId('result-row')
      .evaluateAll((rows) => rows.map((r) => r.querySelectorAll('td')[0]!.textContent!.trim()));
  await page.getByTestId('sort-trainableParams').click();
  const ascending = await methodsInOrder();
  await page.getByTestId('sort-trainableParams').click();
  expect(await methodsInOrder()).toEqual([...ascending].reverse());
  expect((await trainableInOrder()).length).toBe(3);

  // Exports: the CSV from the results, and the loss chart as a PNG on white.
  const [csv] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
  expect(csv.suggestedFilename()).toBe('peftlab-s-moby-dick-results.csv');
  const csvText = readFileSync((await csv.path())!, 'utf8');
  expect(csvText.split('\r\n')[0]).toContain('perplexity');
  expect(csvText.trim().split('\r\n')).toHaveLength(4);
  const [png] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-png').click()]);
  const pngBytes = readFileSync((await png.path())!);
  expect([...pngBytes.subarray(1, 4)].map((b) => String.fromCharCode(b)).join('')).toBe('PNG');
  expect(pngBytes.length).toBeGreaterThan(5000);
  const [json] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-json').click()]);
  const snapshot = JSON.parse(readFileSync((await json.path())!, 'utf8')) as { lanes: unknown[] };
  expect(snapshot.lanes).toHaveLength(3);

  // Try it: the base and the three lanes answer the same prompt.
  await page.getByTestId('try-text').fill('The whale');
  await page.getByTestId('try-all').click();
  await expect(page.getByTestId('try-answer')).toHaveCount(4, { timeout: 60_000 });
  await expect(page.getByTestId('try-answer').first()).toContainText('Base model');
  for (const a of await page.getByTestId('try-answer').all()) await expect(a).toContainText('The whale');
  await page.getByTestId('try').scrollIntoViewIfNeeded();
  await shot(page, 'compare-try');
  await page.getByTestId('try').screenshot({ path: 'test-results/screens/compare-try-panel.png' });

  // Where the parameters live: one diagram per lane, what trains coloured and counted.
  await page.getByTestId('where').locator('summary').click();
  await expect(page.getByTestId('where-lane')).toHaveCount(3);
  await expect(
    page.locator('[data-testid="where-lane"][data-kind="prompt"] [data-testid="where-box-on"]'),
  ).toHaveCount(1);
  expect(
    await page.locator('[data-testid="where-lane"][data-kind="inject"] [data-testid="where-box-on"]').count(),
  ).toBeGreaterThanOrEqual(3);
  // AdaLoRA's rank budget and the soft prompt read back.
  await expect(page.getByTestId('rank-heatmap')).toHaveCount(1);
  await expect(page.getByTestId('rank-heatmap').locator('rect').first()).toBeVisible();
  const virtual = await page.getByTestId('field-prompt-tuning-numVirtualTokens').inputValue();
  await expect(page.getByTestId('nearest-row')).toHaveCount(Number(virtual));
  await page.getByTestId('where').scrollIntoViewIfNeeded();
  await shot(page, 'compare-where');
  await page.getByTestId('where').screenshot({ path: 'test-results/screens/compare-where-diagram.png' });
  await page.getByTestId('ranks').screenshot({ path: 'test-results/screens/compare-rank-heatmap.png' });

  // Save the race; the link opens the same set-up in a new page (not started), with the race listed.
  await page.getByTestId('save-race').click();
  await expect(page.getByTestId('saved-race')).toHaveCount(1);
  await page.getByTestId('copy-link').click();
  const link = await page.getByTestId('share-link').inputValue();
  expect(link).toMatch(/#\/compare\?model=peftlab-s&task=moby-dick&methods=lora%2Cprompt-tuning%2Cadalora/);
  expect(link).toContain('steps=6');

  const other = await context.newPage();
  await other.goto(link);
  await expect(other.getByTestId('compare-model-facts')).toContainText('peftlab-s', { timeout: 60_000 });
  await expect(other.getByTestId('compare-task')).toHaveValue('moby-dick');
  for (const m of ['lora', 'prompt-tuning', 'adalora'])
    await expect(other.getByTestId(`pick-${m}`)).toBeChecked();
  await expect(other.getByTestId('pick-ia3')).not.toBeChecked();
  await expect(other.getByTestId('compare-steps')).toHaveValue('6');
  await expect(other.getByTestId('compare-batch')).toHaveValue('2');
  await expect(other.getByTestId('compare-seqlen')).toHaveValue('32');
  await expect(other.getByTestId('compare-eval')).toHaveValue('3');
  await expect(other.getByTestId('race-empty')).toBeVisible();
  await shot(other, 'compare-link-opened');

  // The saved race opens from the list with its table, charts and read-backs, and is deleted.
  await other.getByTestId('open-saved').click();
  await expect(other.getByTestId('saved-banner')).toContainText('moby-dick');
  await expect(other.getByTestId('result-row')).toHaveCount(3);
  await expect(other.getByTestId('race-loss-chart')).toHaveAttribute('data-points', '6,6,6');
  await expect(other.getByTestId('rank-heatmap')).toHaveCount(1);
  await shot(other, 'compare-saved-opened');
  other.once('dialog', (d) => void d.accept());
  await other.getByTestId('delete-saved').click();
  await expect(other.getByTestId('no-saved-races')).toBeVisible();
  await expect(other.getByTestId('saved-banner')).toHaveCount(0);

  // A method added to the finished race runs alone; the others keep their curves.
  await page.getByTestId('add-method-select').selectOption('ia3');
  await page.getByTestId('add-method').click();
  await expect(page.getByTestId('result-row')).toHaveCount(4, { timeout: 60_000 });
  await expect(loss).toHaveAttribute('data-series', 'LoRA|Prompt tuning|AdaLoRA|IA3');
  await expect(loss).toHaveAttribute('data-points', '6,6,6,6');
  await expect(page.getByTestId('lane-step')).toHaveText(['6 / 6', '6 / 6', '6 / 6', '6 / 6']);
  await shot(page, 'compare-added');

  expect(errors).toEqual([]);
});

test('pause holds the race, resume goes on, stop ends it; engine and link faults are shown', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // A link with faults: each one is named and falls back to the default.
  await page.goto('/#/compare?model=peftlab-s&task=spam&methods=lora,warp-drive,ia3&steps=abc&cfg.lora.r=x');
  const notes = page.getByTestId('compare-notes');
  await expect(notes).toContainText('unknown method "warp-drive"');
  await expect(notes).toContainText('steps=abc');
  await expect(notes).toContainText('cfg.lora.r');
  await expect(page.getByTestId('pick-lora')).toBeChecked();
  await expect(page.getByTestId('pick-ia3')).toBeChecked();
  await expect(page.getByTestId('pick-prompt-tuning')).not.toBeChecked();
  await shot(page, 'compare-link-notes');

  await expect(page.getByTestId('compare-model-facts')).toBeVisible({ timeout: 60_000 });
  // Equal budget: the engine's default target (prompt tuning's soft prompt), editable, in the link.
  await page.getByTestId('compare-equal').click();
  await expect(page.getByTestId('compare-budget')).toHaveValue(/^[1-9]\d*$/);
  const budget = Number(await page.getByTestId('compare-budget').inputValue());
  await expect(page.getByTestId('share-link')).toHaveValue(/equal=1/);
  await setNumber(page, 'compare-steps', 2000);
  await setNumber(page, 'compare-batch', 2);
  await setNumber(page, 'compare-seqlen', 16);
  await setNumber(page, 'compare-eval', 0);
  await page.getByTestId('compare-start').click();
  const firstStep = page.getByTestId('lane-step').first();
  await expect(firstStep).toHaveText(/^[1-9]\d* \/ 2000$/, { timeout: 60_000 });
  // LoRA was sized down to about the budget (its own count; the score head is the same for all).
  const loraTrainable = await page
    .locator('[data-testid="lane-row"]')
    .first()
    .evaluate((row) => row.querySelectorAll('td')[5]!.textContent!.trim());
  expect(loraTrainable).not.toBe('9.4k');
  expect(Number(loraTrainable.replace('k', '')) * (loraTrainable.endsWith('k') ? 1000 : 1)).toBeLessThan(
    budget * 2,
  );
  await page.getByTestId('compare-pause').click();
  await expect(page.getByTestId('compare-status')).toHaveText('paused');
  const held = await firstStep.textContent();
  await page.waitForTimeout(1500);
  await expect(firstStep).toHaveText(held!);
  await shot(page, 'compare-paused');
  await page.getByTestId('compare-resume').click();
  await expect(firstStep).not.toHaveText(held!, { timeout: 30_000 });
  await page.getByTestId('compare-stop').click();
  await expect(page.getByTestId('result-row')).toHaveCount(2, { timeout: 60_000 });
  await expect(page.locator('[data-testid="lane-row"][data-status="stopped"]')).toHaveCount(2);
  await expect(page.getByTestId('results-table')).toContainText('(stopped)');
  await shot(page, 'compare-stopped');

  // A setting the model cannot take: the engine's own message, and nothing starts.
  await setNumber(page, 'compare-seqlen', 4096);
  await page.getByTestId('compare-start').click();
  await expect(page.getByTestId('compare-error')).toContainText("exceeds the model's 256 positions", {
    timeout: 60_000,
  });
  await expect(page.getByTestId('compare-start')).toBeEnabled();
  await shot(page, 'compare-error');
  expect(errors).toEqual([]);
});
