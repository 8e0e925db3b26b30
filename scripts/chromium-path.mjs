// @ts-check
/**
 * Where the Chromium for the browser tests lives. One lookup, shared by playwright.config.ts
 * (through e2e/chromium-path.ts) and scripts/ensure-chromium.mjs, so both agree.
 * Order: $CHROMIUM_PATH, then Debian's /usr/bin/chromium, then a browser that
 * `npx playwright install chromium` put in Playwright's own cache. Nothing here downloads a browser.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

export const NO_CHROMIUM_MESSAGE =
  'No Chromium found: run `apt-get install -y chromium` (Debian) or `npx playwright install chromium`, or set CHROMIUM_PATH';

/** Debian's package puts its launcher here. */
export const DEBIAN_CHROMIUM = '/usr/bin/chromium';

/**
 * Playwright's own Chromium if it is installed in Playwright's cache, else undefined.
 * `executablePath()` only computes where it would be (and may throw on a platform Playwright
 * does not know), so the file itself is checked. Loaded with require so the lookup stays
 * synchronous: playwright.config.ts can call it without top-level await.
 * @returns {string | undefined}
 */
function playwrightChromium() {
  try {
    const require = createRequire(import.meta.url);
    /** @type {typeof import('@playwright/test')} */
    const playwright = require('@playwright/test');
    const path = playwright.chromium.executablePath();
    return path && existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The Chromium executable to launch; throws an Error whose message is NO_CHROMIUM_MESSAGE if
 * there is none. A CHROMIUM_PATH that is set but names no file is skipped.
 * @returns {string}
 */
export function findChromium() {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  if (existsSync(DEBIAN_CHROMIUM)) return DEBIAN_CHROMIUM;
  const own = playwrightChromium();
  if (own) return own;
  throw new Error(NO_CHROMIUM_MESSAGE);
}
