/**
 * The engine behind the Compare screen, in-process (the compare worker wraps it; tests call it
 * directly): one base model and one race at a time (src/lib/race), with pause/resume/stop between
 * steps, a lane added to a finished race, every lane answering the same input, a soft prompt read
 * back as tokens, AdaLoRA's rank history, and where each lane's parameters live.
 */
import * as tf from '@tensorflow/tfjs';
import { chooseBackend } from '../backend/backend';
import { outOfMemoryAdvice } from '../backend/out-of-memory';
import { RecoverableRun, currentGpuDevice, describeRecovery } from '../train/device-loss';
import {
  BusyError,
  CheckpointError,
  InputError,
  NotReadyError,
  SettingsError,
  StorageError,
} from '../errors';
import { openLabDb } from '../storage/handle';
import type { LabDb } from '../storage/handle';
import type { JsonValue } from '../storage/db';
import {
  deleteCheckpoint,
  readManifest,
  resumeFromCheckpoint,
  writeCheckpoint,
} from '../offload/checkpoints';
import { generate } from '../model/generate';
import type { DecoderModel } from '../model/decoder';
import { requireGpt2 } from '../model/decoder';
import { findTask, isImportedUrl, readImportedFile } from '../data/imported';
import { METHOD_INFO } from '../peft/catalog';
import { adapterDecorator, reservedPositions } from '../peft/forward';
import type { Adapter } from '../peft/types';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { defaultBudget, sizeToBudget } from '../race/equal-budget';
import { nearestTokenIds } from '../race/nearest-tokens';
import { Race } from '../race/race';
import type { LaneSpec, LaneState } from '../race/race';
import { raceResults } from '../race/results';
import { loadTaskData } from '../data/task-data';
import type { TaskData } from '../data/task-data';
import type { TaskInfo } from '../data/tasks/registry';
import { createAdapter, planAdapter } from '../train/plan';
import { runPageStore } from '../offload/run-store';
import type { PageStore } from '../offload/page-store';
import { runOffloadTrial } from './offload-trial';
import { runSwarmTrial } from './swarm-trial';
import { RunGate } from './run-gate';
import { parameterMap } from '../race/where';
import type {
  CompareApi,
  CompareEventSink,
  CompareReplyOf,
  CompareRequestOf,
  RaceCheckpoint,
  RaceRequest,
  RaceSnapshot,
  TryAnswer,
} from '../protocol/compare-protocol';
import type { ModelSummary } from '../protocol/lab-protocol';
import { classifyText, tagWords } from './answers';
import { fetchModelFiles, modelFromFiles } from './model-files';
import type { FetchBytes } from './model-files';

const decoder = new TextDecoder('utf-8');
/** Tokenized task data kept (a few MB each at most for the bundled tasks). */
const TASK_CACHE_ENTRIES = 4;

/** Race lanes' checkpoints share the Lab's store under this prefix (the Lab's resume skips them). */
export const RACE_CHECKPOINT_PREFIX = 'race:';
const laneRunId = (raceId: string, laneId: string): string => `${RACE_CHECKPOINT_PREFIX}${raceId}/${laneId}`;

/** What a lane's checkpoint keeps beside its tensors: the race it belongs to and the lane's history. */
interface LaneCheckpointMeta {
  raceId: string;
  modelId: string;
  lane: LaneState;
}

/** What the parameter diagram needs to know of the model: its family's names, a tied LM head. */
const mapModel = (model: DecoderModel): { family: DecoderModel['family']; tiedHead: boolean } => ({
  family: model.family,
  tiedHead: model.lmHeadKey === model.embeddingKey,
});

