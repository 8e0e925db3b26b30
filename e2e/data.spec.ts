import { readFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import type { Page } from '@playwright/test';

test('the Data screen shows each built-in task’s splits, labels and first examples on demand', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const dataRequests: string[] = [];
  page.on('request', (r) => {
    if (/\/data\/[^/]+\/[^/]+\.(jsonl|txt)$/.test(r.url())) dataRequests.push(r.url());
  });

  await page.goto('/');
  await page.getByRole('link', { name: 'Data', exact: true }).click();
  await expect(page).toHaveURL(/#\/data/);
  await expect(page.getByTestId('task-spam')).toBeVisible();
  await expect(page.getByTestId('import-panel')).toBeVisible();
  await expect(page.getByTestId('no-datasets')).toHaveText('None yet: import a file above.');
  // Nothing is fetched until a task is opened.
  expect(dataRequests).toEqual([]);

  const spam = page.getByTestId('task-spam');
  await spam.locator('summary').click();
  await expect(spam.getByTestId('source')).toContainText('SpamAssassin');
  const labels = spam.getByTestId('label-count');
  await expect(labels).toHaveCount(2);
  await expect(labels.nth(0)).toContainText('ham');
  await expect(labels.nth(1)).toContainText('spam');
  for (const value of await spam.getByTestId('label-count-value').allTextContents()) {
    expect(Number(value.replace(/,/g, ''))).toBeGreaterThan(0);
  }
  await expect(spam.getByTestId('preview-row')).toHaveCount(5);
  await expect(spam.getByTestId('split-row')).toHaveCount(3);
  await expect(spam.getByTestId('split-row').first()).toContainText(/KiB|MiB/);
  expect(dataRequests.every((url) => url.includes('/data/spam/'))).toBe(true);

  const pos = page.getByTestId('task-brown-pos');
  await pos.locator('summary').click();
  await expect(pos.getByTestId('preview-row')).toHaveCount(5);
  await expect(pos.getByTestId('preview-row').first()).toContainText(/\/(NOUN|VERB|DET|PRON|ADP|\.)/);
  await expect(pos.getByTestId('label-count')).toHaveCount(0);

  const moby = page.getByTestId('task-moby-dick');
  await moby.locator('summary').click();
  await expect(moby.getByTestId('preview-row')).toContainText('Call me Ishmael');

  await page.screenshot({ path: 'test-results/screens/data.png', fullPage: true });
  expect(errors, 'uncaught errors on the page').toEqual([]);
});

// ---------------------------------------------------------------------------------------------
// Import: the files are made here, from the real mail and text that ship in public/data.

interface Mail {
  text: string;
  label: string;
}
const mails = readFileSync('public/data/spam/validation.jsonl', 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as Mail);
/** The first `n` mails of a class, cut to 300 characters. */
const pick = (label: string, n: number): Mail[] =>
  mails
    .filter((m) => m.label === label)
    .slice(0, n)
    .map((m) => ({ ...m, text: m.text.slice(0, 300) }));

const csvField = (s: string): string => `"${s.replace(/"/g, '""')}"`;
/** id,subject,message,verdict: a CSV where the text and label columns must be chosen. */
function mailCsv(rows: Mail[]): string {
  const lines = rows.map((m, i) => {
    const subject = /^Subject: (.*)$/m.exec(m.text)?.[1] ?? '';
    return [String(i + 1), csvField(subject), csvField(m.text), m.label === 'spam' ? 'junk' : 'inbox'].join(
      ',',
    );
  });
  return `id,subject,message,verdict\n${lines.join('\n')}\n`;
}

const file = (name: string, content: string | Buffer) => ({
  name,
  mimeType: 'application/octet-stream',
  buffer: typeof content === 'string' ? Buffer.from(content, 'utf8') : content,
});

async function setNumber(page: Page, testId: string, value: number): Promise<void> {
  const input = page.getByTestId(testId);
  await input.fill(String(value));
  await input.blur();
}

test('import a CSV for classification (choosing columns), train on it in the Lab; import text for language modelling; bad files are named and change nothing; delete; reload keeps them', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/#/data');
  const datasets = page.getByTestId('imported-dataset');
  const importError = page.getByTestId('import-error');

  // A good CSV: the first rows are shown, the text and the label columns are chosen from the file's.
  const good = [...pick('ham', 20), ...pick('spam', 20)];
  await page.getByTestId('import-file').setInputFiles(file('my-mail.csv', mailCsv(good)));
  await expect(page.getByTestId('import-chosen')).toContainText('my-mail.csv');
  await expect(page.getByTestId('import-preview-row')).toHaveCount(5);
  await expect(page.getByTestId('import-preview').locator('th')).toHaveText([
    'id',
    'subject',
    /^message/,
    /^verdict/,
  ]);
  await page.getByTestId('text-column').selectOption('subject');
  await page.getByTestId('label-column').selectOption('message');
  await page.getByTestId('text-column').selectOption('message');
  await page.getByTestId('label-column').selectOption('verdict');
  await expect(page.getByTestId('import-name')).toHaveValue('my-mail');
  await page.screenshot({ path: 'test-results/screens/data-import-columns.png', fullPage: true });
  await page.getByTestId('import-run').click();
  await expect(page.getByTestId('import-done')).toHaveText('Imported “my-mail”: 40 examples in 2 classes.');
  await expect(datasets).toHaveCount(1);
  const mail = datasets.filter({ hasText: 'my-mail' });
  await expect(mail.getByTestId('dataset-facts')).toContainText('40 examples in 2 classes');
  await expect(mail.getByTestId('dataset-label')).toHaveCount(2);
  await expect(mail.getByTestId('dataset-label').nth(0)).toContainText('inbox');
  await expect(mail.getByTestId('dataset-label-count')).toHaveText(['20', '20']);
  await expect(mail.getByTestId('dataset-split')).toHaveText([/train.*32$/, /validation.*4$/, /test.*4$/]);
  await expect(mail.getByTestId('dataset-preview-row')).toHaveCount(4);
  await expect(mail.getByTestId('dataset-preview-row').first()).toContainText(/^(inbox|junk)\s*Subject: /);
  await page.screenshot({ path: 'test-results/screens/data-imported.png', fullPage: true });

  // Bad files: each is named with its line and fault, and the data set already stored stays.
  const bad: [string, string | Buffer, RegExp, ((p: Page) => Promise<void>)?][] = [
    [
      'one-class.csv',
      mailCsv(pick('ham', 15)),
      /only one label, 'inbox', was found: classification needs at least two/,
      async (p) => {
        await p.getByTestId('text-column').selectOption('message');
        await p.getByTestId('label-column').selectOption('verdict');
      },
    ],
    [
      'not-utf8.csv',
      Buffer.concat([
        Buffer.from('text,label\nfine,a\ncaf'),
        Buffer.from([0xe9]),
        Buffer.from(' au lait,b\n'),
      ]),
      /^not-utf8\.csv: line 3: the file is not valid UTF-8 \(byte 0xE9 .*re-save it as UTF-8/i,
    ],
    [
      'ragged.csv',
      `text,label\n${Array.from({ length: 8 }, (_, i) => `row ${i},a`).join('\n')}\n"an open quote,b\nlast,a\n`,
      /^ragged\.csv: line 10: a quoted field starts here but its closing quote never comes/,
    ],
    [
      'missing-label.jsonl',
      [
        ...Array.from({ length: 6 }, (_, i) =>
          JSON.stringify({ text: `mail ${i}`, label: i % 2 ? 'a' : 'b' }),
        ),
        JSON.stringify({ text: 'no label here' }),
      ].join('\n'),
      /^missing-label\.jsonl: line 7: this object has no label field 'label'/,
    ],
  ];
  for (const [name, content, message, choose] of bad) {
    await page.getByTestId('import-file').setInputFiles(file(name, content));
    // The columns are read first; a fault in the first rows shows then, a later one on import.
    await expect(page.getByTestId('import-preview').or(importError)).toBeVisible();
    if (await page.getByTestId('import-preview').isVisible()) {
      if (choose) await choose(page);
      await page.getByTestId('import-run').click();
    }
    await expect(importError).toHaveText(message);
    await expect(datasets).toHaveCount(1);
    if (name === 'ragged.csv') {
      await page.screenshot({ path: 'test-results/screens/data-import-error.png', fullPage: true });
    }
    await page.getByRole('button', { name: 'Clear' }).click();
    await expect(importError).toHaveCount(0);
  }
  // A CSV with only a text column cannot be classification: the form says so and will not import.
  await page.getByTestId('import-file').setInputFiles(file('texts.csv', 'text\nhello\nworld\n'));
  await expect(page.getByTestId('same-column')).toContainText('only one column');
  await expect(page.getByTestId('import-run')).toBeDisabled();
  await page.getByTestId('kind-lm').check();
  await page.getByTestId('import-run').click();
  await expect(importError).toHaveText(
    /^texts\.csv: the text has \d+ characters; language modelling needs at least 2,000/,
  );
  await expect(datasets).toHaveCount(1);

  // Language modelling from .txt (real text, Moby-Dick's held-out chapters) and from JSONL.
  const moby = readFileSync('public/data/moby-dick/validation.txt', 'utf8').slice(0, 12000);
  await page.getByTestId('import-file').setInputFiles(file('whale.txt', moby));
  await expect(page.getByTestId('kind-cls')).toBeDisabled();
  await expect(page.getByTestId('kind-lm')).toBeChecked();
  await page.getByTestId('import-run').click();
  await expect(page.getByTestId('import-done')).toContainText('Imported “whale”');
  const docs = good.map((m) => JSON.stringify({ id: m.label, body: m.text })).join('\n');
  await page.getByTestId('import-file').setInputFiles(file('mail-text.jsonl', docs));
  await page.getByTestId('kind-lm').check();
  await page.getByTestId('text-column').selectOption('body');
  await page.getByTestId('import-run').click();
  await expect(page.getByTestId('import-done')).toHaveText(
    /^Imported “mail-text”: 40 documents, [\d.]+ KiB\.$/,
  );
  await expect(datasets).toHaveCount(3);
  await expect(datasets.filter({ hasText: 'whale' })).toContainText('language modelling');

  // Train on the imported CSV in the Lab: its labels, its validation split, a metric.
  await mail.getByTestId('dataset-train').click();
  await expect(page).toHaveURL(/#\/lab\?task=data-[0-9a-f]{12}/);
  await expect(page.getByTestId('train-title')).toHaveText('Train on my-mail');
  await expect(page.getByTestId('model-facts')).toBeVisible({ timeout: 60_000 });
  await setNumber(page, 'steps', 4);
  await setNumber(page, 'batch', 4);
  await setNumber(page, 'seqlen', 32);
  await setNumber(page, 'eval-every', 0);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toBeVisible({ timeout: 150_000 });
  await expect(page.getByTestId('result')).toHaveAttribute('data-metric', 'accuracy');
  await expect(page.getByTestId('result')).toContainText('on 4 examples');
  await expect(page.getByTestId('eval-after')).toHaveText(/^\d+\.\d%$/);
  await page.getByTestId('cls-text').fill('Subject: WIN a free cruise!!! Click now');
  await page.getByTestId('classify').click();
  await expect(page.getByTestId('class-prob')).toHaveCount(2, { timeout: 60_000 });
  await expect(page.getByTestId('class-prob').nth(0)).toHaveAttribute('data-label', 'inbox');
  await expect(page.getByTestId('class-prob').nth(1)).toHaveAttribute('data-label', 'junk');
  await page.screenshot({ path: 'test-results/screens/data-trained.png', fullPage: true });

  // The task picker lists the imported sets; the text one trains as language modelling.
  await page.getByTestId('task-select').selectOption({ label: 'whale (CAUSAL_LM)' });
  await expect(page.getByTestId('train-title')).toHaveText('Train on whale');
  await setNumber(page, 'steps', 2);
  await page.getByTestId('train').click();
  await expect(page.getByTestId('result')).toHaveAttribute('data-metric', 'perplexity', { timeout: 150_000 });
  await expect(page.getByTestId('result')).toContainText(/Held-out loss \d+\.\d+ → \d+\.\d+/);

  // Reload: the data sets are still there, on the Data screen and in the picker.
  await page.reload();
  await expect(page.getByTestId('train-title')).toHaveText('Train on whale');
  await page.getByRole('link', { name: 'Data', exact: true }).click();
  await expect(datasets).toHaveCount(3);

  // Delete asks first: dismissing keeps it, accepting removes it (and the Lab no longer lists it).
  const whale = datasets.filter({ hasText: 'whale' });
  page.once('dialog', (d) => {
    expect(d.message()).toContain('Delete the data set “whale”');
    void d.dismiss();
  });
  await whale.getByTestId('dataset-delete').click();
  await expect(datasets).toHaveCount(3);
  page.once('dialog', (d) => void d.accept());
  await whale.getByTestId('dataset-delete').click();
  await expect(datasets).toHaveCount(2);
  await expect(datasets.filter({ hasText: 'whale' })).toHaveCount(0);
  await page.reload();
  await expect(datasets).toHaveCount(2);
  await page.getByRole('link', { name: 'Lab', exact: true }).click();
  await expect(page.getByTestId('task-select').locator('option', { hasText: 'whale' })).toHaveCount(0);
  await expect(page.getByTestId('task-select').locator('option', { hasText: 'my-mail' })).toHaveCount(1);
  expect(errors, 'uncaught errors on the page').toEqual([]);
});
