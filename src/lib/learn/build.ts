/** Shorthands the lessons build their runs and knobs with (same defaults everywhere, said once). */
import type { LaneSpec, OffloadTrialRequest, SwarmTrialRequest } from '../protocol/compare-protocol';
import type { Knob, LessonRun } from './types';

/**
 * Defaults sized so an experiment finishes in under a minute on wasm on two cores (scripts/lessons.ts).
 * 384 of the 500-587 validation examples: at a spam split of about 69/31, 256 left a standard error
 * near 3 points, as large as the gaps the verdicts read.
 */
export const LESSON_RUN = { batchSize: 8, seqLen: 48, seed: 0, evalExamples: 384 } as const;

export interface RaceOpts {
  steps: number;
  batchSize?: number;
  seqLen?: number;
  seed?: number;
  evalExamples?: number;
  template?: string;
  /** Evaluate every this many steps (0: before and after only). */
  evalEvery?: number;
}

export function raceRun(
  id: string,
  label: string,
  model: string,
  task: string,
  lanes: LaneSpec[],
  o: RaceOpts,
): LessonRun {
  return {
    kind: 'race',
    id,
    label,
    model,
    request: {
      task,
      corpusUrl: `data/${task}/`,
      settings: {
        steps: o.steps,
        batchSize: o.batchSize ?? LESSON_RUN.batchSize,
        seqLen: o.seqLen ?? LESSON_RUN.seqLen,
        seed: o.seed ?? LESSON_RUN.seed,
        evalEvery: o.evalEvery ?? 0,
      },
      lanes,
      evalExamples: o.evalExamples ?? LESSON_RUN.evalExamples,
      ...(o.template ? { template: o.template } : {}),
    },
  };
}

export function offloadRun(
  id: string,
  label: string,
  model: string,
  request: Omit<OffloadTrialRequest, 'corpusUrl'>,
): LessonRun {
  return { kind: 'offload', id, label, model, request: { ...request, corpusUrl: `data/${request.task}/` } };
}

export function swarmRun(
  id: string,
  label: string,
  model: string,
  request: Omit<SwarmTrialRequest, 'corpusUrl'>,
): LessonRun {
  return { kind: 'swarm', id, label, model, request: { ...request, corpusUrl: `data/${request.task}/` } };
}

export const MODELS = [
  { value: 'peftlab-s', label: 'peftlab-s (0.56M parameters)' },
  { value: 'peftlab-m', label: 'peftlab-m (2.2M)' },
  { value: 'peftlab-l', label: 'peftlab-l (8.1M)' },
] as const;

export function stepsKnob(def: number, max = 200): Knob {
  return { id: 'steps', label: 'Training steps', kind: 'number', min: 1, max, default: def };
}

export function modelKnob(def: string): Knob {
  return { id: 'model', label: 'Base model', kind: 'choice', options: MODELS, default: def };
}

export function seedKnob(): Knob {
  return { id: 'seed', label: 'Seed', kind: 'number', min: 0, max: 9999, default: 0 };
}
