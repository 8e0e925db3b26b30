/**
 * App-wide state of the Lab, in one runes class shared through context (setLab/useLab).
 * It talks to the training worker only through WorkerEngine; it never touches tensors.
 */
import { AdapterCombineError, NotReadyError, SettingsError } from '../lib/errors';
import type { CombinationType, CombineOptions } from '../lib/peft/lora/combine-types';
import { baseModelOf, matchBaseModel, pickAdapterFiles } from '../lib/io/adapter-files';
import { getContext, setContext } from 'svelte';
import type { BackendChoice, BackendInfo } from '../lib/backend/backend';
import type {
  CheckpointManifest,
  ClassifyResult,
  EvalPoint,
  AdapterPayload,
  GenerateResult,
  LabEvents,
  ModelFileBytes,
  ModelSummary,
  TagResult,
  TaskMetric,
  TrainProgress,
  TrainRequest,
  TrainResult,
  TrainSettings,
  ReplyOf,
} from '../lib/protocol/lab-protocol';
import type { OffloadEvent, OffloadForm } from './offload';
import { DEFAULT_OFFLOAD_FORM, formFromRequest, newRunId, offloadParts, typicalStepMs } from './offload';
import type { PeftType } from '../lib/peft/types';
import type { TaskType } from '../lib/data/tasks/registry';
import type { CatalogEntry } from './catalog';
import { loadCatalog } from './catalog';
import { WorkerEngine } from './engine-client';
import {
  deleteAdapter,
  getAdapter,
  listAdapters,
  onAdaptersChanged,
  saveAdapterRecord,
} from '../lib/storage/adapters';
import { deleteModel, listModels } from '../lib/storage/models';
import { downloadFile } from './download';
import type { DroppedFile } from './dropped-files';
import { queryParam } from './query';
import { DEFAULT_HUB_ENDPOINT } from '../lib/io/hub';
import { TASKS, taskById } from '../lib/data/tasks/registry';
import type { TaskInfo } from '../lib/data/tasks/registry';
import { IMPORTED_PREFIX, importedTasks, taskDataUrl } from '../lib/data/imported';
import { hashWithParam, parseHash } from './hash';
import type { GenSettings } from './gen-settings';
import { DEFAULT_GEN, genFromParams, genToParams, hashWithGen } from './gen-settings';
import type { MethodInfo } from '../lib/peft/catalog';
import { METHOD_INFO } from '../lib/peft/catalog';
import { methodRequest } from '../lib/peft/method-config';
import { weightsF16Problem } from '../lib/train/weights-f16-rules';
import type { MethodForm } from './method-form';
import {
  DEFAULT_METHOD,
  findMethod,
  formProblem,
  formsForFamily,
  initialForms,
  requestConfig,
  unsupportedReason,
} from './method-form';
import { readModelFolder } from './models';

export const DEFAULT_TASK = 'moby-dick';

/** How the UI names each task metric. */
export const METRIC_LABEL: Record<TaskMetric, string> = {
  perplexity: 'perplexity',
  accuracy: 'accuracy',
  tokenAccuracy: 'token accuracy',
};

/** A text to try each classification task on (the Try-it box starts with it). */
const SAMPLE_TEXT: Record<string, string> = {
  spam: 'Subject: You have WON a free prize!!!\nFrom: promo-deals.biz\nClick here now to claim your cash reward, this offer ends today.',
  'brown-genre':
    'The jury further said in term-end presentments that the City Executive Committee, which had over-all charge of the election, deserves the praise and thanks of the City of Atlanta.',
  'brown-pos': 'The old sailor walked slowly down to the harbour .',
};

/** What the Saved adapters table shows (the weights stay in IndexedDB until needed). */
export type SavedAdapter = Awaited<ReturnType<typeof listAdapters>>[number];

/** The training form holds exactly the request's settings. */
export type TrainForm = TrainSettings;

export type Phase = LabEvents['status']['phase'] | 'starting' | 'error';

/** An adapter the engine keeps on the current model. */
export interface ResidentAdapter {
  name: string;
  label: string;
  method: string;
  taskType: TaskType;
}

export class LabState {
  readonly engine = new WorkerEngine();
  readonly baseUrl: string;

  backend = $state<BackendInfo | null>(null);
  backendChoice = $state<BackendChoice>('auto');
  catalog = $state<CatalogEntry[]>([]);
  model = $state<ModelSummary | null>(null);
  /** The model the latest pick is loading (the model menu shows it until it loads or fails), or null. */
  loadingModel = $state<string | null>(null);
  /** Counts model loads begun here: only the latest one's reply changes the model shown. */
  private modelLoads = 0;
  /** What the model menu shows: the bundled model the latest pick is loading, else the one loaded. */
  menuModel = $derived(
    this.loadingModel !== null && this.catalog.some((m) => m.id === this.loadingModel)
      ? this.loadingModel
      : (this.model?.id ?? ''),
  );
  phase = $state<Phase>('starting');
  statusMessage = $state('starting the engine');
  error = $state<string | null>(null);
  /** The built-in task to train on; `#/lab?task=<id>` in the address sets it. */
  task = $state<string>(DEFAULT_TASK);
  /** Data sets imported on the Data screen, as tasks (refreshTasks reads them from IndexedDB). */
  importedTasks = $state<TaskInfo[]>([]);
  taskInfo = $derived<TaskInfo>(
    taskById(this.task) ?? this.importedTasks.find((t) => t.id === this.task) ?? TASKS[0],
  );

