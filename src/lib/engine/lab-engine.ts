/**
 * The engine behind the Lab, in-process: one base model, its tokenizer, at most one adapter, and
 * a training loop that yields between steps so pause, resume and stop arrive while it runs.
 * The worker (src/workers/train.worker.ts) wraps this class; tests call it directly.
 */
import * as tf from '@tensorflow/tfjs';
import { chooseBackend, currentBackendInfo } from '../backend/backend';
import { isOutOfMemory, outOfMemoryAdvice } from '../backend/out-of-memory';
import { classifyText, tagWords } from './answers';
import { fetchModelFiles, modelFromFiles } from './model-files';
import { RecoverableRun, describeRecovery } from '../train/device-loss';
import type { RunParts } from '../train/device-loss';
import type { FetchBytes } from './model-files';
import {
  BusyError,
  CancelledError,
  CheckpointError,
  FileLoadError,
  InputError,
  NonFiniteLossError,
  NotReadyError,
  SettingsError,
  StorageError,
} from '../errors';
import { loadAdapterAndMethod, saveAdapter } from '../io/peft-format';
import { combineAdapterFiles } from '../io/combine-files';
import { checkRepoId, downloadHubAdapter, downloadHubModel } from '../io/hub';
import { openLabDb } from '../storage/handle';
import { getModel, saveModel } from '../storage/models';
import type { JsonValue } from '../storage/db';
import type { LabDb } from '../storage/handle';
import { OffloadSession } from '../offload/session';
import { runPageStore } from '../offload/run-store';
import type { PageStore } from '../offload/page-store';
import {
  deleteCheckpoint,
  listCheckpoints,
  readManifest,
  resumeFromCheckpoint,
  writeCheckpoint,
} from '../offload/checkpoints';
import { RunGate } from './run-gate';
import { weightsF16Problem } from '../train/weights-f16-rules';
import { startsFromWeight } from '../peft/lora/config';
import { countParameters } from '../model/family';
import { SHARD_INDEX, folderWeights } from '../model/shards';
import { checkSampling, generate } from '../model/generate';
import type { GenerateOptions } from '../model/generate';
import { TextStream } from '../tokenizer/text-stream';
import type { DecoderModel } from '../model/decoder';
import { countTrainable } from '../peft/state';
import { adapterDecorator, reservedPositions } from '../peft/forward';
import type { Adapter, PeftConfigBase, PeftMethod } from '../peft/types';
import { AdapterSet } from '../peft/adapter-set';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { Trainer } from '../train/trainer';
import type { TaskInfo } from '../data/tasks/registry';
import { findTask, isImportedUrl, readImportedFile } from '../data/imported';
import type { TaskHead } from '../model/heads';
import { createAdapter, planAdapter } from '../train/plan';
import { loadTaskData, metricOf } from '../data/task-data';
import { evaluateTask, taskBatchSource } from '../train/task-eval';
import type { TaskData } from '../data/task-data';
import type {
  AdapterSummary,
  EvalPoint,
  EventSink,
  LabApi,
  ModelFileBytes,
  ModelSummary,
  RequestOf,
  ReplyOf,
  TrainRequest,
} from '../protocol/lab-protocol';

export type { FetchBytes };

export const browserFetchBytes: FetchBytes = async (url) => {
  let failure = '';
  // A network failure (no response, or its body cut off) is tried once more, past the HTTP cache.
  // Chromium fails a request that meets another one writing the same URL into its HTTP cache
  // (net::ERR_CACHE_WRITE_FAILURE, "Failed to fetch" while the body is read), and the service worker's
  // precache fetches every bundled model right after the first one loads: a model picked then failed
  // (the e2e adapter-open journey). With cache 'no-store' the second try meets no cache entry; a
  // service worker that controls the page still answers it from its precache (offline too).
  for (const cache of ['default', 'no-store'] as const) {
    let res: Response;
    try {
      res = await fetch(url, { cache });
    } catch (e) {
      failure = (e as Error).message;
      continue;
    }
    if (!res.ok) throw new FileLoadError(`could not fetch ${url}: HTTP ${res.status}`);
    try {
      return await res.arrayBuffer();
    } catch (e) {
      failure = `${(e as Error).message} while reading its body`;
    }
  }
  throw new FileLoadError(`could not fetch ${url} (tried twice): ${failure}; check the network or reload`);
};

/** Classification validation is scored on at most this many examples, so an evaluation takes seconds. */
export const CLS_EVAL_EXAMPLES = 256;
export const DEFAULT_TASK = 'moby-dick';
/** The resident name of the adapter the last training run made. */
export const TRAINED_ADAPTER = 'trained';
/** GPT-2's vocabulary size (50,000 merges + 256 bytes + <|endoftext|>). */
const GPT2_VOCAB_SIZE = 50257;
/** The app sends no Hub token (it would sit in the browser), so a gated repo comes in as a folder. */
const APP_TOKEN_ADVICE =
  'download its files there with your account and open them as a folder under Base model in the Lab (the app sends no token)';
