/**
 * Runs an experiment step's runs one after another on whatever runs races (the compare worker in
 * the browser, a CompareEngine in Node), loading each run's model when it differs from the last,
 * then computes the verdict. Progress is reported per run (the Learn screen stops a run through the
 * backend it passes in).
 */
import type { CompareApi } from '../protocol/compare-protocol';
import { knobValues } from './types';
import type { KnobValues, LessonResults, LessonRun, LessonStep, Verdict } from './types';

export type LessonBackend = Pick<
  CompareApi,
  'loadModel' | 'race' | 'offloadTrial' | 'nearestTokens' | 'rankHistory'
>;

/** Soft-prompt read-backs list this many nearest tokens per virtual token. */
export const NEAREST_K = 3;

export interface StepOutcome {
  values: KnobValues;
  results: LessonResults;
  verdict: Verdict;
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
  } = {},
): Promise<StepOutcome> {
  if (!step.run || !step.check) throw new Error(`"${step.title}" has no experiment`);
  const values = knobValues(step.setup, given);
  const runs = step.run(values);
  const t0 = performance.now();
  const results: LessonResults = {};
  let loaded = opts.loadedModel ?? null;
  const base = opts.baseUrl ?? '';
  for (const [index, run] of runs.entries()) {
    opts.onRun?.({ index, count: runs.length, run });
    // A probe reads the engine's current race, so it must come right after its race.
    if (run.kind === 'probe' && runs[index - 1]?.id !== run.race) {
      throw new Error(`probe ${run.id} must come right after race ${run.race}`);
    }
    if (loaded !== run.model) {
      await backend.loadModel({ id: run.model, baseUrl: base + modelUrl(run.model) });
      loaded = run.model;
    }
    results[run.id] = await runOne(run, results, backend, base);
  }
  return {
    values,
    results,
    verdict: step.check(results, values),
    ms: performance.now() - t0,
    model: loaded,
  };
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
    case 'probe': {
      const r = results[run.race];
      const lane = r?.kind === 'race' ? r.snapshot.lanes.find((l) => l.name === run.lane) : undefined;
      if (!lane) throw new Error(`probe ${run.id}: no lane "${run.lane}" in race ${run.race}`);
      return run.probe === 'nearest'
        ? { kind: 'probe', nearest: await backend.nearestTokens({ laneId: lane.id, k: NEAREST_K }) }
        : { kind: 'probe', ranks: await backend.rankHistory({ laneId: lane.id }) };
    }
  }
}
