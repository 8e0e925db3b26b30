/**
 * The Learn section's state, one runes class shared through context (setLearn/useLearn): the
 * reader's progress (kept in the `kv` store across reloads), the values typed into each experiment,
 * the experiment running now with its live progress, and the figures drawn from the live model. It
 * runs lessons on its own compare worker (not the Compare screen's), started the first time a lesson
 * needs it, and never touches tensors.
 */
import { getContext, setContext } from 'svelte';
import type { BackendInfo } from '../lib/backend/backend';
import { modelUrl, runExperiment } from '../lib/learn/runner';
import type { LessonBackend } from '../lib/learn/runner';
import { knobValues } from '../lib/learn/types';
import type { Figure, KnobValues, Lesson, LessonStep } from '../lib/learn/types';
import { taskById } from '../lib/data/tasks/registry';
import type { ParameterMap } from '../lib/protocol/compare-protocol';
import { getSetting, setSetting } from '../lib/storage/settings';
import type { JsonValue } from '../lib/storage/db';
import { CompareClient } from './compare-client';
import { PROGRESS_KEY, progressJson, progressLine, readProgress, withVerdict } from './learn';
import type { Progress } from './learn';

const stepKey = (lessonId: string, step: number): string => `${lessonId}:${step}`;

export interface RunningExperiment {
  lessonId: string;
  step: number;
  /** "run 1 of 2: ... · step 12/30 of LoRA on c_attn" */
  line: string;
  stopping: boolean;
}

export interface FigureState {
  maps: ParameterMap[];
  taskType: string;
  error: string | null;
  loading: boolean;
}

export class LearnState {
  readonly baseUrl: string;
  private client: CompareClient | null = null;
  private starting: Promise<CompareClient> | null = null;
  /** The model the worker holds. */
  private loadedModel: string | null = null;
  /** The worker does one thing at a time: figures and experiments queue here. */
  private queue: Promise<unknown> = Promise.resolve();