const decoder = new TextDecoder('utf-8');

export class LabEngine implements LabApi {
  private model: DecoderModel | null = null;
  private modelId = '';
  /**
   * How to get the model's files again, to rebuild it on a new backend when a run's GPU device is
   * lost (train/device-loss.ts): a bundled model is fetched again (from the service worker's cache
   * offline); other models keep their bytes while loaded.
   */
  private modelFilesAgain: (() => Promise<ModelFileBytes>) | null = null;
  private tokenizer: TextTokenizer | null = null;
  /** Adapters resident on the model, one active; the one just trained is named TRAINED_ADAPTER. */
  private readonly adapters = new AdapterSet();
  /** Per resident adapter: its method and its head's class names in label-id order. */
  private readonly adapterInfo = new Map<string, { method: PeftMethod<PeftConfigBase>; labels: string[] }>();
  /** Tokenized task data by folder, task and length. */
  private readonly taskCache = new Map<string, TaskData>();
  private readonly gate: RunGate;
  /** A generation is running, and a stopGenerate asked it to end after its current token. */
  private generating = false;
  private stopGenerating = false;
  /**
   * Counts model loads begun, and names the latest: requests run concurrently in the worker, so a
   * load whose files arrive after a newer load began must not replace the newer model (the last pick wins).
   */
  private loads = 0;
  private latestLoad = '';

  constructor(
    private readonly fetchBytes: FetchBytes,
    private readonly emit: EventSink = () => {},
  ) {
    this.gate = new RunGate({
      paused: (reason) => this.emit('status', { phase: 'paused', message: reason ?? 'paused' }),
      resumed: () => this.emit('status', { phase: 'training', message: 'resumed' }),
    });
  }

  /** A training run is going: model and adapter switches are refused. */
  private get training(): boolean {
    return this.gate.running;
  }

  async init(req: RequestOf<'init'>): Promise<ReplyOf<'init'>> {
    return chooseBackend(req.backend, req.wasmBaseUrl);
  }

  private need(): { model: DecoderModel; tokenizer: TextTokenizer } {
    if (!this.model || !this.tokenizer) throw new NotReadyError('no model is loaded: pick a model first');
    return { model: this.model, tokenizer: this.tokenizer };
  }

  async loadModel(req: RequestOf<'loadModel'>): Promise<ModelSummary> {
    const ticket = this.beginLoad(req.id);
    this.emit('status', { phase: 'loading', message: `loading ${req.id}` });
    try {
      const summary = this.install(ticket, {
        id: req.id,
        ...(await fetchModelFiles(this.fetchBytes, req.baseUrl)),
      });
      this.modelFilesAgain = () => fetchModelFiles(this.fetchBytes, req.baseUrl);
      return summary;
    } catch (e) {
      // The status line stops saying "loading" (the error says why); a newer load keeps its own line.
      if (ticket === this.loads) this.emit('status', { phase: 'idle', message: `${req.id} was not loaded` });
      throw e;
    }
  }

  async loadModelFiles(req: RequestOf<'loadModelFiles'>): Promise<ModelSummary> {
    return this.install(this.beginLoad(req.id), req);
  }

  /** A model load begins: refused while training, and every load begun before it is superseded. */
  private beginLoad(id: string): number {
    if (this.training) throw new BusyError('training is running: stop it before switching models');
    this.latestLoad = id;
    return ++this.loads;
  }

  /** Makes the model of load `ticket` the one in use, unless a newer load has begun since. */
  private install(ticket: number, req: RequestOf<'loadModelFiles'>): ModelSummary {
    if (ticket !== this.loads)
      throw new CancelledError(
        `${req.id} was not loaded: ${this.latestLoad} was picked after it, and the latest pick is the one loaded`,
      );
    if (this.training) throw new BusyError('training is running: stop it before switching models');
    const { model, tokenizer, summary } = modelFromFiles(req.id, req);
    this.dropAllAdapters();
    this.model?.dispose();
    this.model = model;
    this.tokenizer = tokenizer;
    this.modelId = req.id;
    const { config, weights, weightFileNames, tokenizer: tokenizerBytes } = req;
    const kept: ModelFileBytes = { config, weights, tokenizer: tokenizerBytes };
    if (weightFileNames) kept.weightFileNames = weightFileNames;
    this.modelFilesAgain = async () => kept;
    this.taskCache.clear();
    this.emit('status', { phase: 'idle', message: `${req.id} loaded` });
    return summary;
  }

