/**
 * The Compare screen's state, in one runes class shared through context (setCompare/useCompare):
 * the set-up (mirrored in the URL hash, compare-hash.ts), the live race as the compare worker's
 * events build it, what is read back from a finished race, Try it, and saved races. It talks to its
 * own worker (src/workers/compare.worker.ts) through CompareClient and never touches tensors.
 */
import { AdapterMismatchError, NotReadyError } from '../lib/errors';
import { getAdapter, listAdapters } from '../lib/storage/adapters';
import type { AdapterMeta } from '../lib/storage/adapters';
import { getContext, setContext } from 'svelte';
import type { BackendInfo } from '../lib/backend/backend';
import { TASKS, taskById } from '../lib/data/tasks/registry';
import type { TaskInfo } from '../lib/data/tasks/registry';
import { importedTasks, taskDataUrl } from '../lib/data/imported';
import type { TaskType } from '../lib/data/tasks/registry';
import type {
  CompareEvents,
  LaneSpec,
  LaneState,
  NearestTokens,
  ParameterMap,
  RaceCheckpoint,
  RaceRequest,
  RaceSettings,
  RaceSnapshot,
  RankHistory,
  TryAnswer,
} from '../lib/protocol/compare-protocol';
import type { ModelSummary } from '../lib/protocol/lab-protocol';
import type { CatalogEntry } from './catalog';
import { loadCatalog } from './catalog';
import { CompareClient } from './compare-client';
import {
  COMPARE_ROUTE,
  DEFAULT_COMPARE_TASK,
  defaultSetup,
  paramsToSetup,
  setupToParams,
} from './compare-hash';
import type { CompareSetup } from './compare-hash';
import { deleteSavedRace, listSavedRaces, loadSavedRace, saveRace } from './compare-saved';
import type { SavedRace, SavedRaceEntry } from './compare-saved';
import { parseHash } from './hash';
import { findMethod, formProblem, formsForFamily, requestConfig, unsupportedReason } from './method-form';
import { methodRequest } from '../lib/peft/method-config';
import { downloadFile } from './download';
import { laneProjectZip } from './export-project';

export type ComparePhase = CompareEvents['status']['phase'] | 'starting' | 'error';

/** A text to try each task on (the Try-it box starts with it when a race on that task ends). */
const SAMPLE_TEXT: Record<TaskType, string> = {
  CAUSAL_LM: 'Call me Ishmael. Some years ago',
  SEQ_CLS: 'Subject: You have WON a free prize!!! Click here now to claim your cash reward.',
  TOKEN_CLS: 'The old sailor walked slowly down to the harbour .',
};
const TASK_SAMPLE: Record<string, string> = {
  'brown-genre':
    'The jury further said in term-end presentments that the City Executive Committee deserves the praise of the City of Atlanta.',
};

/** What the panels draw: the live race, or a saved one opened from the list. */
export interface RaceView {
  saved: SavedRace | null;
  lanes: LaneState[];
  snapshot: RaceSnapshot | null;
  maps: ParameterMap[];
  ranks: RankHistory[];
  nearest: NearestTokens[];
  /** Steps per lane in that race. */
  steps: number;
  taskType: TaskType;
}

export class CompareState {
  readonly baseUrl: string;
  private client: CompareClient | null = null;

  backend = $state<BackendInfo | null>(null);
  catalog = $state<CatalogEntry[]>([]);
  importedTasks = $state<TaskInfo[]>([]);
  setup = $state<CompareSetup>(defaultSetup('', DEFAULT_COMPARE_TASK, 'SEQ_CLS'));
  /** What the opened link held that was not understood (each fell back to a default). */
  notes = $state<string[]>([]);
  /** The engine's equal budget for the model and task: prompt tuning's default size. */
  defaultBudget = $state<number | null>(null);
  model = $state<ModelSummary | null>(null);
  phase = $state<ComparePhase>('starting');
  statusMessage = $state('starting the compare engine');
  error = $state<string | null>(null);
  started = $state(false);