export class CompareEngine implements CompareApi {
  private model: DecoderModel | null = null;
  /** Where the model's files came from: read again when a lost GPU device makes a race rebuild it. */
  private modelBaseUrl: string | null = null;
  /** How often a race on WebGPU copies its lanes' state to the CPU (train/device-loss.ts). */
  deviceSnapshotEveryMs = 15_000;
  private modelId = '';
  private tokenizer: TextTokenizer | null = null;
  private current: Race | null = null;
  /** The running race's checkpoint settings (null: none, as for a lane added to a finished race). */
  private checkpointing: RaceRequest['checkpoint'] | null = null;
  private readonly gate: RunGate;
  /**
   * Tokenized task data of the loaded model's tokenizer, the most recent few kept: a lesson runs
   * several races and trials on one task in a row, and tokenizing SpamAssassin's 2 MB takes seconds
   * each time. Cleared when a model with another tokenizer is loaded.
   */
  private readonly taskCache = new Map<string, TaskData>();
  /** The loaded model's tokenizer.json, to tell whether the next model's tokenizes the same. */
  private tokenizerJson = '';

  constructor(
    private readonly fetchBytes: FetchBytes,
    private readonly emit: CompareEventSink = () => {},
  ) {
    this.gate = new RunGate({
      // A race that paused itself (out of memory) says why while it waits.
      paused: (reason) => this.emit('status', { phase: 'paused', message: reason ?? 'paused' }),
      resumed: () => this.emit('status', { phase: 'racing', message: 'resumed' }),
    });
  }

  async init(req: CompareRequestOf<'init'>): Promise<CompareReplyOf<'init'>> {
    return chooseBackend(req.backend, req.wasmBaseUrl);
  }

  private need(): { model: DecoderModel; tokenizer: TextTokenizer } {
    if (!this.model || !this.tokenizer) throw new NotReadyError('no model is loaded: pick a model first');
    return { model: this.model, tokenizer: this.tokenizer };
  }

  private needRace(): Race {
    if (!this.current) throw new NotReadyError('there is no race yet: start one first');
    return this.current;
  }

  private idle(what: string): void {
    if (this.gate.running) throw new BusyError(`a race is running: stop it or let it finish before ${what}`);
  }

  async loadModel(req: CompareRequestOf<'loadModel'>): Promise<ModelSummary> {
    this.idle('switching models');
    this.emit('status', { phase: 'loading', message: `loading ${req.id}` });
    const files = await fetchModelFiles(this.fetchBytes, req.baseUrl);
    const loaded = modelFromFiles(req.id, files);
    const { tokenizer, summary, model } = loaded;
    // The bundled models share one tokenizer.json: their tokenized task data stays good.
    const tokenizerJson = decoder.decode(files.tokenizer);
    if (tokenizerJson !== this.tokenizerJson) this.taskCache.clear();
    this.tokenizerJson = tokenizerJson;
    this.current?.dispose();
    this.current = null;
    this.model?.dispose();
    this.model = model;
    this.tokenizer = tokenizer;
    this.modelId = req.id;
    this.modelBaseUrl = req.baseUrl;
    this.emit('status', { phase: 'idle', message: `${req.id} loaded` });
    return summary;
  }

  async budget(req: CompareRequestOf<'budget'>): Promise<CompareReplyOf<'budget'>> {
    const { model } = this.need();
    const info = await findTask(req.task);
    if (!info)
      throw new SettingsError(`unknown task "${req.task}": pick a built-in task or an imported data set`);
    return { defaultBudget: defaultBudget(model, info.taskType) };
  }

  private sized(lane: LaneSpec, equalBudget: number | null | undefined, seqLen: number): LaneSpec {
    if (!equalBudget) return lane;
    const { model } = this.need();
    const info = this.needRace().data.info;
    return {
      ...lane,
      config: sizeToBudget(model, lane.method, lane.config ?? {}, info.taskType, equalBudget, seqLen).config,
    };
  }