  /**
   * A Hub model: from the IndexedDB cache when there, else downloaded and cached, so a second
   * visit works offline. A repo without tokenizer.json and with GPT-2's vocabulary size gets GPT-2's
   * own tokenizer (public/tokenizers/gpt2).
   */
  async loadHubModel(req: RequestOf<'loadHubModel'>): Promise<ModelSummary & { cached: boolean }> {
    const repo = checkRepoId(req.repoId);
    const id = `hub: ${repo}`;
    const ticket = this.beginLoad(id);
    const canCache = typeof indexedDB !== 'undefined';
    const hit = canCache ? await getModel(id) : undefined;
    let files: ModelFileBytes;
    const kept = hit?.files;
    if (kept?.['config.json'] && kept['tokenizer.json'] && (kept['model.safetensors'] || kept[SHARD_INDEX])) {
      // model.safetensors, or the shards and their index (a sharded repo's layout, kept as it came).
      files = { config: kept['config.json'], ...folderWeights(kept, id), tokenizer: kept['tokenizer.json'] };
    } else {
      this.emit('status', { phase: 'loading', message: `downloading ${repo}` });
      const got = await downloadHubModel(repo, {
        endpoint: req.endpoint,
        tokenAdvice: APP_TOKEN_ADVICE,
        onProgress: (p) => this.emit('download', p),
      }).catch((e: unknown) => {
        // The status line stops saying "downloading"; the error itself says why.
        this.emit('status', { phase: 'idle', message: `${repo} was not downloaded` });
        throw e;
      });
      let tokenizer = got.tokenizer;
      if (!tokenizer) {
        const vocab = (JSON.parse(decoder.decode(got.config)) as { vocab_size?: number }).vocab_size;
        if (vocab !== GPT2_VOCAB_SIZE) {
          throw new FileLoadError(
            `${repo} has no tokenizer.json and its vocabulary (${vocab}) is not GPT-2's; PEFT Lab needs its tokenizer.json`,
          );
        }
        tokenizer = await this.fetchBytes(req.gpt2TokenizerUrl);
      }
      files = { config: got.config, weights: got.weights, weightFileNames: got.weightFileNames, tokenizer };
      const summary = this.install(ticket, { id, ...files });
      if (canCache) {
        const kept: Record<string, ArrayBuffer> = {
          'config.json': got.config,
          'tokenizer.json': tokenizer,
        };
        got.weights.forEach((w, i) => (kept[got.weightFileNames[i]!] = w));
        if (got.index) kept[SHARD_INDEX] = got.index;
        await saveModel({ id, source: 'hub', files: kept });
      }
      return { ...summary, cached: false };
    }
    return { ...this.install(ticket, { id, ...files }), cached: true };
  }

  /**
   * A split file's bytes: an imported data set's (`idb:<id>/<file>`) from IndexedDB, which the
   * worker reads itself, anything else through fetchBytes.
   */
  private dataBytes(url: string): Promise<ArrayBuffer> {
    return isImportedUrl(url) ? readImportedFile(url) : this.fetchBytes(url);
  }

  /**
   * A task's tokenized train and validation splits, kept per folder, task and length, so training
   * again on the same task starts at once.
   */
  private async taskData(info: TaskInfo, base: string, seqLen: number): Promise<TaskData> {
    const key = `${base}#${info.id}#${seqLen}`;
    const hit = this.taskCache.get(key);
    if (hit) return hit;
    const { tokenizer } = this.need();
    this.emit('status', { phase: 'tokenizing', message: `tokenizing ${info.title}` });
    const data = await loadTaskData(
      info,
      tokenizer,
      async (file) => decoder.decode(await this.dataBytes(`${base}/${file}`)),
      { seqLen, evalExamples: CLS_EVAL_EXAMPLES },
    );
    this.taskCache.set(key, data);
    return data;
  }

  /** The active adapter (null: the base model answers). */
  private get adapter(): Adapter | null {
    return this.adapters.active;
  }

  /** Class names of the active adapter's head (empty without one). */
  private get headLabels(): string[] {
    const name = this.adapters.activeAdapterName;
    return (name !== null && this.adapterInfo.get(name)?.labels) || [];
  }

  /** Frees the resident adapter `name` (the active one by default). */
  private dropAdapterNow(name = this.adapters.activeAdapterName): void {
    if (name === null) return;
    this.adapters.remove(name);
    this.adapterInfo.delete(name);
  }

  private dropAllAdapters(): void {
    this.adapters.dispose();
    this.adapterInfo.clear();
  }

  private summary(name: string): AdapterSummary {
    const adapter = this.adapters.active!;
    const method = this.adapterInfo.get(name)!.method;
    return {
      peftType: method.peftType,
      method: method.cliName,
      taskType: adapter.config.taskType,
      trainableParams: countTrainable(adapter),
      name,
    };
  }