  /** The PEFT method to train, by cliName; `#/lab?method=<cliName>` in the address sets it. */
  method = $state<string>(DEFAULT_METHOD);
  methodInfo = $derived<MethodInfo>(findMethod(this.method) ?? METHOD_INFO[0]!);
  /** One settings form per method (field name -> value), so switching methods keeps what was typed. */
  forms = $state<Record<string, MethodForm>>(initialForms(this.taskInfo.taskType));
  form = $derived<MethodForm>(this.forms[this.method] ?? {});
  /** The loaded model's family (GPT-2 until a model says otherwise): the module names follow it. */
  family = $derived(this.model?.family ?? 'gpt2');
  /** Why the picked method cannot train the current task, or null. */
  methodUnsupported = $derived(unsupportedReason(this.methodInfo, this.taskInfo.taskType));
  /** Why Train is off as the set-up stands (method vs task, an empty field), or null. */
  trainBlocker = $derived.by(() => this.methodUnsupported ?? formProblem(this.methodInfo, this.form));
  /**
   * Try it's sampling (new tokens, temperature, top-k, top-p, repetition penalty, seed), kept in the
   * address like the task and the method; the seed makes a sampled answer repeat exactly.
   */
  gen = $state<GenSettings>({ ...DEFAULT_GEN });
  /** The query the nav links carry, so moving between screens keeps the set-up. */
  linkQuery = $derived(
    `task=${encodeURIComponent(this.task)}` +
      (this.method !== DEFAULT_METHOD ? `&method=${encodeURIComponent(this.method)}` : '') +
      genToParams(this.gen)
        .map(([k, v]) => `&${k}=${encodeURIComponent(v)}`)
        .join(''),
  );

  train = $state<TrainForm>({
    steps: 60,
    lr: findMethod(DEFAULT_METHOD)?.defaultLr ?? 3e-3,
    batchSize: 8,
    seqLen: 64,
    seed: 0,
    warmupSteps: 6,
    evalEvery: 20,
    gradAccumSteps: 1,
    maxGradNorm: 1,
    weightsF16: false,
  });

  /** Offload and checkpoint settings of the next run ("Memory and offload" in the train panel). */
  offloadForm = $state<OffloadForm>({ ...DEFAULT_OFFLOAD_FORM });
  /**
   * Why the next run cannot hold its weights as f16 (the backend running, the method, offload), or
   * null: the train panel disables its box with this sentence, and a run sends weightsF16 only without one.
   */
  weightsF16Blocker = $derived(
    weightsF16Problem({
      backend: this.backend?.name ?? null,
      methodKind: this.methodInfo.kind,
      useDora: this.form.useDora === true,
      offload: this.offloadForm.stage > 0 || this.offloadForm.gradientCheckpointing,
    }),
  );
  /** The current (or last) run's offload events, one per step, for the Offload screen. */
  offloadEvents = $state<OffloadEvent[]>([]);
  /** The current run's last checkpoint written (or read, when it resumed). */
  lastCheckpoint = $state<LabEvents['checkpoint'] | null>(null);
  /**
   * The training worker died (the browser ends one that runs out of memory): what the Lab says
   * about it while a fresh worker starts and the run's checkpoint is offered in the Resume banner.
   */
  workerCrash = $state<string | null>(null);
  /** What the engine said when a run's GPU device was lost and the run moved on (a new device or wasm). */
  deviceLost = $state<string | null>(null);
  /** The step the current run resumed from (its checkpoint's), or null for a fresh run. */
  resumedFrom = $state<number | null>(null);
  /** A run a reload (or a closed tab) interrupted, found in IndexedDB at start: the Resume banner. */
  interrupted = $state<CheckpointManifest | null>(null);
  /** True once the engine has been asked for interrupted runs at start. */
  checkpointsChecked = $state(false);
  /** Median step time of the first run in this session with nothing offloaded, to compare against. */
  residentStepMs = $state<number | null>(null);
  /** The settings the current (or last) run was started with. */
  runRequest = $state<TrainRequest | null>(null);

  progress = $state<TrainProgress[]>([]);
  evals = $state<EvalPoint[]>([]);
  result = $state<TrainResult | null>(null);
  running = $state(false);
  paused = $state(false);
  /** Adapters resident on the model in the engine (the last trained one is "trained"), one active. */
  resident = $state<ResidentAdapter[]>([]);
  activeAdapter = $state<string | null>(null);
  hasAdapter = $state(false);
  adapterLabel = $state('');
  /** The current adapter's method cliName (trained here or loaded). */
  adapterMethod = $state<string | null>(null);
  /** The current adapter's task type (a loaded adapter says it in its config). */
  adapterTaskType = $state<TaskType | null>(null);

  prompt = $state('Call me Ishmael. Some years ago');
  answers = $state<{ base: GenerateResult | null; adapted: GenerateResult | null }>({
    base: null,
    adapted: null,
  });
  /** The text streamed so far for each side, as the worker's token events bring it. */
  live = $state<{ base: string; adapted: string }>({ base: '', adapted: '' });
  generating = $state(false);
  /** Stop was pressed: the answer being streamed ends, and the next one is not started. */
  genStopped = $state(false);
  /** Try-it text for classification tasks. */
  clsText = $state(SAMPLE_TEXT['spam']!);
  classification = $state<ClassifyResult | null>(null);
  tagging = $state<TagResult | null>(null);
  savedAdapters = $state<SavedAdapter[]>([]);
  cachedModels = $state<Awaited<ReturnType<typeof listModels>>>([]);
  hubRepo = $state('');
  /** The Hub or a mirror with its URL layout; `?hub=URL` in the address sets it (as HF_ENDPOINT does). */
  hubEndpoint = $state(queryParam('hub') ?? DEFAULT_HUB_ENDPOINT);
  download = $state<{ file: string; loaded: number; total: number } | null>(null);
  downloading = $state(false);