  async race(req: CompareRequestOf<'race'>): Promise<RaceSnapshot> {
    const { model, tokenizer } = this.need();
    this.idle('starting another');
    if (req.lanes.length === 0) throw new SettingsError('pick at least one method to race');
    const info = await this.needTask(req.task);
    // Settings the model cannot take are refused before seconds of tokenizing, and before the
    // finished race is freed.
    if (req.settings.seqLen > model.config.nPositions) {
      throw new SettingsError(
        `sequence length ${req.settings.seqLen} exceeds the model's ${model.config.nPositions} positions: shorten it`,
      );
    }
    const data = await this.taskData(info, req.corpusUrl, {
      seqLen: req.settings.seqLen,
      evalExamples: req.evalExamples,
      template: req.template,
    });
    const race = new Race(model, tokenizer, this.modelId, data, req.settings, {
      onLane: (lane) => this.emit('lane', lane),
      onStep: (lane, point) => this.emit('step', { laneId: lane.id, point }),
      onEval: (lane, point) => this.emit('eval', { laneId: lane.id, point }),
    });
    // The finished race stays until every lane of the new one is accepted ...
    const previous = this.current;
    this.current = race;
    const refuse = (e: unknown, keep: typeof previous): never => {
      race.dispose();
      this.current = keep;
      this.emit('status', { phase: 'idle', message: `the race did not start: ${(e as Error).message}` });
      throw e;
    };
    let lanes: LaneSpec[] = [];
    try {
      lanes = req.lanes.map((lane) => this.sized(lane, req.equalBudget, req.settings.seqLen));
      for (const lane of lanes) race.planLane(lane);
    } catch (e) {
      refuse(e, previous);
    }
    // ... and is freed before the new lanes are built: freeing a parked adapter puts it back on the
    // model first, which would overwrite the new lanes' hooks (and a full fine-tune's trainable flag).
    previous?.dispose();
    try {
      for (const lane of lanes) race.addLane(lane);
    } catch (e) {
      refuse(e, null);
    }
    this.checkpointing = req.checkpoint ?? null;
    if (req.resume) {
      try {
        await this.resumeLanes(race, req);
      } catch (e) {
        this.checkpointing = null;
        refuse(e, null);
      }
    }
    return this.runRace();
  }

  private async checkpointDb(): Promise<LabDb> {
    if (typeof indexedDB === 'undefined')
      throw new StorageError('race checkpoints need IndexedDB, which this runtime lacks: race without them');
    return openLabDb();
  }

  /** Loads each lane's last checkpoint into it; lanes without one start from the beginning. */
  private async resumeLanes(race: Race, req: RaceRequest): Promise<void> {
    const raceId = req.checkpoint?.raceId;
    if (!raceId) throw new CheckpointError('a race resumes from its checkpoints: the request names none');
    const db = await this.checkpointDb();
    const resumed: RaceCheckpoint['lanes'] = [];
    let bytes = 0;
    for (const { state, trainer } of race.lanesWithTrainers()) {
      const runId = laneRunId(raceId, state.id);
      const meta = (await readManifest(db, runId))?.meta as unknown as LaneCheckpointMeta | undefined;
      if (!meta) continue;
      if (meta.modelId !== this.modelId) {
        throw new CheckpointError(
          `the race's checkpoints were made on ${meta.modelId}, not ${this.modelId}: load ${meta.modelId} and resume again`,
        );
      }
      const m = await resumeFromCheckpoint(db, runId, trainer);
      if (!m) continue;
      race.restoreLane(state.id, meta.lane);
      resumed.push({ laneId: state.id, name: state.name, step: m.step });
      bytes += m.bytes;
    }
    if (resumed.length === 0)
      throw new CheckpointError(`there are no checkpoints of race ${raceId} to resume: start the race again`);
    this.emit('checkpoint', { raceId, lanes: resumed, savedAt: Date.now(), bytes, resumed: true });
  }

