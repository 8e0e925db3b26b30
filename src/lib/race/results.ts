/**
 * A finished race as a table and as sentences: one row per lane (trainable parameters, memory,
 * speed, losses, the task metric, steps to a target), CSV and JSON exports, and who won on which
 * measure, read from this run's numbers (never from what a method is expected to do). No tfjs
 * here: the UI and the CLI both import it.
 */
import type { LaneState } from './race';
import type { TaskMetric } from '../data/task-data';
import { higherIsBetter } from '../data/task-data';

export interface ResultRow {
  id: string;
  name: string;
  method: string;
  trainableParams: number;
  /** Trainable / all parameters of the adapted model, in percent. */
  trainablePercent: number;
  /** The ledger's total: measured when the lane got that far, else predicted. */
  peakBytes: number;
  peakMeasured: boolean;
  /** Median milliseconds per optimizer step. */
  msPerStep: number;
  tokensPerSec: number;
  steps: number;
  /** Mean training loss over the last (up to) 10 steps. */
  finalLoss: number;
  /** Held-out loss and metric before training and at the end. */
  evalLossBefore: number;
  evalLoss: number;
  metricBefore: number;
  metric: number;
  /** First evaluated step at which the metric reached the race's target; null if it never did. */
  stepsToTarget: number | null;
  status: string;
  /** An opened adapter, evaluated only (never trained in the race): no time or memory of its own. */
  evaluatedOnly?: boolean;
}

export interface RaceResults {
  metric: TaskMetric;
  /** The target stepsToTarget refers to. */
  target: number;
  rows: ResultRow[];
  /** Sentences on who won what, from these numbers. */
  verdicts: string[];
}

const LAST_STEPS = 10;

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const better = (metric: TaskMetric, a: number, b: number): boolean =>
  higherIsBetter(metric) ? a > b : a < b;

const reaches = (metric: TaskMetric, value: number, target: number): boolean =>
  higherIsBetter(metric) ? value >= target : value <= target;

/**
 * The default target: 90% of the best final accuracy, or 10% above the best final perplexity,
 * so "steps to target" asks how fast each method got close to the winner (failed lanes left out).
 */
export function defaultTarget(metric: TaskMetric, lanes: readonly LaneState[]): number {
  const finals = lanes
    .filter((l) => l.status !== 'failed')
    .map((l) => l.evals.at(-1)?.metric)
    .filter((x): x is number => Number.isFinite(x));
  if (finals.length === 0) return NaN;
  return higherIsBetter(metric) ? 0.9 * Math.max(...finals) : 1.1 * Math.min(...finals);
}

export function resultRows(metric: TaskMetric, lanes: readonly LaneState[], target: number): ResultRow[] {
  return lanes.map((l) => {
    const ms = l.steps.map((s) => s.ms);
    const tail = l.steps.slice(-LAST_STEPS);
    const first = l.evals[0];
    const last = l.evals.at(-1);
    const hit = l.evals.find((e) => e.step > 0 && reaches(metric, e.metric, target));
    const ledger = l.ledger.measured ?? l.ledger.predicted;
    return {
      id: l.id,
      name: l.name,
      method: l.method,
      trainableParams: l.trainableParams,
      trainablePercent: (100 * l.trainableParams) / l.totalParams,
      peakBytes: ledger.total,
      peakMeasured: l.ledger.measured !== null,
      msPerStep: median(ms),
      tokensPerSec: l.trainMs > 0 ? (1000 * l.tokens) / l.trainMs : NaN,
      steps: l.steps.length,
      finalLoss: tail.length ? tail.reduce((a, s) => a + s.loss, 0) / tail.length : NaN,
      evalLossBefore: first?.loss ?? NaN,
      evalLoss: last?.loss ?? NaN,
      metricBefore: first?.metric ?? NaN,
      metric: last?.metric ?? NaN,
      stepsToTarget: hit ? hit.step : null,
      status: l.status,
      ...(l.origin === 'opened' ? { evaluatedOnly: true } : {}),
    };
  });
}

const METRIC_LABEL: Record<TaskMetric, string> = {
  perplexity: 'held-out perplexity',
  accuracy: 'held-out accuracy',
  tokenAccuracy: 'held-out token accuracy',
};

export function formatMetric(metric: TaskMetric, v: number): string {
  if (!Number.isFinite(v)) return '-';
  return metric === 'perplexity' ? v.toFixed(2) : `${(100 * v).toFixed(1)}%`;
}

