/**
 * The Lab's offload and checkpoint settings, as a form, and what the Offload screen derives from the
 * engine's per-step offload events. No tensors, no DOM: tested in Node (offload.test.ts).
 */
import type {
  LabEvents,
  ModelSummary,
  OffloadRequest,
  TrainRequest,
  TrainSettings,
} from '../lib/protocol/lab-protocol';
import { mapDeepSpeedConfig } from '../lib/offload/deepspeed';
import type { DeepSpeedMapping } from '../lib/offload/deepspeed';
export { pageFormatLabel } from '../lib/offload/page-format';

/** The offload request's settings plus how often to checkpoint (0: never). */
export interface OffloadForm extends OffloadRequest {
  checkpointEvery: number;
}

export const DEFAULT_OFFLOAD_FORM: OffloadForm = {
  stage: 0,
  budgetMB: 1,
  prefetch: true,
  policy: 'trace',
  // int8 pages where they are read from IndexedDB, float32 in page memory (page-format.ts).
  int8: 'auto',
  gradientCheckpointing: false,
  device: 'indexeddb',
  checkpointEvery: 0,
};

/** One line per ZeRO stage on what it moves out of the backend. */
export const STAGE_DOC: Record<OffloadRequest['stage'], string> = {
  0: 'everything stays resident (no offload)',
  1: "AdamW's moments leave the backend after each update and come back for the next",
  2: 'as stage 1, plus the gradients summed between micro-batches (with gradient accumulation above 1)',
  3: 'as stage 2, plus the frozen layer weights: paged in before each layer runs, under the memory budget',
};

/** Parameters of one GPT-2 block of width C: attention (4C² + 4C), MLP (8C² + 5C), two layer norms (4C). */
export const layerParams = (nEmbd: number): number => 12 * nEmbd * nEmbd + 13 * nEmbd;

/** float32 bytes of all the model's block weights (what stage 3 pages). */
export const layerWeightBytes = (model: Pick<ModelSummary, 'nLayer' | 'nEmbd'>): number =>
  model.nLayer * layerParams(model.nEmbd) * 4;

/** A new run id for checkpoints: the time, then a random tail so two tabs never share one. */
export function newRunId(now = Date.now(), rand = Math.random()): string {
  return `run-${now.toString(36)}-${Math.floor(rand * 36 ** 4)
    .toString(36)
    .padStart(4, '0')}`;
}

/**
 * How often a run without a checkpoint setting is checkpointed anyway, by the clock: a run shorter
 * than this writes none, a longer one loses at most this much to a crashed worker or a closed tab.
 */
export const AUTO_CHECKPOINT_MS = 2 * 60_000;

/**
 * The request's offload and checkpoint parts: offload only when a stage above 0 or gradient
 * checkpointing is asked for; checkpoints every `checkpointEvery` steps, or, when that is 0, every
 * AUTO_CHECKPOINT_MS of training.
 */
export function offloadParts(form: OffloadForm, runId: string): Pick<TrainRequest, 'offload' | 'checkpoint'> {
  const { checkpointEvery, ...offload } = form;
  const parts: Pick<TrainRequest, 'offload' | 'checkpoint'> = {};
  if (offload.stage > 0 || offload.gradientCheckpointing) parts.offload = offload;
  parts.checkpoint =
    checkpointEvery > 0
      ? { runId, every: Math.floor(checkpointEvery) }
      : { runId, every: 0, everyMs: AUTO_CHECKPOINT_MS };
  return parts;
}

/** The form a saved request was run with (a resumed run shows its own settings). */
export function formFromRequest(req: TrainRequest): OffloadForm {
  return {
    ...DEFAULT_OFFLOAD_FORM,
    ...(req.offload ?? {}),
    checkpointEvery: req.checkpoint?.every ?? 0,
  };
}

export type DeepSpeedOutcome =
  | {
      ok: true;
      form: OffloadForm;
      /** The run's accumulation and clipping, as the config sets them. */
      train: Pick<TrainSettings, 'gradAccumSteps' | 'maxGradNorm'>;
      mapping: DeepSpeedMapping;
    }
  | { ok: false; error: string };

/**
 * Applies a pasted ds.json: the ZeRO stage and activation checkpointing to the offload form,
 * gradient accumulation and clipping to the run's settings (the rest of what it maps is listed, with
 * what it ignores). An invalid config leaves everything as it was and says what is wrong.
 */
