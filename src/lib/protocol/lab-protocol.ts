/**
 * The typed message map between the UI and the training worker. The request kind fixes both the
 * payload and the reply type; events flow from the worker while a request runs. Errors cross as
 * {name, message} (src/lib/errors.ts) and are rebuilt as the named class.
 */
import type { BackendChoice, BackendInfo } from '../backend/backend';
import type { EvalPoint, TaskMetric } from '../data/task-data';
import type { CheckpointManifest } from '../offload/checkpoints';
import type { MethodRequest } from '../peft/method-config';
import type { OffloadRequest, OffloadSnapshot } from '../offload/session';
import type { ModelFamily } from '../model/family';
import type { CombinationType, CombineOptions } from '../peft/lora/combine-types';

export type {
  CheckpointManifest,
  CombinationType,
  CombineOptions,
  EvalPoint,
  OffloadRequest,
  OffloadSnapshot,
  TaskMetric,
};

export interface ModelSummary {
  id: string;
  label: string;
  /** Which decoder family config.json names (the Lab's module names and methods follow it). */
  family: ModelFamily;
  /** One line, e.g. "Llama (LlamaForCausalLM), 2 layers, 4 heads / 2 key-value heads, RoPE theta 10,000". */
  architecture: string;
  params: number;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  /** Key/value heads: fewer than nHead with grouped-query attention. */
  nKvHead: number;
  /** Rotary base of the Llama family; null for GPT-2's learned positions. */
  ropeTheta: number | null;
  vocabSize: number;
  nPositions: number;
  /** Size of the weights in bytes (all shards together). */
  bytes: number;
}

export interface ModelFileBytes {
  config: ArrayBuffer;
  /** model.safetensors, or every shard model.safetensors.index.json names. */
  weights: ArrayBuffer | ArrayBuffer[];
  /** The shards' file names, in `weights`' order (for messages). */
  weightFileNames?: string[];
  tokenizer: ArrayBuffer;
}

export interface TrainSettings {
  steps: number;
  lr: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  warmupSteps: number;
  /** Evaluate on held-out data every this many steps (0: only before and after). */
  evalEvery: number;
  /** Micro-batches of batchSize summed per optimizer step (DeepSpeed's gradient_accumulation_steps); default 1. */
  gradAccumSteps?: number;
  /** Clip the gradients' global norm at this (0: no clipping); default 1.0. */
  maxGradNorm?: number;
  /**
   * Hold the frozen linear-layer matrices as f16 halves (half their GPU memory; each weight rounded
   * to the nearest f16 once): webgpu only, adapter methods only (train/weights-f16-rules.ts says
   * which; a run that cannot is refused with SettingsError). Off or absent: f32.
   */
  weightsF16?: boolean;
}

/**
 * `method`: registry cliName, e.g. "lora"; `config`: that method's fields (camelCase, PEFT names)
 * over `method.defaults(taskType)`, so a classification task gets LoRA's modulesToSave for its head.
 */
export type TrainRequest = MethodRequest & {
  train: TrainSettings;
  /** Built-in task id (src/lib/data/tasks/registry.ts); default 'moby-dick'. */
  task?: string;
  /**
   * Folder with the task's train and validation splits, as the registry names them: train.txt and
   * validation.txt (CAUSAL_LM) or train.jsonl and validation.jsonl (SEQ_CLS, TOKEN_CLS).
   */
  corpusUrl: string;
  /** Offload settings (ZeRO stage, memory budget, prefetch, int8, checkpointing); absent: all resident. */
  offload?: OffloadRequest;
  /**
   * Write a checkpoint to IndexedDB every `every` steps under `runId` (resumable after a reload or
   * a crashed worker), and, with `everyMs`, whenever that much training time has passed since the
   * last one (where the runtime has no IndexedDB, the timed ones are skipped).
   */
  checkpoint?: { runId: string; every: number; everyMs?: number };
  /** Resume `checkpoint.runId` from its last complete checkpoint (the request must match the run's). */
  resume?: boolean;
};

export interface TrainProgress {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  ms: number;
  tokensPerSec: number;
  gradNorm: number;
}

export interface TrainResult {
  steps: number;
  stopped: boolean;
  finalLoss: number;
  evalBefore: EvalPoint;
  evalAfter: EvalPoint;
  trainableParams: number;
  totalParams: number;
  method: string;
  peftType: string;
  task: string;
  taskType: string;
  /** Which number EvalPoint.metric holds. */
  metric: TaskMetric;
  /** Validation examples scored (classification: at most 256 of them); 0 for CAUSAL_LM (token windows). */
  evalExamples: number;
}

export interface GenerateRequest {
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  /** 0 or absent: off. */
  topK?: number;
  topP?: number;
  /** transformers' repetition_penalty; 1 or absent: off. */
  repetitionPenalty?: number;
  seed: number;
  /** false: the base model answers (adapter disabled). */
  useAdapter: boolean;
  /**
   * Stream the answer: each whole piece of text goes out as a `token` event carrying this label as
   * it is sampled, and a `stopGenerate` request ends it between two tokens. Absent: only the reply.
   */
  stream?: string;
}

