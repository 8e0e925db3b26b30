/**
 * Lessons are data (issue 7): `{id, title, steps: [{body, setup, run, check}]}`, rendered by one
 * component. A step explains (body, an optional figure drawn from the live model), and an
 * experiment step also says what the reader can change (`setup`), what runs (`run`: races and
 * offload trials on the bundled models, built from the reader's values) and how the verdict is
 * computed from what ran (`check`). Nothing here holds a result: every number of a verdict comes
 * from the run. No DOM, no tensors, so lessons and their verdicts are tested in Node.
 */
import type {
  LaneSpec,
  NearestTokens,
  OffloadTrial,
  OffloadTrialRequest,
  RaceRequest,
  RaceSnapshot,
  RankHistory,
  SwarmTrial,
  SwarmTrialRequest,
} from '../protocol/compare-protocol';

/** Something the reader can change before running (a number in a range, or a choice). */
export type Knob =
  | {
      id: string;
      label: string;
      kind: 'number';
      min: number;
      max: number;
      step?: number;
      default: number;
      help?: string;
    }
  | {
      id: string;
      label: string;
      kind: 'choice';
      options: readonly { value: string; label: string }[];
      default: string;
      help?: string;
    };

export type KnobValues = Record<string, number | string>;

/** One unit of work of an experiment, on one bundled model (`model` is its id under models/). */
export type LessonRun =
  | { kind: 'race'; id: string; label: string; model: string; request: RaceRequest }
  | { kind: 'offload'; id: string; label: string; model: string; request: OffloadTrialRequest }
  /** Training through a swarm of peers at several link latencies, and with a peer killed. */
  | { kind: 'swarm'; id: string; label: string; model: string; request: SwarmTrialRequest }
  /**
   * A look into a lane of the race run just before (same model): a soft prompt's nearest tokens,
   * or AdaLoRA's rank budget over the steps.
   */
  | {
      kind: 'probe';
      id: string;
      label: string;
      model: string;
      probe: 'nearest' | 'ranks';
      race: string;
      lane: string;
    };

export type RunResult =
  | { kind: 'race'; snapshot: RaceSnapshot }
  | { kind: 'offload'; trial: OffloadTrial }
  | { kind: 'swarm'; trial: SwarmTrial }
  | { kind: 'probe'; nearest?: NearestTokens; ranks?: RankHistory };

/** Results by run id. */
export type LessonResults = Record<string, RunResult>;

export type Outcome = 'holds' | 'does-not-hold' | 'mixed';

export interface Verdict {
  outcome: Outcome;
  /** The survey's claim, as tested here. */
  claim: string;
  /** The computed sentence(s): the numbers of this run and what they say about the claim. */
  text: string;
  /** The numbers behind it, for a small table. */
  table?: { columns: string[]; rows: string[][] };
}

/** A figure drawn from the live model before anything trains. */
export type Figure =
  /** Where each lane's trainable parameters live (and how many), for these lanes on this model and task. */
  { kind: 'where'; model: string; task: string; seqLen: number; lanes: LaneSpec[] };

export interface LessonStep {
  title: string;
  /** Short paragraphs; `**bold**` and `code` spans are the only markup. */
  body: string[];
  figure?: Figure;
  /** An experiment step: what the reader can change ... */
  setup?: readonly Knob[];
  /** ... what runs, from the reader's values ... */
  run?: (v: KnobValues) => LessonRun[];
  /** ... and the verdict, computed from the results. */
  check?: (results: LessonResults, v: KnobValues) => Verdict;
  /**
   * What the experiment costs at the defaults, e.g. "about 35 s in Chromium on wasm, 2 cores": the
   * wall time from Run to the verdict, model loading included, that `npm run bench:lessons:browser`
   * (scripts/lessons-browser.ts) measures on a quiet machine, rounded to 5 s.
   */
  cost?: string;
}

export interface Lesson {
  id: string;
  number: number;
  title: string;
  /** One line for the lesson list. */
  summary: string;
  steps: readonly LessonStep[];
}

/** The reader's values: each knob's default unless given (and a given value outside a range clamped). */
export function knobValues(setup: readonly Knob[] = [], given: KnobValues = {}): KnobValues {
  const v: KnobValues = {};
  for (const k of setup) {
    const g = given[k.id];
    if (k.kind === 'number') {
      const n = typeof g === 'number' ? g : Number(g);
      v[k.id] = g === undefined || !Number.isFinite(n) ? k.default : Math.min(k.max, Math.max(k.min, n));
    } else {
      v[k.id] = typeof g === 'string' && k.options.some((o) => o.value === g) ? g : k.default;
    }
  }
  return v;
}
