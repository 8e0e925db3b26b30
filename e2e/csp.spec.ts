import { expect, test } from '@playwright/test';

/**
 * The Content-Security-Policy (scripts/csp.ts) is in force in the built app: a script injected into
 * the page (as a cross-site scripting bug or a hostile model card would inject one) does not run,
 * nor does an inline event handler, the policy allows no eval, and the app itself still starts.
 */
test('an injected inline script is blocked, no eval is allowed, and the app still runs', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const response = await page.goto('/');
  const policy = response?.headers()['content-security-policy'] ?? '';
  const scriptSrc = /script-src ([^;]*)/.exec(policy)?.[1] ?? '';
  expect(scriptSrc).toContain("'self'");
  // eval itself cannot be tried from here: Playwright's evaluate runs as DevTools, which CSP exempts.
  expect(scriptSrc).not.toMatch(/'unsafe-eval'|'unsafe-inline'/);
  await expect(page.getByRole('heading', { name: 'PEFT Lab' })).toBeVisible();
  await expect(page.locator('meta[http-equiv="Content-Security-Policy"]')).toHaveCount(1);

  const outcome = await page.evaluate(async () => {
    const violations: string[] = [];
    document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective));
    const w = window as unknown as Record<string, unknown>;
    const script = document.createElement('script');
    script.textContent = 'window.__injected = true';
    document.body.append(script);
    const img = document.createElement('img');
    img.setAttribute('onerror', 'window.__handler = true');
    img.src = 'data:,not-an-image';
    document.body.append(img);
    await new Promise((r) => setTimeout(r, 200));
    return { injected: w.__injected, handler: w.__handler, violations };
  });
  expect(outcome.injected).toBeUndefined();
  expect(outcome.handler).toBeUndefined();
  expect(outcome.violations.some((d) => d.startsWith('script-src'))).toBe(true);
  expect(errors, 'uncaught errors on the page').toEqual([]);
});