  async train(req: TrainRequest): Promise<ReplyOf<'train'>> {
    const { model } = this.need();
    if (this.training) throw new BusyError('training is already running: stop it first');
    const taskId = req.task ?? DEFAULT_TASK;
    const info = await findTask(taskId);
    if (!info) {
      throw new SettingsError(
        `unknown task "${taskId}": pick a built-in task or a data set imported on the Data screen`,
      );
    }
    const { gradAccumSteps = 1, maxGradNorm = 1 } = req.train;
    if (!Number.isInteger(gradAccumSteps) || gradAccumSteps < 1 || gradAccumSteps > 256) {
      throw new SettingsError(
        `gradient accumulation must be a whole number of micro-batches from 1 to 256, got ${gradAccumSteps}`,
      );
    }
    if (!(maxGradNorm >= 0)) {
      throw new SettingsError(`gradient clipping must be a norm of 0 (off) or more, got ${maxGradNorm}`);
    }
    const { method, config } = planAdapter(model, req.method, req.config, info, req.train, this.modelId);
    if (req.train.weightsF16) {
      const problem = weightsF16Problem({
        backend: tf.getBackend(),
        methodKind: method.kind,
        useDora: (config as { useDora?: boolean }).useDora === true,
        offload: req.offload !== undefined,
      });
      if (problem) throw new SettingsError(problem);
    }
    // From here the engine is busy: model switches are refused, and a stop that arrives while the
    // corpus loads or the first evaluation runs still counts.
    return this.gate
      .run(() => this.runTraining(model, method, config, req, info))
      .catch((e: unknown) => {
        // An allocation that failed anywhere in the run (evaluation, a step, offload) says what to lower.
        throw outOfMemoryAdvice(e, 'training', {
          batchSize: req.train.batchSize,
          seqLen: req.train.seqLen,
          budgetMB: req.offload?.budgetMB,
          model: this.modelId,
        });
      });
  }

