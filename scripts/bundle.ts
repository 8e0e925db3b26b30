/**
 * Reads a production build (`vite build` output) as the browser meets it: the page's entry script,
 * the chunks it imports statically (what the first paint waits for), the chunks it may import later,
 * and the worker scripts it starts. scripts/bundle.test.ts checks the size budget and where
 * TensorFlow.js ended up with it.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';

/** A string every build of TensorFlow.js carries (tfjs-core's name of its fused matmul kernel). */
export const TFJS_MARKER = '_FusedMatMul';

/** How a chunk refers to another: imported before it runs, imported on demand, or run as a worker. */
export interface ChunkLinks {
  static: string[];
  dynamic: string[];
  workers: string[];
}

const Q = '["\'`]';
const FILE = '([\\w.$-]+\\.js)';

/** The chunks one minified chunk names, by file name (all chunks sit in one folder). */
export function chunkLinks(code: string): ChunkLinks {
  const all = (re: RegExp): string[] => [...new Set([...code.matchAll(re)].map((m) => m[1]!))];
  return {
    // `import{a as b}from"./x.js"`, `import"./x.js"`, `export{a}from"./x.js"`
    static: all(
      new RegExp(`(?:^|[;\\s}])(?:import|export)\\s*(?:[^"'\`;()]*?from\\s*)?${Q}\\./${FILE}${Q}`, 'g'),
    ),
    // `import("./x.js")` (Vite's preload helper wraps it, and its list of CSS and chunks to preload
    // with it names nothing the import itself does not reach)
    dynamic: all(new RegExp(`import\\(\\s*${Q}\\./${FILE}${Q}\\s*\\)`, 'g')),
    // `new Worker(new URL("/assets/x.js", import.meta.url), ...)`
    workers: all(new RegExp(`new Worker\\(\\s*new URL\\(\\s*${Q}[^"'\`]*?/${FILE}${Q}`, 'g')),
  };
}

/** The page's entry script, from index.html. */
export function entryChunk(dist: string): string {
  const html = readFileSync(join(dist, 'index.html'), 'utf8');
  const src = /<script\b[^>]*type="module"[^>]*src="([^"]+)"/.exec(html)?.[1];
  if (!src) throw new Error(`${dist}/index.html has no module script: is this a vite build?`);
  return basename(src);
}

/** Every chunk reachable from `start` along the given kinds of link, `start` included. */
export function closure(assets: string, start: string[], kinds: (keyof ChunkLinks)[]): string[] {
  const seen = new Set<string>();
  const queue = [...start];
  while (queue.length) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const links = chunkLinks(readFileSync(join(assets, file), 'utf8'));
    for (const kind of kinds) queue.push(...links[kind]);
  }
  return [...seen];
}

/** A file's size as served: raw bytes and gzip (zlib's default level, as Vite's report uses). */
export function sizes(path: string): { raw: number; gzip: number } {
  const bytes = readFileSync(path);
  return { raw: bytes.length, gzip: gzipSync(bytes).length };
}

/** Whether a chunk carries TensorFlow.js code. */
export function hasTfjs(path: string): boolean {
  return readFileSync(path, 'utf8').includes(TFJS_MARKER);
}
