/**
 * The UI never reaches TensorFlow.js, even through a chain of imports: a walk of the real import
 * graph from the app's main-thread code (src/main.ts, src/App.svelte, src/ui, src/app). ESLint's
 * no-restricted-imports covers a UI file's own imports; this covers what those import, and so on.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forbiddenChains, runtimeSpecifiers, sourceFiles } from './import-graph';

const TFJS = /^@tensorflow\//;

describe('runtimeSpecifiers', () => {
  it('keeps what loads at run time and drops what the compiler erases', () => {
    const text = [
      `import a from './a';`,
      `import { type B } from './b';`,
      `import type { C } from './c';`,
      `export { d } from './d';`,
      `export type { E } from './e';`,
      `export * from './f';`,
      `type G = typeof import('./g');`,
      `let h: import('./h').H;`,
      `const i = await import('./i');`,
      `new Worker(new URL('./j.worker.ts', import.meta.url));`,
      `import './k.css';`,
    ].join('\n');
    expect(runtimeSpecifiers('x.ts', text)).toEqual(['./a', './b', './d', './f', './i', './k.css']);
  });

  it("reads a component's instance and module scripts", () => {
    const text = `<script lang="ts" module>import { m } from './m';</script>
<script lang="ts">import X from './X.svelte';</script>
<p>import y from './not-code'</p>`;
    expect(runtimeSpecifiers('C.svelte', text)).toEqual(['./m', './X.svelte']);
  });
});

describe('forbiddenChains on a fixture graph', () => {
  let root = '';
  const write = (path: string, text: string): void => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'import-graph-'));
    // main -> App.svelte -> Screen.svelte -> state.svelte.ts -> lib (an index) -> deep.ts -> tfjs,
    // through each kind of edge and resolution the real tree uses.
    write('main.ts', `import App from './App.svelte';`);
    write('App.svelte', `<script lang="ts">const S = () => import('./ui/Screen.svelte');</script>`);
    write('ui/Screen.svelte', `<script lang="ts">import { state } from '../app/state.svelte';</script>`);
    write('app/state.svelte.ts', `export { helper as state } from '../lib';`);
    write('lib/index.ts', `export * from './deep';\nimport type { T } from './typed';`);
    write('lib/deep.ts', `import * as tf from '@tensorflow/tfjs';\nexport const helper = tf;`);
    write('lib/typed.ts', `import '@tensorflow/tfjs-backend-wasm';\nexport type T = number;`);
    write('ui/Clean.svelte', `<script lang="ts">import type { T } from '../lib/typed';</script>`);
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('names the whole chain from the entry to the package', () => {
    expect(forbiddenChains([join(root, 'main.ts')], TFJS, root)).toEqual([
      [
        'main.ts',
        'App.svelte',
        'ui/Screen.svelte',
        'app/state.svelte.ts',
        'lib/index.ts',
        'lib/deep.ts',
        '@tensorflow/tfjs',
      ],
    ]);
  });

  it('does not follow type-only imports', () => {
    expect(forbiddenChains([join(root, 'ui/Clean.svelte')], TFJS, root)).toEqual([]);
  });
});

describe("the app's main thread", () => {
  it('reaches no @tensorflow/* package from src/main.ts, src/App.svelte, src/ui or src/app', () => {
    const entries = ['src/main.ts', 'src/App.svelte', ...sourceFiles('src/ui'), ...sourceFiles('src/app')];
    const chains = forbiddenChains(entries, TFJS, process.cwd()).map((c) => c.join(' -> '));
    expect(chains, 'split the tfjs-free part into its own module and import only that').toEqual([]);
  });
});
