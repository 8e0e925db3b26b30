/**
 * Runs an experiment step's runs one after another on whatever runs races (the compare worker in
 * the browser, a CompareEngine in Node), loading each run's model when it differs from the last,
 * then computes the verdict. Progress is reported per run; `stopped` is asked before each run, and
 * a stopped experiment's verdict is computed from the runs that finished (or there is none, and the
 * outcome says why).
 */
import type { CompareApi } from '../protocol/compare-protocol';
import { knobValues } from './types';
import type { KnobValues, LessonResults, LessonRun, LessonStep, Verdict } from './types';
import { InternalError } from '../errors';

export type LessonBackend = Pick<
  CompareApi,
  'loadModel' | 'race' | 'offloadTrial' | 'swarmTrial' | 'nearestTokens' | 'rankHistory'
>;

/** Soft-prompt read-backs list this many nearest tokens per virtual token. */
export const NEAREST_K = 3;

export interface StepOutcome {
  values: KnobValues;
  results: LessonResults;
  /** Null only for a stopped experiment whose finished runs cannot be judged (`reason` says why). */
  verdict: Verdict | null;
  reason?: string;
  /** The experiment was stopped before its end: the verdict is of what ran. */
  stopped: boolean;
  /** Wall time of the whole experiment, model loading included. */
  ms: number;
  /** The model the backend holds now. */
  model: string | null;
}

export interface RunProgress {
  index: number;
  count: number;
  run: LessonRun;
}

/** Where the bundled models live, relative to the app's base URL. */
export const modelUrl = (id: string): string => `models/${id}/`;

export async function runExperiment(
  step: LessonStep,
  given: KnobValues,
  backend: LessonBackend,
  opts: {
    onRun?: (p: RunProgress) => void;
    /** The model the backend holds already (skips a reload). */
    loadedModel?: string | null;
    /** The app's base URL (import.meta.env.BASE_URL in the browser; '' in Node). */
    baseUrl?: string;
    /**
     * Asked before each run (and after the last): true ends the experiment there. The backend is
     * expected to end a running race early too (the compare worker's `stop`).
     */
    stopped?: () => boolean;
  } = {},
): Promise<StepOutcome> {
  if (!step.run || !step.check) throw new InternalError(`"${step.title}" has no experiment`);
  const values = knobValues(step.setup, given);
  const runs = step.run(values);
  const t0 = performance.now();
  const results: LessonResults = {};
  let loaded = opts.loadedModel ?? null;
  const base = opts.baseUrl ?? '';
  let stopped = false;
  for (const [index, run] of runs.entries()) {
    if (opts.stopped?.()) {
      stopped = true;
      break;
    }
    opts.onRun?.({ index, count: runs.length, run });
    // A probe reads the engine's current race, so it must come right after its race.
    if (run.kind === 'probe' && runs[index - 1]?.id !== run.race) {
      throw new InternalError(`probe ${run.id} must come right after race ${run.race}`);
    }
    if (loaded !== run.model) {
      await backend.loadModel({ id: run.model, baseUrl: base + modelUrl(run.model) });
      loaded = run.model;
    }
    results[run.id] = await runOne(run, results, backend, base);
  }
  stopped ||= opts.stopped?.() ?? false;
  const ms = performance.now() - t0;
  const out = { values, results, stopped, ms, model: loaded };
  if (!stopped) return { ...out, verdict: step.check(results, values) };
  if (Object.keys(results).length === 0) {
    return { ...out, verdict: null, reason: 'stopped before any run finished: no verdict' };
  }
  try {
    return { ...out, verdict: step.check(results, values) };
  } catch (e) {
    const why = (e as Error).message;
    return {
      ...out,
      verdict: null,
      reason: `stopped before every run finished, so there is no verdict (${why})`,
    };
  }
}

async function runOne(
  run: LessonRun,
  results: LessonResults,
  backend: LessonBackend,
  base: string,
): Promise<LessonResults[string]> {
  switch (run.kind) {
    case 'race':
      return {
        kind: 'race',
        snapshot: await backend.race({ ...run.request, corpusUrl: base + run.request.corpusUrl }),
      };
    case 'offload':
      return {
        kind: 'offload',
        trial: await backend.offloadTrial({ ...run.request, corpusUrl: base + run.request.corpusUrl }),
      };
    case 'swarm':
      return {
        kind: 'swarm',
        trial: await backend.swarmTrial({ ...run.request, corpusUrl: base + run.request.corpusUrl }),
      };
    case 'probe': {
      const r = results[run.race];
      const lane = r?.kind === 'race' ? r.snapshot.lanes.find((l) => l.name === run.lane) : undefined;
      if (!lane) throw new InternalError(`probe ${run.id}: no lane "${run.lane}" in race ${run.race}`);
      return run.probe === 'nearest'
        ? { kind: 'probe', nearest: await backend.nearestTokens({ laneId: lane.id, k: NEAREST_K }) }
        : { kind: 'probe', ranks: await backend.rankHistory({ laneId: lane.id }) };
    }
  }
}
