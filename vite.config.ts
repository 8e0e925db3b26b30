import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';
import { VitePWA } from 'vite-plugin-pwa';
import { tfjsWasmFiles } from './scripts/vite-wasm-files.ts';
import { contentSecurityPolicy, cspMeta, mirrorsFromEnv, peersFromEnv } from './scripts/csp.ts';
import pkg from './package.json' with { type: 'json' };

/**
 * Cross-origin isolation, so SharedArrayBuffer exists and tfjs's wasm backend may use threads
 * (src/lib/backend/backend.ts measures them against one thread). Everything the app loads is its
 * own origin or fetched with CORS (the Hub), which `require-corp` allows; a host that serves the
 * built app without these headers still works, on one wasm thread.
 */
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/** What the app may run and connect to (scripts/csp.ts); the build's mirrors come from PEFT_LAB_HUB_MIRRORS. */
const csp = contentSecurityPolicy(mirrorsFromEnv(), peersFromEnv());
const headers = { ...isolation, 'Content-Security-Policy': csp };

/**
 * The installable, offline app (vite-plugin-pwa with Workbox).
 *
 * generateSW, not injectManifest: the worker needs nothing of our own, only a precache, one runtime
 * route and the SKIP_WAITING message the update prompt sends, which generateSW writes for us; a
 * hand-written worker would be code to keep in step with Workbox for no gain.
 *
 * Precached (every file the app can fetch from its own origin, so it opens and trains offline after one
 * visit): the app shell and its chunks (about 3 MB: TensorFlow.js, one 2.3 MB chunk shared by the Lab's
 * and the Compare screen's workers, is most of it), tfjs's three wasm
 * binaries (dist/wasm/, 0.3-0.44 MB each), the bundled models (public/models/: peftlab-l's F16
 * model.safetensors 16.3 MB, peftlab-m's 8.9 MB, peftlab-s's 2.2 MB, plus configs, tokenizers of
 * 0.1-0.2 MB, cards and loss curves), the built-in data (public/data/: spam train.jsonl 2.1 MB,
 * brown-pos 1.5 MB, brown-genre 1.5 MB, moby-dick train.txt 1.2 MB, smaller splits and manifest.json),
 * GPT-2's tokenizer for Hub repos without one (public/tokenizers/gpt2/tokenizer.json 1.4 MB) and the
 * icons: 71 entries, 41.7 MB in all at this writing (`npm run build` prints the total).
 */
const pwa = VitePWA({
  strategies: 'generateSW',
  // 'prompt': a waiting worker is announced (src/ui/UpdatePrompt.svelte) and takes over only when the
  // person clicks Reload, so an update never cuts a training run.
  registerType: 'prompt',
  // Registered from src/app/pwa.svelte.ts (virtual:pwa-register), which feeds the prompt.
  injectRegister: false,
  // No service worker in `vite` dev: it would serve stale modules and hide HMR.
  devOptions: { enabled: false },
  includeAssets: ['icons/apple-touch-icon.png'],
  manifest: {
    name: 'PEFT Lab',
    short_name: 'PEFT Lab',
    description:
      'Fine-tune small GPT-2-style language models in your browser with LoRA, prompt tuning and other adapters: offline, on your own GPU or CPU.',
    start_url: './',
    scope: './',
    display: 'standalone',
    // The header's slate (src/ui/AppHeader.svelte), so the title bar and splash run into it.
    theme_color: '#0f172a',
    background_color: '#0f172a',
    icons: [
      { src: 'icons/icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
      { src: 'icons/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
      { src: 'icons/icon-maskable-192.png', sizes: '192x192', type: 'image/png', purpose: 'maskable' },
      { src: 'icons/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
    ],
  },
  workbox: {
    // The manifest and its icons are added by the plugin itself (includeManifestIcons, includeAssets).
    globPatterns: ['**/*.{js,css,html,wasm,json,jsonl,txt,md,svg,safetensors}'],
    // Workbox skips files over 2 MiB by default; the largest we ship is peftlab-l's 16.3 MB weights.
    maximumFileSizeToCacheInBytes: 24 * 1024 * 1024,
    // A hash-routed single page: every navigation is index.html.
    navigateFallback: 'index.html',
    cleanupOutdatedCaches: true,
    runtimeCaching: [
      {
        // Hub downloads (`https://huggingface.co/{repo}/resolve/{rev}/{file}`, fetched by the training
        // worker). The app keeps a Hub model in IndexedDB, but only once all its files have arrived,
        // loaded and been written as one record; this cache keeps each finished file on its own, so a
        // retry after a load that failed or was cut (tab closed, a model too large for the backend, an
        // IndexedDB write refused for quota) starts from the files already here instead of downloading
        // hundreds of MB again, and a model removed from the Models screen opens offline while its files
        // last. CacheFirst: a `resolve` URL on `main` changes rarely, and a model is checked on load.
        // Bounded, since the bytes are a second copy: at most 12 files (four models), 30 days, and the
        // first thing dropped when storage runs short. Only huggingface.co: mirrors given by `?hub=`
        // (and the tests' local stand-in) go to the network untouched.
        urlPattern: /^https:\/\/huggingface\.co\/.+\/resolve\/[^/]+\/.+/,
        handler: 'CacheFirst',
        options: {
          cacheName: 'hub-downloads',
          cacheableResponse: { statuses: [200] },
          expiration: { maxEntries: 12, maxAgeSeconds: 30 * 24 * 60 * 60, purgeOnQuotaError: true },
        },
      },
    ],
  },
});

export default defineConfig({
  plugins: [svelte(), tfjsWasmFiles(), pwa, cspMeta(csp)],
  worker: {
    // Module workers: the training worker imports lib/ like any other module, and an ES worker may
    // load chunks, which is what lets the Lab's and the Compare screen's engines share one copy of
    // TensorFlow.js (src/workers/engine.worker.ts).
    format: 'es',
    rolldownOptions: {
      output: {
        // Unminified workers: minifying tfjs breaks the threaded wasm backend's inlined pthread worker
        // (tfjs issues 4253, 4107), and threads are on now that the app is cross-origin isolated.
        // Only the workers' chunks are affected; the page's first paint stays minified.
        minify: false,
        // TensorFlow.js with its backends gets a chunk of its own and a name that says so; the
        // bundle test (scripts/bundle-budget.test.ts) finds it by that name.
        codeSplitting: { groups: [{ name: 'tfjs', test: /node_modules[\\/]@tensorflow[\\/]/ }] },
      },
    },
  },
  build: {
    target: 'es2022',
    // The page is minified; the workers, which hold tfjs, are not (worker.rolldownOptions above).
    minify: true,
    // TensorFlow.js with its three backends is over a megabyte on its own; a warning on every build
    // would only train us to ignore warnings.
    chunkSizeWarningLimit: 4096,
  },
  // The build's app and build time: a new build measures the backends again (src/lib/backend/choose.ts).
  define: { __PEFT_LAB_BUILD__: JSON.stringify(`${pkg.version} ${new Date().toISOString()}`) },
  // Not in dev: Vite's client and error overlay inject what a strict policy refuses.
  server: { port: 5173, strictPort: true, headers: isolation },
  preview: { port: 4173, strictPort: true, headers },
});
