import { defineConfig } from '@playwright/test';
import { findChromium } from './e2e/chromium-path.ts';

/**
 * Browser journeys against the production build (`npm run test:e2e` builds first), in the system's
 * Chromium: Playwright never downloads a browser here. See scripts/chromium-path.mjs for the lookup.
 */
export default defineConfig({
  testDir: 'e2e',
  // Two cores: one browser at a time, and software WebGPU/WebGL are slow, hence the long timeout.
  workers: 1,
  fullyParallel: false,
  timeout: 180_000,
  // Assertions wait up to 20 s: the app starts a worker, wasm and a model first, which takes 4-8 s
  // on a loaded 2-core machine (measured), over the 5 s default.
  expect: { timeout: 20_000 },
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: 'list',
  // Tests save their own screenshots to test-results/screens/.
  outputDir: 'test-results/artifacts',
  use: {
    baseURL: 'http://localhost:4173',
    trace: 'retain-on-failure',
  },
  projects: [
    {
      name: 'chromium',
      use: {
        browserName: 'chromium',
        headless: true,
        launchOptions: {
          executablePath: findChromium(),
          // Measured to work headless as root (shared/ENVIRONMENT.md). No --headless or
          // --user-data-dir here: Playwright sets those itself.
          args: [
            '--no-sandbox',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--enable-unsafe-webgpu',
          ],
        },
      },
    },
  ],
  webServer: [
    {
      command: 'npx vite preview --port 4173 --strictPort',
      url: 'http://localhost:4173',
      reuseExistingServer: !process.env.CI,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
    {
      // A stand-in for the HuggingFace Hub with its URL layout (no internet here): e2e/hub-server.mjs.
      command: 'node e2e/hub-server.mjs',
      url: 'http://127.0.0.1:4174',
      reuseExistingServer: !process.env.CI,
      timeout: 30_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
  ],
});
