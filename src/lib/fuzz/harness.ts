/**
 * The fuzzing property every reader of outside bytes must hold: for any input it returns a result
 * that passes its own check, or throws one of our named errors (a PeftLabError, whose message is
 * for the user). A TypeError, RangeError, SyntaxError or InternalError is a finding; so is an input
 * that takes longer than the time bound (a reader can only be timed, not stopped, in one thread).
 */
import fc from 'fast-check';
import { PeftLabError } from '../errors';

export interface FuzzTarget<T = unknown> {
  /** Reader and file, e.g. "safetensors (header and body)". */
  name: string;
  /** The inputs: mostly near-valid mutants of real files. */
  inputs: () => fc.Arbitrary<T>;
  /** Reads one input; may be async. Its result goes to `check`. */
  read: (input: T) => unknown;
  /** Throws when an accepted result is not valid (an input the reader should have refused). */
  check?: (result: unknown, input: T) => void;
  /** Per-input time bound in ms (default 2000): a reader slower than this on one input has a problem. */
  timeLimitMs?: number;
}

export interface FuzzOptions {
  runs: number;
  seed: number;
}

export interface FuzzReport {
  name: string;
  runs: number;
  /** Inputs accepted (and that passed the check). */
  accepted: number;
  /** Inputs refused with a named error. */
  refused: number;
  /** Named errors seen, by class name. */
  errors: Record<string, number>;
  ms: number;
  /** Slowest single input, ms. */
  slowestMs: number;
}

/** Why an outcome breaks the property, or null when it holds. */
export function violation(e: unknown): string | null {
  if (e instanceof PeftLabError) return null;
  if (e instanceof Error) return `raw ${e.name}: ${e.message.slice(0, 300)}`;
  return `threw a non-Error: ${String(e).slice(0, 100)}`;
}

function describeInput(input: unknown): string {
  if (input instanceof Uint8Array) {
    const head = [...input.subarray(0, 64)].map((b) => b.toString(16).padStart(2, '0')).join('');
    return `${input.length} bytes, starting ${head}`;
  }
  if (typeof input === 'string') return `${input.length} chars: ${JSON.stringify(input.slice(0, 300))}`;
  try {
    return (JSON.stringify(input) ?? String(input)).slice(0, 300);
  } catch {
    return '(too deep to print)';
  }
}

/**
 * Runs `target` on `runs` inputs from `seed` and throws (with fast-check's shrunk counterexample,
 * seed and path to replay it) at the first input that breaks the property.
 */
export async function fuzz<T>(target: FuzzTarget<T>, options: FuzzOptions): Promise<FuzzReport> {
  const limit = target.timeLimitMs ?? 2000;
  const report: FuzzReport = {
    name: target.name,
    runs: 0,
    accepted: 0,
    refused: 0,
    errors: {},
    ms: 0,
    slowestMs: 0,
  };
  const started = performance.now();
  const details = await fc.check(
    fc.asyncProperty(target.inputs(), async (input) => {
      const t0 = performance.now();
      let result: unknown;
      let error: unknown;
      let threw = false;
      try {
        result = await target.read(input);
      } catch (e) {
        threw = true;
        error = e;
      }
      const ms = performance.now() - t0;
      report.runs++;
      report.slowestMs = Math.max(report.slowestMs, ms);
      if (threw) {
        const why = violation(error);
        if (why) throw new Error(`${target.name}: ${why}\ninput: ${describeInput(input)}`, { cause: error });
        report.refused++;
        const name = (error as Error).name;
        report.errors[name] = (report.errors[name] ?? 0) + 1;
      } else {
        try {
          target.check?.(result, input);
        } catch (e) {
          throw new Error(
            `${target.name}: accepted an input it should refuse: ${(e as Error).message}\ninput: ${describeInput(input)}`,
            { cause: e },
          );
        }
        report.accepted++;
      }
      if (ms > limit) {
        throw new Error(
          `${target.name}: one input took ${ms.toFixed(0)} ms (limit ${limit})\ninput: ${describeInput(input)}`,
        );
      }
    }),
    { numRuns: options.runs, seed: options.seed },
  );
  if (details.failed) {
    // Our own report, not fc.assert's: its printer recurses, and the inputs may be nested too deep for that.
    const cause = details.errorInstance;
    const input = details.counterexample?.[0];
    throw new Error(
      `${cause instanceof Error ? cause.message.split('\ninput:')[0] : String(cause)}\n` +
        `input: ${describeInput(input)}\n` +
        `replay: seed ${details.seed}, path "${details.counterexamplePath}" (after ${details.numRuns} inputs, ${details.numShrinks} shrinks)`,
      { cause },
    );
  }

  report.ms = performance.now() - started;
  return report;
}
