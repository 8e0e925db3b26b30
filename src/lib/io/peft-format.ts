/**
 * PEFT's own adapter folder: `adapter_config.json` (snake_case PeftConfig) and
 * `adapter_model.safetensors` (get_peft_model_state_dict's keys and layouts), so an adapter trained
 * here loads with Python's `PeftModel.from_pretrained`, and one trained there loads here.
 */
import { AdapterError } from '../errors';
import { isTaskType } from '../data/tasks/registry';
import type { Gpt2Model } from '../model/gpt2';
import { HEAD_MODULE } from '../model/heads';
import { headFor, verbalizerClasses } from '../peft/task-head';
import { methodByType, methodForConfigJson } from '../peft/registry';
import type { StateDict } from '../peft/state';
import type { Adapter, PeftConfigBase, PeftMethod } from '../peft/types';
import { parseSafetensorsHeader, readTensorAsFloat32, writeSafetensors } from './safetensors';
import type { TensorToWrite } from './safetensors';
import { assertFiniteTensors } from '../util/finite';

export interface AdapterFiles {
  /** adapter_config.json text. */
  config: string;
  /** adapter_model.safetensors bytes. */
  weights: Uint8Array;
}

export async function saveAdapter(
  adapter: Adapter,
  baseModelNameOrPath: string | null,
): Promise<AdapterFiles> {
  const method = methodByType(adapter.config.peftType);
  const config = { ...adapter.config, baseModelNameOrPath, inferenceMode: true };
  const tensors = new Map<string, TensorToWrite>();
  const state = await adapter.stateDict();
  assertFiniteTensors(state, 'the adapter');
  for (const [k, t] of state) tensors.set(k, { dtype: 'F32', shape: t.shape, data: t.data });
  return {
    config: JSON.stringify(method.toPeftJson(config), null, 2),
    weights: writeSafetensors(tensors, { format: 'pt' }),
  };
}

/** Parses adapter_config.json into our config for its method (checks peft_type and task_type). */
export function readAdapterConfig(text: string, source: string): PeftConfigBase {
  return readConfigAndMethod(text, source).config;
}

/** The config and the registry method that reads it, from one parse with named errors. */
function readConfigAndMethod(
  text: string,
  source: string,
): { config: PeftConfigBase; method: PeftMethod<PeftConfigBase> } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new AdapterError(`${source}/adapter_config.json is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new AdapterError(`${source}/adapter_config.json: expected a JSON object`);
  }
  const obj = json as Record<string, unknown>;
  if (typeof obj.peft_type !== 'string')
    throw new AdapterError(`${source}/adapter_config.json has no "peft_type"`);
  const method = methodForConfigJson(obj, `${source}/adapter_config.json`);
  const config = method.fromPeftJson(obj, `${source}/adapter_config.json`);
  const task = obj.task_type ?? 'CAUSAL_LM';
  if (!isTaskType(task) || !method.taskTypes.includes(task)) {
    throw new AdapterError(
      `${source}/adapter_config.json: task_type ${JSON.stringify(task)} is not available for ${method.label}; it supports ${method.taskTypes.join(', ')}`,
    );
  }
  return { config: { ...config, taskType: task }, method };
}

export function readAdapterWeights(bytes: Uint8Array, source: string): StateDict {
  const file = `${source}/adapter_model.safetensors`;
  const header = parseSafetensorsHeader(bytes, file);
  const out: StateDict = new Map();
  for (const info of header.tensors)
    out.set(info.name, { shape: info.shape, data: readTensorAsFloat32(bytes, info) });
  return out;
}

/** Builds the adapter described by the files on `model` and loads its weights; nothing is left attached on failure. */
export function loadAdapter(model: Gpt2Model, files: AdapterFiles, source = 'adapter'): Adapter {
  return loadAdapterAndMethod(model, files, source).adapter;
}

/** loadAdapter, also naming the registry method that read the files (P-tuning v2 and prefix tuning share a peft_type). */
export function loadAdapterAndMethod(
  model: Gpt2Model,
  files: AdapterFiles,
  source = 'adapter',
): { adapter: Adapter; method: PeftMethod<PeftConfigBase> } {
  const { config, method } = readConfigAndMethod(files.config, source);
  const tensors = readAdapterWeights(files.weights, source);
  try {
    method.validate(config, model);
  } catch (e) {
    throw new AdapterError(`${source}: this adapter does not fit the model: ${(e as Error).message}`);
  }
  const adapter = method.create(model, config, 0, { forLoading: true });
  try {
    if (config.taskType !== 'CAUSAL_LM') attachSavedHead(model, adapter, tensors, source);
    adapter.loadStateDict(tensors, `${source}/adapter_model.safetensors`);
  } catch (e) {
    adapter.dispose();
    throw e;
  }
  return { adapter, method };
}

/**
 * A SEQ_CLS/TOKEN_CLS adapter carries its head (PEFT's modules_to_save): the number of labels is
 * read from the saved weight, `[num_labels, n_embd]`, and a head of that size is attached before loading.
 */
function attachSavedHead(model: Gpt2Model, adapter: Adapter, tensors: StateDict, source: string): void {
  const task = adapter.config.taskType as keyof typeof HEAD_MODULE;
  const module = HEAD_MODULE[task];
  if (!adapter.attachHead) {
    throw new AdapterError(`${source}: this method cannot carry a ${task} head`);
  }
  // A verbalizer (P-tuning v2) saves its label tokens in the config and no weights.
  let classes = verbalizerClasses(adapter.config);
  if (classes === null) {
    const key = [...tensors.keys()].find((k) => k === `${module}.weight` || k.endsWith(`.${module}.weight`));
    const shape = key ? tensors.get(key)!.shape : null;
    if (!shape || shape.length !== 2) {
      throw new AdapterError(
        `${source}/adapter_model.safetensors: a ${task} adapter needs its head ${module}.weight [num_labels, n_embd] (PEFT's modules_to_save), which is missing`,
      );
    }
    classes = shape[0]!;
  }
  const head = headFor(model, adapter.config, task, classes, 0);
  try {
    adapter.attachHead(head);
  } catch (e) {
    head.dispose();
    throw e;
  }
}