  private async runTraining(
    firstModel: DecoderModel,
    method: PeftMethod<PeftConfigBase>,
    config: PeftConfigBase,
    req: TrainRequest,
    info: TaskInfo,
  ): Promise<ReplyOf<'train'>> {
    const s = req.train;
    const corpusBase = req.corpusUrl.replace(/\/$/, '');
    const data = await this.taskData(info, corpusBase, s.seqLen);
    // A new run replaces the last trained adapter; loaded ones stay resident (parked).
    this.dropAdapterNow(TRAINED_ADAPTER);
    const { tokenizer } = this.need();
    // Both change when a lost GPU device makes the run rebuild them on a new backend (below).
    let model = firstModel;
    // A run without f16 weights after one with them gets the f32 weights as loaded back (read
    // again from the model's files, not the halves' rounded values); so does a LoRA that starts
    // from the weights (PiSSA, OLoRA read them once, here), and is packed again after.
    const init = (config as { initLoraWeights?: boolean | string }).initLoraWeights;
    if (!s.weightsF16 || (init !== undefined && startsFromWeight({ initLoraWeights: init })))
      await this.exactWeights(model);
    let adapter = this.adapters.add(TRAINED_ADAPTER, () =>
      createAdapter(model, tokenizer, method, config, info, s.seed),
    );
    if (s.weightsF16) await this.packWeightsF16(model);
    this.adapterInfo.set(TRAINED_ADAPTER, { method, labels: [...info.labels] });
    let offloading: OffloadSession | null = null;
    const evaluate = async (step: number): Promise<EvalPoint> => {
      const run = (): ReturnType<typeof evaluateTask> =>
        evaluateTask(model, adapter, data, { batchSize: s.batchSize, seqLen: s.seqLen });
      const e = await (offloading ? offloading.whole(run) : run());
      const point = { step, loss: e.loss, metric: e.metric };
      this.emit('eval', point);
      return point;
    };
    const pageStores: PageStore[] = [];
    // A failed run's pages only take room (a full disk is the likely reason it failed): they go.
    const dropPages = async (): Promise<void> => {
      for (const store of pageStores) await store.clear().catch(() => undefined);
    };
    const offload = req.offload
      ? await OffloadSession.start(model, adapter, req.offload, async (kind) => {
          const store = await runPageStore(kind, 'offload', req.offload?.device);
          pageStores.push(store);
          return store;
        }).catch(async (e: unknown) => {
          await dropPages();
          throw e;
        })
      : null;
    const newTrainer = (): Trainer =>
      new Trainer(model, adapter, taskBatchSource(data, s.seqLen), {
        ...s,
        gradAccumSteps: s.gradAccumSteps ?? 1,
        maxGradNorm: s.maxGradNorm ?? 1.0,
        gradients: offload?.gradients(),
      });
    // A run with offload keeps pages tied to its tensors: it does not move backends by itself.
    const recoverable = offload
      ? null
      : await this.recoverableRun(
          newTrainer,
          async (m) => {
            model = m;
            adapter = this.adapters.add(TRAINED_ADAPTER, () =>
              createAdapter(m, tokenizer, method, config, info, s.seed),
            );
            // On a new GPU device the weights are halves again; on the wasm fallback they stay f32
            // (halves are for the WebGPU kernels), and the recovery message says so.
            if (s.weightsF16 && tf.getBackend() === 'webgpu') await this.packWeightsF16(m);
          },
          s.weightsF16 === true,
        );
    let trainer = recoverable?.trainer ?? newTrainer();
    offload?.attach(trainer);
    offloading = offload;
    const ckpt = req.checkpoint;
    // Checkpoints by the clock alone are a safety net, not something the user asked for.
    const timedOnly = ckpt !== undefined && !(ckpt.every > 0) && typeof indexedDB === 'undefined';
    const db = ckpt && !timedOnly ? await this.checkpointDb() : null;
    let lastWrite = performance.now();
    let last = NaN;
    let evalBefore: EvalPoint;
    try {
      if (req.resume && db && req.checkpoint) {
        const saved = (await readManifest(db, req.checkpoint.runId))?.meta as { modelId?: string } | null;
        if (saved?.modelId && saved.modelId !== this.modelId) {
          throw new CheckpointError(
            `the checkpoint of this run was made on ${saved.modelId}, not ${this.modelId}: load ${saved.modelId} and resume again`,
          );
        }
        const m = await resumeFromCheckpoint(db, req.checkpoint.runId, trainer);
        if (!m)
          throw new CheckpointError(
            `there is no checkpoint of ${req.checkpoint.runId} to resume: start the run again`,
          );
        await recoverable?.arm();
        this.emit('checkpoint', { runId: m.runId, step: m.step, bytes: m.bytes, resumed: true });
      }
      this.emit('status', { phase: 'evaluating', message: 'held-out evaluation before training' });
      evalBefore = await evaluate(trainer.step);
      this.emit('status', { phase: 'training', message: `training ${method.label}` });
      while (trainer.step < s.steps && !this.gate.stopped) {
        await this.gate.checkpoint();
        if (this.gate.stopped) break;
        let st: Awaited<ReturnType<Trainer['trainStep']>>;
        try {
          st = recoverable ? await recoverable.step() : await trainer.trainStep();
        } catch (e) {
          if (recoverable) trainer = recoverable.trainer;
          if (isOutOfMemory(e)) {
            // The step was not made (train/trainer.ts): weights, moments and the batch generator are
            // as before it. The run waits, saying what to lower: stop ends it with what it trained
            // so far (evaluated and savable as any run), resume tries the step again (once memory
            // was freed elsewhere, another tab closed, say).
            const advice = outOfMemoryAdvice(e, `training at step ${trainer.step + 1}`, {
              batchSize: s.batchSize,
              seqLen: s.seqLen,
              budgetMB: req.offload?.budgetMB,
              model: this.modelId,
            }) as Error;
            this.gate.pause(`paused: ${advice.message}`);
            continue;
          }
          if (!(e instanceof NonFiniteLossError)) throw e;
          // Diverged past what halving the rate fixes: the run waits, naming the cause, with its
          // last good weights; resume tries again (at the lowered rate), stop ends it as usual.
          this.gate.pause(`paused: ${e.message}`);
          trainer.clearNonFiniteStreak();
          continue;
        }
        if (recoverable) trainer = recoverable.trainer;
        if (st.skipped) {
          this.emit('status', {
            phase: 'training',
            message: `step ${st.step + 1} skipped (loss ${st.loss}, gradient norm ${st.gradNorm}): learning rate halved to ${st.lr.toExponential(2)}`,
          });
          continue;
        }
        last = st.loss;
        this.emit('progress', {
          step: st.step,
          steps: s.steps,
          loss: st.loss,
          lr: st.lr,
          ms: st.ms,
          tokensPerSec: (st.tokens / st.ms) * 1000,
          gradNorm: st.gradNorm,
        });
        if (offload) this.emit('offload', { ...offload.snapshot(st.step, trainer), ms: st.ms });
        const due =
          ckpt !== undefined &&
          ((ckpt.every > 0 && st.step % ckpt.every === 0) ||
            (ckpt.everyMs !== undefined && performance.now() - lastWrite >= ckpt.everyMs));
        if (db && req.checkpoint && due) {
          lastWrite = performance.now();
          const m = await writeCheckpoint(db, req.checkpoint.runId, trainer, {
            ...req,
            modelId: this.modelId,
          } as unknown as JsonValue);
          this.emit('checkpoint', { runId: m.runId, step: m.step, bytes: m.bytes, resumed: false });
        }
        if (s.evalEvery > 0 && st.step % s.evalEvery === 0 && st.step < s.steps) await evaluate(st.step);
      }
    } catch (e) {
      recoverable?.close();
      trainer.dispose();
      offloading = null;
      await offload?.end();
      await dropPages();
      throw e;
    }
    recoverable?.close();
    trainer.dispose();
    offloading = null;
    await offload?.end();
    const evalAfter = await evaluate(trainer.step);
    this.emit('status', { phase: 'idle', message: this.gate.stopped ? 'stopped' : 'finished' });
    const trainable = countTrainable(adapter);
    return {
      steps: trainer.step,
      stopped: this.gate.stopped,
      finalLoss: last,
      evalBefore,
      evalAfter,
      trainableParams: trainable,
      totalParams: countParameters(model.config),
      method: method.cliName,
      peftType: method.peftType,
      task: info.id,
      taskType: info.taskType,
      metric: metricOf(info),
      evalExamples: data.kind === 'cls' ? data.valid.examples.length : 0,
    };
  }

