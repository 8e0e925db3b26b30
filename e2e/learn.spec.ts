import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

const shot = (page: Page, name: string) =>
  page.screenshot({ path: `test-results/screens/${name}.png`, fullPage: true });

test('open a lesson, run its experiment at 2 steps, read the verdict, open it in Compare, find it kept after a reload', async ({
  page,
}) => {
  // The race of three lanes at 2 steps takes 15-60 s (evaluation included) on a busy 2-core machine.
  test.setTimeout(420_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await page.getByRole('link', { name: 'Learn', exact: true }).click();
  await expect(page).toHaveURL(/#\/learn$/);
  await expect(page.getByTestId('lesson-list')).toBeVisible();
  const lora = page.locator('[data-testid="lesson-item"][data-lesson="lora"]');
  await expect(lora).toHaveAttribute('data-done', 'no');
  await expect(page.getByTestId('learn-done-count')).toHaveText(/^done 0\/\d+$/);
  await shot(page, 'learn-list');

  await lora.getByTestId('lesson-link').click();
  await expect(page).toHaveURL(/#\/learn\?lesson=lora$/);
  await expect(page.getByTestId('lesson')).toContainText('LoRA');
  // The figure is drawn from the live model: one diagram per lane.
  await expect(page.getByTestId('lesson-figure').locator('svg').first()).toBeVisible({ timeout: 60_000 });

  const steps = page.getByTestId('knob-steps');
  await steps.fill('2');
  await steps.blur();
  await expect(steps).toHaveValue('2');
  await page.getByTestId('experiment-run').click();
  await expect(page.getByTestId('experiment-stop')).toBeVisible();
  await expect(page.getByTestId('experiment-progress')).toContainText(/LoRA and full fine-tuning/);
  await expect(page.getByTestId('learn-backend-name')).toHaveText(/wasm|webgpu|webgl|cpu/, {
    timeout: 60_000,
  });

  const outcome = page.getByTestId('verdict-outcome');
  await expect(outcome).toHaveText(/^(holds|does not hold|mixed)$/i, { timeout: 300_000 });
  const text = page.getByTestId('verdict-text');
  await expect(text).toContainText(/\d[\d,.]* parameters/);
  await expect(text).toContainText(/MiB/);
  await expect(page.getByTestId('verdict-table').locator('tbody tr')).toHaveCount(3);
  await expect(page.getByTestId('experiment-error')).toHaveCount(0);
  const verdictText = await text.textContent();

  // The race runs LoRA twice (two configs), so each lane opens on its own in Compare.
  const links = page.getByTestId('lab-link');
  await expect(links).toHaveCount(3);
  await expect(links).toHaveText([
    'LoRA on c_attn in Compare',
    'LoRA on every linear layer in Compare',
    'Full fine-tuning in Compare',
  ]);
  const href = (await links.nth(1).getAttribute('href')) ?? '';
  expect(href).toMatch(/^#\/compare\?/);
  const q = new URLSearchParams(href.slice(href.indexOf('?') + 1));
  expect(q.get('model')).toBe('peftlab-m');
  expect(q.get('task')).toBe('spam');
  expect(q.get('methods')).toBe('lora');
  expect(q.get('steps')).toBe('2');
  expect(q.get('cfg.lora.targetModules')).toBe('c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj');
  await page.getByTestId('lesson-step').nth(2).scrollIntoViewIfNeeded();
  await shot(page, 'learn-lesson');

  await links.nth(1).click();
  await expect(page).toHaveURL(/#\/compare\?/);
  await expect(page.getByTestId('compare-model-facts')).toContainText('peftlab-m', { timeout: 60_000 });
  await expect(page.getByTestId('pick-lora')).toBeChecked();
  await expect(page.getByTestId('pick-full')).not.toBeChecked();
  await expect(page.getByTestId('compare-steps')).toHaveValue('2');
  // SpamAssassin is classification: the manual prompt template field is there, empty for this lesson.
  await expect(page.getByTestId('compare-template')).toHaveValue('');
  await expect(page.getByTestId('compare-notes')).toHaveCount(0);

  // Progress is kept across a reload.
  await page.goto('/#/learn');
  await page.reload();
  await expect(lora).toHaveAttribute('data-done', 'yes');
  await expect(page.getByTestId('learn-done-count')).toHaveText(/^done 1\/\d+$/);
  await lora.getByTestId('lesson-link').click();
  await expect(page.getByTestId('lesson-done')).toBeVisible();
  await expect(page.getByTestId('verdict-text')).toHaveText(verdictText ?? '');
  await expect(page.getByTestId('knob-steps')).toHaveValue('2');
  expect(errors).toEqual([]);
});

test('Stop ends a running experiment with a verdict of what ran; every lesson renders', async ({ page }) => {
  test.setTimeout(300_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/learn?lesson=lora');
  await expect(page.getByTestId('lesson')).toHaveAttribute('data-lesson', 'lora');
  await page.getByTestId('experiment-run').click();
  const progress = page.getByTestId('experiment-progress');
  await expect(progress).toContainText(/step \d+\/\d+ of /, { timeout: 150_000 });
  await page.getByTestId('experiment-stop').click();
  await expect(page.getByTestId('verdict-stopped')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('verdict-outcome')).toHaveText(/^(holds|does not hold|mixed)$/i);
  await expect(page.getByTestId('experiment-run')).toBeEnabled();

  // Every lesson renders in the same view (after the run: their figures queue behind nothing).
  await page.goto('/#/learn');
  const items = page.getByTestId('lesson-item');
  await expect(items.first()).toBeVisible();
  const ids = await items.evaluateAll((els) => els.map((e) => e.getAttribute('data-lesson') ?? ''));
  expect(ids.length).toBeGreaterThan(0);
  for (const id of ids) {
    await page.goto(`/#/learn?lesson=${id}`);
    await expect(page.getByTestId('lesson')).toHaveAttribute('data-lesson', id);
    await expect(page.getByTestId('lesson-step').first()).toBeVisible();
    await expect(page.getByTestId('experiment-run').first()).toBeVisible();
  }

  expect(errors).toEqual([]);
});
