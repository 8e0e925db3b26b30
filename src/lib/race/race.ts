/**
 * A race: several methods trained on one frozen base, the same task data, the same seed and so
 * the same batches in the same order, in interleaved turns (one optimizer step per lane per
 * round), so no lane gets more of the machine than another while the race runs. Each lane is a
 * resident adapter (AdapterSet) with its own Trainer (optimizer, RNG); before a lane steps or is
 * evaluated it becomes the active adapter. A finished race can take another lane and run again:
 * the new lane catches up alone, the finished ones are not touched.
 */
import type { LaneMethod } from '../peft/method-config';
import * as tf from '@tensorflow/tfjs';
import { AdapterMismatchError, BusyError, CancelledError, NotReadyError, SettingsError } from '../errors';
import { loadAdapterAndMethod } from '../io/peft-format';
import type { DecoderModel } from '../model/decoder';
import { countParameters } from '../model/family';
import { AdapterSet } from '../peft/adapter-set';
import { methodInfo } from '../peft/catalog';
import { countTrainable } from '../peft/state';
import type { Adapter, PeftConfigBase, PeftMethod } from '../peft/types';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { Trainer } from '../train/trainer';
import { measureLedger, predictLedger } from './ledger';
import type { MemoryLedger } from './ledger';
import { createAdapter, planAdapter } from '../train/plan';
import { metricOf } from '../data/task-data';
import { evaluateTask, taskBatchSource } from '../train/task-eval';
import type { EvalPoint, TaskData, TaskMetric } from '../data/task-data';
import { isOutOfMemory, outOfMemoryAdvice } from '../backend/out-of-memory';

/**
 * A lane: its method (registry cliName, e.g. "lora") with config fields (PEFT's camelCase names) over
 * the method's defaults for the task, typed by the method (LaneMethod), and:
 */
export type LaneSpec = LaneMethod & {
  /** Peak learning rate; the method's default when absent. */
  lr?: number;
  /** Shown name; defaults to the method's label (with a number when a method runs twice). */
  name?: string;
};

export interface RaceSettings {
  /** Optimizer steps per lane (and the LR schedule's length). */
  steps: number;
  /** Optional: a lane also stops once its own training time passes this many ms. */
  timeBudgetMs?: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  warmupSteps?: number;
  /** Evaluate every this many steps (0: only before and after). */
  evalEvery: number;
  maxGradNorm?: number;
}

export interface StepPoint {
  step: number;
  loss: number;
  lr: number;
  ms: number;
  tokens: number;
}

export type LaneStatus = 'ready' | 'training' | 'done' | 'stopped' | 'failed';

export interface LaneState {
  id: string;
  name: string;
  method: string;
  peftType: string;
  config: PeftConfigBase;
  lr: number;
  trainableParams: number;
  /** Parameters of the adapted model (base + adapter parameters outside the base + head). */
  totalParams: number;
  status: LaneStatus;
  /**
   * 'opened': a saved adapter (one opened from PEFT, or trained earlier) that joined as an evaluated
   * lane: scored on the race's held-out data, never trained here (no steps, no optimizer).
   */
  origin?: 'opened';
  error?: string;
  /** Steps skipped because the loss or a gradient was not finite (each halved the lane's rate). */
  skippedSteps?: number;
  steps: StepPoint[];
  evals: EvalPoint[];
  /** Training time (optimizer steps only, not evaluation or switching). */
  trainMs: number;
  tokens: number;
  ledger: { predicted: MemoryLedger; measured: MemoryLedger | null };
}

export interface RaceHooks {
  onStep?(lane: LaneState, point: StepPoint): void;
  onEval?(lane: LaneState, point: EvalPoint): void;
  onLane?(lane: LaneState): void;
}

/** How the runner is steered from outside (the worker's pause/resume/stop). */
export interface RaceControl {
  /** Awaited between steps: resolve at once to go on, later to pause. */
  checkpoint?(): Promise<void>;
  stopped?(): boolean;
  /** Awaited after each round (every running lane stepped once): where checkpoints are written. */
  afterRound?(): Promise<void>;
  /**
   * Runs one lane's training step (the work, to be run again if it must): the engine makes it
   * survive a lost GPU device (train/device-loss.ts's RecoverableRun.attempt). Without it the work
   * runs as it is.
   */
  guard?<T>(work: () => Promise<T>): Promise<T>;
  /**
   * A lane's step ran out of memory (the step was not made): pause the race with this message, so
   * the next `checkpoint()` waits. Without it the lane fails alone, as on any other error.
   */
  pause?(reason: string): void;
}

