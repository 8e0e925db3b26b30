/**
 * `npm run fuzz`: every reader of outside bytes against many near-valid inputs (src/lib/fuzz).
 *   npm run fuzz -- [--runs 10000] [--seed N] [--only <part of a reader's name>]
 * Prints inputs, accepted/refused counts, the named errors seen, and time per reader; exits 1 at the
 * first input that breaks the property, printing the seed and shrunk input to replay it.
 */
import { fuzz } from '../src/lib/fuzz/harness';
import { TARGETS } from '../src/lib/fuzz/targets';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const runs = Number(arg('runs') ?? 10_000);
const seed = Number(arg('seed') ?? Date.now() % 2 ** 31);
const only = arg('only')?.toLowerCase();
if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(seed)) {
  console.error('usage: npm run fuzz -- [--runs N] [--seed N] [--only NAME]');
  process.exit(2);
}

console.log(`seed ${seed}, ${runs} inputs per reader`);
let failed = false;
for (const target of TARGETS) {
  if (only && !target.name.toLowerCase().includes(only)) continue;
  try {
    const r = await fuzz(target, { runs, seed });
    const errors = Object.entries(r.errors)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const heap = (process.memoryUsage().rss / 2 ** 20).toFixed(0);
    console.log(
      `${r.name.padEnd(46)} ${String(r.runs).padStart(7)} inputs  ${String(r.accepted).padStart(6)} accepted  ${String(r.refused).padStart(6)} refused  ${(r.ms / 1000).toFixed(1).padStart(6)} s  slowest ${r.slowestMs.toFixed(0)} ms  rss ${heap} MiB  (${errors})`,
    );
  } catch (e) {
    failed = true;
    console.error(`${target.name}: FAILED\n${(e as Error).message}`);
  }
}
process.exit(failed ? 1 : 0);
