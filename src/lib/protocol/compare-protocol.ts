/**
 * The typed message map between the Compare screen and its worker (src/workers/compare.worker.ts),
 * in the same shape as the Lab's (lab-protocol.ts): a request kind fixes its payload and reply;
 * events stream while a race runs. Everything here is plain data (structured-clone safe).
 */
import type { BackendChoice, BackendInfo } from '../backend/backend';
import type { EvalPoint } from '../data/task-data';
import type { LaneSpec, LaneState, RaceSettings, StepPoint } from '../race/race';
import type { RaceResults } from '../race/results';
import type { ParameterMap } from '../race/where';
import type { ModelSummary } from './lab-protocol';
import type { OffloadRequest } from '../offload/session';
import type { PagerStats } from '../offload/layer-pager';

export type { EvalPoint, LaneSpec, LaneState, RaceSettings, StepPoint, RaceResults, ParameterMap };

export interface RaceRequest {
  /** Task id: a built-in task (src/lib/data/tasks/registry.ts) or an imported data set's id. */
  task: string;
  /** Folder (URL) holding the task's split files. */
  corpusUrl: string;
  settings: RaceSettings;
  lanes: LaneSpec[];
  /**
   * Equal-budget mode: size every lane to about this many adapter parameters (its size knob);
   * null or absent: each lane as given.
   */
  equalBudget?: number | null;
  /** Classification: validation examples scored (default EVAL_EXAMPLES); fewer makes evaluation quicker. */
  evalExamples?: number;
  /** Sequence classification: a manual prompt around each input, `"... {text} ..."` (P-tuning's MP). */
  template?: string;
  /**
   * Checkpoints of every lane (weights, optimizer, position, history) in IndexedDB after a round
   * once `everyMs` has passed since the last, under `raceId`; removed when the race ends.
   */
  checkpoint?: { raceId: string; everyMs: number };
  /** Starts the race from its lanes' last checkpoints (a race whose worker died): same request, resume: true. */
  resume?: boolean;
}

/** A race's lanes' checkpoints: what a resume would start from. */
export interface RaceCheckpoint {
  raceId: string;
  lanes: { laneId: string; name: string; step: number }[];
  savedAt: number;
}

/** What a race has become: every lane (steps, evaluations, ledger) and the results table. */
export interface RaceSnapshot {
  task: string;
  taskType: string;
  metric: RaceResults['metric'];
  lanes: LaneState[];
  results: RaceResults;
}

/** One answer of "try it" per lane, and the base model's (id null). */
export interface TryAnswer {
  laneId: string | null;
  name: string;
  /** CAUSAL_LM: the continuation. */
  text?: string;
  /** SEQ_CLS: class probabilities in label order. */
  labels?: string[];
  probs?: number[];
  /** TOKEN_CLS: a tag per whitespace-separated word. */
  words?: string[];
  tags?: string[];
  /** Why this lane could not answer (e.g. the base has no classification head). */
  note?: string;
}

/** For a soft prompt: each virtual token's nearest vocabulary tokens by cosine similarity. */
export interface NearestTokens {
  laneId: string;
  /** One row per virtual token: the k nearest tokens (decoded) and their cosine similarities. */
  rows: { tokens: string[]; cosines: number[] }[];
}

/** AdaLoRA: the rank each adapted matrix holds after each budget allocation. */
export interface RankHistory {
  laneId: string;
  /** Matrix names in row order, e.g. "h.0.attn.c_attn". */
  matrices: string[];
  /** The initial rank of every matrix. */
  initR: number;
  points: { step: number; ranks: number[] }[];
}

/** A few steps of one method under offload settings and a memory budget (engine/offload-trial.ts). */
export interface OffloadTrialRequest {
  task: string;
  corpusUrl: string;
  /** Registry cliName and config overrides, as a race lane. */
  method: string;
  config?: Record<string, unknown>;
  lr?: number;
  steps: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  offload: OffloadRequest;
  /** Backend memory a step may peak at, in MiB; null: no limit. */
  memoryBudgetMB: number | null;
}

export interface OffloadTrial {
  /** Null when every step ran; else why the trial stopped (over the budget). */
  refused: string | null;
  /** Per completed step. */
  losses: number[];
  ms: number[];
  /** Peak backend bytes of each step (the refused step's included, last). */
  peakBytes: number[];
  /** Backend bytes between steps (what stays resident). */
  residentBytes: number;
  /** All frozen layer weights at float32, for scale. */
  layerBytes: number;
  pager: PagerStats | null;
  notes: string[];
}