function headParams(adapter: Adapter): number {
  let n = 0;
  for (const p of adapter.head?.params().values() ?? []) n += p.variable.size;
  return n;
}

interface Lane {
  state: LaneState;
  method: PeftMethod<PeftConfigBase>;
  /** The planned config, to build the lane again on another backend (rebuildOn). */
  config: PeftConfigBase;
  adapter: Adapter;
  /** Null for an opened lane, which is only evaluated. */
  trainer: Trainer | null;
  /** An opened lane's files, to load it again on another backend (rebuildOn). */
  opened?: OpenedLaneSpec;
}

/** A saved adapter's PEFT files, to join a race as an evaluated lane (Race.addOpenedLane). */
export interface OpenedLaneSpec {
  /** Shown name (the saved adapter's). */
  name: string;
  /** adapter_config.json text. */
  config: string;
  /** adapter_model.safetensors bytes. */
  weights: Uint8Array;
}

export class Race {
  readonly metric: TaskMetric;
  private adapters = new AdapterSet();
  private readonly lanes: Lane[] = [];
  private nextId = 1;
  private running = false;

  constructor(
    /** The base; replaced only by rebuildOn (the same base read again onto a new backend). */
    public model: DecoderModel,
    private readonly tokenizer: TextTokenizer,
    readonly modelId: string,
    readonly data: TaskData,
    readonly settings: RaceSettings,
    private readonly hooks: RaceHooks = {},
  ) {
    if (settings.seqLen > model.config.nPositions) {
      throw new SettingsError(
        `sequence length ${settings.seqLen} exceeds the model's ${model.config.nPositions} positions: shorten it`,
      );
    }
    this.metric = metricOf(data.info);
  }

  get laneStates(): LaneState[] {
    return this.lanes.map((l) => l.state);
  }

  /**
   * Builds a lane's adapter and trainer. A spec the model or task cannot take is refused here with
   * the method's own message, before anything trains.
   */
  addLane(spec: LaneSpec): LaneState {
    if (this.running) throw new BusyError('the race is running: add a method when it has finished');
    const s = this.settings;
    const { method, config } = this.planLane(spec);
    const id = `lane-${this.nextId++}`;
    const adapter = this.adapters.add(id, () =>
      createAdapter(this.model, this.tokenizer, method, config, this.data.info, s.seed),
    );
    const lr = spec.lr ?? methodInfo(method.cliName).defaultLr;
    const trainer = this.newTrainer(adapter, lr);
    const trainable = countTrainable(adapter);
    const same = this.lanes.filter((l) => l.method.cliName === method.cliName).length;
    const state: LaneState = {
      id,
      name: spec.name ?? (same > 0 ? `${method.label} ${same + 1}` : method.label),
      method: method.cliName,
      peftType: method.peftType,
      config: adapter.config,
      lr,
      trainableParams: trainable,
      // As PEFT's print_trainable_parameters: the base, plus what the adapter adds (head included).
      totalParams:
        countParameters(this.model.config) + (method.kind === 'full' ? headParams(adapter) : trainable),
      status: 'ready',
      steps: [],
      evals: [],
      trainMs: 0,
      tokens: 0,
      ledger: {
        predicted: predictLedger(this.model.config, adapter, method.kind, {
          batchSize: s.batchSize,
          seqLen: s.seqLen,
          taskType: this.data.info.taskType,
        }),
        measured: null,
      },
    };
    this.lanes.push({ state, method, config, adapter, trainer });
    this.hooks.onLane?.(state);
    return state;
  }

  private newTrainer(adapter: Adapter, lr: number): Trainer {
    const s = this.settings;
    return new Trainer(this.model, adapter, taskBatchSource(this.data, s.seqLen), {
      steps: s.steps,
      lr,
      warmupSteps: s.warmupSteps,
      batchSize: s.batchSize,
      seqLen: s.seqLen,
      seed: s.seed,
      maxGradNorm: s.maxGradNorm ?? 1.0,
    });
  }

