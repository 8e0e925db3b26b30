/**
 * The production build's budget and shape, checked on a fresh `vite build` (about 15 s here) into a
 * temporary folder, so the figures are this commit's and never a stale dist/'s:
 * - what the first paint loads (the entry script and the chunks it imports statically) stays within
 *   150 kB gzip;
 * - nothing the page runs on its main thread, now or later, carries TensorFlow.js;
 * - exactly one chunk does, and the worker script behind both engines reaches it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkLinks, closure, entryChunk, hasTfjs, sizes, TFJS_MARKER } from './bundle';

/** The first paint's JavaScript, gzip, in kB of 1000 bytes (as Vite's build report counts). */
const FIRST_PAINT_BUDGET_KB = 150;

describe('chunkLinks', () => {
  it('reads static, dynamic and worker links in minified output, whatever the quotes', () => {
    const code =
      'import{a as b}from"./shared-A1.js";import`./side-B2.js`;export{c}from\'./re-C3.js\';' +
      'const l=()=>m(()=>import(`./Lazy-D4.js`),__vite__mapDeps([0,1]));' +
      'new Worker(new URL(`/assets/engine.worker-E5.js`,``+import.meta.url),{type:`module`})';
    expect(chunkLinks(code)).toEqual({
      static: ['shared-A1.js', 'side-B2.js', 're-C3.js'],
      dynamic: ['Lazy-D4.js'],
      workers: ['engine.worker-E5.js'],
    });
  });

  it('follows a page into a lazy chunk that carries tfjs, so the checks below can fail', () => {
    const dist = mkdtempSync(join(tmpdir(), 'bundle-fixture-'));
    try {
      mkdirSync(join(dist, 'assets'));
      writeFileSync(
        join(dist, 'index.html'),
        '<script type="module" crossorigin src="/assets/index-1.js"></script>',
      );
      writeFileSync(
        join(dist, 'assets/index-1.js'),
        'import{x}from"./kit-2.js";const s=()=>import(`./Screen-3.js`);',
      );
      writeFileSync(join(dist, 'assets/kit-2.js'), 'export const x=1;');
      writeFileSync(join(dist, 'assets/Screen-3.js'), `import"./kit-2.js";const k="${TFJS_MARKER}";`);
      const assets = join(dist, 'assets');
      const entry = entryChunk(dist);
      expect(closure(assets, [entry], ['static']).sort()).toEqual(['index-1.js', 'kit-2.js']);
      const page = closure(assets, [entry], ['static', 'dynamic']);
      expect(page.filter((f) => hasTfjs(join(assets, f)))).toEqual(['Screen-3.js']);
    } finally {
      rmSync(dist, { recursive: true, force: true });
    }
  });
});

describe('the production build', () => {
  let dist = '';
  let assets = '';
  let entry = '';

  beforeAll(() => {
    dist = mkdtempSync(join(tmpdir(), 'peftlab-build-'));
    // A child process, as `npm run build` runs it: under Vitest NODE_ENV is 'test', which would
    // build Svelte in dev mode and report sizes no one ships.
    execFileSync(
      process.execPath,
      ['node_modules/vite/bin/vite.js', 'build', '--outDir', dist, '--emptyOutDir'],
      {
        env: { ...process.env, NODE_ENV: 'production' },
        stdio: 'pipe',
      },
    );
    assets = join(dist, 'assets');
    entry = entryChunk(dist);
  }, 300_000);

  afterAll(() => {
    if (dist) rmSync(dist, { recursive: true, force: true });
  });

  it(`loads at most ${FIRST_PAINT_BUDGET_KB} kB of gzipped JavaScript before the first paint`, () => {
    const firstPaint = closure(assets, [entry], ['static']);
    const kb = firstPaint.map((f) => ({ f, kb: sizes(join(assets, f)).gzip / 1000 }));
    const total = kb.reduce((s, x) => s + x.kb, 0);
    expect(
      total,
      `first paint ${total.toFixed(1)} kB gzip: ${kb.map((x) => `${x.f} ${x.kb.toFixed(1)}`).join(', ')}`,
    ).toBeLessThanOrEqual(FIRST_PAINT_BUDGET_KB);
  });

  it('runs no TensorFlow.js on the main thread, in the first paint or in any screen loaded later', () => {
    const page = closure(assets, [entry], ['static', 'dynamic']);
    expect(page.filter((f) => hasTfjs(join(assets, f)))).toEqual([]);
  });

  it('ships TensorFlow.js once, in the chunk the one engine worker script loads for every engine', () => {
    const withTfjs = readdirSync(assets).filter((f) => f.endsWith('.js') && hasTfjs(join(assets, f)));
    expect(withTfjs).toHaveLength(1);
    expect(withTfjs[0]).toMatch(/^tfjs-/);
    const page = closure(assets, [entry], ['static', 'dynamic']);
    const workers = [
      ...new Set(page.flatMap((f) => chunkLinks(readFileSync(join(assets, f), 'utf8')).workers)),
    ];
    // The Lab's, the Compare screen's and the Swarm screen's workers (its engine and its block
    // workers) are one script (src/workers/engine.worker.ts), which loads its engine on demand.
    expect(workers).toHaveLength(1);
    const engines = chunkLinks(readFileSync(join(assets, workers[0]!), 'utf8')).dynamic;
    expect(engines).toHaveLength(4);
    for (const engine of engines) expect(closure(assets, [engine], ['static'])).toContain(withTfjs[0]);
  });
});