export function applyDeepSpeed(form: OffloadForm, text: string): DeepSpeedOutcome {
  let mapping: DeepSpeedMapping;
  try {
    mapping = mapDeepSpeedConfig(text);
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  const s = mapping.settings;
  // One place for every kind of page: IndexedDB if anything asks for NVMe, else memory if anything asks for CPU.
  const targets = [s.offloadParam, s.offloadOptimizer];
  const device = targets.includes('nvme') ? 'indexeddb' : targets.includes('cpu') ? 'memory' : form.device;
  return {
    ok: true,
    form: {
      ...form,
      stage: s.stage,
      device,
      gradientCheckpointing: s.gradientCheckpointing || form.gradientCheckpointing,
    },
    train: { gradAccumSteps: s.gradientAccumulationSteps, maxGradNorm: s.maxGradNorm },
    mapping,
  };
}

export type OffloadEvent = LabEvents['offload'];

/** One row per step of what the Offload screen charts. */
export interface OffloadRow {
  step: number;
  /** MB of each memory kind after the step. */
  layerMB: number;
  optimizerMB: number;
  backendMB: number;
  /** This step's page-ins and page-outs (layers and optimizer together). */
  pageIns: number;
  pageOuts: number;
  /** MB read plus written in this step. */
  movedMB: number;
  stallMs: number;
  ms: number;
}

const MB = 2 ** 20;

/** Page traffic of every kind (layers, optimizer state, gradients) summed, cumulative over the run. */
function traffic(x: OffloadEvent): { pageIns: number; pageOuts: number; bytes: number; stallMs: number } {
  const p = x.pager;
  const o = x.optimizer;
  const g = x.gradients;
  return {
    pageIns: (p?.pageIns ?? 0) + (o?.pageIns ?? 0) + (g?.pageIns ?? 0),
    pageOuts: (p?.pageOuts ?? 0) + (o?.pageOuts ?? 0) + (g?.pageOuts ?? 0),
    bytes:
      (p?.bytesIn ?? 0) + (o?.bytesIn ?? 0) + (o?.bytesOut ?? 0) + (g?.bytesIn ?? 0) + (g?.bytesOut ?? 0),
    stallMs: (p?.stallMs ?? 0) + (o?.stallMs ?? 0),
  };
}

/** The engine's pager counters are cumulative over the run: each row holds the step's own share. */
export function offloadRows(events: readonly OffloadEvent[]): OffloadRow[] {
  let prev: OffloadEvent | null = null;
  const rows: OffloadRow[] = [];
  for (const e of events) {
    const d = (f: (x: OffloadEvent) => number): number => f(e) - (prev ? f(prev) : 0);
    rows.push({
      step: e.step,
      layerMB: e.layerBytes / MB,
      optimizerMB: e.optimizerBytes / MB,
      backendMB: e.backendBytes / MB,
      pageIns: d((x) => traffic(x).pageIns),
      pageOuts: d((x) => traffic(x).pageOuts),
      movedMB: d((x) => traffic(x).bytes) / MB,
      stallMs: d((x) => traffic(x).stallMs),
      ms: e.ms,
    });
    prev = e;
  }
  return rows;
}

/** Totals of the run so far, from its last event. */
export function offloadTotals(last: OffloadEvent): {
  pageIns: number;
  pageOuts: number;
  bytesMoved: number;
  stallMs: number;
  /** Prefetch hits / (hits + misses), or null before any layer was acquired. */
  hitRate: number | null;
  /** Layer page-ins whose record had been read ahead / all layer page-ins, or null before any. */
  readAheadRate: number | null;
} {
  const p = last.pager;
  const acquires = (p?.prefetchHits ?? 0) + (p?.misses ?? 0);
  const t = traffic(last);
  return {
    pageIns: t.pageIns,
    pageOuts: t.pageOuts,
    bytesMoved: t.bytes,
    stallMs: t.stallMs,
    hitRate: acquires > 0 ? (p?.prefetchHits ?? 0) / acquires : null,
    readAheadRate: p && p.pageIns > 0 ? p.readAheadHits / p.pageIns : null,
  };
}

/** Median step time, skipping the first step (it compiles kernels and records the trace). */
export function typicalStepMs(ms: readonly number[]): number | null {
  const xs = (ms.length > 1 ? ms.slice(1) : ms).slice().sort((a, b) => a - b);
  if (!xs.length) return null;
  return xs[Math.floor(xs.length / 2)]!;
}