  /**
   * Frees every lane's adapter and trainer for a rebuild after the GPU device was lost (their memory
   * went with it; freeing may fail there, which is ignored). The lanes' states stay.
   */
  dropLaneTensors(): void {
    for (const l of this.lanes) {
      try {
        l.trainer?.dispose();
      } catch {
        // on a dead device
      }
    }
    try {
      this.adapters.dispose();
    } catch {
      // on a dead device
    }
    this.adapters = new AdapterSet();
  }

  /**
   * Builds every lane again on `model`, the same base read again onto a new backend after the GPU
   * device was lost (after dropLaneTensors): new adapters and trainers from each lane's method,
   * config, rate and seed, in the order the lanes were added. Each lane's state and history stay;
   * the caller loads each trainer's state back (train/device-loss.ts).
   */
  rebuildOn(model: DecoderModel): void {
    if (
      model.config.nPositions !== this.model.config.nPositions ||
      model.config.nEmbd !== this.model.config.nEmbd
    )
      throw new SettingsError('a race is rebuilt on the same base model only: start the race again');
    this.model = model;
    for (const l of this.lanes) {
      const opened = l.opened;
      if (opened) {
        // Its weights came from its files, not from training here: read them again.
        l.adapter = this.adapters.add(
          l.state.id,
          () =>
            loadAdapterAndMethod(model, { config: opened.config, weights: opened.weights }, opened.name)
              .adapter,
        );
        continue;
      }
      l.adapter = this.adapters.add(l.state.id, () =>
        createAdapter(model, this.tokenizer, l.method, l.config, this.data.info, this.settings.seed),
      );
      l.trainer = this.newTrainer(l.adapter, l.state.lr);
    }
  }

  /** Every lane's state and trainer, for writing checkpoints between rounds (engine/compare-engine.ts). */
  lanesWithTrainers(): { state: LaneState; trainer: Trainer }[] {
    // An opened lane has no trainer and nothing to keep: it is added only once a race has finished.
    return this.lanes.flatMap((l) => (l.trainer ? [{ state: l.state, trainer: l.trainer }] : []));
  }

  /**
   * Puts back a lane's history (steps, evaluations, time, status) after its trainer was restored
   * from a checkpoint written at the same step: a lane that was training runs on from there without
   * the evaluation a new lane starts with; a finished one stays finished.
   */
  restoreLane(id: string, saved: LaneState): void {
    const lane = this.lanes.find((l) => l.state.id === id);
    if (!lane)
      throw new NotReadyError(`no lane "${id}" in this race: the checkpoint belongs to another race`);
    const { steps, evals, trainMs, tokens, status, error, skippedSteps, ledger } = saved;
    const st = lane.state;
    Object.assign(st, {
      steps,
      evals,
      trainMs,
      tokens,
      status,
      ledger: { ...st.ledger, measured: ledger.measured },
    });
    if (error !== undefined) st.error = error;
    if (skippedSteps !== undefined) st.skippedSteps = skippedSteps;
    this.hooks.onLane?.(st);
  }

