import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';
import { METHOD_INFO } from '../src/lib/peft/catalog';

/** Every method in the catalog has its radio and its row (the catalog is tfjs-free). */
const METHODS = METHOD_INFO.map((m) => m.cliName);

/** Fills a number input the way a person does: select, type, leave. */
async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

/** Short runs: the point is that each method trains through the UI, not how well. */
async function shortRun(page: Page, steps: number, batch: number): Promise<void> {
  await setNumber(page, 'steps', steps);
  await setNumber(page, 'batch', batch);
  await setNumber(page, 'seqlen', 32);
  await setNumber(page, 'eval-every', 0);
}

test('pick prefix tuning and P-tuning v2 in the method panel, set their fields, train each, link the set-up', async ({
  page,
  context,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toContainText('556.9k');
  await page.getByTestId('backend-select').selectOption('wasm');
  await expect(page.getByTestId('backend-name')).toHaveText('wasm');

  // Every method of the catalog is listed with its kind; LoRA is picked, with the Lab's defaults.
  const picker = page.getByTestId('method');
  await expect(picker.getByRole('radio')).toHaveCount(METHODS.length);
  await expect(page.getByTestId('method-lora')).toBeChecked();
  await expect(page.getByTestId('method-option-prefix-tuning')).toContainText('prefix');
  await expect(page.getByTestId('method-option-ia3')).toContainText('inject');
  await expect(page.getByTestId('method-title')).toHaveText('LoRA settings');
  await expect(page.getByTestId('field-r')).toHaveValue('8');
  await expect(page.getByTestId('field-loraAlpha')).toHaveValue('16');
  await expect(page.getByTestId('field-loraDropout')).toHaveValue('0.05');
  await expect(page.getByTestId('field-targetModules-c_attn')).toBeChecked();
  await expect(page.getByTestId('lr')).toHaveValue('0.003');

  // The support table, folded away until opened.
  await page.getByText('Which method trains which task type').click();
  const v2Row = page.locator('[data-testid="support-row"][data-method="p-tuning-v2"]');
  await expect(v2Row).toBeVisible();
  await expect(v2Row.locator('td')).toHaveText(['—', '✓', '✓']);
  await expect(page.getByTestId('support-row')).toHaveCount(METHODS.length);
  await page.getByText('Which method trains which task type').click();

  // Prefix tuning: its own fields; encoderHiddenSize only once prefixProjection is ticked.
  await page.getByTestId('method-prefix-tuning').check();
  await expect(page.getByTestId('method-title')).toHaveText('Prefix tuning settings');
  await expect(page).toHaveURL(/#\/lab\?method=prefix-tuning$/);
  await expect(page.getByTestId('lr')).toHaveValue('0.01');
  await expect(page.getByTestId('field-r')).toHaveCount(0);
  await expect(page.getByTestId('field-numVirtualTokens')).toHaveValue('10');
  await expect(page.getByTestId('field-encoderHiddenSize')).toHaveCount(0);
  await page.getByTestId('field-prefixProjection').check();
  const hidden = page.getByTestId('field-encoderHiddenSize');
  await expect(hidden).toBeVisible();
  await expect(hidden).toHaveValue('');
  await expect(hidden).toHaveAttribute('placeholder', 'model width');
  await setNumber(page, 'field-encoderHiddenSize', 32);
  await setNumber(page, 'field-numVirtualTokens', 4);
  await page.screenshot({ path: 'test-results/screens/methods-prefix.png', fullPage: true });

  // Switching away and back keeps what was typed; the learning rate follows the method.
  await page.getByTestId('method-lora').check();
  await expect(page.getByTestId('field-r')).toHaveValue('8');
  await expect(page.getByTestId('lr')).toHaveValue('0.003');
  await page.getByTestId('method-prefix-tuning').check();
  await expect(page.getByTestId('field-prefixProjection')).toBeChecked();
  await expect(page.getByTestId('field-encoderHiddenSize')).toHaveValue('32');
  await expect(page.getByTestId('field-numVirtualTokens')).toHaveValue('4');
  await expect(page.getByTestId('lr')).toHaveValue('0.01');

  // Train prefix tuning a few steps on Moby-Dick.
  await shortRun(page, 6, 2);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 150_000 });
  await expect(page.getByTestId('step')).toHaveText('6 / 6');
  expect(Number(await page.getByTestId('loss-chart').getAttribute('data-points'))).toBe(6);
  await expect(page.getByTestId('result')).toContainText('Held-out loss');
  await expect(page.getByTestId('adapter-label')).toHaveText(
    'With adapter (Prefix tuning, moby-dick, trained 6 steps)',
  );
  await page.screenshot({ path: 'test-results/screens/methods-prefix-trained.png', fullPage: true });

  // P-tuning v2 cannot train a language-modelling task: off, with the reason.
  await expect(page.getByTestId('method-p-tuning-v2')).toBeDisabled();
  await expect(page.getByTestId('method-option-p-tuning-v2')).toContainText(
    'P-tuning v2: SEQ_CLS and TOKEN_CLS only',
  );

  // On spam it trains (a new score head beside the deep prompts).
  await page.getByTestId('task-select').selectOption('spam');
  await expect(page.getByTestId('method-p-tuning-v2')).toBeEnabled();
  await page.getByTestId('method-p-tuning-v2').check();
  await expect(page.getByTestId('method-title')).toHaveText('P-tuning v2 settings');
  await expect(page).toHaveURL(/[?&]method=p-tuning-v2(&|$)/);
  await expect(page).toHaveURL(/[?&]task=spam(&|$)/);
  await shortRun(page, 4, 4);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toContainText('Validation accuracy', { timeout: 150_000 });
  await expect(page.getByTestId('step')).toHaveText('4 / 4');
  await expect(page.getByTestId('adapter-label')).toHaveText(
    'With adapter (P-tuning v2, spam, trained 4 steps)',
  );
  await page.screenshot({ path: 'test-results/screens/methods-ptv2-trained.png', fullPage: true });

  // The saved record names the method (P-tuning v2 and prefix tuning share PREFIX_TUNING).
  await page.getByTestId('save-adapter').click();
  await expect(page.getByTestId('adapter-row')).toHaveCount(1);
  await expect(page.getByTestId('adapter-row')).toContainText('P-tuning v2');
  // Loaded back, it is still P-tuning v2 (not prefix tuning) and classifies with its score head.
  await page.getByTestId('load-adapter').click();
  await expect(page.getByTestId('adapter-label')).toHaveText(
    'With adapter (P-tuning v2, spam, trained 4 steps (P-tuning v2))',
  );
  await page.getByTestId('classify').click();
  await expect(page.getByTestId('class-prob')).toHaveCount(2, { timeout: 60_000 });

  // Both stay on the model, the trained one and the loaded copy: switch between them and to the base.
  await expect(page.getByTestId('resident-adapter')).toHaveCount(2);
  await expect(page.getByTestId('resident-adapter').nth(1)).toBeChecked();
  await page.getByTestId('resident-adapter').first().check();
  await expect(page.getByTestId('adapter-label')).toHaveText(
    'With adapter (P-tuning v2, spam, trained 4 steps)',
  );
  await page.getByTestId('classify').click();
  await expect(page.getByTestId('class-prob')).toHaveCount(2, { timeout: 60_000 });
  await page.getByTestId('resident-base').check();
  await expect(page.getByTestId('resident-base')).toBeChecked();
  await expect(page.getByTestId('adapter-label')).toHaveText('With adapter');
  await expect(page.getByTestId('cls-need-adapter')).toBeVisible();
  await page.screenshot({ path: 'test-results/screens/methods-resident.png', fullPage: true });
  await page.getByTestId('resident-adapter').nth(1).check();

  // The link opens the same set-up in a new page.
  const url = page.url();
  expect(new URL(url).hash).toContain('method=p-tuning-v2');
  const other = await context.newPage();
  await other.goto(url);
  await expect(other.getByTestId('model-facts')).toBeVisible();
  await expect(other.getByTestId('method-p-tuning-v2')).toBeChecked();
  await expect(other.getByTestId('task-select')).toHaveValue('spam');
  await expect(other.getByTestId('method-title')).toHaveText('P-tuning v2 settings');
  await expect(other.getByTestId('lr')).toHaveValue('0.01');
  await expect(other.getByTestId('train')).toBeEnabled();
  await other.close();

  // Back on a language-modelling task the picked method cannot train: said, and Train is off.
  await page.getByTestId('task-select').selectOption('moby-dick');
  await expect(page.getByTestId('method-unsupported')).toContainText(
    'P-tuning v2 trains SEQ_CLS and TOKEN_CLS tasks only, and moby-dick is a CAUSAL_LM task',
  );
  await expect(page.getByTestId('train')).toBeDisabled();
  await expect(page.getByTestId('train-blocked')).toHaveText('P-tuning v2: SEQ_CLS and TOKEN_CLS only');
  await page.screenshot({ path: 'test-results/screens/methods-unsupported.png', fullPage: true });
  expect(errors).toEqual([]);
});

test('a link with an unknown method names the known ones; the nav keeps the method', async ({ page }) => {
  await page.goto('/#/lab?task=brown-pos&method=ia3');
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await expect(page.getByTestId('method-ia3')).toBeChecked();
  await expect(page.getByTestId('field-feedforwardModules-mlp.c_proj')).toBeChecked();
  await page.getByRole('link', { name: 'Lab' }).click();
  await expect(page).toHaveURL(/#\/lab\?task=brown-pos&method=ia3$/);

  await page.goto('about:blank');
  await page.goto('/#/lab?method=dora'); // DoRA is LoRA's useDora, not a method of its own
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await expect(page.getByTestId('error')).toContainText(
    `unknown method "dora": pick one of ${METHODS.join(', ')}`,
  );
  await expect(page.getByTestId('method-lora')).toBeChecked();
  await expect(page.getByTestId('train')).toBeEnabled();
});
