// @ts-check
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';
import tseslint from 'typescript-eslint';
import svelteConfig from './svelte.config.js';

/** Unused names are errors unless they start with `_` (a parameter kept for its position, say). */
const unusedVars = [
  'error',
  {
    argsIgnorePattern: '^_',
    varsIgnorePattern: '^_',
    caughtErrorsIgnorePattern: '^_',
    destructuredArrayIgnorePattern: '^_',
  },
];

const noTensorsInUi =
  'The UI must not import TensorFlow.js: send a message to the training worker (src/lib/protocol) instead.';

export default defineConfig(
  {
    ignores: [
      'dist/',
      'node_modules/',
      '.cache/',
      'public/',
      'test-results/',
      'playwright-report/',
      'src/lib/model/fixtures/',
      'scripts/reference/',
    ],
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  svelte.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.browser, ...globals.node },
    },
    rules: {
      // The typescript-eslint version understands type signatures; it runs on .js files too, since
      // tseslint's base config parses every file with the TypeScript parser.
      'no-unused-vars': 'off',
      '@typescript-eslint/no-unused-vars': unusedVars,
      // Imported files are data, never code; and the Content-Security-Policy (vite.config.ts) refuses
      // eval in the built app anyway, so code that needs it would only fail there.
      'no-eval': 'error',
      'no-new-func': 'error',
      'no-implied-eval': 'error',
    },
  },
  {
    // TypeScript inside Svelte components and rune modules (.svelte.ts).
    files: ['**/*.svelte', '**/*.svelte.ts', '**/*.svelte.js'],
    languageOptions: {
      parserOptions: {
        parser: tseslint.parser,
        extraFileExtensions: ['.svelte'],
        svelteConfig,
      },
    },
  },
  {
    // TypeScript (tsc, svelte-check) already reports undefined names, and knows types and runes;
    // ESLint's no-undef does not, so it only gives false alarms there.
    files: ['**/*.ts', '**/*.svelte'],
    rules: { 'no-undef': 'off' },
  },
  {
    // The UI never touches tensors: it talks to the training worker through typed messages
    // (src/lib/protocol). Types it needs come from lib/, not from tfjs.
    files: ['src/ui/**', 'src/app/**', 'src/App.svelte', 'src/main.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@tensorflow/*', '@tensorflow/**'],
              message: noTensorsInUi,
            },
          ],
        },
      ],
      // no-restricted-imports does not see `await import('@tensorflow/tfjs')`.
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ImportExpression[source.value=/^@tensorflow\\//]',
          message: noTensorsInUi,
        },
      ],
    },
  },
);
