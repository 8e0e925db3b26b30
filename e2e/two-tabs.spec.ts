import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

/** Fills a number input the way a person does: select, type, leave. */
async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

const SHOTS = process.env.SHOTS_DIR ?? 'test-results/screens';

test('two tabs train at once and save under one name: both adapters kept whole, the second as "name (2)", each tab says so', async ({
  context,
}) => {
  const errors: string[] = [];
  const tabs = [await context.newPage(), await context.newPage()];
  for (const page of tabs) {
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto('/');
    await expect(page.getByTestId('model-facts')).toContainText('556.9k');
    await setNumber(page, 'steps', 6);
    await setNumber(page, 'batch', 2);
    await setNumber(page, 'seqlen', 16);
    await setNumber(page, 'eval-every', 0);
  }
  // Both train at the same time, each in its own worker.
  await Promise.all(tabs.map((p) => p.getByTestId('train').click()));
  for (const page of tabs) {
    await expect(page.getByTestId('result')).toBeVisible({ timeout: 150_000 });
    await expect(page.getByTestId('step')).toHaveText('6 / 6');
    await page.getByTestId('adapter-name').fill('shared');
  }
  // Both save under one name at the same moment.
  await Promise.all(tabs.map((p) => p.getByTestId('save-adapter').click()));
  const notes = await Promise.all(
    tabs.map(async (p) => {
      await expect(p.getByTestId('save-note')).toBeVisible();
      return (await p.getByTestId('save-note').textContent())?.trim() ?? '';
    }),
  );
  expect(notes.sort()).toEqual([
    'Saved as “shared (2)”: an adapter named “shared” was already saved (in this tab or another), and it was kept as it was.',
    'Saved as “shared”.',
  ]);
  // Each tab's list shows both (the other tab's save reached it), and each adapter loads back whole.
  for (const page of tabs) {
    await expect(page.getByTestId('adapter-row')).toHaveCount(2);
    const names = await page.getByTestId('adapter-row').locator('td:first-child').allTextContents();
    expect(names.sort()).toEqual(['shared', 'shared (2)']);
  }
  const [a] = tabs;
  for (const name of ['shared', 'shared (2)']) {
    await a!
      .getByTestId('adapter-row')
      .filter({ has: a!.getByRole('cell', { name, exact: true }) })
      .getByTestId('load-adapter')
      .click();
    await expect(a!.getByTestId('adapter-label')).toContainText(`${name} (LoRA)`);
    await a!.getByTestId('generate').click();
    await expect(a!.getByTestId('answer-adapted')).not.toBeEmpty({ timeout: 60_000 });
  }
  await a!.screenshot({ path: `${SHOTS}/two-tabs-saved.png`, fullPage: true });
  await tabs[1]!.screenshot({ path: `${SHOTS}/two-tabs-saved-other.png`, fullPage: true });
  for (const page of tabs) await expect(page.getByTestId('error')).toHaveCount(0);
  expect(errors).toEqual([]);
});
