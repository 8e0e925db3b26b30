import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

/** Fills a number input the way a person does: select, type, leave. */
async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

/** Small, fast settings on the bundled peftlab-s (3 layers of width 96, about 0.43 MB each). */
async function smallRun(page: Page, steps: number): Promise<void> {
  await setNumber(page, 'steps', steps);
  await setNumber(page, 'batch', 2);
  await setNumber(page, 'seqlen', 16);
  await setNumber(page, 'eval-every', 0);
}

async function openOffloadSettings(page: Page): Promise<void> {
  await page.getByText('Memory and offload').click();
  await expect(page.getByTestId('offload-stage')).toBeVisible();
}

test('stage 3 under a budget below the layers pages them, and the Offload screen shows what moved', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toContainText('556.9k');
  await smallRun(page, 6);
  // First a resident run (stage 0), the step time the offloaded run is measured against.
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 120_000 });
  await openOffloadSettings(page);
  await page.getByTestId('offload-stage').selectOption('3');
  await expect(page.getByTestId('offload-stage-doc')).toContainText('frozen layer weights');
  // 3 layers of 12·96² + 13·96 = 111,840 float32 parameters: about 1.28 MB in all.
  await expect(page.getByTestId('offload-layers-size')).toContainText('about 1.28 MB');
  await setNumber(page, 'offload-budget', 0.6);
  await expect(page.getByTestId('offload-layers-size')).toContainText('paged');
  await setNumber(page, 'checkpoint-every', 2);
  await page.screenshot({ path: 'test-results/screens/offload-settings.png', fullPage: true });

  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('step')).toHaveText('6 / 6');
  await expect(page.getByTestId('checkpoint-status')).toContainText('checkpoint at step 6');

  await page.getByRole('link', { name: 'Offload' }).click();
  await expect(page.getByTestId('offload-memory-chart')).toHaveAttribute('data-points', '6');
  await expect(page.getByTestId('offload-memory-chart').locator('canvas')).toBeVisible();
  await expect(page.getByTestId('offload-traffic-chart')).toHaveAttribute('data-points', '6');
  await expect(page.getByTestId('offload-time-chart')).toHaveAttribute('data-points', '6');
  await expect(page.getByTestId('layer-cell')).toHaveCount(3);
  // Under a budget of about 1.4 layers not all three can stay resident.
  await expect(page.getByTestId('layer-cell').filter({ hasText: 'resident' })).not.toHaveCount(3);
  const pageIns = Number(await page.getByTestId('page-ins').textContent());
  expect(pageIns).toBeGreaterThan(0);
  await expect(page.getByTestId('hit-rate')).toHaveText(/^\d+%$/);
  await expect(page.getByTestId('offload-step-ms')).toContainText(/resident run: \d+ ms, ×\d+\.\d\d/);
  await expect(page.getByTestId('offload-time-chart')).toHaveAttribute('data-series', /resident run step/);
  await expect(page.getByTestId('storage-estimate')).toContainText('This site uses');
  await expect(page.getByTestId('storage-persist')).toContainText(/Persistent storage (not )?granted/);
  await page.screenshot({ path: 'test-results/screens/offload-screen.png', fullPage: true });
  expect(errors).toEqual([]);
});

