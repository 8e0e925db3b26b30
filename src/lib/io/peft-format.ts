/**
 * PEFT's own adapter folder: `adapter_config.json` (snake_case PeftConfig) and
 * `adapter_model.safetensors` (get_peft_model_state_dict's keys and layouts), so an adapter trained
 * here loads with Python's `PeftModel.from_pretrained`, and one trained there loads here.
 */
import { AdapterError, AdapterMismatchError, PeftConfigError } from '../errors';
import { isTaskType } from '../data/tasks/registry';
import type { DecoderModel } from '../model/decoder';
import { headModule } from '../model/heads';
import type { ClsTask } from '../model/heads';
import { headFor, verbalizerClasses } from '../peft/task-head';
import { targetedSites } from '../peft/inject';
import { FAMILY_LABEL, linearModules } from '../model/family';
import { methodByType, methodForConfigJson } from '../peft/registry';
import type { StateDict } from '../peft/state';
import type { Adapter, PeftConfigBase, PeftMethod } from '../peft/types';
import { parseSafetensorsHeader, readTensorAsFloat32, writeSafetensors } from './safetensors';
import type { TensorToWrite } from './safetensors';
import { showValue } from '../util/show';
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
  let method: PeftMethod<PeftConfigBase>;
  try {
    method = methodForConfigJson(obj, `${source}/adapter_config.json`);
  } catch (e) {
    throw new AdapterMismatchError(
      `${(e as Error).message}: PEFT Lab cannot run this method; open an adapter of one of those types`,
      'peft-type',
    );
  }
  const config = method.fromPeftJson(obj, `${source}/adapter_config.json`);
  const task = obj.task_type ?? 'CAUSAL_LM';
  if (!isTaskType(task) || !method.taskTypes.includes(task)) {
    throw new AdapterMismatchError(
      `${source}/adapter_config.json: task_type ${showValue(task)} is not available for ${method.label}; it supports ${method.taskTypes.join(', ')}`,
      'task-type',
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
export function loadAdapter(model: DecoderModel, files: AdapterFiles, source = 'adapter'): Adapter {
  return loadAdapterAndMethod(model, files, source).adapter;
}

/** loadAdapter, also naming the registry method that read the files (P-tuning v2 and prefix tuning share a peft_type). */
export function loadAdapterAndMethod(
  model: DecoderModel,
  files: AdapterFiles,
  source = 'adapter',
): { adapter: Adapter; method: PeftMethod<PeftConfigBase> } {
  const { config, method } = readConfigAndMethod(files.config, source);
  const tensors = readAdapterWeights(files.weights, source);
  checkAdapterFits(model, config, method, tensors, source);
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

/** The key's transformer block (`...transformer.h.<i>....`), or null for keys outside the blocks. */
function blockOf(key: string): number | null {
  const m = /(?:^|\.)h\.(\d+)\./.exec(key);
  return m ? Number(m[1]) : null;
}

/**
 * What can be checked from the config and the file's header before any adapter is built: layers
 * the targets name, blocks the keys name, the classification head's presence and width, and the
 * method's own validation against this model. Each failure is an AdapterMismatchError whose code
 * names the check; the tensor-by-tensor shape and key checks follow in the method's loadStateDict.
 */
export function checkAdapterFits(
  model: DecoderModel,
  config: PeftConfigBase,
  method: PeftMethod<PeftConfigBase>,
  tensors: StateDict,
  source: string,
): void {
  const c = model.config;
  const fields = config as unknown as Record<string, unknown>;
  const targets = fields.targetModules;
  const linearTargets = method.kind === 'inject' && !method.capabilities.targetsNorms;
  if (linearTargets && (typeof targets === 'string' || Array.isArray(targets))) {
    let sites: unknown[];
    try {
      const layers = fields.layersToTransform as number[] | null | undefined;
      sites = targetedSites(c, targets as string | string[], layers ?? null, true);
    } catch (e) {
      throw new AdapterMismatchError(`${source}: ${(e as Error).message}`, 'target-modules');
    }
    if (sites.length === 0) {
      throw new AdapterMismatchError(
        `${source}: target_modules ${JSON.stringify(targets)} name no layer of this ${FAMILY_LABEL[model.family]} model (its layers: ${linearModules(c).join(', ')}); the adapter was made for another architecture: open it on its base model`,
        'target-modules',
      );
    }
  }
  const deepest = Math.max(-1, ...[...tensors.keys()].map((k) => blockOf(k) ?? -1));
  if (deepest >= c.nLayer) {
    throw new AdapterMismatchError(
      `${source}/adapter_model.safetensors: tensors for block ${deepest} but this model has ${c.nLayer} blocks (0-${c.nLayer - 1}); the adapter was made for a deeper model: open it on its base model`,
      'unexpected-keys',
    );
  }
  if (config.taskType === 'SEQ_CLS' || config.taskType === 'TOKEN_CLS') {
    const module = headModule(model.family, config.taskType);
    const key = [...tensors.keys()].find((k) => k === `${module}.weight` || k.endsWith(`.${module}.weight`));
    const shape = key ? tensors.get(key)!.shape : null;
    if (key && shape && (shape.length !== 2 || shape[1] !== c.nEmbd)) {
      throw new AdapterMismatchError(
        `${source}/adapter_model.safetensors: the ${config.taskType} head ${key} has shape [${shape}] but this model needs [num_labels, ${c.nEmbd}]; open it on the base model it was made for`,
        'head',
      );
    }
  }
  try {
    method.validate(config, model);
  } catch (e) {
    if (e instanceof AdapterMismatchError) throw e;
    const what = e instanceof PeftConfigError || e instanceof AdapterError ? e.message : String(e);
    throw new AdapterMismatchError(`${source}: this adapter does not fit the model: ${what}`, 'config');
  }
}

/**
 * A SEQ_CLS/TOKEN_CLS adapter carries its head (PEFT's modules_to_save): the number of labels is
 * read from the saved weight, `[num_labels, n_embd]`, and a head of that size is attached before loading.
 */
function attachSavedHead(model: DecoderModel, adapter: Adapter, tensors: StateDict, source: string): void {
  const task = adapter.config.taskType as ClsTask;
  // GPT-2's token head is `classifier`; the Llama family's (LlamaForTokenClassification) `score`.
  const module = headModule(model.family, task);
  if (!adapter.attachHead) {
    throw new AdapterError(`${source}: this method cannot carry a ${task} head`);
  }
  // A verbalizer (P-tuning v2) saves its label tokens in the config and no weights.
  let classes = verbalizerClasses(adapter.config);
  if (classes === null) {
    const key = [...tensors.keys()].find((k) => k === `${module}.weight` || k.endsWith(`.${module}.weight`));
    const shape = key ? tensors.get(key)!.shape : null;
    if (!shape || shape.length !== 2) {
      throw new AdapterMismatchError(
        `${source}/adapter_model.safetensors: a ${task} adapter needs its head ${module}.weight [num_labels, n_embd] (PEFT's modules_to_save), which is missing; save it with modules_to_save=["${module}"]`,
        'head',
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
