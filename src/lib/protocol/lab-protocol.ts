/**
 * The typed message map between the UI and the training worker. The request kind fixes both the
 * payload and the reply type; events flow from the worker while a request runs. Errors cross as
 * {name, message} (src/lib/errors.ts) and are rebuilt as the named class.
 */
import type { BackendChoice, BackendInfo } from '../backend/backend';
import type { SerializedError } from '../errors';

export interface ModelSummary {
  id: string;
  label: string;
  params: number;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  vocabSize: number;
  nPositions: number;
  /** Size of model.safetensors in bytes. */
  bytes: number;
}

export interface ModelFileBytes {
  config: ArrayBuffer;
  weights: ArrayBuffer;
  tokenizer: ArrayBuffer;
}

export interface TrainSettings {
  steps: number;
  lr: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  warmupSteps: number;
  /** Evaluate held-out loss every this many steps (0: only before and after). */
  evalEvery: number;
}

export interface TrainRequest {
  /** Registry cliName, e.g. "lora". */
  method: string;
  /** Method config fields (camelCase, PEFT names) over the method's defaults. */
  config: Record<string, unknown>;
  train: TrainSettings;
  /** Folder with train.txt and validation.txt. */
  corpusUrl: string;
}

export interface TrainProgress {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  ms: number;
  tokensPerSec: number;
  gradNorm: number;
}

export interface EvalPoint {
  step: number;
  loss: number;
  perplexity: number;
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
}

export interface GenerateRequest {
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  seed: number;
  /** false: the base model answers (adapter disabled). */
  useAdapter: boolean;
}

export interface GenerateResult {
  text: string;
  promptIds: number[];
  generatedIds: number[];
  ms: number;
}

export interface AdapterPayload {
  /** adapter_config.json text. */
  config: string;
  /** adapter_model.safetensors bytes. */
  weights: ArrayBuffer;
}

export interface AdapterSummary {
  peftType: string;
  method: string;
  taskType: string;
  trainableParams: number;
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
  exportAdapter: [Record<string, never>, AdapterPayload];
  importAdapter: [AdapterPayload & { source: string }, AdapterSummary];
  dropAdapter: [Record<string, never>, void];
}

export type RequestKind = keyof LabRequests;
export type RequestOf<K extends RequestKind> = LabRequests[K][0];
export type ReplyOf<K extends RequestKind> = LabRequests[K][1];

/** kind -> payload of events the worker sends while working. */
export interface LabEvents {
  progress: TrainProgress;
  eval: EvalPoint;
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

/** Messages on the wire. */
export type ToWorker = { id: number; kind: RequestKind; payload: unknown };
export type FromWorker =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: SerializedError }
  | { event: EventKind; data: unknown };
