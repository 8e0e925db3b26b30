#!/usr/bin/env node
// The `peft-lab` launcher: registers tsx so Node runs the TypeScript sources directly, then hands
// over to src/cli/main.ts. Paths are relative to this file, so it works from any working directory.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
await import('../src/cli/main.ts');
