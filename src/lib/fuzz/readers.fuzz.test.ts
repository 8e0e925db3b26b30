/**
 * Every reader of outside bytes against 1,000 near-valid inputs (`npm run fuzz` runs 10,000 or
 * more): each returns a valid result or throws one of our named errors, within its time bound.
 * A failure prints fast-check's seed and shrunk input; the fixed case then goes into the reader's
 * own test file.
 */
import { describe, it, expect } from 'vitest';
import { fuzz } from './harness';
import { TARGETS } from './targets';

const RUNS = 1000;
const SEED = 17;

describe('fuzzing the readers', () => {
  it.each(TARGETS.map((t) => [t.name, t] as const))('%s', async (_, target) => {
    const report = await fuzz(target, { runs: RUNS, seed: SEED });
    expect(report.accepted + report.refused).toBe(RUNS);
  });
});