function pick<T>(rows: T[], score: (r: T) => number, lowerWins: boolean): T | null {
  let best: T | null = null;
  for (const r of rows) {
    const s = score(r);
    if (!Number.isFinite(s)) continue;
    if (best === null || (lowerWins ? s < score(best) : s > score(best))) best = r;
  }
  return best;
}

/** Who won on the metric, on memory, on speed and on parameters; ties and single lanes said plainly. */
export function verdicts(metric: TaskMetric, rows: ResultRow[], target: number): string[] {
  const done = rows.filter((r) => r.status !== 'failed' && Number.isFinite(r.metric));
  if (done.length === 0) return ['No method finished: nothing to compare.'];
  const out: string[] = [];
  const m = METRIC_LABEL[metric];
  const top = pick(done, (r) => r.metric, !higherIsBetter(metric))!;
  const ties = done.filter((r) => r !== top && r.metric === top.metric);
  if (done.length === 1) out.push(`${top.name} reached ${m} ${formatMetric(metric, top.metric)}.`);
  else {
    const second = pick(
      done.filter((r) => r !== top && !ties.includes(r)),
      (r) => r.metric,
      !higherIsBetter(metric),
    );
    out.push(
      ties.length
        ? `${[top, ...ties].map((r) => r.name).join(' and ')} tied on ${m} at ${formatMetric(metric, top.metric)}.`
        : `${top.name} won on ${m}: ${formatMetric(metric, top.metric)}` +
            (second ? `, ahead of ${second.name} at ${formatMetric(metric, second.metric)}.` : '.'),
    );
  }
  const fastest = pick(
    done.filter((r) => r.stepsToTarget !== null),
    (r) => r.stepsToTarget!,
    true,
  );
  if (fastest && done.length > 1) {
    out.push(
      `${fastest.name} reached the target (${formatMetric(metric, target)}) first, at step ${fastest.stepsToTarget}.`,
    );
  }
  const smallest = pick(done, (r) => r.trainableParams, true)!;
  // An opened lane's memory is only predicted and it took no steps: time and memory are the trained lanes'.
  const trained = done.filter((r) => !r.evaluatedOnly);
  const lightest = pick(trained.length ? trained : done, (r) => r.peakBytes, true)!;
  const quickest = pick(trained.length ? trained : done, (r) => r.msPerStep, true)!;
  if (done.length > 1) {
    out.push(
      `${smallest.name} trained the fewest parameters (${smallest.trainableParams.toLocaleString('en-US')}); ` +
        `${lightest.name} needed the least memory; ${quickest.name} took the least time per step.`,
    );
    if (better(metric, top.metric, smallest.metric) && top !== smallest) {
      const ratio = top.trainableParams / Math.max(1, smallest.trainableParams);
      out.push(
        `The most accurate trained ${ratio >= 10 ? `${ratio.toFixed(0)}x` : `${ratio.toFixed(1)}x`} as many parameters as the smallest.`,
      );
    }
  }
  for (const r of rows.filter((x) => x.status === 'failed')) out.push(`${r.name} failed.`);
  for (const r of done.filter((x) => x.evaluatedOnly))
    out.push(
      `${r.name} was opened, not trained here: it is evaluated on the same held-out data, as trained elsewhere.`,
    );
  return out;
}

export function raceResults(metric: TaskMetric, lanes: readonly LaneState[], target?: number): RaceResults {
  const t = target ?? defaultTarget(metric, lanes);
  const rows = resultRows(metric, lanes, t);
  return { metric, target: t, rows, verdicts: verdicts(metric, rows, t) };
}

const CSV_COLUMNS: (keyof ResultRow)[] = [
  'name',
  'method',
  'trainableParams',
  'trainablePercent',
  'peakBytes',
  'peakMeasured',
  'msPerStep',
  'tokensPerSec',
  'steps',
  'finalLoss',
  'evalLossBefore',
  'evalLoss',
  'metricBefore',
  'metric',
  'stepsToTarget',
  'status',
];

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 CSV, one row per lane, the metric column named after the task's metric. */
export function resultsCsv(results: RaceResults): string {
  const header = CSV_COLUMNS.map((c) =>
    c === 'metric' ? results.metric : c === 'metricBefore' ? `${results.metric}Before` : c,
  );
  const lines = [header.join(',')];
  for (const r of results.rows) lines.push(CSV_COLUMNS.map((c) => csvCell(r[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
