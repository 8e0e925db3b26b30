import { mkdirSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

/** Screenshots of the Llama family on the Models screen and in the Lab go beside the others, and to SHOTS when set. */
async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `test-results/screens/${name}.png`, fullPage: true });
  const dir = process.env.SHOTS;
  if (dir) {
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
  }
}

async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

const ARCH = 'Qwen2 (Qwen2ForCausalLM), 2 layers, 4 heads / 2 key-value heads, RoPE theta 10,000';

test('load sharded Qwen2.5 from the Hub on the Models screen, see its architecture, train LoRA in the Lab, generate', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // e2e/hub-server.mjs serves Qwen/Qwen2.5-0.5B's layout: model.safetensors.index.json and four shards.
  await page.goto('/?hub=http://127.0.0.1:4174#/models');
  await expect(page.getByTestId('bundled-row')).toHaveCount(4);
  await expect(page.getByTestId('current-model')).toBeVisible({ timeout: 90_000 });

  await page.getByTestId('models-hub-repo').fill('Qwen/Qwen2.5-0.5B');
  await page.getByTestId('models-hub-load').click();
  await expect(page.getByTestId('current-model')).toContainText('hub: Qwen/Qwen2.5-0.5B', {
    timeout: 60_000,
  });
  await expect(page.getByTestId('current-architecture')).toHaveText(ARCH);
  const row = page.getByTestId('cached-row').filter({ hasText: 'hub: Qwen/Qwen2.5-0.5B' });
  await expect(row.getByTestId('model-architecture')).toHaveText(ARCH);
  await expect(row).toContainText('Hugging Face Hub');
  await shot(page, 'models-qwen2');

  // The Lab: the architecture, PEFT's default targets for Qwen2 with its module names, and every
  // method on (LN tuning too: it tunes the family's RMSNorms).
  await page.getByRole('link', { name: 'Lab' }).click();
  await expect(page.getByTestId('model-architecture')).toHaveText(ARCH);
  await expect(page.getByTestId('field-targetModules-q_proj')).toBeChecked();
  await expect(page.getByTestId('field-targetModules-v_proj')).toBeChecked();
  await expect(page.getByTestId('field-targetModules-k_proj')).not.toBeChecked();
  await expect(page.getByTestId('field-targetModules-c_attn')).toHaveCount(0);
  await expect(page.getByTestId('method-full')).toBeEnabled();
  await expect(page.getByTestId('method-ln-tuning')).toBeEnabled();
  await expect(page.getByTestId('method-lora')).toBeEnabled();
  await expect(page.getByTestId('method-ia3')).toBeEnabled();

  await setNumber(page, 'steps', 5);
  await setNumber(page, 'batch', 4);
  await setNumber(page, 'seqlen', 32);
  await setNumber(page, 'eval-every', 5);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('step')).toHaveText('5 / 5');

  await page.getByTestId('generate').click();
  await expect(page.getByTestId('answer-adapted')).not.toHaveText(/–|Train or load/, { timeout: 60_000 });
  await expect(page.getByTestId('answer-base')).toContainText('Call me Ishmael');
  await shot(page, 'lab-qwen2');
  expect(errors).toEqual([]);
});
