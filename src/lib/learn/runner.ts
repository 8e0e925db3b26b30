/**
 * Runs an experiment step's runs one after another on whatever runs races (the compare worker in
 * the browser, a CompareEngine in Node), loading each run's model when it differs from the last,
 * then computes the verdict. Progress is reported per run; `stopped` is polled between runs.
 */
import type { CompareApi } from '../protocol/compare-protocol';
import { knobValues } from './types';
import type { KnobValues, LessonResults, LessonRun, LessonStep, Verdict } from './types';

export type LessonBackend = Pick<CompareApi, 'loadModel' | 'race' | 'offloadTrial'>;

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
    if (loaded !== run.model) {
      await backend.loadModel({ id: run.model, baseUrl: base + modelUrl(run.model) });
      loaded = run.model;
    }
    results[run.id] =
      run.kind === 'race'
        ? {
            kind: 'race',
            snapshot: await backend.race({ ...run.request, corpusUrl: base + run.request.corpusUrl }),
          }
        : {
            kind: 'offload',
            trial: await backend.offloadTrial({ ...run.request, corpusUrl: base + run.request.corpusUrl }),
          };
  }
  return {
    values,
    results,
    verdict: step.check(results, values),
    ms: performance.now() - t0,
    model: loaded,
  };
}
