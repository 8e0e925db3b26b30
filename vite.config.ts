import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';
import { tfjsWasmFiles } from './scripts/vite-wasm-files.ts';

export default defineConfig({
  plugins: [svelte(), tfjsWasmFiles()],
  // Module workers: the training worker imports lib/ like any other module.
  worker: { format: 'es' },
  build: {
    target: 'es2022',
    // Minification stays on. It breaks only the *threaded* wasm backend's inlined worker (tfjs issues
    // 4253, 4107), and threads need cross-origin isolation (COOP/COEP), which we deliberately do not
    // set: tfjs then falls back to single-threaded SIMD wasm, which gains all but 5-10% on 2 cores.
    // If COOP/COEP is ever turned on for threads, set `minify: false` as well.
    minify: true,
    // TensorFlow.js with its three backends is over a megabyte on its own; a warning on every build
    // would only train us to ignore warnings.
    chunkSizeWarningLimit: 4096,
  },
  // No COOP/COEP headers in dev or preview (see build.minify above).
  server: { port: 5173, strictPort: true },
  preview: { port: 4173, strictPort: true },
});
