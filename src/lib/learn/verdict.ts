/**
 * Reading a lesson's results: a race's lanes by name, their metric before and after, their memory,
 * and the number formats verdicts print. A missing run or lane is a programming error in a lesson
 * (its `run` and `check` disagree), so it throws with both names.
 */
import type { LaneState, OffloadTrial, RaceSnapshot, SwarmTrial } from '../protocol/compare-protocol';
import type { LessonResults } from './types';
import { InternalError } from '../errors';

export function raceOf(results: LessonResults, id: string): RaceSnapshot {
  const r = results[id];
  if (!r || r.kind !== 'race') throw new InternalError(`the lesson has no race "${id}"`);
  return r.snapshot;
}

export function trialOf(results: LessonResults, id: string): OffloadTrial {
  const r = results[id];
  if (!r || r.kind !== 'offload') throw new InternalError(`the lesson has no offload trial "${id}"`);
  return r.trial;
}

export function swarmOf(results: LessonResults, id: string): SwarmTrial {
  const r = results[id];
  if (!r || r.kind !== 'swarm') throw new InternalError(`the lesson has no swarm trial "${id}"`);
  return r.trial;
}

export function probeOf(
  results: LessonResults,
  id: string,
): Extract<LessonResults[string], { kind: 'probe' }> {
  const r = results[id];
  if (!r || r.kind !== 'probe') throw new InternalError(`the lesson has no probe "${id}"`);
  return r;
}

export function laneOf(snap: RaceSnapshot, name: string): LaneState {
  const l = snap.lanes.find((x) => x.name === name);
  if (!l)
    throw new InternalError(
      `the race has no lane "${name}" (it has ${snap.lanes.map((x) => x.name).join(', ')})`,
    );
  return l;
}

/** The held-out metric before training and at the end (NaN when a lane failed before evaluating). */
export function metricBefore(l: LaneState): number {
  return l.evals[0]?.metric ?? NaN;
}
export function metricAfter(l: LaneState): number {
  return l.evals.at(-1)?.metric ?? NaN;
}
export function lossAfter(l: LaneState): number {
  return l.steps.at(-1)?.loss ?? NaN;
}
/** Mean training loss over the first `n` steps (how fast a lane starts). */
export function earlyLoss(l: LaneState, n: number): number {
  const xs = l.steps.slice(0, n).map((s) => s.loss);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** The lane's step memory: measured on its 2nd step when it got there, else predicted. */
export function memoryOf(l: LaneState): { total: number; weightsState: number; measured: boolean } {
  const m = l.ledger.measured ?? l.ledger.predicted;
  return {
    total: m.total,
    // What freezing saves: gradients and optimizer state of the trainable values.
    weightsState: m.gradients + m.optimizer,
    measured: l.ledger.measured !== null,
  };
}

export const pct = (x: number, digits = 1): string =>
  Number.isFinite(x) ? `${(100 * x).toFixed(digits)}%` : '-';
export const mib = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
export const int = (n: number): string => Math.round(n).toLocaleString('en-US');
export const num = (x: number, digits = 3): string => (Number.isFinite(x) ? x.toFixed(digits) : '-');

/** The metric as a reader says it: "accuracy 71.1%" or "perplexity 74.7". */
export function metricText(snap: RaceSnapshot, x: number): string {
  return snap.metric === 'perplexity' ? `perplexity ${num(x, 1)}` : `${metricLabel(snap)} ${pct(x)}`;
}
export function metricLabel(snap: RaceSnapshot): string {
  return snap.metric === 'tokenAccuracy' ? 'token accuracy' : snap.metric;
}

/** Whether a is better than b on the race's metric. */
export function better(snap: RaceSnapshot, a: number, b: number): boolean {
  return snap.metric === 'perplexity' ? a < b : a > b;
}

/**
 * Whether a classification lane ended answering (nearly) one class for everything: a model that
 * always says the majority class scores macro-F1 of at most 1 / classes, whatever its accuracy.
 */
export function answersOneClass(l: LaneState, classes: number): boolean {
  const f1 = l.evals.at(-1)?.macroF1;
  return f1 !== undefined && f1 <= 1 / classes + 0.02;
}

/** A sentence naming the lanes that answer one class, so their accuracy is not read as skill ('' if none). */
export function oneClassNote(lanes: LaneState[], classes: number, what = 'input'): string {
  const names = lanes.filter((l) => answersOneClass(l, classes)).map((l) => l.name);
  if (names.length === 0) return '';
  const who =
    names.length === 1
      ? `${names[0]} answers`
      : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} answer`;
  return ` Careful: ${who} the same class for nearly every ${what} (macro-F1 at most ${(1 / classes + 0.02).toFixed(2)}), so that accuracy is the share of the majority class, not a skill.`;
}

/** "Close" in the lessons' verdicts: within this many points of accuracy (a judgement, said in the text). */
export const CLOSE = 0.03;

/**
 * Where a method stands against a reference from the gap (reference minus method, in metric units):
 * "ahead of <ref> by 2.1 points", "within 3 points of <ref>" or "4.5 points behind <ref>".
 */
export function standing(gap: number, ref: string): string {
  if (gap < 0) return `ahead of ${ref} by ${(-100 * gap).toFixed(1)} points`;
  return gap <= CLOSE ? `within 3 points of ${ref}` : `${(100 * gap).toFixed(1)} points behind ${ref}`;
}

/** A verdict table's rows: each lane's name, trainable values, and metric before and after. */
export function metricRows(snap: RaceSnapshot, lanes: LaneState[]): string[][] {
  return lanes.map((l) => [
    l.name,
    int(l.trainableParams),
    metricText(snap, metricBefore(l)),
    metricText(snap, metricAfter(l)),
  ]);
}
