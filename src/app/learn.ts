/**
 * The Learn section's plain logic (the runes state is learn.svelte.ts): a lesson's experiment steps,
 * the reader's progress (which steps have a verdict, and the last one) as stored in the `kv` store,
 * the progress line of a running experiment, and the body markup
 * (`**bold**` and `code`, nothing else). No DOM, no tensors, so all of it is tested in Node.
 */
import type { KnobValues, Lesson, LessonStep, Outcome, Verdict } from '../lib/learn/types';
import type { JsonValue } from '../lib/storage/db';

/** The `kv` key the progress of every lesson is stored under. */
export const PROGRESS_KEY = 'learn.progress';
export const LEARN_ROUTE = '#/learn';

/** What is kept of a step's last verdict. */
export interface StepRecord {
  outcome: Outcome;
  claim: string;
  text: string;
  table?: { columns: string[]; rows: string[][] };
  values: KnobValues;
  /** When it was computed (ms since the epoch). */
  at: number;
  /** The experiment was stopped before its end: the verdict is of what ran. */
  stopped?: boolean;
}

/** Per lesson id, per step index (as a string key): the last verdict. */
export type Progress = Record<string, Record<string, StepRecord>>;

export const isExperiment = (s: LessonStep): boolean => !!s.run && !!s.check;

/** Indices of a lesson's experiment steps. */
export function experimentSteps(lesson: Lesson): number[] {
  return lesson.steps.flatMap((s, i) => (isExperiment(s) ? [i] : []));
}

/** A lesson is done when every experiment step has a verdict (a lesson with none: never). */
export function lessonDone(lesson: Lesson, p: Progress): boolean {
  const xs = experimentSteps(lesson);
  const got = p[lesson.id] ?? {};
  return xs.length > 0 && xs.every((i) => got[String(i)] !== undefined);
}

export function doneCount(lessons: readonly Lesson[], p: Progress): number {
  return lessons.filter((l) => lessonDone(l, p)).length;
}

export function stepRecord(p: Progress, lessonId: string, step: number): StepRecord | undefined {
  return p[lessonId]?.[String(step)];
}

/** The progress with one step's verdict recorded (a new object; the old one is unchanged). */
export function withVerdict(
  p: Progress,
  lessonId: string,
  step: number,
  verdict: Verdict,
  values: KnobValues,
  opts: { stopped?: boolean; at?: number } = {},
): Progress {
  const rec: StepRecord = {
    outcome: verdict.outcome,
    claim: verdict.claim,
    text: verdict.text,
    values: { ...values },
    at: opts.at ?? Date.now(),
  };
  if (verdict.table)
    rec.table = { columns: [...verdict.table.columns], rows: verdict.table.rows.map((r) => [...r]) };
  if (opts.stopped) rec.stopped = true;
  return { ...p, [lessonId]: { ...(p[lessonId] ?? {}), [String(step)]: rec } };
}

const OUTCOMES: readonly string[] = ['holds', 'does-not-hold', 'mixed'];
const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);
const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');

function readRecord(x: unknown): StepRecord | null {
  if (!isObject(x) || typeof x.outcome !== 'string' || !OUTCOMES.includes(x.outcome)) return null;
  if (typeof x.text !== 'string' || typeof x.claim !== 'string' || !isObject(x.values)) return null;
  const values: KnobValues = {};
  for (const [k, v] of Object.entries(x.values))
    if (typeof v === 'number' || typeof v === 'string') values[k] = v;
  const rec: StepRecord = {
    outcome: x.outcome as Outcome,
    claim: x.claim,
    text: x.text,
    values,
    at: typeof x.at === 'number' ? x.at : 0,
  };
  const t = x.table;
  if (isObject(t) && isStrings(t.columns) && Array.isArray(t.rows) && t.rows.every(isStrings))
    rec.table = { columns: t.columns, rows: t.rows as string[][] };
  if (x.stopped === true) rec.stopped = true;
  return rec;
}

/** Progress as stored; anything malformed (an older shape, a hand edit) is dropped, not thrown. */
export function readProgress(raw: unknown): Progress {
  const p: Progress = {};
  if (!isObject(raw)) return p;
  for (const [lesson, steps] of Object.entries(raw)) {
    if (!isObject(steps)) continue;
    for (const [step, rec] of Object.entries(steps)) {
      const r = readRecord(rec);
      if (r && /^\d+$/.test(step)) (p[lesson] ??= {})[step] = r;
    }
  }
  return p;
}

/** Progress as the `kv` store takes it. */
export const progressJson = (p: Progress): JsonValue => JSON.parse(JSON.stringify(p)) as JsonValue;

/** The live line of a running experiment: "run 1 of 2: LoRA ... · step 12/30 of LoRA on c_attn". */
export function progressLine(
  run: { index: number; count: number; label: string },
  step: { lane: string; step: number; steps: number } | null,
  status: string | null,
): string {
  const head = run.count > 1 ? `run ${run.index + 1} of ${run.count}: ${run.label}` : run.label;
  const tail = step ? `step ${step.step}/${step.steps} of ${step.lane}` : status;
  return tail ? `${head} · ${tail}` : head;
}

/** A body paragraph's pieces: plain text, `**bold**` and `code` (nothing else is markup). */
export type Span = { kind: 'text' | 'bold' | 'code'; text: string };

export function parseBody(s: string): Span[] {
  const out: Span[] = [];
  const re = /\*\*([^*]+)\*\*|`([^`]+)`/g;
  let last = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    if (m.index > last) out.push({ kind: 'text', text: s.slice(last, m.index) });
    out.push(m[1] !== undefined ? { kind: 'bold', text: m[1] } : { kind: 'code', text: m[2]! });
    last = m.index + m[0].length;
  }
  if (last < s.length) out.push({ kind: 'text', text: s.slice(last) });
  return out;
}

export const OUTCOME_LABEL: Record<Outcome, string> = {
  holds: 'holds',
  'does-not-hold': 'does not hold',
  mixed: 'mixed',
};

/** The lesson's hash, and the one of a step's anchor within it. */
export const lessonHash = (id: string): string => `${LEARN_ROUTE}?lesson=${encodeURIComponent(id)}`;
