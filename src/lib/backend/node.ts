/**
 * tfjs backends in Node (tests, CLI, bench, pretraining): wasm by default, cpu on request.
 * tfjs-node is not used: it downloads a native binary at install time, which fails here.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { BackendError } from '../errors';
import { guardAllocations } from './out-of-memory';

export type NodeBackend = 'wasm' | 'cpu';

let wasmPathSet = false;

/**
 * Relaxed SIMD (a fused multiply-add in our wasm gemms, src/lib/kernels/wasm/emit.ts) is on by default in
 * Chromium 114+ and Node 22+, but Node 20's V8 validates it only behind this flag. It must be set before our
 * kernels' first module is compiled; `relaxedSimd()` still checks by validation, so an engine without it
 * keeps the plain SIMD path.
 */
function enableRelaxedSimd(): void {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22) setFlagsFromString('--experimental-wasm-relaxed-simd');
}

export async function initNodeBackend(name: NodeBackend = 'wasm'): Promise<string> {
  if (name === 'wasm') enableRelaxedSimd();
  if (name === 'wasm' && !wasmPathSet) {
    const req = createRequire(import.meta.url);
    setWasmPaths(join(dirname(req.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
    wasmPathSet = true;
  }
  // tfjs prints a hint about tfjs-node in Node; we choose not to use it (see above), so PROD silences it.
  tf.env().set('PROD', true);
  const warn = console.warn;
  console.warn = () => {};
  try {
    if (!(await tf.setBackend(name))) throw new BackendError(`could not start the ${name} backend`);
    await tf.ready();
    guardAllocations();
  } finally {
    console.warn = warn;
  }
  return tf.getBackend();
}
