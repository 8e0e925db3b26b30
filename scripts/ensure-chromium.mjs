// @ts-check
/**
 * Run before the browser tests (`npm run test:e2e`): fail early, in one line, when there is no
 * Chromium to launch, instead of after a full build. Prints the path it found otherwise.
 */
import { findChromium } from './chromium-path.mjs';

try {
  console.log(`Chromium: ${findChromium()}`);
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
}