  /**
   * A saved adapter joins as an evaluated lane: loaded onto the model with every check an opened
   * adapter gets (peft_type, task_type and head, target modules, shapes), refused unless it answers
   * this race's task (its task type, and a head with the task's number of classes), then scored on
   * the race's held-out data when the race runs, as the trained lanes are at their end. It never
   * trains: the race's equal budget is of steps taken here, and its own training happened
   * elsewhere, so training it on would mix two budgets (and change a person's adapter).
   */
  addOpenedLane(spec: OpenedLaneSpec): LaneState {
    if (this.running) throw new BusyError('the race is running: add an adapter when it has finished');
    const s = this.settings;
    const id = `lane-${this.nextId++}`;
    const info = this.data.info;
    let method: PeftMethod<PeftConfigBase> | null = null;
    const adapter = this.adapters.add(id, () => {
      const loaded = loadAdapterAndMethod(
        this.model,
        { config: spec.config, weights: spec.weights },
        spec.name,
      );
      method = loaded.method;
      const a = loaded.adapter;
      const problem =
        a.config.taskType !== info.taskType
          ? `${spec.name} is a ${a.config.taskType} adapter and the race's task ${info.title} is ${info.taskType}: add it to a ${a.config.taskType} race`
          : info.taskType !== 'CAUSAL_LM' && a.head?.numLabels !== info.labels.length
            ? `${spec.name}'s head has ${a.head?.numLabels ?? 0} classes and ${info.title} has ${info.labels.length}: add it to a race on a task with ${a.head?.numLabels ?? 0} classes`
            : null;
      if (problem) {
        a.dispose();
        throw new AdapterMismatchError(problem, info.taskType !== a.config.taskType ? 'task-type' : 'head');
      }
      return a;
    });
    const m = method as PeftMethod<PeftConfigBase> | null;
    if (!m) throw new NotReadyError(`${spec.name} did not load`);
    const trainable = countTrainable(adapter);
    const state: LaneState = {
      id,
      name: spec.name,
      method: m.cliName,
      peftType: m.peftType,
      config: adapter.config,
      lr: 0,
      trainableParams: trainable,
      totalParams: countParameters(this.model.config) + (m.kind === 'full' ? headParams(adapter) : trainable),
      status: 'ready',
      origin: 'opened',
      steps: [],
      evals: [],
      trainMs: 0,
      tokens: 0,
      ledger: {
        // What training it would take, for comparison; nothing trains, so nothing is measured.
        predicted: predictLedger(this.model.config, adapter, m.kind, {
          batchSize: s.batchSize,
          seqLen: s.seqLen,
          taskType: info.taskType,
        }),
        measured: null,
      },
    };
    this.lanes.push({ state, method: m, config: adapter.config, adapter, trainer: null, opened: spec });
    this.hooks.onLane?.(state);
    return state;
  }

  /** Checks a lane's method and config against the model and task (no tensors): refused here as addLane would. */
  planLane(spec: LaneSpec): ReturnType<typeof planAdapter> {
    const s = this.settings;
    return planAdapter(
      this.model,
      spec.method,
      spec.config ?? {},
      this.data.info,
      { steps: s.steps, seqLen: s.seqLen, seed: s.seed },
      this.modelId,
    );
  }

  /** The adapter of a lane, active on the model (for trying it out between runs). */
  useLane(id: string | null): Adapter | null {
    if (this.running) throw new BusyError('the race is running: try the methods when it has finished');
    if (id !== null) this.laneAdapter(id);
    this.adapters.use(id);
    return this.adapters.active;
  }

  /**
   * A lane's adapter as it is, parked or not, for reading its config, sizes or history: nothing is
   * put on or taken off the model (for a full fine-tune that would copy every weight twice).
   */
  laneAdapter(id: string): Adapter {
    const lane = this.lanes.find((l) => l.state.id === id);
    if (!lane) throw new NotReadyError(`no lane "${id}" in this race: pick one of its lanes`);
    return lane.adapter;
  }

  private done(l: Lane): boolean {
    const s = this.settings;
    return (
      l.state.status === 'failed' ||
      l.state.status === 'stopped' ||
      l.trainer === null ||
      l.trainer.step >= s.steps ||
      (s.timeBudgetMs !== undefined && l.state.trainMs >= s.timeBudgetMs)
    );
  }

  private async evaluate(l: Lane): Promise<void> {
    this.adapters.use(l.state.id);
    const s = this.settings;
    const score = await evaluateTask(this.model, l.adapter, this.data, {
      batchSize: s.batchSize,
      seqLen: s.seqLen,
    });
    const point: EvalPoint = { step: l.trainer?.step ?? 0, ...score };
    l.state.evals.push(point);
    this.hooks.onEval?.(l.state, point);
  }

