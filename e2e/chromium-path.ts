/**
 * The Chromium the browser tests launch. The lookup lives in scripts/chromium-path.mjs, shared with
 * scripts/ensure-chromium.mjs: $CHROMIUM_PATH, then /usr/bin/chromium, then Playwright's own.
 */
export { findChromium, NO_CHROMIUM_MESSAGE } from '../scripts/chromium-path.mjs';