  /**
   * The run wrapped so that it survives a lost GPU device (train/device-loss.ts): the first build is
   * the model and adapter already made; a rebuild after a loss reads the model's files again, builds
   * the model on the new backend and hands it to `rebuild` (which makes the run's adapter on it), and
   * says what happened. Adapters parked on the model were on the lost device too: they are dropped,
   * and the message says so.
   */
  private async recoverableRun(
    newTrainer: () => Trainer,
    rebuild: (model: DecoderModel) => Promise<void>,
    weightsF16: boolean,
  ): Promise<RecoverableRun> {
    let first = true;
    let dropped: string[] = [];
    const build = async (): Promise<RunParts> => {
      if (!first) {
        const files = await this.modelFilesAgain?.();
        if (!files)
          throw new NotReadyError(
            'the GPU device was lost and the model cannot be read again: load it again',
          );
        dropped = this.adapters.names().filter((n) => n !== TRAINED_ADAPTER);
        const info = this.adapterInfo.get(TRAINED_ADAPTER);
        try {
          // Their memory went with the device; this only forgets them.
          this.dropAllAdapters();
          this.model?.dispose();
        } catch {
          // freeing on a dead device may fail
        }
        this.model = modelFromFiles(this.modelId, files).model;
        await rebuild(this.model);
        if (info) this.adapterInfo.set(TRAINED_ADAPTER, info);
      }
      first = false;
      const trainer = newTrainer();
      return { trainer, dispose: () => trainer.dispose() };
    };
    return RecoverableRun.start({
      build,
      fallback: 'wasm',
      onRecovered: async (r) => {
        const parked = dropped.length
          ? `; the adapters ${dropped.join(', ')} were on the lost device and must be opened again`
          : '';
        const f32 =
          weightsF16 && tf.getBackend() !== 'webgpu'
            ? `; the base weights are f32 on ${tf.getBackend()} (f16 weights are for webgpu)`
            : '';
        const message = describeRecovery(r) + parked + f32;
        this.emit('deviceLost', {
          message,
          backend: await currentBackendInfo(message),
          fromStep: r.fromStep,
        });
        this.emit('status', { phase: 'training', message });
      },
    });
  }

  /**
   * The model's weights as loaded, where some are held as f16 halves: a fresh copy of the model is
   * built from its files (as a lost device's rebuild does) and lends its f32 values to the halves'
   * names, then goes. Without the files (never the case after a load) the rounded values stay,
   * and the status line says so.
   */
  private async exactWeights(model: DecoderModel): Promise<void> {
    if (!model.weightsF16) return;
    const files = await this.modelFilesAgain?.();
    if (!files) {
      model.unpackWeightsF16();
      this.emit('status', {
        phase: 'loading',
        message:
          'weights back to f32 with their f16 rounding: load the model again for the weights as loaded',
      });
      return;
    }
    const fresh = modelFromFiles(this.modelId, files).model;
    try {
      model.unpackWeightsF16((k) => fresh.weights.get(k));
    } finally {
      fresh.dispose();
    }
  }

  /** Holds the model's frozen linear-layer matrices as f16 halves, saying how much GPU memory that freed. */
  private async packWeightsF16(model: DecoderModel): Promise<void> {
    const freed = await model.packWeightsF16();
    this.emit('status', {
      phase: 'loading',
      message: `frozen linear-layer weights held as f16: ${(freed / 2 ** 20).toFixed(2)} MiB of GPU memory freed`,
    });
  }

  private async checkpointDb(): Promise<LabDb> {
    if (typeof indexedDB === 'undefined')
      throw new StorageError(
        'checkpoints need IndexedDB, which this runtime lacks: use a browser that has it, or train with checkpoint every N steps at 0',
      );
    return openLabDb();
  }

  async checkpoints(): Promise<ReplyOf<'checkpoints'>> {
    if (typeof indexedDB === 'undefined') return [];
    // A Compare race's lanes keep theirs in the same store: the Compare screen offers those.
    return (await listCheckpoints(await openLabDb())).filter((m) => !m.runId.startsWith('race:'));
  }

  async deleteCheckpoint(req: RequestOf<'deleteCheckpoint'>): Promise<void> {
    await deleteCheckpoint(await this.checkpointDb(), req.runId);
  }

  async pause(): Promise<void> {
    this.gate.pause();
  }

  async resume(): Promise<void> {
    this.gate.resume();
  }

  async stop(): Promise<void> {
    this.gate.stop();
  }

