/**
 * Reads the part of a DeepSpeed config (ds.json) that applies to PEFT Lab and maps it onto our
 * offload settings, saying which fields it ignores and why, so a config written for
 * `deepspeed --deepspeed_config ds.json` can be pasted as is. Field names and meanings follow
 * DeepSpeed's configuration reference (zero_optimization.*, gradient_accumulation_steps,
 * gradient_clipping, fp16).
 */
import { PeftConfigError } from '../errors';
import { showValue } from '../util/show';

export interface OffloadSettings {
  /** ZeRO stage: 0 nothing moves, 1 optimizer state, 2 + gradients, 3 + parameters. */
  stage: 0 | 1 | 2 | 3;
  /**
   * Where optimizer state goes when it leaves the backend ('none' keeps it resident): 'cpu' is the
   * page's JavaScript memory, 'nvme' IndexedDB (the browser's disk).
   */
  offloadOptimizer: OffloadTarget;
  /** Where frozen parameters go at stage 3, as offloadOptimizer. */
  offloadParam: OffloadTarget;
  gradientAccumulationSteps: number;
  /** 0 disables clipping. */
  maxGradNorm: number;
  gradientCheckpointing: boolean;
}

export interface DeepSpeedMapping {
  settings: OffloadSettings;
  /** Field paths read and mapped. */
  used: string[];
  /** Field paths present but not applied, each with the reason. */
  ignored: { field: string; why: string }[];
}

export const DEFAULT_OFFLOAD: OffloadSettings = {
  stage: 0,
  offloadOptimizer: 'none',
  offloadParam: 'none',
  gradientAccumulationSteps: 1,
  maxGradNorm: 1.0,
  gradientCheckpointing: false,
};

type Json = Record<string, unknown>;

const isObject = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/** DeepSpeed's "auto" means "fill from the trainer's arguments": ours keep their own value. */
const isAuto = (x: unknown): boolean => x === 'auto';

export type OffloadTarget = 'none' | 'cpu' | 'nvme';

function device(value: unknown, field: string): OffloadTarget {
  if (value === 'none' || value === undefined || value === null) return 'none';
  // In a browser, DeepSpeed's CPU memory is the page's JavaScript memory and its NVMe is IndexedDB.
  if (value === 'cpu' || value === 'nvme') return value;
  throw new PeftConfigError(`${field} must be "cpu", "nvme" or "none", got ${showValue(value)}`);
}

/** Far above any useful accumulation; a larger count is a damaged file, not a setting. */
const MAX_STEPS = 1_000_000;

function positiveInt(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_STEPS) {
    throw new PeftConfigError(
      `${field} must be a positive integer up to ${MAX_STEPS}, got ${showValue(value)}`,
    );
  }
  return value;
}