test('a reload in the middle of a checkpointed run offers Resume, which trains on from the checkpoint to the end', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/offload');
  // Once the model is in, the screen says how large its layers are.
  await expect(page.getByTestId('offload-empty')).toContainText('about 1.28 MB for peftlab-s', {
    timeout: 60_000,
  });
  await page.screenshot({ path: 'test-results/screens/offload-empty.png', fullPage: true });
  await page.getByTestId('offload-to-lab').click();
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await smallRun(page, 40);
  await openOffloadSettings(page);
  // The link set stage 3 at half the layers' size.
  await expect(page.getByTestId('offload-stage')).toHaveValue('3');
  await expect(page.getByTestId('offload-budget')).toHaveValue('0.64');
  await setNumber(page, 'checkpoint-every', 4);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('checkpoint-status')).toContainText(/checkpoint at step \d+/, {
    timeout: 120_000,
  });
  await page.screenshot({ path: 'test-results/screens/offload-checkpointed.png', fullPage: true });
  const reachedStep = Number((await page.getByTestId('step').textContent())?.split(' / ')[0]);
  expect(reachedStep).toBeLessThan(40);
  await page.reload();

  const banner = page.getByTestId('resume-banner');
  await expect(banner).toContainText(/A run of LoRA on moby-dick stopped at step \d+\s+of 40 \(saved /);
  const k = Number(/stopped at step (\d+)/.exec((await banner.textContent()) ?? '')![1]);
  expect(k).toBeGreaterThanOrEqual(4);
  expect(k % 4).toBe(0);
  await page.screenshot({ path: 'test-results/screens/offload-resume-banner.png', fullPage: true });
  await page.getByTestId('resume-run').click();
  await expect(banner).toBeHidden();
  // The page shows the run's own settings, and training goes on from step k + 1 to the end.
  await expect(page.getByTestId('steps')).toHaveValue('40');
  await expect(page.getByTestId('checkpoint-status')).toContainText(
    `resumed from the checkpoint at step ${k}`,
  );
  await expect(page.getByTestId('run-facts')).toHaveAttribute('data-first-step', String(k + 1));
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 150_000 });
  await expect(page.getByTestId('step')).toHaveText('40 / 40');
  await expect(page.getByTestId('loss-chart')).toHaveAttribute('data-points', String(40 - k));
  await page.screenshot({ path: 'test-results/screens/offload-resumed.png', fullPage: true });

  // The finished run's checkpoint is gone: a reload offers nothing.
  await page.reload();
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await expect(page.getByTestId('train-panel')).toHaveAttribute('data-checkpoints-checked', 'true');
  await expect(page.getByTestId('resume-banner')).toHaveCount(0);
  expect(errors).toEqual([]);
});

test('a pasted DeepSpeed config sets the stage and lists what it ignores; a bad one changes nothing', async ({
  page,
}) => {
  await page.goto('/');
  await expect(page.getByTestId('model-facts')).toBeVisible();
  await openOffloadSettings(page);
  await page.getByTestId('ds-config').fill('{"zero_optimization": {"stage": 7}}');
  await page.getByTestId('ds-apply').click();
  await expect(page.getByTestId('ds-error')).toContainText('zero_optimization.stage must be 0, 1, 2 or 3');
  await expect(page.getByTestId('offload-stage')).toHaveValue('0');

  await page.getByTestId('ds-config').fill(
    JSON.stringify(
      {
        train_micro_batch_size_per_gpu: 4,
        fp16: { enabled: true, loss_scale: 0 },
        zero_optimization: {
          stage: 3,
          offload_param: { device: 'cpu', pin_memory: true },
          overlap_comm: true,
        },
        activation_checkpointing: { partition_activations: false },
        gradient_accumulation_steps: 4,
      },
      null,
      2,
    ),
  );
  await page.getByTestId('ds-apply').click();
  await expect(page.getByTestId('ds-result')).toContainText(
    'Applied: stage 3, gradient checkpointing on, pages to page memory, gradient accumulation 4, clipping at 1.',
  );
  await expect(page.getByTestId('offload-stage')).toHaveValue('3');
  await expect(page.getByTestId('offload-gc')).toBeChecked();
  // offload_param to "cpu" is the page's memory; the accumulation lands in the train settings.
  await expect(page.getByTestId('offload-device')).toHaveValue('memory');
  await expect(page.getByTestId('grad-accum')).toHaveValue('4');
  await expect(page.getByTestId('ds-used')).toContainText('zero_optimization.stage');
  await expect(page.getByTestId('ds-used')).toContainText('gradient_accumulation_steps');
  const ignored = page.getByTestId('ds-ignored');
  await expect(ignored).toContainText('train_micro_batch_size_per_gpu');
  await expect(ignored).toContainText('fp16: PEFT Lab trains in float32');
  await expect(ignored).toContainText('zero_optimization.offload_param.pin_memory');
  await expect(ignored).toContainText('zero_optimization.overlap_comm');
  await page.getByTestId('ds-result').scrollIntoViewIfNeeded();
  await page.screenshot({ path: 'test-results/screens/offload-deepspeed.png', fullPage: true });
});