  async generate(req: RequestOf<'generate'>): Promise<ReplyOf<'generate'>> {
    const { model, tokenizer } = this.need();
    if (this.training && !this.gate.paused)
      throw new BusyError('training is running: pause or stop it to generate');
    const promptIds = tokenizer.encode(req.prompt);
    if (promptIds.length === 0) throw new InputError('the prompt is empty: type some text first');
    if (this.generating) throw new BusyError('an answer is being generated: stop it or let it finish first');
    const opts: GenerateOptions = {
      maxNewTokens: req.maxNewTokens,
      temperature: req.temperature,
      topK: req.topK,
      topP: req.topP,
      repetitionPenalty: req.repetitionPenalty,
      seed: req.seed,
      eosTokenId: tokenizer.eosTokenId,
    };
    // Refused before anything runs, naming the setting (the library checks the same).
    checkSampling(opts);
    const t0 = performance.now();
    const useAdapter = req.useAdapter && this.adapter !== null;
    const restore = !useAdapter && this.adapter ? this.adapter.disableAdapter() : null;
    const label = req.stream;
    const text = new TextStream((ids) => tokenizer.decode(ids));
    this.generating = true;
    this.stopGenerating = false;
    let ids: number[];
    try {
      ids = await generate(
        model,
        promptIds,
        {
          ...opts,
          reservedPositions: useAdapter ? reservedPositions(this.adapter) : 0,
          onToken:
            label === undefined
              ? undefined
              : async (id) => {
                  const piece = text.push(id);
                  if (piece) this.emit('token', { stream: label, piece });
                  // A macrotask between tokens lets a stopGenerate message in: tfjs's data() on
                  // wasm and cpu resolves in a microtask, which would starve the message queue.
                  await new Promise((r) => setTimeout(r, 0));
                  return !this.stopGenerating;
                },
        },
        adapterDecorator(model, useAdapter ? this.adapter : null),
      );
    } finally {
      restore?.();
      this.generating = false;
    }
    const rest = label === undefined ? '' : text.flush();
    if (rest) this.emit('token', { stream: label!, piece: rest });
    return {
      text: tokenizer.decode(ids),
      promptIds,
      generatedIds: ids,
      ms: performance.now() - t0,
      stopped: this.stopGenerating,
    };
  }

  async stopGenerate(): Promise<void> {
    if (this.generating) this.stopGenerating = true;
  }

  /** The adapter's head of the given kind, or a message that says how to get one. */
  private headFor(task: 'SEQ_CLS' | 'TOKEN_CLS'): { model: DecoderModel; adapter: Adapter; head: TaskHead } {
    const { model } = this.need();
    if (this.training && !this.gate.paused)
      throw new BusyError('training is running: pause or stop it first');
    const head = this.adapter?.head;
    if (!this.adapter || !head || head.task !== task) {
      const what = task === 'SEQ_CLS' ? 'sequence-classification' : 'token-classification';
      throw new NotReadyError(`there is no ${what} adapter: train or load one on a ${task} task first`);
    }
    return { model, adapter: this.adapter, head };
  }

  private labelName(i: number): string {
    return this.headLabels[i] ?? `LABEL_${i}`;
  }

  async classify(req: RequestOf<'classify'>): Promise<ReplyOf<'classify'>> {
    const { model, adapter, head } = this.headFor('SEQ_CLS');
    const probs = await classifyText(model, this.need().tokenizer, adapter, head, req.text);
    return { labels: probs.map((_, i) => this.labelName(i)), probs };
  }

  async tag(req: RequestOf<'tag'>): Promise<ReplyOf<'tag'>> {
    const { model, adapter, head } = this.headFor('TOKEN_CLS');
    const { words, ids } = await tagWords(model, this.need().tokenizer, adapter, head, req.text);
    return { words, tags: ids.map((i) => this.labelName(i)) };
  }

  async exportAdapter(): Promise<ReplyOf<'exportAdapter'>> {
    if (!this.adapter) throw new NotReadyError('there is no adapter to save: train one first');
    const files = await saveAdapter(this.adapter, this.modelId);
    return { config: files.config, weights: files.weights.slice().buffer };
  }

