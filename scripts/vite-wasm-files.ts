/**
 * Serves TensorFlow.js's wasm binaries at `<base>wasm/` in dev and writes them to `dist/wasm/` in a
 * build, straight from node_modules, so they are never copied into public/ by hand and always match
 * the installed @tensorflow/tfjs-backend-wasm. The backend must then be pointed there:
 * `setWasmPaths(import.meta.env.BASE_URL + 'wasm/')`.
 *
 * All three variants are shipped: tfjs picks plain, SIMD or threaded SIMD at run time from what the
 * browser supports (threaded only where the page is cross-origin isolated, which ours is not).
 */
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Plugin, ResolvedConfig } from 'vite';

export const WASM_FILES = [
  'tfjs-backend-wasm.wasm',
  'tfjs-backend-wasm-simd.wasm',
  'tfjs-backend-wasm-threaded-simd.wasm',
] as const;

/** The folder, under the site's base, the binaries are served from and emitted to. */
export const WASM_DIR = 'wasm';

/** node_modules/@tensorflow/tfjs-backend-wasm/dist as seen from the project root. */
function wasmDistDir(root: string): string {
  const require = createRequire(path.join(root, 'package.json'));
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
}

export function tfjsWasmFiles(): Plugin {
  let config: ResolvedConfig;
  let distDir: string;

  return {
    name: 'peft-lab:tfjs-wasm-files',

    configResolved(resolved) {
      config = resolved;
      distDir = wasmDistDir(resolved.root);
      const missing = WASM_FILES.filter((name) => {
        try {
          return !statSync(path.join(distDir, name)).isFile();
        } catch {
          return true;
        }
      });
      if (missing.length > 0) {
        throw new Error(`tfjs wasm binaries missing from ${distDir}: ${missing.join(', ')}; run npm ci`);
      }
    },

    configureServer(server) {
      const prefix = `${config.base}${WASM_DIR}/`;
      server.middlewares.use((req, res, next) => {
        const url = req.url?.split('?')[0];
        if (!url?.startsWith(prefix)) return next();
        const name = url.slice(prefix.length);
        if (!(WASM_FILES as readonly string[]).includes(name)) return next();
        const file = path.join(distDir, name);
        res.setHeader('Content-Type', 'application/wasm'); // needed by WebAssembly.instantiateStreaming
        res.setHeader('Content-Length', String(statSync(file).size));
        res.setHeader('Cache-Control', 'no-cache');
        createReadStream(file).pipe(res);
      });
    },

    generateBundle() {
      for (const name of WASM_FILES) {
        this.emitFile({
          type: 'asset',
          fileName: `${WASM_DIR}/${name}`,
          source: readFileSync(path.join(distDir, name)),
        });
      }
    },
  };
}
