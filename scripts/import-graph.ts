/**
 * Walks the runtime import graph of our own sources (.ts, .svelte, .svelte.ts) from some entry files
 * and reports every chain that reaches a forbidden package. ESLint's no-restricted-imports sees one
 * file at a time; this follows imports transitively, so `ui -> app -> lib -> lib -> @tensorflow/tfjs`
 * is caught too (scripts/import-graph.test.ts runs it over the app's main-thread entries).
 *
 * Edges are what the bundler follows: static imports, `export ... from` and dynamic `import()`.
 * Type-only forms (`import type`, `export type`, `typeof import('x')` and `import('x').T` in types)
 * are erased by the compiler and are not edges. `import { type A } from 'x'` with every name
 * type-only is an edge: under verbatimModuleSyntax it compiles to `import {} from 'x'`, which still
 * loads 'x'. `new Worker(new URL(...))` is not an edge: a worker is bundled apart from the page.
 * Packages are leaves: the walk does not descend into node_modules.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** The module specifiers a file loads at run time, in source order. */
export function runtimeSpecifiers(file: string, text: string): string[] {
  const scripts = file.endsWith('.svelte') ? svelteScripts(text) : [text];
  const out: string[] = [];
  for (const script of scripts) {
    const source = ts.createSourceFile(file, script, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    const visit = (node: ts.Node): void => {
      if (ts.isImportDeclaration(node)) {
        if (!node.importClause?.isTypeOnly) out.push(stringLiteral(node.moduleSpecifier));
      } else if (ts.isExportDeclaration(node)) {
        if (node.moduleSpecifier && !node.isTypeOnly) out.push(stringLiteral(node.moduleSpecifier));
      } else if (
        ts.isCallExpression(node) &&
        node.expression.kind === ts.SyntaxKind.ImportKeyword &&
        node.arguments[0] &&
        ts.isStringLiteralLike(node.arguments[0])
      ) {
        out.push(node.arguments[0].text);
      }
      // ImportTypeNode (`import('x').T`, `typeof import('x')`) is a type: not visited for edges.
      if (!ts.isImportTypeNode(node)) ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return out.filter((s) => s !== '');
}

function stringLiteral(node: ts.Expression): string {
  return ts.isStringLiteralLike(node) ? node.text : '';
}

/** The bodies of a component's `<script>` blocks (instance and module). */
function svelteScripts(text: string): string[] {
  return [...text.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1] ?? '');
}

/** The order Vite tries for an extensionless relative import (plus Svelte's rune modules). */
const CANDIDATES = ['', '.ts', '.svelte.ts', '.js', '.svelte.js', '/index.ts', '/index.js'];

/** The file a relative specifier names, or null when none exists (an asset query, say). */
export function resolveRelative(from: string, specifier: string): string | null {
  const base = resolve(dirname(from), specifier.replace(/[?#].*$/, ''));
  for (const suffix of CANDIDATES) {
    const path = base + suffix;
    if (existsSync(path) && statSync(path).isFile()) return path;
  }
  return null;
}

const SOURCE = /\.(ts|svelte|js)$/;

/** Every source file under a folder, tests excluded (they are not part of the app). */
export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (SOURCE.test(entry.name) && !/\.test\.ts$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

/** One way an entry reaches a forbidden package: the files in order, then the package specifier. */
export type Chain = string[];

/**
 * Every forbidden package reached from the entries, one chain per importing file, with paths
 * relative to `root`. Entries are walked in order, each breadth-first to the end before the next, so
 * a chain starts at the first entry that reaches it (list the app's roots first for whole chains)
 * and is a shortest one from there.
 */
export function forbiddenChains(entries: string[], forbidden: RegExp, root: string): Chain[] {
  const parent = new Map<string, string | null>();
  const chains: Chain[] = [];
  const pathTo = (file: string): string[] => {
    const files: string[] = [];
    for (let at: string | null | undefined = file; at; at = parent.get(at)) files.unshift(relative(root, at));
    return files;
  };
  for (const entry of entries.map((e) => resolve(e))) {
    if (parent.has(entry)) continue;
    parent.set(entry, null);
    const queue = [entry];
    for (let i = 0; i < queue.length; i++) {
      const file = queue[i]!;
      if (!SOURCE.test(file)) continue;
      for (const specifier of runtimeSpecifiers(file, readFileSync(file, 'utf8'))) {
        if (forbidden.test(specifier)) {
          chains.push([...pathTo(file), specifier]);
          continue;
        }
        if (!specifier.startsWith('.')) continue;
        const target = resolveRelative(file, specifier);
        if (target && !parent.has(target)) {
          parent.set(target, file);
          queue.push(target);
        }
      }
    }
  }
  return chains;
}