  /** Every lane's checkpoint, when the race's interval has passed since the last. */
  private async writeRaceCheckpoint(race: Race): Promise<void> {
    const c = this.checkpointing;
    if (!c) return;
    const db = await this.checkpointDb();
    const lanes: RaceCheckpoint['lanes'] = [];
    let bytes = 0;
    for (const { state, trainer } of race.lanesWithTrainers()) {
      const meta: LaneCheckpointMeta = { raceId: c.raceId, modelId: this.modelId, lane: state };
      const m = await writeCheckpoint(
        db,
        laneRunId(c.raceId, state.id),
        trainer,
        JSON.parse(JSON.stringify(meta)) as JsonValue,
      );
      lanes.push({ laneId: state.id, name: state.name, step: m.step });
      bytes += m.bytes;
    }
    this.emit('checkpoint', { raceId: c.raceId, lanes, savedAt: Date.now(), bytes, resumed: false });
  }

  /** A race that ended (finished or stopped) has nothing to resume: its checkpoints go. */
  private async dropRaceCheckpoints(race: Race, raceId: string): Promise<void> {
    const db = await this.checkpointDb();
    for (const { state } of race.lanesWithTrainers()) await deleteCheckpoint(db, laneRunId(raceId, state.id));
  }

  async deleteRaceCheckpoint(req: CompareRequestOf<'deleteRaceCheckpoint'>): Promise<void> {
    this.idle('deleting checkpoints');
    const db = await this.checkpointDb();
    for (const lane of (await this.raceCheckpoint(req))?.lanes ?? [])
      await deleteCheckpoint(db, laneRunId(req.raceId, lane.laneId));
  }

  async raceCheckpoint(req: CompareRequestOf<'raceCheckpoint'>): Promise<CompareReplyOf<'raceCheckpoint'>> {
    if (typeof indexedDB === 'undefined') return null;
    const db = await openLabDb();
    const lanes: RaceCheckpoint['lanes'] = [];
    let savedAt = 0;
    // Lane ids are lane-1, lane-2, ... in the request's order; a race has at most a few dozen.
    for (let i = 1; i <= 64; i++) {
      const m = await readManifest(db, laneRunId(req.raceId, `lane-${i}`));
      if (!m) break;
      const meta = m.meta as unknown as LaneCheckpointMeta;
      lanes.push({ laneId: meta.lane.id, name: meta.lane.name, step: m.step });
      savedAt = Math.max(savedAt, m.savedAt);
    }
    return lanes.length ? { raceId: req.raceId, lanes, savedAt } : null;
  }

  private async taskData(
    info: TaskInfo,
    corpusUrl: string,
    opts: { seqLen: number; evalExamples?: number; template?: string },
  ): Promise<TaskData> {
    const { tokenizer } = this.need();
    const base = corpusUrl.replace(/\/$/, '');
    const key = JSON.stringify([
      base,
      info.id,
      opts.seqLen,
      opts.evalExamples ?? null,
      opts.template ?? null,
    ]);
    // An imported data set can be deleted and imported again under the same id: read it each time.
    const cacheable = !isImportedUrl(base);
    const hit = cacheable ? this.taskCache.get(key) : undefined;
    if (hit) {
      // Most recently used last, so the oldest entry is the one dropped.
      this.taskCache.delete(key);
      this.taskCache.set(key, hit);
      return hit;
    }
    this.emit('status', { phase: 'tokenizing', message: `tokenizing ${info.title}` });
    const data = await loadTaskData(
      info,
      tokenizer,
      async (file) => {
        const url = `${base}/${file}`;
        return decoder.decode(await (isImportedUrl(url) ? readImportedFile(url) : this.fetchBytes(url)));
      },
      opts,
    );
    if (cacheable) this.taskCache.set(key, data);
    while (this.taskCache.size > TASK_CACHE_ENTRIES)
      this.taskCache.delete(this.taskCache.keys().next().value!);
    return data;
  }

  private async needTask(task: string): Promise<TaskInfo> {
    const info = await findTask(task);
    if (!info)
      throw new SettingsError(`unknown task "${task}": pick a built-in task or an imported data set`);
    return info;
  }