  /** "Open a PEFT adapter": a Hub adapter repo id, whether an opening runs, and what it did. */
  hubAdapterRepo = $state('');
  opening = $state(false);
  openNote = $state<string | null>(null);
  /** What the last "Save adapter" did: the name it was saved under, and why when not the one asked. */
  saveNote = $state<string | null>(null);
  /** Which base the adapter names, when none here matches: shown whether or not it opens. */
  openBaseNote = $state<string | null>(null);
  /** "Combine saved adapters": whether it runs, what it made, and why it refused. */
  combining = $state(false);
  combineNote = $state<string | null>(null);
  combineError = $state<string | null>(null);
  /** The adapter in use (or the base) scored on the current task by "Evaluate". */
  evaluation = $state<ReplyOf<'evaluate'> | null>(null);
  evaluating = $state(false);

  last = $derived(this.progress.at(-1) ?? null);
  lossPoints = $derived(this.progress.map((p) => [p.step, p.loss] as [number, number]));
  /** The chart's held-out series: loss for CAUSAL_LM, the task metric for classification. */
  evalPoints = $derived(
    this.evals.map(
      (e) => [e.step, this.taskInfo.taskType === 'CAUSAL_LM' ? e.loss : e.metric] as [number, number],
    ),
  );
  heldOutLabel = $derived(
    this.taskInfo.taskType === 'CAUSAL_LM'
      ? 'held-out loss'
      : `validation ${this.taskInfo.taskType === 'TOKEN_CLS' ? 'token accuracy' : 'accuracy'}`,
  );

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
    if (typeof location !== 'undefined') this.readHash(location.hash);
    this.engine.on('progress', (p) => (this.progress = [...this.progress, p]));
    this.engine.on('eval', (e) => (this.evals = [...this.evals, e]));
    this.engine.on('offload', (o) => (this.offloadEvents = [...this.offloadEvents, o]));
    this.engine.on('checkpoint', (c) => {
      this.lastCheckpoint = c;
      if (c.resumed) this.resumedFrom = c.step;
    });
    this.engine.on('download', (d) => (this.download = d));
    this.engine.on('deviceLost', (d) => {
      // The run goes on elsewhere: the header shows the new backend with the reason, and the steps
      // after the state it went back to are drawn again as they are redone.
      this.backend = d.backend;
      this.deviceLost = d.message;
      this.progress = this.progress.filter((p) => p.step <= d.fromStep);
    });
    this.engine.on('token', (t) => {
      if (t.stream === 'base' || t.stream === 'adapted') this.live[t.stream] += t.piece;
    });
    this.engine.onCrash((e) => void this.recoverFromCrash(e));
    // Another tab saved or deleted an adapter: this tab's list shows it.
    onAdaptersChanged(() => void this.refreshAdapters());
    this.engine.on('status', (s) => {
      this.phase = s.phase;
      this.statusMessage = s.message;
      this.paused = s.phase === 'paused';
    });
  }

  private fail(e: unknown): void {
    this.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    this.phase = 'error';
  }

  async start(): Promise<void> {
    try {
      this.catalog = await loadCatalog(this.baseUrl);
      // Imported data sets are read from IndexedDB while the engine starts, not before it.
      const tasks = this.refreshTasks();
      await this.setBackend(this.backendChoice);
      const first = this.catalog[0];
      if (first) await this.loadModel(first.id);
      await tasks;
      await this.findInterrupted();
      if (this.linkProblem) this.error ??= this.linkProblem;
    } catch (e) {
      this.fail(e);
    } finally {
      this.linkProblem = null;
      this.started = true;
    }
  }

  async setBackend(choice: BackendChoice): Promise<void> {
    this.error = null;
    this.backendChoice = choice;
    try {
      this.backend = await this.engine.request('init', {
        backend: choice,
        wasmBaseUrl: `${this.baseUrl}wasm/`,
      });
    } catch (e) {
      this.fail(e);
    }
  }

  async loadModel(id: string): Promise<void> {
    await this.changeModel(id, () =>
      this.engine.request('loadModel', { id, baseUrl: `${this.baseUrl}models/${id}/` }),
    );
  }

  /**
   * One model load: the model menu shows `id` while it loads. Loads may overlap (a pick while the
   * first model or another pick still loads): only the latest one's reply or error is shown, and when
   * it fails the menu goes back to the model really loaded. The engine orders them the same way.
   */
  private async changeModel(
    id: string,
    load: () => Promise<ModelSummary>,
    clearError = true,
  ): Promise<ModelSummary | null> {
    const ticket = ++this.modelLoads;
    this.loadingModel = id;
    if (clearError) this.error = null;
    try {
      const summary = await load();
      if (ticket !== this.modelLoads) return null;
      this.modelChanged(summary);
      return summary;
    } catch (e) {
      if (ticket === this.modelLoads) this.fail(e);
      return null;
    } finally {
      if (ticket === this.modelLoads) this.loadingModel = null;
    }
  }

  /**
   * Loads a model folder the user picked or dropped (GPT-2 or the Llama family; one
   * model.safetensors or the shards its index names). The files are found by name; anything
   * missing is named, and the model in use stays loaded when the new one fails.
   */
  async loadLocalFiles(files: File[]): Promise<void> {
    this.error = null;
    const config = files.find((f) => f.name === 'config.json');
    const folder = (config?.webkitRelativePath || '').split('/')[0] || 'files';
    let bytes: ModelFileBytes;
    try {
      bytes = (await readModelFolder(files, folder)).bytes;
    } catch (e) {
      this.fail(e);
      return;
    }
    const weights = Array.isArray(bytes.weights) ? bytes.weights : [bytes.weights];
    const id = `local: ${folder}`;
    await this.changeModel(id, () =>
      this.engine.request('loadModelFiles', { id, ...bytes }, [bytes.config, ...weights, bytes.tokenizer]),
    );
  }

  /**
   * Loads a model kept in this browser (a local folder saved on the Models screen) from its files'
   * bytes; true when the engine took it (else the error is shown and the model in use stays).
   */
  async loadModelBytes(id: string, files: ModelFileBytes): Promise<boolean> {
    return (
      (await this.changeModel(id, () => this.engine.request('loadModelFiles', { id, ...files }))) !== null
    );
  }

  async loadFromHub(): Promise<void> {
    this.downloading = true;
    this.download = null;
    try {
      const id = `hub: ${this.hubRepo.trim()}`;
      const summary = await this.changeModel(id, () =>
        this.engine.request('loadHubModel', {
          repoId: this.hubRepo,
          endpoint: this.hubEndpoint,
          gpt2TokenizerUrl: `${this.baseUrl}tokenizers/gpt2/tokenizer.json`,
        }),
      );
      if (summary && 'cached' in summary)
        this.statusMessage = summary.cached
          ? `${summary.id} loaded from this browser's cache`
          : `${summary.id} downloaded and cached`;
    } finally {
      this.downloading = false;
    }
  }

  /** A new base model is in the engine: its adapter and the last run are gone with the old one. */
  private modelChanged(summary: ModelSummary): void {
    // Layer names differ between families: the module fields start again from the new family's defaults.
    if (summary.family !== (this.model?.family ?? 'gpt2'))
      this.forms = formsForFamily(this.forms, this.taskInfo.taskType, summary.family);
    this.model = summary;
    this.resident = [];
    this.activate(null);
    this.resetRun();
  }

  /** Shows `entry` as the adapter in use (null: the base model answers alone). */
  private activate(entry: ResidentAdapter | null): void {
    this.activeAdapter = entry?.name ?? null;
    this.hasAdapter = entry !== null;
    this.adapterLabel = entry?.label ?? '';
    this.adapterMethod = entry?.method ?? null;
    this.adapterTaskType = entry?.taskType ?? null;
    this.evaluation = null;
  }

  /** Adds (or replaces) a resident adapter and makes it the one in use. */
  private addResident(entry: ResidentAdapter): void {
    this.resident = [...this.resident.filter((r) => r.name !== entry.name), entry];
    this.activate(entry);
  }

  /** Switches the engine to another resident adapter, or to the base model, without reloading anything. */
  async switchAdapter(name: string | null): Promise<void> {
    this.error = null;
    try {
      await this.engine.request('useAdapter', { name });
      this.activate(this.resident.find((r) => r.name === name) ?? null);
      this.answers = { base: null, adapted: null };
      this.classification = null;
      this.tagging = null;
    } catch (e) {
      this.fail(e);
    }
  }

  private resetRun(): void {
    this.progress = [];
    this.evals = [];
    this.offloadEvents = [];
    this.lastCheckpoint = null;
    this.resumedFrom = null;
    this.deviceLost = null;
    this.result = null;
    this.answers = { base: null, adapted: null };
    this.classification = null;
    this.tagging = null;
  }

  /** What was wrong with the address, shown once the engine has started. */
  private linkProblem: string | null = null;
  private started = false;

  /**
   * Takes the task and the method from the hash query (`#/lab?task=spam&method=p-tuning-v2`); an
   * unknown id is named and ignored.
   */
  readHash(hash: string): void {
    if (this.running) return;
    const params = parseHash(hash).params;
    const problems: string[] = [];
    const id = params.get('task');
    if (id !== null && id !== this.task) {
      // An imported data set is checked once the list is read from IndexedDB (refreshTasks).
      if (taskById(id) || id.startsWith(IMPORTED_PREFIX)) this.applyTask(id);
      else
        problems.push(
          `the link names an unknown task "${id}": pick one of ${TASKS.map((t) => t.id).join(', ')}`,
        );
    }
    const method = params.get('method');
    if (method !== null && method !== this.method) {
      if (findMethod(method)) this.applyMethod(method);
      else
        problems.push(
          `the link names an unknown method "${method}": pick one of ${METHOD_INFO.map((m) => m.cliName).join(', ')}`,
        );
    }
    const fromLink = genFromParams(params, this.gen);
    problems.push(...fromLink.problems);
    if (genToParams(fromLink.gen).join() !== genToParams(this.gen).join()) this.gen = fromLink.gen;
    if (!problems.length) return;
    const problem = problems.join('; ');
    // Before start() the engine's first errors would clear it, so it waits until then.
    if (this.started) this.error = problem;
    else this.linkProblem = problem;
  }

  /**
   * Reads the imported data sets; a task that names one no longer in this browser (deleted, or a
   * link from another browser) is named and replaced by the default task.
   */
  async refreshTasks(): Promise<void> {
    const wasListed = this.importedTasks.some((t) => t.id === this.task);
    try {
      this.importedTasks = await importedTasks();
    } catch (e) {
      this.fail(e);
      return;
    }
    if (this.task.startsWith(IMPORTED_PREFIX) && !this.importedTasks.some((t) => t.id === this.task)) {
      // Deleted on the Data screen just now: the user knows. Named in a link: say why it is ignored.
      if (!wasListed) {
        const problem = `the data set "${this.task}" is not in this browser (deleted, or imported in another one): import it on the Data screen, or pick another task`;
        if (this.started) this.error = problem;
        else this.linkProblem = this.linkProblem ? `${this.linkProblem}; ${problem}` : problem;
      }
      if (!this.running) {
        this.applyTask(DEFAULT_TASK);
        if (typeof location !== 'undefined')
          history.replaceState(history.state, '', hashWithParam(location.hash, 'task', DEFAULT_TASK));
      }
    }
  }

  /** Picks a task and writes it into the address, so the link opens the same set-up. */
  setTask(id: string): void {
    if ((!taskById(id) && !this.importedTasks.some((t) => t.id === id)) || this.running) return;
    this.applyTask(id);
    history.replaceState(history.state, '', hashWithParam(location.hash, 'task', id));
  }

  /** Picks a method and writes it into the address; the learning rate becomes the method's own. */
  setMethod(cliName: string): void {
    if (!findMethod(cliName) || this.running || cliName === this.method) return;
    this.applyMethod(cliName);
    history.replaceState(history.state, '', hashWithParam(location.hash, 'method', cliName));
  }

  private applyMethod(cliName: string): void {
    const info = findMethod(cliName);
    if (!info) return;
    this.method = cliName;
    // Prompt methods need larger rates than LoRA; the user may still change it.
    this.train.lr = info.defaultLr;
  }

  private applyTask(id: string): void {
    this.task = id;
    this.resetRun();
    const sample = SAMPLE_TEXT[id];
    if (sample) this.clsText = sample;
  }

  /**
   * After the worker died: a fresh one gets the backend and the model back (a catalog model or one
   * cached from the Hub; files picked from disk must be picked again), then the run's last
   * checkpoint is offered for resuming as after a reload. A pick still loading when the worker died
   * is the model the user wants: it is loaded instead of the one on screen, where it can be.
   */
  async recoverFromCrash(e: Error): Promise<void> {
    const runId = this.running ? this.runRequest?.checkpoint?.runId : undefined;
    this.workerCrash = `${e.message}. Starting a fresh worker…`;
    this.running = false;
    this.paused = false;
    this.engine.restart();
    const reloadable = (id: string | null | undefined): id is string =>
      !!id && (this.catalog.some((m) => m.id === id) || id.startsWith('hub: '));
    const id = [this.loadingModel, this.model?.id].find(reloadable);
    // The dead worker's load, if one was running, is over: a new ticket makes its rejection
    // (WorkerCrashedError, already said by the crash banner) stale, so it is not shown as an error.
    this.modelLoads++;
    this.loadingModel = null;
    this.model = null;
    await this.setBackend(this.backendChoice);
    if (id?.startsWith('hub: ')) {
      this.hubRepo = id.slice('hub: '.length);
      await this.loadFromHub();
    } else if (id) await this.loadModel(id);
    await this.findInterrupted();
    // The checkpoint in IndexedDB is the truth: the worker may have written one it never announced.
    const m = this.interrupted;
    this.workerCrash =
      `${e.message}. A fresh worker has started` +
      (runId === undefined
        ? '.'
        : m?.runId === runId
          ? `: resume the run from its checkpoint at step ${m.step} below.`
          : '; the run had no checkpoint yet, so it must start again.');
  }

  /** Asks the engine for runs with a checkpoint; the newest one is offered for resuming. */
  async findInterrupted(): Promise<void> {
    try {
      const list = await this.engine.request('checkpoints', {});
      this.interrupted = this.running ? null : (list[0] ?? null);
    } catch (e) {
      this.fail(e);
    } finally {
      this.checkpointsChecked = true;
    }
  }

  /** The interrupted run's request, as the engine saved it with its checkpoint. */
  static savedRequest(m: CheckpointManifest): TrainRequest {
    return m.meta as unknown as TrainRequest;
  }

  /** Shows the interrupted run's settings in the Lab and trains on from its last checkpoint. */
  async resumeInterrupted(): Promise<void> {
    const m = this.interrupted;
    if (!m || this.running) return;
    // A plain copy: the manifest is reactive state, which postMessage cannot clone.
    const req: TrainRequest = $state.snapshot(LabState.savedRequest(m));
    if (
      req.task &&
      req.task !== this.task &&
      (taskById(req.task) || this.importedTasks.some((t) => t.id === req.task))
    )
      this.setTask(req.task);
    if (findMethod(req.method) && req.method !== this.method) this.setMethod(req.method);
    this.train = { ...req.train };
    this.offloadForm = formFromRequest(req);
    this.interrupted = null;
    await this.startTraining({ ...req, resume: true });
  }

  /** Forgets the interrupted run and its checkpoint. */
  async discardInterrupted(): Promise<void> {
    const m = this.interrupted;
    if (!m) return;
    this.interrupted = null;
    try {
      await this.engine.request('deleteCheckpoint', { runId: m.runId });
    } catch (e) {
      this.fail(e);
    }
  }

  /** Trains with the form's settings, or re-issues `resumeRequest` (a saved run, resume: true). */
  async startTraining(resumeRequest?: TrainRequest): Promise<void> {
    this.error = null;
    this.workerCrash = null;
    this.resetRun();
    this.running = true;
    this.paused = false;
    // A new run supersedes the offered one (its checkpoint stays until discarded or finished).
    this.interrupted = null;
    try {
      const info = this.taskInfo;
      const method = this.methodInfo;
      const req: TrainRequest = resumeRequest ?? {
        ...methodRequest(method.cliName, requestConfig(method, $state.snapshot(this.form))),
        train: {
          ...$state.snapshot(this.train),
          weightsF16: this.train.weightsF16 === true && this.weightsF16Blocker === null,
        },
        task: info.id,
        corpusUrl: taskDataUrl(info, this.baseUrl),
        ...offloadParts($state.snapshot(this.offloadForm), newRunId()),
      };
      this.runRequest = req;
      this.result = await this.engine.request('train', req);
      if (!req.offload && this.residentStepMs === null && !this.result.stopped)
        this.residentStepMs = typicalStepMs(this.progress.map((p) => p.ms));
      // A run that finished needs no checkpoint to resume from.
      if (req.checkpoint && !this.result.stopped)
        await this.engine.request('deleteCheckpoint', { runId: req.checkpoint.runId });
      const label = findMethod(this.result.method)?.label ?? method.label;
      this.addResident({
        name: 'trained',
        label: `${label}, ${info.id.startsWith(IMPORTED_PREFIX) ? info.title : info.id}, trained ${this.result.steps} steps`,
        method: this.result.method,
        taskType: info.taskType,
      });
    } catch (e) {
      this.fail(e);
    } finally {
      this.running = false;
      this.paused = false;
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

  async refreshCachedModels(): Promise<void> {
    try {
      this.cachedModels = await listModels();
    } catch (e) {
      this.fail(e);
    }
  }

  async deleteCachedModel(id: string): Promise<void> {
    try {
      await deleteModel(id);
    } catch (e) {
      this.fail(e);
    }
    await this.refreshCachedModels();
  }

  async refreshAdapters(): Promise<void> {
    try {
      this.savedAdapters = await listAdapters();
    } catch (e) {
      this.fail(e);
    }
  }

  async saveCurrentAdapter(name: string): Promise<void> {
    this.error = null;
    this.saveNote = null;
    const wanted = name || 'adapter';
    try {
      const files = await this.engine.request('exportAdapter', {});
      // The engine wrote this config itself from a registry method, so its types are ours.
      const peft = JSON.parse(files.config) as { peft_type: PeftType; task_type: TaskType };
      const saved = await saveAdapterRecord({
        id: crypto.randomUUID(),
        name: wanted,
        createdAt: Date.now(),
        baseModel: this.model?.id ?? '',
        peftType: peft.peft_type,
        taskType: peft.task_type,
        method: this.adapterMethod ?? this.result?.method ?? DEFAULT_METHOD,
        trainableParams: this.result?.trainableParams ?? 0,
        steps: this.result?.steps ?? 0,
        finalLoss: this.result?.finalLoss ?? NaN,
        configJson: files.config,
        weights: files.weights,
        sizeBytes: files.weights.byteLength + files.config.length,
      });
      // Nothing is ever replaced by a save: a name already taken (here, or by another tab at the
      // same moment) gets the next free number, and the note says so.
      this.saveNote =
        saved.name === wanted
          ? `Saved as “${saved.name}”.`
          : `Saved as “${saved.name}”: an adapter named “${wanted}” was already saved (in this tab or another), and it was kept as it was.`;
      await this.refreshAdapters();
    } catch (e) {
      this.fail(e);
    }
  }

  async loadSavedAdapter(id: string): Promise<void> {
    this.error = null;
    try {
      const rec = await getAdapter(id);
      if (!rec) throw new NotReadyError('that adapter is no longer stored; the list was refreshed');
      if (this.model && rec.baseModel !== this.model.id) await this.loadModel(rec.baseModel);
      const summary = await this.engine.request('importAdapter', {
        config: rec.configJson,
        weights: rec.weights.slice(0),
        source: rec.name,
        // The head's class names: the current task's, when the adapter is of its type.
        ...(rec.taskType === this.taskInfo.taskType ? { labels: [...this.taskInfo.labels] } : {}),
      });
      // P-tuning v2 and prefix tuning share PREFIX_TUNING: the record knows which one was trained.
      const saved = findMethod(rec.method);
      const method = saved?.peftType === summary.peftType ? saved : findMethod(summary.method);
      this.addResident({
        name: summary.name,
        label: `${rec.name} (${method?.label ?? summary.peftType})`,
        method: method?.cliName ?? summary.method,
        taskType: summary.taskType as TaskType,
      });
      this.answers = { base: null, adapted: null };
      this.classification = null;
      this.tagging = null;
    } catch (e) {
      this.fail(e);
      await this.refreshAdapters();
    }
  }

  /**
   * Opens a PEFT adapter folder a person picked or dropped: adapter_config.json and
   * adapter_model.safetensors (a .bin is named with how to convert it; other files are ignored).
   */
  async openAdapterFiles(files: DroppedFile[]): Promise<void> {
    this.error = null;
    this.openNote = null;
    this.openBaseNote = null;
    try {
      const picked = pickAdapterFiles(
        files.map((f) => ({ name: f.file.name, webkitRelativePath: f.relativePath, file: f.file })),
      );
      const [config, weights] = await Promise.all([
        picked.config.file.text(),
        picked.weights.file.arrayBuffer(),
      ]);
      await this.openAdapter({ config, weights }, picked.folder ?? 'PEFT adapter');
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * add_weighted_adapter over saved LoRA adapters: the worker combines their files, the result is
   * opened on their base model (checked like any adapter), kept in IndexedDB under `name`, and put
   * in use, so Try it and Evaluate answer with it at once. Refusals (different bases, ranks or
   * layers where the type needs them equal) are named in `combineError`.
   */
  async combineSaved(
    picks: { id: string; weight: number }[],
    type: CombinationType,
    options: CombineOptions,
    name: string,
  ): Promise<boolean> {
    this.combineError = null;
    this.combineNote = null;
    this.combining = true;
    try {
      if (picks.length < 2) throw new SettingsError('pick two or more saved LoRA adapters to combine');
      const recs = await Promise.all(picks.map((p) => getAdapter(p.id)));
      const gone = recs.findIndex((r) => r === undefined);
      if (gone >= 0) throw new NotReadyError('an adapter picked is no longer stored; the list was refreshed');
      const saved = recs as NonNullable<(typeof recs)[number]>[];
      const first = saved[0]!;
      // The records know which model here each was made on, also for adapters opened from Python.
      const other = saved.find((r) => r.baseModel !== first.baseModel);
      if (other) {
        throw new AdapterCombineError(
          `${other.name} was made on ${other.baseModel} and ${first.name} on ${first.baseModel}: combine adapters made on the same base model`,
          'base',
        );
      }
      const out = await this.engine.request('combineAdapters', {
        adapters: saved.map((r) => ({ name: r.name, config: r.configJson, weights: r.weights.slice(0) })),
        weights: picks.map((p) => p.weight),
        type,
        options,
      });
      if (this.model?.id !== first.baseModel) await this.loadModel(first.baseModel);
      const summary = await this.engine.request('importAdapter', {
        config: out.config,
        weights: out.weights.slice(0),
        source: name,
      });
      await saveAdapterRecord({
        id: crypto.randomUUID(),
        name,
        createdAt: Date.now(),
        baseModel: first.baseModel,
        peftType: 'LORA',
        taskType: 'CAUSAL_LM',
        method: 'lora',
        trainableParams: summary.trainableParams,
        steps: 0,
        finalLoss: NaN,
        configJson: out.config,
        weights: out.weights,
        sizeBytes: out.weights.byteLength + out.config.length,
      });
      this.addResident({
        name: summary.name,
        label: `${name} (LoRA, ${type} of ${saved.length}, r ${out.r})`,
        method: 'lora',
        taskType: 'CAUSAL_LM',
      });
      this.answers = { base: null, adapted: null };
      this.combineNote = `Combined ${saved.map((r) => r.name).join(', ')} (${type}) into ${name}, r ${out.r}: it is in use now and saved`;
      await this.refreshAdapters();
      return true;
    } catch (e) {
      this.combineError = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      return false;
    } finally {
      this.combining = false;
    }
  }

  /** Downloads a PEFT adapter repo from the Hub (or the mirror in use) and opens it. */
  async openHubAdapter(): Promise<void> {
    this.error = null;
    this.openNote = null;
    this.openBaseNote = null;
    this.opening = true;
    this.download = null;
    try {
      const repoId = this.hubAdapterRepo.trim();
      const files = await this.engine.request('fetchHubAdapter', { repoId, endpoint: this.hubEndpoint });
      await this.openAdapter(files, repoId);
    } catch (e) {
      this.fail(e);
    } finally {
      this.opening = false;
    }
  }

  /**
   * The base the adapter names (base_model_name_or_path) is loaded first when it is a bundled
   * model or one kept in this browser; otherwise the name is suggested and the loaded model is
   * tried. The engine checks the adapter against the model before it changes anything; only an
   * adapter it took is kept in IndexedDB and put in use, as one trained here would be.
   */
  private async openAdapter(files: AdapterPayload, name: string): Promise<void> {
    this.opening = true;
    try {
      const base = baseModelOf(files.config);
      await this.refreshCachedModels();
      const target = matchBaseModel(
        base,
        this.catalog.map((m) => m.id),
        this.cachedModels.map((m) => m.id),
      );
      let loadedFirst: string | null = null;
      if (target && target !== this.model?.id) {
        const loaded = target.startsWith('hub: ')
          ? await this.loadModelQuietly(target, () =>
              this.engine.request('loadHubModel', {
                repoId: target.slice('hub: '.length),
                endpoint: this.hubEndpoint,
                gpt2TokenizerUrl: `${this.baseUrl}tokenizers/gpt2/tokenizer.json`,
              }),
            )
          : await this.loadModelQuietly(target, () =>
              this.engine.request('loadModel', { id: target, baseUrl: `${this.baseUrl}models/${target}/` }),
            );
        if (!loaded) return;
        loadedFirst = `its base_model_name_or_path names ${base}, so ${target} was loaded first`;
      } else if (base && !target) {
        // Shown now, so a refusal still says which base the adapter wants.
        this.openBaseNote = `${name} was made on ${base}, which is neither bundled nor kept in this browser: if that is a GPT-2 on the Hub, load it on the Models screen and open the adapter again. It was tried on ${this.model?.id ?? 'the loaded model'}.`;
      }
      const info = this.taskInfo;
      const summary = await this.engine.request('importAdapter', {
        config: files.config,
        // A copy: the worker takes the buffer, and IndexedDB still needs it.
        weights: files.weights.slice(0),
        source: name,
        ...(info.taskType !== 'CAUSAL_LM' ? { labels: [...info.labels] } : {}),
      });
      const method = findMethod(summary.method);
      await saveAdapterRecord({
        id: crypto.randomUUID(),
        name,
        createdAt: Date.now(),
        baseModel: this.model?.id ?? '',
        peftType: summary.peftType as PeftType,
        taskType: summary.taskType as TaskType,
        method: summary.method,
        trainableParams: summary.trainableParams,
        steps: 0,
        finalLoss: NaN,
        configJson: files.config,
        weights: files.weights,
        sizeBytes: files.weights.byteLength + files.config.length,
      });
      this.addResident({
        name: summary.name,
        label: `${name} (${method?.label ?? summary.peftType}, opened)`,
        method: summary.method,
        taskType: summary.taskType as TaskType,
      });
      this.answers = { base: null, adapted: null };
      this.classification = null;
      this.tagging = null;
      this.evaluation = null;
      this.openNote =
        `Opened ${name}: ${method?.label ?? summary.peftType}, ${summary.taskType}` +
        (loadedFirst ? `; ${loadedFirst}` : '');
      await this.refreshAdapters();
    } finally {
      this.opening = false;
    }
  }

  /** Loads a base for an adapter; false (with the error shown) when it fails, and nothing is opened. */
  private async loadModelQuietly(id: string, load: () => Promise<ModelSummary>): Promise<boolean> {
    return (await this.changeModel(id, load, false)) !== null;
  }

  /** Scores the adapter in use (or the base model) on the current task's held-out split. */
  async evaluateActive(): Promise<void> {
    this.error = null;
    this.evaluating = true;
    this.evaluation = null;
    try {
      const info = this.taskInfo;
      this.evaluation = await this.engine.request('evaluate', {
        task: info.id,
        corpusUrl: taskDataUrl(info, this.baseUrl),
        seqLen: this.train.seqLen,
        batchSize: this.train.batchSize,
      });
    } catch (e) {
      this.fail(e);
    } finally {
      this.evaluating = false;
    }
  }

  async deleteSavedAdapter(id: string): Promise<void> {
    try {
      await deleteAdapter(id);
    } catch (e) {
      this.fail(e);
    }
    await this.refreshAdapters();
  }

  async downloadAdapter(id: string): Promise<void> {
    try {
      const rec = await getAdapter(id);
      if (!rec) throw new NotReadyError('that adapter is no longer stored: pick another from the list');
      downloadFile('adapter_config.json', new Blob([rec.configJson], { type: 'application/json' }));
      downloadFile(
        'adapter_model.safetensors',
        new Blob([rec.weights], { type: 'application/octet-stream' }),
      );
    } catch (e) {
      this.fail(e);
    }
  }

  /** Writes the generation settings into the address (defaults left out), keeping the rest of it. */
  writeGenHash(): void {
    if (typeof location === 'undefined' || parseHash(location.hash).route !== '#/lab') return;
    const next = hashWithGen(location.hash, this.gen);
    if (next !== location.hash) history.replaceState(history.state, '', next);
  }

  /**
   * The base model, then the adapted one, answer the prompt with the same settings and seed; each
   * answer streams in token by token (the worker's `token` events fill `live`), and Stop ends the
   * one streaming and skips the other.
   */
  async generateBoth(): Promise<void> {
    this.error = null;
    this.generating = true;
    this.genStopped = false;
    this.answers = { base: null, adapted: null };
    this.live = { base: '', adapted: '' };
    try {
      const g = $state.snapshot(this.gen);
      const req = {
        prompt: this.prompt,
        maxNewTokens: g.maxNewTokens,
        temperature: g.temperature,
        topK: g.topK,
        topP: g.topP,
        repetitionPenalty: g.repetitionPenalty,
        seed: g.sampleSeed,
      };
      const base = await this.engine.request('generate', { ...req, useAdapter: false, stream: 'base' });
      this.answers = { base, adapted: null };
      if (this.hasAdapter && !this.genStopped) {
        const adapted = await this.engine.request('generate', {
          ...req,
          useAdapter: true,
          stream: 'adapted',
        });
        this.answers = { base, adapted };
      }
    } catch (e) {
      this.fail(e);
    } finally {
      this.generating = false;
    }
  }

  /** Ends the answer being streamed after its current token; the adapted one is then not started. */
  async stopGenerating(): Promise<void> {
    if (!this.generating) return;
    this.genStopped = true;
    try {
      await this.engine.request('stopGenerate', {});
    } catch (e) {
      this.fail(e);
    }
  }

  /** SEQ_CLS: the adapted model's class probabilities; TOKEN_CLS: one tag per word. */
  async classifyText(): Promise<void> {
    this.error = null;
    this.generating = true;
    try {
      if (this.taskInfo.taskType === 'TOKEN_CLS') {
        this.tagging = await this.engine.request('tag', { text: this.clsText });
      } else {
        this.classification = await this.engine.request('classify', { text: this.clsText });
      }
    } catch (e) {
      this.fail(e);
    } finally {
      this.generating = false;
    }
  }
}

const KEY = Symbol('lab');
export const setLab = (lab: LabState): LabState => setContext(KEY, lab);
export const useLab = (): LabState => getContext<LabState>(KEY);