/**
 * A few training steps through a swarm of peers in the compare worker (engine/swarm-trial.ts): at
 * each emulated link latency, and once with a peer killed mid-run.
 */
export interface SwarmTrialRequest {
  task: string;
  corpusUrl: string;
  method: string;
  config?: Record<string, unknown>;
  lr?: number;
  steps: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  /** Spans of the chain (machines a request passes through); each is held by two peers. */
  peers: number;
  /** One-way latency of every link, ms: one run of `steps` at each. */
  latenciesMs: number[];
  /** The latency of the run in which a peer dies. */
  failureLatencyMs: number;
}

export interface SwarmTrialRun {
  latencyMs: number;
  losses: number[];
  /** Wall time of each step, ms. */
  ms: number[];
  /** Bytes both ways and requests over every link of the run. */
  bytes: number;
  requests: number;
  /** Peer failures the run survived, the peer killed and the step it died in (failure run only). */
  failures: number;
  killed: string | null;
  killedAtStep: number | null;
}

export interface SwarmTrial {
  /** The chain's spans: blocks [start, end) each. */
  spans: [number, number][];
  /** The same steps in the worker alone, no swarm. */
  local: { losses: number[]; ms: number[] };
  runs: SwarmTrialRun[];
  failure: SwarmTrialRun;
}

export interface CompareRequests {
  init: [{ backend: BackendChoice; wasmBaseUrl: string }, BackendInfo];
  loadModel: [{ id: string; baseUrl: string }, ModelSummary];
  /** Adapter parameters per method at its defaults for the task, and the equal budget's default. */
  budget: [{ task: string; seqLen: number }, { defaultBudget: number }];
  /** Runs a new race (the old one is freed) to its end; events stream meanwhile. */
  race: [RaceRequest, RaceSnapshot];
  /** Adds a lane to the finished race and runs it to its end. */
  addLane: [{ lane: LaneSpec; equalBudget?: number | null }, RaceSnapshot];
  /**
   * A saved adapter (opened from PEFT, or trained earlier) joins the finished race as an evaluated
   * lane: checked against the model and the race's task, scored on its held-out data, never trained.
   */
  addOpenedLane: [{ name: string; config: string; weights: ArrayBuffer }, RaceSnapshot];
  pause: [Record<string, never>, void];
  resume: [Record<string, never>, void];
  stop: [Record<string, never>, void];
  /** The base model and every lane answering the same input. */
  tryAll: [{ text: string; maxNewTokens: number }, TryAnswer[]];
  nearestTokens: [{ laneId: string; k: number }, NearestTokens];
  rankHistory: [{ laneId: string }, RankHistory];
  /** Where each lane's trainable parameters live in the model. */
  parameterMaps: [Record<string, never>, ParameterMap[]];
  /** Where these lanes' parameters would live, before anything trains (adapters built and freed). */
  preview: [{ task: string; seqLen: number; lanes: LaneSpec[] }, ParameterMap[]];
  /** The lanes' checkpoints of a race, or null when it has none (a race whose worker died). */
  raceCheckpoint: [{ raceId: string }, RaceCheckpoint | null];
  /** Deletes a race's lanes' checkpoints (an interrupted race the person does not resume). */
  deleteRaceCheckpoint: [{ raceId: string }, void];
  /** A few steps of one method under offload settings and a memory budget (the finished race is kept). */
  offloadTrial: [OffloadTrialRequest, OffloadTrial];
  /** A few steps through a swarm of peers at several link latencies, and with a peer killed. */
  swarmTrial: [SwarmTrialRequest, SwarmTrial];
}

export type CompareKind = keyof CompareRequests;
export type CompareRequestOf<K extends CompareKind> = CompareRequests[K][0];
export type CompareReplyOf<K extends CompareKind> = CompareRequests[K][1];

export interface CompareEvents {
  lane: LaneState;
  step: { laneId: string; point: StepPoint };
  eval: { laneId: string; point: EvalPoint };
  status: { phase: 'loading' | 'tokenizing' | 'racing' | 'paused' | 'idle'; message: string };
  /** Every lane's checkpoint was written (or, with `resumed`, read at the start). */
  checkpoint: RaceCheckpoint & { bytes: number; resumed: boolean };
}
export type CompareEventKind = keyof CompareEvents;

export type CompareApi = {
  [K in CompareKind]: (req: CompareRequestOf<K>) => Promise<CompareReplyOf<K>>;
};

export type CompareEventSink = <E extends CompareEventKind>(kind: E, data: CompareEvents[E]) => void;