export interface GenerateResult {
  text: string;
  promptIds: number[];
  generatedIds: number[];
  ms: number;
  /** Ended by stopGenerate before maxNewTokens or the end-of-text token. */
  stopped?: boolean;
}

/** SEQ_CLS: the adapted model's class probabilities for one text (the base has no head). */
export interface ClassifyResult {
  labels: string[];
  probs: number[];
}

/** TOKEN_CLS: the text split on whitespace, one predicted tag per word. */
export interface TagResult {
  words: string[];
  tags: string[];
}

export interface AdapterPayload {
  /** adapter_config.json text. */
  config: string;
  /** adapter_model.safetensors bytes. */
  weights: ArrayBuffer;
}

export interface CombineRequest {
  /** Two or more LoRA adapters' files, each with the name messages use. */
  adapters: (AdapterPayload & { name: string })[];
  /** One weight per adapter (negative subtracts). */
  weights: number[];
  type: CombinationType;
  options: CombineOptions;
}

export interface AdapterSummary {
  peftType: string;
  method: string;
  taskType: string;
  trainableParams: number;
  /** The name it is resident under (the engine keeps several adapters on one base, one active). */
  name: string;
}

/** kind -> [request payload, reply]. */
export interface LabRequests {
  init: [{ backend: BackendChoice; wasmBaseUrl: string }, BackendInfo];
  loadModel: [{ id: string; baseUrl: string }, ModelSummary];
  /** A GPT-2 folder the user picked or dropped: the three files' bytes. */
  loadModelFiles: [{ id: string } & ModelFileBytes, ModelSummary];
  /** Downloads (or reads from the browser cache) a GPT-2 repo from the Hub or a mirror. */
  loadHubModel: [
    { repoId: string; endpoint: string; gpt2TokenizerUrl: string },
    ModelSummary & { cached: boolean },
  ];
  train: [TrainRequest, TrainResult];
  pause: [Record<string, never>, void];
  resume: [Record<string, never>, void];
  stop: [Record<string, never>, void];
  generate: [GenerateRequest, GenerateResult];
  /** Ends a streaming generation after the token being sampled (the reply holds the text so far). */
  stopGenerate: [Record<string, never>, void];
  classify: [{ text: string }, ClassifyResult];
  tag: [{ text: string }, TagResult];
  exportAdapter: [Record<string, never>, AdapterPayload];
  /** labels: class names in label-id order, for a classification head (else LABEL_0, LABEL_1...). */
  importAdapter: [AdapterPayload & { source: string; labels?: string[] }, AdapterSummary];
  dropAdapter: [Record<string, never>, void];
  /**
   * PEFT's add_weighted_adapter over saved LoRA adapters' files: a new adapter's files (nothing is
   * loaded; importAdapter opens the result). Incompatible adapters fail with AdapterCombineError.
   */
  combineAdapters: [CombineRequest, AdapterPayload & { r: number }];
  /** A PEFT adapter repo's adapter_config.json and adapter_model.safetensors from the Hub or a mirror. */
  fetchHubAdapter: [{ repoId: string; endpoint: string }, AdapterPayload];
  /** The active adapter (or the base) on a task's held-out split, as a run scores it before and after. */
  evaluate: [
    { task: string; corpusUrl: string; seqLen: number; batchSize: number },
    EvalPoint & { metricName: TaskMetric; task: string; evalExamples: number },
  ];
  /**
   * Activates a resident adapter by name, or the base model with null, without reloading anything
   * (PEFT's set_adapter); replies with the active adapter's summary, or null for the base.
   */
  useAdapter: [{ name: string | null }, AdapterSummary | null];
  /** Runs with a checkpoint in this browser, newest first (meta holds each run's TrainRequest). */
  checkpoints: [Record<string, never>, CheckpointManifest[]];
  deleteCheckpoint: [{ runId: string }, void];
}

export type RequestKind = keyof LabRequests;
export type RequestOf<K extends RequestKind> = LabRequests[K][0];
export type ReplyOf<K extends RequestKind> = LabRequests[K][1];

/** kind -> payload of events the worker sends while working. */
export interface LabEvents {
  progress: TrainProgress;
  /** After each step of a run with offload settings: where memory is and what moved. */
  offload: OffloadSnapshot & { ms: number };
  /** A checkpoint was written (or, with `resumed`, read at the start). */
  checkpoint: { runId: string; step: number; bytes: number; resumed: boolean };
  eval: EvalPoint;
  /**
   * The run's GPU device was lost and the run went on on `backend` (a new device or wasm) from its
   * state at `fromStep` (train/device-loss.ts); `message` says so for a person.
   */
  deviceLost: { message: string; backend: BackendInfo; fromStep: number };
  /** One piece of a streaming generation's text, in order; `stream` is the request's label. */
  token: { stream: string; piece: string };
  download: { file: string; loaded: number; total: number };
  status: {
    phase: 'loading' | 'tokenizing' | 'evaluating' | 'training' | 'paused' | 'idle';
    message: string;
  };
}
export type EventKind = keyof LabEvents;

/** The engine's API: implemented in-process (tests, Node) and by a worker proxy (the app). */
export type LabApi = { [K in RequestKind]: (req: RequestOf<K>) => Promise<ReplyOf<K>> };

export type EventSink = <E extends EventKind>(kind: E, data: LabEvents[E]) => void;
