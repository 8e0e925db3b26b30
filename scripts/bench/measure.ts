/**
 * Timing shared by both engines. Every measurement is a Job; the jobs run interleaved (warm-up
 * rounds, then timed rounds, each round one run of every job), so a process that takes a core for
 * a while slows both engines alike instead of whichever happened to be running. Each run ends in a
 * synchronous read (dataSync) or an awaited one, so the work is really done when the clock stops.
 */
import * as tf from '@tensorflow/tfjs';

export interface Timing {
  /** Median wall time of one run, ms. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Tokens (batch * seq) per second at the median. */
  tokensPerSec: number;
  /** Every timed run, ms, in order. */
  samplesMs: number[];
  /**
   * Median CPU time of this process per run (user + system), ms. tfjs wasm runs on one thread here,
   * so when another process takes a core this moves much less than wall time (V8's GC threads add a little).
   */
  cpuMedianMs: number;
  /** Tokens per CPU second at the CPU-time median. */
  tokensPerCpuSec: number;
}

export interface Job {
  engine: string;
  what: string;
  tokensPerRun: number;
  /** Untimed, before every run (e.g. switch which weights train). */
  prepare?(): void;
  /**
   * One forward pass or one optimizer step, finished when it returns (or resolves). A job that runs
   * in another process (HF PEFT in Python) resolves to its own timing of the run instead, since
   * this process's CPU clock does not see that work and pipe latency is not part of it.
   */
  run(): void | Promise<unknown> | Promise<SelfTimed>;
  /** Parameters the job trains (after its runs), or null for a forward pass. */
  trainedParams(): number | null;
  dispose(): void;
}

/** A measurement that may not have been possible, with the reason why. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string };

/** A run timed by the process that did it. */
export interface SelfTimed {
  selfTimed: { wallMs: number; cpuMs: number };
}

function isSelfTimed(x: unknown): x is SelfTimed {
  return typeof x === 'object' && x !== null && 'selfTimed' in x;
}

export interface JobResult {
  engine: string;
  what: string;
  trainedParams: number | null;
  timing: Outcome<Timing>;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

/**
 * Warm-up rounds, then timed rounds; a job that throws drops out with its error as the reason.
 * Tensor counts after warm-up and at the end tell a leak from state made on the first step.
 */
export async function runInterleaved(
  jobs: Job[],
  warmup: number,
  iters: number,
  hooks: {
    /** Live tensors wherever the jobs run (their child processes); this process's by default. */
    countTensors?: () => Promise<number>;
    /** After the last round, before trainedParams() is read (a child is asked for its counts). */
    afterRuns?: () => Promise<void>;
  } = {},
): Promise<{ results: JobResult[]; tensors: { afterWarmup: number; afterTimed: number } }> {
  const countTensors = hooks.countTensors ?? (() => Promise.resolve(tf.memory().numTensors));
  let afterWarmup = await countTensors();
  const failed = new Map<Job, string>();
  const wall = new Map<Job, number[]>(jobs.map((j) => [j, []]));
  const cpu = new Map<Job, number[]>(jobs.map((j) => [j, []]));
  for (let round = 0; round < warmup + iters; round++) {
    if (round === warmup) afterWarmup = await countTensors();
    for (const job of jobs) {
      if (failed.has(job)) continue;
      try {
        job.prepare?.();
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const out = await job.run();
        const ms = performance.now() - t0;
        const dc = process.cpuUsage(c0);
        if (round >= warmup) {
          const own = isSelfTimed(out) ? out.selfTimed : null;
          wall.get(job)!.push(own ? own.wallMs : ms);
          cpu.get(job)!.push(own ? own.cpuMs : (dc.user + dc.system) / 1000);
        }
      } catch (e) {
        failed.set(job, errorMessage(e));
      }
    }
  }
  const afterTimed = await countTensors();
  await hooks.afterRuns?.();
  const results = jobs.map((job): JobResult => {
    const base = { engine: job.engine, what: job.what };
    const reason = failed.get(job);
    if (reason !== undefined) return { ...base, trainedParams: null, timing: { ok: false, reason } };
    const samples = wall.get(job)!;
    const med = median(samples);
    const cpuMed = median(cpu.get(job)!);
    return {
      ...base,
      trainedParams: job.trainedParams(),
      timing: {
        ok: true,
        value: {
          medianMs: med,
          minMs: Math.min(...samples),
          maxMs: Math.max(...samples),
          tokensPerSec: (job.tokensPerRun * 1000) / med,
          samplesMs: samples,
          cpuMedianMs: cpuMed,
          tokensPerCpuSec: (job.tokensPerRun * 1000) / cpuMed,
        },
      },
    };
  });
  return { results, tensors: { afterWarmup, afterTimed } };
}
