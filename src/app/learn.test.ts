import { describe, expect, it } from 'vitest';
import { raceRun } from '../lib/learn/build';
import type { LessonBackend } from '../lib/learn/runner';
import { runExperiment } from '../lib/learn/runner';
import type { Lesson, LessonStep, Verdict } from '../lib/learn/types';
import type { RaceSnapshot } from '../lib/protocol/compare-protocol';
import {
  doneCount,
  experimentSteps,
  lessonDone,
  parseBody,
  progressJson,
  progressLine,
  readProgress,
  withVerdict,
} from './learn';

const verdict: Verdict = {
  outcome: 'mixed',
  claim: 'LoRA is light',
  text: 'LoRA trained 1,234 parameters',
  table: { columns: ['a', 'b'], rows: [['1', '2']] },
};
const experiment: LessonStep = {
  title: 'x',
  body: [],
  setup: [{ id: 'steps', label: 'Training steps', kind: 'number', min: 1, max: 9, default: 3 }],
  run: (v) => [
    raceRun('a', 'A', 'm', 'spam', [], { steps: Number(v.steps) }),
    raceRun('b', 'B', 'm', 'spam', [], { steps: Number(v.steps) }),
  ],
  check: (r) => {
    if (!r['a'] || !r['b']) throw new Error('the lesson has no race "b"');
    return verdict;
  },
};
const lesson = (id: string, steps: LessonStep[]): Lesson => ({
  id,
  number: 1,
  title: id,
  summary: '',
  steps,
});
const two = lesson('two', [
  { title: 'read', body: ['a'] },
  experiment,
  { title: 'read', body: [] },
  experiment,
]);
const none = lesson('none', [{ title: 'read', body: [] }]);

describe('lesson progress', () => {
  it('a lesson is done when every experiment step has a verdict', () => {
    expect(experimentSteps(two)).toEqual([1, 3]);
    let p = withVerdict({}, 'two', 1, verdict, { steps: 2 }, { at: 5 });
    expect(lessonDone(two, p)).toBe(false);
    p = withVerdict(p, 'two', 3, verdict, { steps: 2 }, { at: 6, stopped: true });
    expect(lessonDone(two, p)).toBe(true);
    expect(lessonDone(none, p)).toBe(false);
    expect(doneCount([two, none], p)).toBe(1);
  });

  it('survives the kv store (JSON) and drops what is malformed', () => {
    const p = withVerdict({}, 'two', 1, verdict, { steps: 2, model: 'peftlab-m' }, { at: 5 });
    const back = readProgress(JSON.parse(JSON.stringify(progressJson(p))));
    expect(back).toEqual(p);
    expect(back['two']!['1']).toEqual({ ...verdict, values: { steps: 2, model: 'peftlab-m' }, at: 5 });
    expect(readProgress(null)).toEqual({});
    expect(
      readProgress({ two: { '1': { outcome: 'maybe', text: '', claim: '', values: {} }, x: 3 }, y: 'z' }),
    ).toEqual({});
  });
});

describe('the progress line', () => {
  it('says which run and which lane step', () => {
    expect(
      progressLine(
        { index: 0, count: 1, label: 'LoRA and full' },
        { lane: 'LoRA on c_attn', step: 12, steps: 30 },
        null,
      ),
    ).toBe('LoRA and full · step 12/30 of LoRA on c_attn');
    expect(progressLine({ index: 1, count: 2, label: 'B' }, null, 'tokenizing SpamAssassin')).toBe(
      'run 2 of 2: B · tokenizing SpamAssassin',
    );
  });
});

describe('stopping an experiment', () => {
  const snap = {
    task: 't',
    taskType: 'SEQ_CLS',
    metric: 'accuracy',
    lanes: [],
    results: {},
  } as unknown as RaceSnapshot;
  const fake = (onRace: () => void): LessonBackend => ({
    loadModel: async () => ({}) as never,
    race: async () => {
      onRace();
      return snap;
    },
    offloadTrial: async () => ({}) as never,
    swarmTrial: async () => ({}) as never,
    nearestTokens: async () => ({}) as never,
    rankHistory: async () => ({}) as never,
  });

  it('stopped during the first run: the second never starts, and there is no verdict', async () => {
    let stop = false;
    const started: string[] = [];
    const out = await runExperiment(
      experiment,
      {},
      fake(() => (stop = true)),
      {
        stopped: () => stop,
        onRun: ({ run }) => started.push(run.id),
      },
    );
    expect(started).toEqual(['a']);
    expect(Object.keys(out.results)).toEqual(['a']);
    expect(out.stopped).toBe(true);
    expect(out.verdict).toBeNull();
    expect(out.reason).toMatch(/no race "b"/);
  });

  it('stopped before any run: no verdict, and why', async () => {
    const out = await runExperiment(
      experiment,
      {},
      fake(() => undefined),
      { stopped: () => true },
    );
    expect(out.results).toEqual({});
    expect(out.verdict).toBeNull();
    expect(out.reason).toMatch(/stopped before any run finished/);
  });

  it('stopped during the last run: the verdict is computed from what ran', async () => {
    let races = 0;
    let stop = false;
    const out = await runExperiment(
      experiment,
      {},
      fake(() => (stop = ++races === 2)),
      { stopped: () => stop },
    );
    expect(out.stopped).toBe(true);
    expect(out.verdict).toEqual(verdict);
  });
});

describe('body markup', () => {
  it('reads **bold** and `code` only; anything else, HTML included, stays text', () => {
    expect(parseBody('W x + `B A x` with **B** at <b>zero</b> * 2')).toEqual([
      { kind: 'text', text: 'W x + ' },
      { kind: 'code', text: 'B A x' },
      { kind: 'text', text: ' with ' },
      { kind: 'bold', text: 'B' },
      { kind: 'text', text: ' at <b>zero</b> * 2' },
    ]);
    expect(parseBody('')).toEqual([]);
  });
});