  /** The live race: lanes as the events build them, then the engine's snapshot. */
  lanes = $state<LaneState[]>([]);
  snapshot = $state<RaceSnapshot | null>(null);
  /** The set-up the live race was started with (what Save keeps). */
  raceSetup = $state<CompareSetup | null>(null);
  raceTaskType = $state<TaskType | null>(null);
  running = $state(false);
  paused = $state(false);
  maps = $state<ParameterMap[]>([]);
  ranks = $state<RankHistory[]>([]);
  nearest = $state<NearestTokens[]>([]);

  tryText = $state(SAMPLE_TEXT.SEQ_CLS);
  maxNewTokens = $state(24);
  tryAnswers = $state<TryAnswer[]>([]);
  /** The input the answers are to (a continuation is shown after its prompt). */
  tryAsked = $state('');
  trying = $state(false);

  /**
   * Seconds between checkpoints of every lane while a race runs (0: none). Two minutes, as the Lab's:
   * a race shorter than that writes none, a longer one can be resumed when its worker dies.
   */
  checkpointEveryS = $state(120);
  /** The running race's last checkpoint written (or read, when it resumed). */
  lastCheckpoint = $state<CompareEvents['checkpoint'] | null>(null);
  /** A race whose worker died, with the lanes' checkpoints it can resume from: the Resume banner. */
  interruptedRace = $state<{
    request: RaceRequest;
    setup: CompareSetup;
    taskType: TaskType;
    checkpoint: RaceCheckpoint;
  } | null>(null);
  /** The running race's request and set-up, kept here for a resume after its worker died. */
  private runningRace: { request: RaceRequest; setup: CompareSetup; taskType: TaskType } | null = null;

  /** The lane whose Python project is being written, and what the last export did. */
  exportingLane = $state<string | null>(null);
  exportNote = $state<string | null>(null);
  exportError = $state<string | null>(null);

  /** Adapters kept in this browser, which can join a finished race as evaluated lanes. */
  savedAdapters = $state<AdapterMeta[]>([]);
  savedRaces = $state<SavedRaceEntry[]>([]);
  viewing = $state<SavedRace | null>(null);
  savedKey = $state<string | null>(null);

  tasks = $derived<TaskInfo[]>([...TASKS, ...this.importedTasks]);
  taskInfo = $derived<TaskInfo>(this.findTask(this.setup.task) ?? TASKS[0]);
  /** The query of the current set-up (without the route). */
  query = $derived(setupToParams(this.setup, this.taskInfo.taskType).toString());
  /** Why Start is off as the set-up stands, or null. */
  startBlocker = $derived.by(() => {
    if (!this.model) return 'the model is still loading';
    if (this.setup.methods.length === 0) return 'tick at least one method to race';
    for (const m of this.setup.methods) {
      const info = findMethod(m);
      if (!info) continue;
      const why = unsupportedReason(info, this.taskInfo.taskType) ?? formProblem(info, this.setup.forms[m]!);
      if (why) return `${info.label}: ${why}`;
    }
    return null;
  });

