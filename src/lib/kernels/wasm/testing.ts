/** Test helpers for our wasm kernels: the same computation on cpu (stock ops) and on wasm (ours). */
import { initNodeBackend } from '../../backend/node';

/** Runs `f` on cpu, then on wasm (left running), returning both results: [cpu, wasm]. */
export async function onBoth<T>(f: (backend: string) => T): Promise<[T, T]> {
  await initNodeBackend('cpu');
  try {
    const cpu = f('cpu');
    await initNodeBackend('wasm');
    return [cpu, f('wasm')];
  } finally {
    await initNodeBackend('wasm'); // later tests in the file expect wasm, even after a failure
  }
}

/** Largest absolute difference between two arrays of the same length (Infinity when they differ in length). */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}