  async addLane(req: CompareRequestOf<'addLane'>): Promise<RaceSnapshot> {
    const race = this.needRace();
    this.idle('adding a method');
    race.addLane(this.sized(req.lane, req.equalBudget, race.settings.seqLen));
    return this.runRace();
  }

  async addOpenedLane(req: CompareRequestOf<'addOpenedLane'>): Promise<RaceSnapshot> {
    const race = this.needRace();
    this.idle('adding an adapter');
    race.addOpenedLane({ name: req.name, config: req.config, weights: new Uint8Array(req.weights) });
    return this.runRace();
  }

  private async runRace(): Promise<RaceSnapshot> {
    const race = this.needRace();
    const c = this.checkpointing;
    let lastWrite = performance.now();
    // Made at the first step, once every lane has had its first evaluation: a lost GPU device
    // takes the race back to a point where all lanes were between steps.
    let recoverable: RecoverableRun | null | undefined;
    await this.gate
      .run(() => {
        this.emit('status', { phase: 'racing', message: `racing ${race.laneStates.length} methods` });
        return race.run({
          checkpoint: () => this.gate.checkpoint(),
          stopped: () => this.gate.stopped,
          pause: (reason) => this.gate.pause(reason),
          guard: async (work) => {
            if (recoverable === undefined)
              recoverable = currentGpuDevice() ? await this.recoverableRace(race) : null;
            return recoverable ? recoverable.attempt(work) : work();
          },
          afterRound: async () => {
            await recoverable?.snapshotIfDue();
            if (!c || performance.now() - lastWrite < c.everyMs) return;
            lastWrite = performance.now();
            await this.writeRaceCheckpoint(race);
          },
        });
      })
      .catch((e: unknown) => {
        // A lane's own step failing fails only that lane (Race.run); this is the rest (evaluations).
        throw outOfMemoryAdvice(e, 'the race', { ...race.settings, model: this.modelId });
      })
      .finally(() => {
        this.checkpointing = null;
        recoverable?.close();
      });
    if (c) await this.dropRaceCheckpoints(race, c.raceId);
    this.emit('status', { phase: 'idle', message: this.gate.stopped ? 'stopped' : 'finished' });
    return this.snapshot();
  }

  /**
   * The race wrapped so that it survives a lost GPU device (train/device-loss.ts): on a loss every
   * lane's adapter and trainer is dropped, the model read again from its files onto the new backend
   * (a new device or wasm), every lane built again on it and put back to the last snapshot (state
   * and history), and the race goes on from there, saying so.
   */
  private async recoverableRace(race: Race): Promise<RecoverableRun> {
    let first = true;
    return RecoverableRun.start({
      fallback: 'wasm',
      snapshotEveryMs: this.deviceSnapshotEveryMs,
      build: async () => {
        if (!first) {
          const baseUrl = this.modelBaseUrl;
          if (!baseUrl)
            throw new NotReadyError(
              'the GPU device was lost and the model cannot be read again: load it again',
            );
          const model = requireGpt2(
            modelFromFiles(this.modelId, await fetchModelFiles(this.fetchBytes, baseUrl)).model,
            'The race',
          );
          try {
            this.model?.dispose(); // its memory went with the device; this only forgets it
          } catch {
            // freeing on a dead device may fail
          }
          this.model = model;
          race.rebuildOn(model);
        }
        first = false;
        return {
          trainers: race.lanesWithTrainers().map((l) => l.trainer),
          save: () => race.laneStates,
          restore: (saved) => {
            for (const st of saved as LaneState[]) race.restoreLane(st.id, st);
          },
          dispose: () => race.dropLaneTensors(),
        };
      },
      onRecovered: (r) => {
        this.emit('status', { phase: 'racing', message: describeRecovery(r) });
      },
    });
  }