  view = $derived.by<RaceView>(() => {
    const v = this.viewing;
    if (v) {
      return {
        saved: v,
        lanes: v.snapshot.lanes,
        snapshot: v.snapshot,
        maps: v.maps,
        ranks: v.ranks,
        nearest: v.nearest,
        steps: v.setup.steps,
        taskType: v.snapshot.taskType as TaskType,
      };
    }
    return {
      saved: null,
      lanes: this.lanes,
      snapshot: this.snapshot,
      maps: this.maps,
      ranks: this.ranks,
      nearest: this.nearest,
      steps: this.raceSetup?.steps ?? this.setup.steps,
      taskType: this.raceTaskType ?? this.taskInfo.taskType,
    };
  });

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
  }

  private findTask(id: string): TaskInfo | undefined {
    return taskById(id) ?? this.importedTasks.find((t) => t.id === id);
  }

  private fail(e: unknown): void {
    this.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }

  private get engine(): CompareClient {
    if (!this.client)
      throw new NotReadyError('the compare engine has not started yet: wait a moment and try again');
    return this.client;
  }

  /** Starts the worker, reads the model list, the link's set-up and saved races, loads the model. */
  async start(): Promise<void> {
    if (this.client) return;
    const client = (this.client = new CompareClient());
    client.on('lane', (lane) => {
      const i = this.lanes.findIndex((l) => l.id === lane.id);
      if (i < 0) this.lanes.push(lane);
      else this.lanes[i] = lane;
    });
    client.on('step', ({ laneId, point }) => this.lanes.find((l) => l.id === laneId)?.steps.push(point));
    client.on('eval', ({ laneId, point }) => this.lanes.find((l) => l.id === laneId)?.evals.push(point));
    client.on('checkpoint', (c) => (this.lastCheckpoint = c));
    client.onCrash((e) => void this.recoverFromCrash(e));
    client.on('status', (s) => {
      this.phase = s.phase;
      this.statusMessage = s.message;
      this.paused = s.phase === 'paused';
    });
    try {
      this.catalog = await loadCatalog(this.baseUrl);
      if (!this.setup.model) this.setup.model = this.catalog[0]?.id ?? '';
      try {
        this.importedTasks = await importedTasks();
      } catch (e) {
        this.notes = [...this.notes, `imported data sets could not be read: ${(e as Error).message}`];
      }
      this.started = true;
      this.readHash(location.hash, false);
      this.backend = await client.request('init', { backend: 'auto', wasmBaseUrl: `${this.baseUrl}wasm/` });
      await this.loadModel();
      await this.refreshSaved();
    } catch (e) {
      this.phase = 'error';
      this.fail(e);
    }
  }

  /**
   * Takes the set-up from `#/compare?...`; a hash without a query (the nav link) keeps the current
   * one. Nothing changes while a race runs. Loads the model when the link names another one.
   */
  readHash(hash: string, load = true): void {
    const { route, params } = parseHash(hash);
    if (route !== COMPARE_ROUTE || !this.started) return;
    if ([...params.keys()].length === 0) {
      this.writeHash();
      return;
    }
    if (params.toString() === this.query) return;
    if (this.running) {
      this.notes = [
        'a race is running: the set-up in the address was not applied; stop the race and open the link again',
      ];
      this.writeHash();
      return;
    }
    const { setup, notes } = paramsToSetup(params, {
      models: this.catalog.map((m) => m.id),
      taskType: (id) => this.findTask(id)?.taskType,
    });
    const modelChanged = setup.model !== this.setup.model;
    this.setup = setup;
    this.notes = notes;
    this.resetTry();
    if (load && modelChanged) void this.loadModel();
    else if (load) void this.refreshBudget();
  }

  /** The hash of the current set-up. */
  hash = $derived(this.query ? `${COMPARE_ROUTE}?${this.query}` : COMPARE_ROUTE);

  /** The address of the current set-up (the page's own URL with the set-up's hash). */
  link(): string {
    return `${location.origin}${location.pathname}${location.search}${this.hash}`;
  }

  /** Writes the set-up into the address bar (replacing the entry, so Back leaves the screen). */
  writeHash(): void {
    if (parseHash(location.hash).route === COMPARE_ROUTE && location.hash !== this.hash)
      history.replaceState(history.state, '', this.hash);
  }

  /**
   * After the worker died (the browser ends one that runs out of memory): a fresh one gets the
   * backend and the model back. A race that was running is offered for resuming when its lanes have
   * checkpoints (IndexedDB is the truth: the worker may have written one it never announced);
   * without any it must start again.
   */
  async recoverFromCrash(e: Error): Promise<void> {
    const wasRacing = this.running;
    const race = wasRacing ? this.runningRace : null;
    this.running = false;
    this.paused = false;
    this.engine.restart();
    try {
      this.backend = await this.engine.request('init', {
        backend: 'auto',
        wasmBaseUrl: `${this.baseUrl}wasm/`,
      });
    } catch (err) {
      this.fail(err);
      return;
    }
    await this.loadModel();
    let found: RaceCheckpoint | null = null;
    const raceId = race?.request.checkpoint?.raceId;
    if (race && raceId) {
      try {
        found = await this.engine.request('raceCheckpoint', { raceId });
      } catch (err) {
        this.fail(err);
        return;
      }
    }
    if (race && found) this.interruptedRace = { ...race, checkpoint: found };
    const steps = (found?.lanes ?? [])
      .map((l) => l.step)
      .filter((x, i, all) => all.indexOf(x) === i)
      .join(', ');
    this.error =
      `${e.name}: ${e.message}. A fresh worker has started` +
      (!wasRacing
        ? '.'
        : found
          ? `: resume the race from its lanes' checkpoints (step ${steps} of ${race!.setup.steps}) below.`
          : '; the race was lost: start it again.');
  }

  /** Runs the interrupted race on from its lanes' checkpoints, showing its set-up and history. */
  async resumeRace(): Promise<void> {
    const r = this.interruptedRace;
    if (!r || this.running || !this.model) return;
    this.error = null;
    this.viewing = null;
    this.interruptedRace = null;
    await this.runRace({ ...$state.snapshot(r.request), resume: true }, r.setup, r.taskType);
  }

  /** Forgets the interrupted race and deletes its checkpoints. */
  async discardInterruptedRace(): Promise<void> {
    const r = this.interruptedRace;
    this.interruptedRace = null;
    const raceId = r?.request.checkpoint?.raceId;
    if (!raceId) return;
    try {
      await this.engine.request('deleteRaceCheckpoint', { raceId });
    } catch (e) {
      this.fail(e);
    }
  }

  async loadModel(): Promise<void> {
    const id = this.setup.model;
    if (!id) return;
    this.error = null;
    const family = this.model?.family ?? 'gpt2';
    this.model = null;
    try {
      this.model = await this.engine.request('loadModel', { id, baseUrl: `${this.baseUrl}models/${id}/` });
      // Layer names differ between families: module fields start again from the new family's defaults.
      if (this.model.family !== family)
        this.setup.forms = formsForFamily(this.setup.forms, this.taskInfo.taskType, this.model.family);
      // The engine freed the old model's race with it.
      this.clearRace();
      await this.refreshBudget();
    } catch (e) {
      this.fail(e);
    }
  }

  async refreshBudget(): Promise<void> {
    if (!this.model) return;
    try {
      const { defaultBudget } = await this.engine.request('budget', {
        task: this.setup.task,
        seqLen: this.setup.seqLen,
      });
      this.defaultBudget = defaultBudget;
    } catch (e) {
      this.fail(e);
    }
  }

  setModel(id: string): void {
    if (this.running || id === this.setup.model) return;
    this.setup.model = id;
    void this.loadModel();
  }

  /** Picks a task; methods that cannot train it are unticked, with a note. */
  setTask(id: string): void {
    const info = this.findTask(id);
    if (this.running || !info) return;
    this.setup.task = id;
    const dropped = this.setup.methods.filter((m) => !findMethod(m)?.taskTypes.includes(info.taskType));
    this.setup.methods = this.setup.methods.filter((m) => !dropped.includes(m));
    this.notes = dropped.length
      ? [
          `${dropped.map((m) => findMethod(m)?.label ?? m).join(', ')} cannot train ${info.taskType} tasks: unticked`,
        ]
      : [];
    void this.refreshBudget();
  }

  toggleMethod(cliName: string, on: boolean): void {
    if (this.running) return;
    const rest = this.setup.methods.filter((m) => m !== cliName);
    this.setup.methods = on ? [...rest, cliName] : rest;
  }

  private laneSpec(setup: CompareSetup, m: string): LaneSpec {
    const info = findMethod(m)!;
    return {
      ...methodRequest(m, requestConfig(info, setup.forms[m] ?? {})),
      lr: setup.lr[m] ?? info.defaultLr,
    };
  }

  private equalBudget(setup: CompareSetup): number | null {
    return setup.equal ? (setup.budget ?? this.defaultBudget) : null;
  }

  private clearRace(): void {
    this.lanes = [];
    this.snapshot = null;
    this.raceSetup = null;
    this.raceTaskType = null;
    this.maps = [];
    this.ranks = [];
    this.nearest = [];
    this.savedKey = null;
    this.resetTry();
  }

  private resetTry(): void {
    this.tryAnswers = [];
  }

  async startRace(): Promise<void> {
    if (this.running || this.startBlocker) return;
    this.error = null;
    this.viewing = null;
    this.clearRace();
    const setup = $state.snapshot(this.setup) as CompareSetup;
    const info = this.taskInfo;
    const settings: RaceSettings = {
      steps: setup.steps,
      batchSize: setup.batchSize,
      seqLen: setup.seqLen,
      seed: setup.seed,
      evalEvery: setup.evalEvery,
      ...(setup.timeBudgetS > 0 ? { timeBudgetMs: 1000 * setup.timeBudgetS } : {}),
    };
    const every = Number(this.checkpointEveryS);
    const request: RaceRequest = {
      task: info.id,
      corpusUrl: taskDataUrl(info, this.baseUrl),
      settings,
      lanes: setup.methods.map((m) => this.laneSpec(setup, m)),
      equalBudget: this.equalBudget(setup),
      ...(setup.template && info.taskType === 'SEQ_CLS' ? { template: setup.template } : {}),
      ...(every > 0 ? { checkpoint: { raceId: crypto.randomUUID(), everyMs: 1000 * every } } : {}),
    };
    // A new race replaces the offer to resume the last one (its checkpoints stay until discarded).
    this.interruptedRace = null;
    await this.runRace(request, setup, info.taskType);
  }

  private async runRace(request: RaceRequest, setup: CompareSetup, taskType: TaskType): Promise<void> {
    this.raceSetup = setup;
    this.raceTaskType = taskType;
    this.tryText = TASK_SAMPLE[request.task] ?? SAMPLE_TEXT[taskType];
    this.lastCheckpoint = null;
    this.runningRace = { request, setup, taskType };
    this.running = true;
    this.paused = false;
    try {
      this.snapshot = await this.engine.request('race', request);
      this.lanes = this.snapshot.lanes;
    } catch (e) {
      this.fail(e);
      this.phase = 'idle';
      // The engine frees its last race before it builds the next, so none is left to show.
      this.statusMessage = 'the race did not start';
      this.lanes = [];
      this.raceSetup = null;
    } finally {
      this.running = false;
      this.paused = false;
      this.runningRace = null;
    }
    if (this.snapshot) await Promise.all([this.readBack(), this.refreshAdapters()]);
  }

  /** Adds a method (with its settings from the set-up) to the finished race and runs it. */
  async addLane(cliName: string): Promise<void> {
    const race = this.raceSetup;
    if (this.running || !this.snapshot || !race || !findMethod(cliName)) return;
    this.error = null;
    this.running = true;
    const setup = $state.snapshot(this.setup) as CompareSetup;
    try {
      this.snapshot = await this.engine.request('addLane', {
        lane: this.laneSpec(setup, cliName),
        equalBudget: this.equalBudget(race),
      });
      this.lanes = this.snapshot.lanes;
      race.methods = [...race.methods, cliName];
      race.forms[cliName] = setup.forms[cliName]!;
      race.lr[cliName] = setup.lr[cliName]!;
      this.savedKey = null;
    } catch (e) {
      this.fail(e);
    } finally {
      this.running = false;
      this.paused = false;
    }
    this.tryAnswers = [];
    await this.readBack();
  }

  /** Reads the adapters kept in this browser (the Lab's Saved adapters), to offer as lanes. */
  async refreshAdapters(): Promise<void> {
    try {
      this.savedAdapters = await listAdapters();
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * A saved adapter (opened from PEFT in the Lab, or trained and saved there) joins the finished
   * race as an evaluated lane: scored on the race's held-out data beside the trained lanes, in the
   * results, Try it and the parameter diagram, but never trained (its training happened elsewhere).
   */
  async addSavedAdapter(id: string): Promise<void> {
    const race = this.raceSetup;
    if (this.running || !this.snapshot || !race) return;
    this.error = null;
    this.running = true;
    try {
      const rec = await getAdapter(id);
      if (!rec) throw new NotReadyError('that adapter is no longer stored; the list was refreshed');
      if (rec.baseModel !== race.model) {
        throw new AdapterMismatchError(
          `${rec.name} was made on ${rec.baseModel} and this race runs on ${race.model}: race it on ${rec.baseModel}`,
          'config',
        );
      }
      this.snapshot = await this.engine.request('addOpenedLane', {
        name: rec.name,
        config: rec.configJson,
        weights: rec.weights.slice(0),
      });
      this.lanes = this.snapshot.lanes;
      this.savedKey = null;
    } catch (e) {
      this.fail(e);
      await this.refreshAdapters();
    } finally {
      this.running = false;
      this.paused = false;
    }
    this.tryAnswers = [];
    await this.readBack();
  }

  /**
   * After a race: where each lane's parameters live, and what its method's description says can be
   * read back (a moving rank budget as AdaLoRA's, soft prompts' nearest tokens).
   */
  private async readBack(): Promise<void> {
    try {
      const lanes = this.lanes.filter((l) => l.status !== 'failed');
      this.maps = await this.engine.request('parameterMaps', {});
      const ranks: RankHistory[] = [];
      const nearest: NearestTokens[] = [];
      for (const l of lanes) {
        const can = findMethod(l.method)?.capabilities ?? {};
        if (can.rankHistory) ranks.push(await this.engine.request('rankHistory', { laneId: l.id }));
        if (can.nearestTokens)
          nearest.push(await this.engine.request('nearestTokens', { laneId: l.id, k: 5 }));
      }
      this.ranks = ranks;
      this.nearest = nearest;
    } catch (e) {
      this.fail(e);
    }
  }

  async pause(): Promise<void> {
    await this.engine.request('pause', {});
  }

  async resume(): Promise<void> {
    await this.engine.request('resume', {});
  }

  async stop(): Promise<void> {
    await this.engine.request('stop', {});
  }

  async tryAll(): Promise<void> {
    if (this.running || !this.snapshot) return;
    this.error = null;
    this.trying = true;
    try {
      const text = this.tryText;
      this.tryAnswers = await this.engine.request('tryAll', { text, maxNewTokens: this.maxNewTokens });
      this.tryAsked = text;
    } catch (e) {
      this.fail(e);
    } finally {
      this.trying = false;
    }
  }

  /**
   * "Export as a Python project" on a finished lane (of the live race or a saved one): the Lab's
   * project for the lane's method, the config it trained with, its rate and the race's settings.
   */
  async exportLane(laneId: string): Promise<void> {
    const view = this.view;
    const setup = view.saved?.setup ?? this.raceSetup;
    const lane = view.lanes.find((l) => l.id === laneId);
    if (!setup || !lane) return;
    this.exportError = null;
    this.exportingLane = laneId;
    try {
      const task = this.findTask(setup.task);
      if (!task) {
        throw new NotReadyError(
          `the race's task "${setup.task}" is not in this browser any more: import it on the Data screen to export this lane`,
        );
      }
      const { name, zip } = await laneProjectZip({
        modelId: setup.model,
        bundled: this.catalog.map((c) => c.id),
        baseUrl: this.baseUrl,
        lane: $state.snapshot({ name: lane.name, method: lane.method, config: lane.config, lr: lane.lr }),
        task,
        settings: { steps: setup.steps, batchSize: setup.batchSize, seqLen: setup.seqLen, seed: setup.seed },
        template: setup.template || null,
      });
      downloadFile(name, new Blob([zip as Uint8Array<ArrayBuffer>], { type: 'application/zip' }));
      this.exportNote = `${name}: ${lane.name}'s run as a Python project (train.py, settings, data, the model)`;
    } catch (e) {
      this.exportError = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    } finally {
      this.exportingLane = null;
    }
  }

  async refreshSaved(): Promise<void> {
    try {
      this.savedRaces = await listSavedRaces();
    } catch (e) {
      this.fail(e);
    }
  }

  /** Keeps the finished live race (snapshot, set-up and read-backs) in this browser. */
  async saveRace(): Promise<void> {
    const snapshot = this.snapshot;
    const setup = this.raceSetup;
    if (!snapshot || !setup || this.running) return;
    try {
      const entry = await saveRace({
        title: `${setup.model} · ${setup.task} · ${snapshot.lanes.map((l) => l.name).join(', ')}`,
        setup: $state.snapshot(setup) as CompareSetup,
        backend: this.backend?.name ?? null,
        snapshot: $state.snapshot(snapshot) as RaceSnapshot,
        maps: $state.snapshot(this.maps) as ParameterMap[],
        ranks: $state.snapshot(this.ranks) as RankHistory[],
        nearest: $state.snapshot(this.nearest) as NearestTokens[],
      });
      this.savedKey = entry.key;
    } catch (e) {
      this.fail(e);
    }
    await this.refreshSaved();
  }

  async openSaved(key: string): Promise<void> {
    this.error = null;
    try {
      this.viewing = await loadSavedRace(key);
    } catch (e) {
      this.fail(e);
      await this.refreshSaved();
    }
  }

  closeSaved(): void {
    this.viewing = null;
  }

  /** Puts a saved race's set-up in the form (and its model in the engine), ready to run again. */
  useSavedSetup(): void {
    const v = this.viewing;
    if (!v || this.running) return;
    const modelChanged = v.setup.model !== this.setup.model;
    // A race saved before templates existed has none.
    this.setup = { ...structuredClone(v.setup), template: v.setup.template ?? '' };
    this.notes = [];
    if (modelChanged) void this.loadModel();
    else void this.refreshBudget();
  }

  async deleteSaved(key: string): Promise<void> {
    try {
      await deleteSavedRace(key);
      if (this.viewing?.key === key) this.viewing = null;
      if (this.savedKey === key) this.savedKey = null;
    } catch (e) {
      this.fail(e);
    }
    await this.refreshSaved();
  }
}

/**
 * One state for the app's lifetime, made when the screen is first opened: a race goes on (and
 * stays on screen) while the person looks at another screen.
 */
// In $state, so a reader of raceRunning() sees the race start even if it looked before the screen
// was first opened (a class instance is stored as it is, not proxied).
const slot = $state<{ instance: CompareState | null }>({ instance: null });
export function compareState(baseUrl: string): CompareState {
  return (slot.instance ??= new CompareState(baseUrl));
}

/** Whether a race is running (false before the Compare screen was ever opened). */
export function raceRunning(): boolean {
  return slot.instance?.running ?? false;
}

const KEY = Symbol('compare');
export const setCompare = (c: CompareState): CompareState => setContext(KEY, c);
export const useCompare = (): CompareState => getContext<CompareState>(KEY);