/** Parses ds.json text (or an already parsed object). Bad values name their field. */
export function mapDeepSpeedConfig(input: string | unknown): DeepSpeedMapping {
  let json: unknown = input;
  if (typeof input === 'string') {
    try {
      json = JSON.parse(input);
    } catch (e) {
      throw new PeftConfigError(`ds.json is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (!isObject(json)) throw new PeftConfigError('ds.json must be a JSON object');
  const s: OffloadSettings = { ...DEFAULT_OFFLOAD };
  const used: string[] = [];
  const ignored: { field: string; why: string }[] = [];

  for (const [key, value] of Object.entries(json)) {
    switch (key) {
      case 'zero_optimization': {
        if (!isObject(value)) throw new PeftConfigError('zero_optimization must be an object');
        for (const [k, v] of Object.entries(value)) {
          const field = `zero_optimization.${k}`;
          if (k === 'stage') {
            if (v !== 0 && v !== 1 && v !== 2 && v !== 3) {
              throw new PeftConfigError(`${field} must be 0, 1, 2 or 3, got ${showValue(v)}`);
            }
            s.stage = v;
            used.push(field);
          } else if (k === 'offload_optimizer' || k === 'offload_param') {
            if (!isObject(v)) throw new PeftConfigError(`${field} must be an object with a "device"`);
            const d = device(v.device, `${field}.device`);
            if (k === 'offload_optimizer') s.offloadOptimizer = d;
            else s.offloadParam = d;
            used.push(`${field}.device`);
            for (const sub of Object.keys(v).filter((x) => x !== 'device')) {
              ignored.push({
                field: `${field}.${sub}`,
                why: 'pages go to memory or IndexedDB whole; no pinned memory or NVMe tuning here',
              });
            }
          } else {
            ignored.push({
              field,
              why: "a tuning knob of DeepSpeed's communication or buckets; one device has nothing to partition",
            });
          }
        }
        break;
      }
      case 'gradient_accumulation_steps':
        if (isAuto(value)) ignored.push({ field: key, why: '"auto": the run\'s own setting is kept' });
        else {
          s.gradientAccumulationSteps = positiveInt(value, key);
          used.push(key);
        }
        break;
      case 'gradient_clipping':
        if (isAuto(value)) ignored.push({ field: key, why: '"auto": the run\'s own setting is kept' });
        else {
          if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
            throw new PeftConfigError(`gradient_clipping must be a number >= 0, got ${showValue(value)}`);
          }
          s.maxGradNorm = value;
          used.push(key);
        }
        break;
      case 'fp16':
      case 'bf16':
        ignored.push({
          field: key,
          why: 'PEFT Lab trains in float32 on every backend, so there is no loss scale to manage',
        });
        break;
      case 'activation_checkpointing':
        s.gradientCheckpointing = true;
        used.push(key);
        break;
      default:
        ignored.push({
          field: key,
          why: ['train_batch_size', 'train_micro_batch_size_per_gpu', 'optimizer', 'scheduler'].includes(key)
            ? 'set in the Lab itself (batch size, learning rate, schedule), not from ds.json'
            : 'not a setting PEFT Lab has',
        });
    }
  }
  // ZeRO moves optimizer state from stage 1 and parameters at stage 3: offload needs the stage.
  if (s.offloadParam !== 'none' && s.stage < 3) {
    ignored.push({
      field: 'zero_optimization.offload_param',
      why: `parameters are offloaded at stage 3 only (stage is ${s.stage})`,
    });
    s.offloadParam = 'none';
  }
  if (s.offloadOptimizer !== 'none' && s.stage < 1) {
    ignored.push({
      field: 'zero_optimization.offload_optimizer',
      why: 'optimizer offload needs stage 1 or more (stage is 0)',
    });
    s.offloadOptimizer = 'none';
  }
  return { settings: s, used, ignored };
}

/** What a ds_config.json for DeepSpeed itself needs beyond the offload settings. */
export interface DeepSpeedRun {
  /** Sequences per micro-batch on each GPU. */
  microBatchSize: number;
  /** Where DeepSpeed keeps NVMe-offloaded tensors (a local fast disk), when a target is 'nvme'. */
  nvmePath?: string;
}

/**
 * The inverse of mapDeepSpeedConfig: a ds_config.json for `deepspeed` / `accelerate launch` with
 * the same ZeRO stage, offload targets, accumulation and clipping (the exported Python project
 * writes it). DeepSpeed's own "cpu" and "nvme" take the places of our page memory and IndexedDB.
 * Numbers are explicit, not "auto": the exported train.py draws its own batches, so accelerate has
 * no dataloader to fill "auto" from. Gradient checkpointing is the model's switch in train.py, not
 * DeepSpeed's activation_checkpointing (which is for Megatron-style models).
 */
export function toDeepSpeedConfig(s: OffloadSettings, run: DeepSpeedRun): Record<string, unknown> {
  const target = (d: OffloadTarget): Record<string, unknown> =>
    d === 'nvme' ? { device: 'nvme', nvme_path: run.nvmePath ?? '/local_nvme' } : { device: d };
  const zero: Record<string, unknown> = { stage: s.stage };
  if (s.stage >= 1 && s.offloadOptimizer !== 'none') zero.offload_optimizer = target(s.offloadOptimizer);
  if (s.stage === 3 && s.offloadParam !== 'none') zero.offload_param = target(s.offloadParam);
  const out: Record<string, unknown> = {
    train_micro_batch_size_per_gpu: run.microBatchSize,
    gradient_accumulation_steps: s.gradientAccumulationSteps,
    gradient_clipping: s.maxGradNorm,
    zero_optimization: zero,
  };
  // A torch optimizer (train.py's AdamW) with offloaded optimizer state needs DeepSpeed told so;
  // otherwise it refuses anything but its own CPU Adam.
  if (zero.offload_optimizer) out.zero_force_ds_cpu_optimizer = false;
  return out;
}