  private snapshot(): RaceSnapshot {
    const race = this.needRace();
    return {
      task: race.data.info.id,
      taskType: race.data.info.taskType,
      metric: race.metric,
      lanes: race.laneStates,
      results: raceResults(race.metric, race.laneStates),
    };
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

  async tryAll(req: CompareRequestOf<'tryAll'>): Promise<TryAnswer[]> {
    const { model, tokenizer } = this.need();
    const race = this.needRace();
    this.idle('trying the methods');
    const taskType = race.data.info.taskType;
    const labels = race.data.info.labels;
    const answers: TryAnswer[] = [];
    const lanes: { id: string | null; name: string }[] = [
      { id: null, name: 'Base model' },
      ...race.laneStates.filter((l) => l.status !== 'failed').map((l) => ({ id: l.id, name: l.name })),
    ];
    try {
      for (const lane of lanes) {
        const adapter = race.useLane(lane.id);
        const answer: TryAnswer = { laneId: lane.id, name: lane.name };
        if (taskType === 'CAUSAL_LM') answer.text = await this.continueText(model, tokenizer, adapter, req);
        else if (!adapter?.head) answer.note = 'the base model has no classification head';
        else if (taskType === 'SEQ_CLS') {
          answer.labels = [...labels];
          answer.probs = await classifyText(model, tokenizer, adapter, adapter.head, req.text);
        } else {
          const { words, ids } = await tagWords(model, tokenizer, adapter, adapter.head, req.text);
          Object.assign(answer, { words, tags: ids.map((i) => labels[i] ?? `LABEL_${i}`) });
        }
        answers.push(answer);
      }
    } finally {
      race.useLane(null);
    }
    return answers;
  }

  private async continueText(
    model: DecoderModel,
    tokenizer: TextTokenizer,
    adapter: Adapter | null,
    req: { text: string; maxNewTokens: number },
  ): Promise<string> {
    const promptIds = tokenizer.encode(req.text);
    if (promptIds.length === 0) throw new InputError('the prompt is empty: type some text first');
    const ids = await generate(
      model,
      promptIds,
      {
        maxNewTokens: req.maxNewTokens,
        temperature: 0,
        seed: 0,
        eosTokenId: tokenizer.eosTokenId,
        reservedPositions: reservedPositions(adapter),
      },
      adapterDecorator(model, adapter),
    );
    return tokenizer.decode(ids);
  }

  async nearestTokens(req: CompareRequestOf<'nearestTokens'>): Promise<CompareReplyOf<'nearestTokens'>> {
    const { model, tokenizer } = this.need();
    const race = this.needRace();
    this.idle('reading prompts back');
    // A soft prompt is read from the adapter itself: it need not be on the model.
    const adapter = race.laneAdapter(req.laneId);
    if (adapter.kind !== 'prompt') {
      throw new NotReadyError(
        'only prompt tuning and P-tuning put virtual tokens in the input to read back: pick one of their lanes',
      );
    }
    const prompts = tf.tidy(() => tf.squeeze(adapter.promptEmbeddings(1, false, 0), [0]) as tf.Tensor2D);
    const rows = await nearestTokenIds(model, prompts, req.k);
    prompts.dispose();
    return {
      laneId: req.laneId,
      rows: rows.map((r) => ({ tokens: r.ids.map((id) => tokenizer.decode([id])), cosines: r.cosines })),
    };
  }

  async rankHistory(req: CompareRequestOf<'rankHistory'>): Promise<CompareReplyOf<'rankHistory'>> {
    const race = this.needRace();
    this.idle('reading the rank budget');
    const budget = race.laneAdapter(req.laneId).rankBudget?.();
    if (!budget) {
      const movers = METHOD_INFO.filter((m) => m.capabilities.rankHistory).map((m) => m.label);
      throw new NotReadyError(
        `only ${movers.join(' and ')} ${movers.length === 1 ? 'moves its' : 'move their'} rank budget: pick a lane of ${movers.join(' or ')}`,
      );
    }
    return { laneId: req.laneId, ...budget };
  }

  async parameterMaps(): Promise<CompareReplyOf<'parameterMaps'>> {
    const { model } = this.need();
    const race = this.needRace();
    this.idle('drawing the parameters');
    return race.laneStates.map((l) => {
      const adapter = race.laneAdapter(l.id);
      const n = (adapter.config as { numVirtualTokens?: number }).numVirtualTokens ?? 0;
      const sizes = [...adapter.trainable()].map(([k, v]) => [k, v.size] as [string, number]);
      return parameterMap(l.id, l.name, adapter.kind, model.config.nLayer, n, sizes, mapModel(model));
    });
  }

  async preview(req: CompareRequestOf<'preview'>): Promise<CompareReplyOf<'preview'>> {
    const { model, tokenizer } = this.need();
    this.idle('drawing the parameters');
    const info = await this.needTask(req.task);
    // The finished race's adapters leave the model while the previews are built on it.
    this.current?.useLane(null);
    const run = { steps: 1, seqLen: req.seqLen, seed: 0 };
    return req.lanes.map((lane, i) => {
      const { method, config } = planAdapter(model, lane.method, lane.config ?? {}, info, run, this.modelId);
      const adapter = createAdapter(model, tokenizer, method, config, info, 0);
      try {
        const n = (adapter.config as { numVirtualTokens?: number }).numVirtualTokens ?? 0;
        const sizes = [...adapter.trainable()].map(([k, v]) => [k, v.size] as [string, number]);
        return parameterMap(
          `preview-${i + 1}`,
          lane.name ?? method.label,
          adapter.kind,
          model.config.nLayer,
          n,
          sizes,
          mapModel(model),
        );
      } finally {
        adapter.dispose();
      }
    });
  }

  async offloadTrial(req: CompareRequestOf<'offloadTrial'>): Promise<CompareReplyOf<'offloadTrial'>> {
    const { model, tokenizer } = this.need();
    this.idle('an offload trial');
    const info = await this.needTask(req.task);
    const data = await this.taskData(info, req.corpusUrl, { seqLen: req.seqLen, evalExamples: 1 });
    this.current?.useLane(null);
    // The trial holds the gate (other requests are refused) but has no steps to pause or stop at.
    return this.gate.run(async () => {
      this.emit('status', { phase: 'racing', message: `offload trial: stage ${req.offload.stage}` });
      // The trial's pages are cleared at its end: nothing of it stays in the browser's storage.
      const opened: PageStore[] = [];
      try {
        return await runOffloadTrial(model, tokenizer, this.modelId, data, req, async (kind) => {
          const store = await runPageStore(kind, 'offload-trial', req.offload.device);
          opened.push(store);
          return store;
        });
      } finally {
        for (const s of opened) await s.clear();
        this.emit('status', { phase: 'idle', message: 'offload trial finished' });
      }
    });
  }

  async swarmTrial(req: CompareRequestOf<'swarmTrial'>): Promise<CompareReplyOf<'swarmTrial'>> {
    const { model, tokenizer } = this.need();
    this.idle('a swarm trial');
    const info = await this.needTask(req.task);
    const data = await this.taskData(info, req.corpusUrl, { seqLen: req.seqLen, evalExamples: 1 });
    this.current?.useLane(null);
    return this.gate.run(async () => {
      this.emit('status', { phase: 'racing', message: `swarm trial: ${req.peers} spans` });
      try {
        return await runSwarmTrial(
          requireGpt2(model, 'The swarm lesson'),
          tokenizer,
          this.modelId,
          data,
          req,
        );
      } finally {
        this.emit('status', { phase: 'idle', message: 'swarm trial finished' });
      }
    });
  }

  /** For tests: tensors currently allocated. */
  numTensors(): number {
    return tf.memory().numTensors;
  }
}