  progress = $state<Progress>({});
  progressLoaded = $state(false);
  /** Why progress could not be read or saved, or null. */
  storageProblem = $state<string | null>(null);
  backend = $state<BackendInfo | null>(null);
  /** The reader's values per experiment step (`lesson:step`). */
  values = $state<Record<string, KnobValues>>({});
  running = $state<RunningExperiment | null>(null);
  /** Per step: the last error, or why a stopped experiment has no verdict. */
  errors = $state<Record<string, string>>({});
  /** Per step: the last run's wall time in seconds. */
  seconds = $state<Record<string, number>>({});
  figures = $state<Record<string, FigureState>>({});

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
  }

  /** Reads the stored progress (once). */
  async loadProgress(): Promise<void> {
    if (this.progressLoaded) return;
    try {
      this.progress = readProgress(await getSetting<JsonValue>(PROGRESS_KEY));
    } catch (e) {
      this.storageProblem = `progress could not be read: ${(e as Error).message}`;
    }
    this.progressLoaded = true;
  }

  private async saveProgress(): Promise<void> {
    try {
      await setSetting(PROGRESS_KEY, progressJson(this.progress));
      this.storageProblem = null;
    } catch (e) {
      this.storageProblem = `progress could not be saved: ${(e as Error).message}`;
    }
  }

  /** The values of a step's knobs: what the reader typed, else the last run's, else the defaults. */
  valuesOf(lesson: Lesson, index: number): KnobValues {
    const key = stepKey(lesson.id, index);
    const step = lesson.steps[index];
    const given = this.values[key] ?? this.progress[lesson.id]?.[String(index)]?.values ?? {};
    return knobValues(step?.setup, given);
  }

  setValue(lesson: Lesson, index: number, id: string, value: number | string): void {
    const key = stepKey(lesson.id, index);
    this.values[key] = { ...this.valuesOf(lesson, index), [id]: value };
  }

  resetValues(lesson: Lesson, index: number): void {
    this.values[stepKey(lesson.id, index)] = knobValues(lesson.steps[index]?.setup);
  }

  errorOf(lessonId: string, index: number): string | null {
    return this.errors[stepKey(lessonId, index)] ?? null;
  }

  secondsOf(lessonId: string, index: number): number | null {
    return this.seconds[stepKey(lessonId, index)] ?? null;
  }

  figureOf(lessonId: string, index: number): FigureState | null {
    return this.figures[stepKey(lessonId, index)] ?? null;
  }

  /** Starts the worker the first time a lesson needs it; `init` says which backend it runs on. */
  private engine(): Promise<CompareClient> {
    if (this.client) return Promise.resolve(this.client);
    this.starting ??= (async () => {
      const client = new CompareClient();
      try {
        this.backend = await client.request('init', { backend: 'auto', wasmBaseUrl: `${this.baseUrl}wasm/` });
      } catch (e) {
        client.terminate();
        this.starting = null;
        throw e;
      }
      this.listen(client);
      this.client = client;
      return client;
    })();
    return this.starting;
  }

  /** Lane names by id and the current run's length, for the progress line. */
  private laneNames: Record<string, string> = {};
  private runInfo: { index: number; count: number; label: string; steps: number } | null = null;

  private listen(client: CompareClient): void {
    client.on('lane', (lane) => (this.laneNames[lane.id] = lane.name));
    client.on('step', ({ laneId, point }) => {
      if (!this.running || !this.runInfo) return;
      const lane = this.laneNames[laneId] ?? laneId;
      const line = progressLine(this.runInfo, { lane, step: point.step, steps: this.runInfo.steps }, null);
      // After its last step a lane is scored on held-out examples, which takes a while.
      this.running.line = point.step >= this.runInfo.steps ? `${line}, evaluating` : line;
    });
    client.on('eval', ({ laneId, point }) => {
      if (!this.running || !this.runInfo || point.step === 0) return;
      const lane = this.laneNames[laneId] ?? laneId;
      this.running.line = progressLine(this.runInfo, null, `${lane} evaluated at step ${point.step}`);
    });
    client.on('status', (s) => {
      if (!this.running || !this.runInfo || s.phase === 'racing') return;
      this.running.line = progressLine(this.runInfo, null, s.message);
    });
  }

  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    const next = this.queue.then(job, job);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Draws a step's figure: the parameter maps of its lanes on its model, before anything trains. */
  async drawFigure(lessonId: string, index: number, figure: Figure): Promise<void> {
    const key = stepKey(lessonId, index);
    if (this.figures[key]) return;
    const taskType = taskById(figure.task)?.taskType ?? 'SEQ_CLS';
    this.figures[key] = { maps: [], taskType, error: null, loading: true };
    try {
      const maps = await this.enqueue(async () => {
        const client = await this.engine();
        await this.load(client, figure.model);
        return client.request('preview', { task: figure.task, seqLen: figure.seqLen, lanes: figure.lanes });
      });
      this.figures[key] = { maps, taskType, error: null, loading: false };
    } catch (e) {
      this.figures[key] = { maps: [], taskType, error: describe(e), loading: false };
    }
  }

  private async load(client: CompareClient, model: string): Promise<void> {
    if (this.loadedModel === model) return;
    this.loadedModel = null;
    await client.request('loadModel', { id: model, baseUrl: this.baseUrl + modelUrl(model) });
    this.loadedModel = model;
  }

  /** Runs an experiment step at the reader's values; its verdict is shown and remembered. */
  async run(lesson: Lesson, index: number): Promise<void> {
    const step: LessonStep | undefined = lesson.steps[index];
    if (!step?.run || !step.check || this.running) return;
    const key = stepKey(lesson.id, index);
    const values = this.valuesOf(lesson, index);
    delete this.errors[key];
    this.running = { lessonId: lesson.id, step: index, line: 'starting the lesson engine', stopping: false };
    try {
      await this.enqueue(async () => {
        const client = await this.engine();
        const backend: LessonBackend = {
          loadModel: (req) => client.request('loadModel', req),
          race: (req) => client.request('race', req),
          offloadTrial: (req) => client.request('offloadTrial', req),
          swarmTrial: (req) => client.request('swarmTrial', req),
          nearestTokens: (req) => client.request('nearestTokens', req),
          rankHistory: (req) => client.request('rankHistory', req),
        };
        const out = await runExperiment(step, values, backend, {
          baseUrl: this.baseUrl,
          loadedModel: this.loadedModel,
          stopped: () => this.running?.stopping ?? false,
          onRun: ({ index: i, count, run }) => {
            // Until the model is loaded again the worker's model is not known for sure.
            if (run.model !== this.loadedModel) this.loadedModel = null;
            this.laneNames = {};
            this.runInfo = {
              index: i,
              count,
              label: run.label,
              steps:
                run.kind === 'race'
                  ? run.request.settings.steps
                  : run.kind === 'offload' || run.kind === 'swarm'
                    ? run.request.steps
                    : 0,
            };
            if (this.running) this.running.line = progressLine(this.runInfo, null, 'starting');
          },
        });
        this.loadedModel = out.model;
        this.seconds[key] = out.ms / 1000;
        if (out.verdict) {
          this.progress = withVerdict(this.progress, lesson.id, index, out.verdict, out.values, {
            stopped: out.stopped,
          });
        } else this.errors[key] = out.reason ?? 'no verdict';
      });
      await this.saveProgress();
    } catch (e) {
      this.loadedModel = null;
      this.errors[key] = describe(e);
    } finally {
      this.running = null;
      this.runInfo = null;
    }
  }

  /** Stops the running experiment: the race in the worker stops and returns what ran. */
  stop(): void {
    if (!this.running || this.running.stopping) return;
    this.running.stopping = true;
    this.running.line = `${this.running.line} · stopping`;
    void this.client?.request('stop', {}).catch(() => undefined);
  }

  isRunning(lessonId: string, index: number): boolean {
    return this.running?.lessonId === lessonId && this.running.step === index;
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** One state for the app's life, so leaving the Learn screen keeps a running experiment and its worker. */
const slot: { instance: LearnState | null } = { instance: null };
export function learnState(baseUrl: string): LearnState {
  return (slot.instance ??= new LearnState(baseUrl));
}

const KEY = Symbol('learn');
export const setLearn = (s: LearnState): LearnState => setContext(KEY, s);
export const useLearn = (): LearnState => getContext<LearnState>(KEY);