  /**
   * Loads an adapter onto the model under its source name and activates it; the adapters already
   * resident stay, parked (a second load of the same name replaces it). Every check against the
   * model (peft_type, task_type and head, target modules, blocks, each tensor's key and shape) runs
   * while the new adapter is built under a scratch name: a refusal leaves the resident adapters,
   * the active one and the model as they were, and only a success replaces one of the same name.
   */
  async importAdapter(req: RequestOf<'importAdapter'>): Promise<ReplyOf<'importAdapter'>> {
    const { model } = this.need();
    if (this.training) throw new BusyError('training is running: stop it before loading an adapter');
    const name = req.source;
    const scratch = `${name}\u0000opening`;
    const previous = this.adapters.activeAdapterName;
    let method: PeftMethod<PeftConfigBase> | null = null;
    try {
      this.adapters.add(scratch, () => {
        const loaded = loadAdapterAndMethod(
          model,
          { config: req.config, weights: new Uint8Array(req.weights) },
          req.source,
        );
        method = loaded.method;
        return loaded.adapter;
      });
    } catch (e) {
      // A file that does not load leaves what was active as it was.
      if (previous !== null) this.adapters.use(previous);
      throw e;
    }
    this.dropAdapterNow(name);
    this.adapters.rename(scratch, name);
    const n = this.adapters.active!.head?.numLabels ?? 0;
    this.adapterInfo.set(name, { method: method!, labels: req.labels?.length === n ? [...req.labels] : [] });
    return this.summary(name);
  }

  /**
   * PEFT's add_weighted_adapter over saved LoRA adapters' files (no model needed): the new adapter's
   * files. The UI keeps them and opens them with importAdapter, whose checks against the model are
   * those of any adapter.
   */
  async combineAdapters(req: RequestOf<'combineAdapters'>): Promise<ReplyOf<'combineAdapters'>> {
    const out = combineAdapterFiles(
      req.adapters.map((a) => ({ name: a.name, config: a.config, weights: new Uint8Array(a.weights) })),
      req.weights,
      req.type,
      req.options,
    );
    return { config: out.config, weights: out.weights.slice().buffer, r: out.r };
  }

  /** Downloads an adapter repo's two files; opening them is importAdapter's, so the checks are the same. */
  async fetchHubAdapter(req: RequestOf<'fetchHubAdapter'>): Promise<ReplyOf<'fetchHubAdapter'>> {
    const repo = checkRepoId(req.repoId);
    this.emit('status', { phase: 'loading', message: `downloading the adapter ${repo}` });
    const got = await downloadHubAdapter(repo, {
      endpoint: req.endpoint,
      tokenAdvice: APP_TOKEN_ADVICE,
      onProgress: (p) => this.emit('download', p),
    }).catch((e: unknown) => {
      this.emit('status', { phase: 'idle', message: `${repo} was not downloaded` });
      throw e;
    });
    this.emit('status', { phase: 'idle', message: `${repo} downloaded` });
    return got;
  }

  /**
   * The active adapter (or the base model) scored on a task's held-out split, as training scores
   * it before and after: loss and perplexity for CAUSAL_LM, accuracy for a head that fits the task.
   */
  async evaluate(req: RequestOf<'evaluate'>): Promise<ReplyOf<'evaluate'>> {
    const { model } = this.need();
    if (this.training) throw new BusyError('training is running: stop it before evaluating');
    const info = await findTask(req.task);
    if (!info) {
      throw new SettingsError(
        `unknown task "${req.task}": pick a built-in task or a data set imported on the Data screen`,
      );
    }
    const adapter = this.adapter;
    if (info.taskType !== 'CAUSAL_LM') {
      const head = adapter?.head;
      if (!head || head.task !== info.taskType) {
        throw new NotReadyError(
          `${info.title} is a ${info.taskType} task and the adapter in use has no ${info.taskType} head: open or train a ${info.taskType} adapter, or pick a CAUSAL_LM task`,
        );
      }
      if (head.numLabels !== info.labels.length) {
        throw new SettingsError(
          `the adapter's head has ${head.numLabels} classes and ${info.title} has ${info.labels.length}: pick a task with ${head.numLabels} classes`,
        );
      }
    }
    if (req.seqLen > model.config.nPositions - reservedPositions(adapter)) {
      throw new SettingsError(
        `a sequence length of ${req.seqLen} is more than this model and adapter read (${model.config.nPositions - reservedPositions(adapter)}): lower it`,
      );
    }
    const data = await this.taskData(info, req.corpusUrl.replace(/\/$/, ''), req.seqLen);
    this.emit('status', { phase: 'evaluating', message: `evaluating on ${info.title}` });
    const e = await evaluateTask(model, adapter, data, { batchSize: req.batchSize, seqLen: req.seqLen });
    this.emit('status', { phase: 'idle', message: 'evaluated' });
    return {
      step: 0,
      loss: e.loss,
      metric: e.metric,
      metricName: metricOf(info),
      task: info.id,
      evalExamples: data.kind === 'cls' ? data.valid.examples.length : 0,
    };
  }

  async useAdapter(req: RequestOf<'useAdapter'>): Promise<ReplyOf<'useAdapter'>> {
    if (this.training) throw new BusyError('training is running: stop it before switching adapters');
    this.adapters.use(req.name);
    return req.name === null ? null : this.summary(req.name);
  }

  async dropAdapter(): Promise<void> {
    if (this.training) throw new CancelledError('training is running: stop it first');
    this.dropAdapterNow();
  }

  /** For tests: tensors currently allocated. */
  numTensors(): number {
    return tf.memory().numTensors;
  }
}