  private async step(l: Lane, control: RaceControl): Promise<void> {
    if (!l.trainer) return; // an opened lane has no steps
    // Read afresh each time: after a lost GPU device the lane's trainer and adapter are new ones.
    const work = (): ReturnType<Trainer['trainStep']> => {
      if (!l.trainer) throw new NotReadyError(`the ${l.state.name} lane has no trainer`);
      this.adapters.use(l.state.id);
      return l.trainer.trainStep();
    };
    const train = (): ReturnType<Trainer['trainStep']> => (control.guard ? control.guard(work) : work());
    // Memory is measured on the second step: the optimizer state exists from the first one.
    const measure = l.trainer.step === 1 && l.state.ledger.measured === null;
    const before = measure ? tf.memory().numBytes : 0;
    let st: Awaited<ReturnType<Trainer['trainStep']>>;
    if (measure) {
      let got: typeof st | undefined;
      const prof = await tf.profile(async () => {
        got = await train();
      });
      st = got!;
      l.state.ledger.measured = measureLedger(this.model, l.adapter, l.trainer, l.method.kind, {
        peakBytes: prof.peakBytes,
        bytesBefore: before,
      });
      this.hooks.onLane?.(l.state); // the measured ledger is news: the screen shows it live
    } else {
      st = await train();
    }
    l.state.trainMs += st.ms;
    if (st.skipped) {
      // Nothing was updated: no point to chart; the lane says how many it skipped.
      l.state.skippedSteps = l.trainer.skippedSteps;
      this.hooks.onLane?.(l.state);
      return;
    }
    const point: StepPoint = { step: st.step, loss: st.loss, lr: st.lr, ms: st.ms, tokens: st.tokens };
    l.state.steps.push(point);
    l.state.tokens += st.tokens;
    this.hooks.onStep?.(l.state, point);
    const s = this.settings;
    if (s.evalEvery > 0 && st.step % s.evalEvery === 0 && !this.done(l)) await this.evaluate(l);
  }

  private async finish(l: Lane, status: LaneStatus, error?: string): Promise<void> {
    if (status === 'done' || status === 'stopped') {
      if (l.state.evals.at(-1)?.step !== (l.trainer?.step ?? 0)) await this.evaluate(l);
    }
    l.state.status = status;
    if (error !== undefined) l.state.error = error;
    this.hooks.onLane?.(l.state);
  }

  /**
   * Runs every unfinished lane to its budget, one step per lane per round. A lane whose loss
   * turns NaN fails alone (its message kept); the others go on. Returns when all are finished or
   * control says stop (lanes then end 'stopped', evaluated where they are).
   */
  async run(control: RaceControl = {}): Promise<LaneState[]> {
    if (this.running) throw new BusyError('the race is already running: stop it or let it finish');
    this.running = true;
    try {
      // Lanes restored from a checkpoint mid-race ('training') go on where they were.
      const todo = this.lanes.filter((l) => l.state.status === 'ready' || l.state.status === 'training');
      for (const l of todo) {
        if (l.state.status === 'training') continue;
        await this.evaluate(l);
        // An opened lane is scored once and is done: it takes no steps.
        l.state.status = l.trainer ? 'training' : 'done';
        this.hooks.onLane?.(l.state);
      }
      let active = todo.filter((l) => l.trainer !== null);
      while (active.length > 0) {
        for (const l of active) {
          for (;;) {
            await control.checkpoint?.();
            if (control.stopped?.()) break;
            try {
              await this.step(l, control);
            } catch (e) {
              if (e instanceof CancelledError) throw e;
              if (l.trainer && l.trainer.skippedSteps > 0) l.state.skippedSteps = l.trainer.skippedSteps;
              const err = outOfMemoryAdvice(e, `the ${l.state.name} lane`, {
                batchSize: this.settings.batchSize,
                seqLen: this.settings.seqLen,
                model: this.modelId,
              });
              // Every lane has the same batch and length, so the next would run out as well: the
              // race waits with every lane as it was (the failed step was not made), saying what
              // to lower; resume tries the step again, stop ends every lane where it is.
              if (control.pause && isOutOfMemory(e)) {
                control.pause(`paused: ${(err as Error).message}`);
                continue;
              }
              await this.finish(l, 'failed', (err as Error).message);
            }
            break;
          }
          if (control.stopped?.()) break;
        }
        if (control.stopped?.()) {
          for (const l of active) if (l.state.status === 'training') await this.finish(l, 'stopped');
          break;
        }
        for (const l of active)
          if (l.state.status === 'training' && this.done(l)) await this.finish(l, 'done');
        active = active.filter((l) => l.state.status === 'training');
        if (active.length > 0) await control.afterRound?.();
      }
    } finally {
      this.running = false;
      // No lane stays on the model after a run: another race or the base can use it.
      this.adapters.use(null);
    }
    return this.laneStates;
  }

  /** Frees every lane's adapter, optimizer state and head; the base model is the caller's. */
  dispose(): void {
    for (const l of this.lanes) l.trainer?.dispose();
    this.adapters.dispose();
    this.lanes.length = 0;
  }
}
