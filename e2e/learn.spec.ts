import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

const shot = (page: Page, name: string) =>
  page.screenshot({ path: `test-results/screens/${name}.png`, fullPage: true });

test('open a lesson, run its two experiments at 2 steps, read the verdicts, open one in Compare, find them kept after a reload', async ({
  page,
}) => {
  // Each experiment at 2 steps takes 15-60 s (evaluation included) on a busy 2-core machine.
  test.setTimeout(600_000);
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

  // The lesson has two experiments: full fine-tuning against LoRA (step 3), then the LoRA variants (step 4).
  const first = page.getByTestId('lesson-step').nth(2);
  const steps = first.getByTestId('knob-steps');
  await steps.fill('2');
  await steps.blur();
  await expect(steps).toHaveValue('2');
  await first.getByTestId('experiment-run').click();
  await expect(first.getByTestId('experiment-stop')).toBeVisible();
  await expect(first.getByTestId('experiment-progress')).toContainText(/LoRA and full fine-tuning/);
  await expect(first.getByTestId('learn-backend-name')).toHaveText(/wasm|webgpu|webgl|cpu/, {
    timeout: 60_000,
  });

  const outcome = first.getByTestId('verdict-outcome');
  await expect(outcome).toHaveText(/^(holds|does not hold|mixed)$/i, { timeout: 300_000 });
  const text = first.getByTestId('verdict-text');
  await expect(text).toContainText(/\d[\d,.]* parameters/);
  await expect(text).toContainText(/MiB/);
  await expect(first.getByTestId('verdict-table').locator('tbody tr')).toHaveCount(3);
  await expect(page.getByTestId('experiment-error')).toHaveCount(0);
  const verdictText = await text.textContent();
  // One of two experiments has a verdict: the lesson is not done yet.
  await expect(page.getByTestId('lesson-done')).toHaveCount(0);

  // The race runs LoRA twice (two configs), so each lane opens on its own in Compare.
  const links = first.getByTestId('lab-link');
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
  await first.scrollIntoViewIfNeeded();
  await shot(page, 'learn-lesson');

  // DoRA and PiSSA against LoRA at the same rank, with LoRA on the next seed as the yardstick.
  const variants = page.getByTestId('lesson-step').nth(3);
  await expect(variants).toContainText('DoRA and PiSSA against LoRA');
  await variants.getByTestId('knob-steps').fill('2');
  await variants.getByTestId('knob-steps').blur();
  await variants.getByTestId('experiment-run').click();
  await expect(variants.getByTestId('experiment-progress')).toContainText(/LoRA, DoRA and PiSSA/);
  await expect(variants.getByTestId('verdict-outcome')).toHaveText(/^(holds|does not hold|mixed)$/i, {
    timeout: 300_000,
  });
  const variantsText = variants.getByTestId('verdict-text');
  await expect(variantsText).toContainText(/held-out loss is \d\.\d{3} for LoRA/);
  await expect(variantsText).toContainText(/a gap under \d\.\d{3} is read as noise/);
  await expect(variantsText).toContainText(/\d[\d,]* magnitudes/);
  await expect(variants.getByTestId('verdict-table').locator('tbody tr')).toHaveCount(4);
  await expect(page.getByTestId('experiment-error')).toHaveCount(0);
  // Three LoRA configs and the rerun: one Compare link per lane, DoRA's and PiSSA's carrying their field.
  const variantLinks = variants.getByTestId('lab-link');
  await expect(variantLinks).toHaveCount(4);
  const query = async (i: number) => {
    const h = (await variantLinks.nth(i).getAttribute('href')) ?? '';
    return new URLSearchParams(h.slice(h.indexOf('?') + 1));
  };
  expect((await query(0)).get('cfg.lora.useDora')).toBeNull();
  expect((await query(1)).get('cfg.lora.useDora')).toBe('1');
  expect((await query(2)).get('cfg.lora.initLoraWeights')).toBe('pissa');
  await expect(page.getByTestId('lesson-done')).toBeVisible();
  await variants.scrollIntoViewIfNeeded();
  await shot(page, 'learn-lesson-variants');

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
  await expect(page.getByTestId('verdict-text').first()).toHaveText(verdictText ?? '');
  await expect(page.getByTestId('knob-steps').first()).toHaveValue('2');
  expect(errors).toEqual([]);
});

test('Stop ends a running experiment with a verdict of what ran; every lesson renders', async ({ page }) => {
  test.setTimeout(300_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/learn?lesson=lora');
  await expect(page.getByTestId('lesson')).toHaveAttribute('data-lesson', 'lora');
  await page.getByTestId('experiment-run').first().click();
  const progress = page.getByTestId('experiment-progress');
  await expect(progress).toContainText(/step \d+\/\d+ of /, { timeout: 150_000 });
  await page.getByTestId('experiment-stop').click();
  await expect(page.getByTestId('verdict-stopped')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('verdict-outcome')).toHaveText(/^(holds|does not hold|mixed)$/i);
  await expect(page.getByTestId('experiment-run').first()).toBeEnabled();

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
