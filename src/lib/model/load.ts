/**
 * Reading and writing HuggingFace model folders: config.json + model.safetensors (or its shards).
 * GPT-2: keys may carry the `transformer.` prefix (GPT2LMHeadModel) or not (GPT2Model);
 * `lm_head.weight` is optional and tied to wte; Conv1D weights are [in, out].
 * Llama family: keys `model.…` and `lm_head.weight` (absent when tied); nn.Linear weights [out, in]
 * are transposed to [in, out] on load. F32, F16 and BF16 load as float32.
 */
import * as tf from '@tensorflow/tfjs';
import { SettingsError, WeightsMismatchError } from '../errors';
import { parseSafetensorsHeader, readTensorAsFloat32, writeSafetensors } from '../io/safetensors';
import type { TensorToWrite } from '../io/safetensors';
import type { TensorInfo } from '../io/safetensors';
import type { Gpt2Config } from './config';
import { expectedWeightShapes, parseGpt2Config, toHfConfigJson } from './config';
import type { DecoderModel } from './decoder';
import { parseModelConfig } from './family';
import { Gpt2Model } from './gpt2';
import { LlamaModel } from './llama';
import type { LlamaConfig } from './llama-config';
import { expectedLlamaWeightShapes, isLlamaConfig } from './llama-config';
import { newVariable } from './ops';

/** Buffers some HF checkpoints carry that are not weights (causal-mask tables). */
const IGNORED = /(^|\.)attn\.(bias|masked_bias)$/;

/** HF key -> our canonical name, or null for keys we skip (lm_head is tied; mask buffers). */
export function canonicalWeightName(key: string): string | null {
  if (key === 'lm_head.weight') return null;
  const k = key.startsWith('transformer.') ? key.slice('transformer.'.length) : key;
  if (IGNORED.test(k)) return null;
  return k;
}

export interface ModelFiles {
  config: unknown;
  /** model.safetensors, or every shard a model.safetensors.index.json lists (in its order). */
  weights: Uint8Array | Uint8Array[];
  /** The shards' file names (for messages), as the index lists them. */
  weightFileNames?: string[];
  /** Shown in error messages, e.g. the folder or repo id. */
  source?: string;
}

/** Any supported family's folder -> its model (config.json says which). */
export function loadModel(files: ModelFiles): DecoderModel {
  const src = files.source ?? 'model';
  const config = parseModelConfig(files.config, `${src}/config.json`);
  return isLlamaConfig(config) ? loadLlama(files, config) : loadGpt2(files, config);
}

export function loadGpt2(files: ModelFiles, parsed?: Gpt2Config): Gpt2Model {
  const src = files.source ?? 'model';
  const config = parsed ?? parseGpt2Config(files.config, `${src}/config.json`);
  const weights = readWeights(
    files,
    expectedWeightShapes(config),
    canonicalWeightName,
    'a GPT-2',
    () => false,
  );
  return new Gpt2Model(config, weights);
}

/** Llama-family HF key -> our name: `model.` dropped, `lm_head.weight` kept (or skipped when tied). */
export function llamaWeightName(key: string, config: LlamaConfig): string | null {
  if (key === 'lm_head.weight') return config.tieWordEmbeddings ? null : key;
  // Rotary tables some older checkpoints saved as buffers: recomputed from the config.
  if (key.endsWith('.rotary_emb.inv_freq')) return null;
  return key.startsWith('model.') ? key.slice('model.'.length) : key;
}

/** Block linear weights, which HF stores as nn.Linear's [out, in] and PEFT Lab holds [in, out]. */
export const isLlamaLinearWeight = (name: string): boolean =>
  name.startsWith('layers.') && name.endsWith('_proj.weight');

/** Our Llama-family weight name -> HF's state-dict key (LlamaForCausalLM's), the inverse of llamaWeightName. */
export function llamaStateKey(name: string): { key: string; transpose: boolean } {
  if (name === 'lm_head.weight') return { key: name, transpose: false };
  return { key: `model.${name}`, transpose: isLlamaLinearWeight(name) };
}

export function loadLlama(files: ModelFiles, parsed?: LlamaConfig): LlamaModel {
  const src = files.source ?? 'model';
  const config = parsed ?? (parseModelConfig(files.config, `${src}/config.json`) as LlamaConfig);
  const weights = readWeights(
    files,
    expectedLlamaWeightShapes(config),
    (k) => llamaWeightName(k, config),
    `a ${config.architecture}`,
    isLlamaLinearWeight,
  );
  return new LlamaModel(config, weights);
}

/**
 * Every expected tensor from the file(s), checked by name and shape, as frozen float32 variables.
 * `transposed(name)` marks 2-D tensors stored [out, in] that are held [in, out].
 */
function readWeights(
  files: ModelFiles,
  expected: Map<string, number[]>,
  canonical: (key: string) => string | null,
  kind: string,
  transposed: (name: string) => boolean,
): Map<string, tf.Variable> {
  const src = files.source ?? 'model';
  const parts = Array.isArray(files.weights) ? files.weights : [files.weights];
  const fileName = (i: number): string =>
    `${src}/${files.weightFileNames?.[i] ?? (parts.length === 1 ? 'model.safetensors' : `shard ${i + 1}`)}`;
  const found = new Map<string, { info: TensorInfo; bytes: Uint8Array; file: string }>();
  const unexpected: string[] = [];
  parts.forEach((bytes, i) => {
    for (const info of parseSafetensorsHeader(bytes, fileName(i)).tensors) {
      const name = canonical(info.name);
      if (name === null) continue;
      if (!expected.has(name)) unexpected.push(info.name);
      else found.set(name, { info, bytes, file: fileName(i) });
    }
  });
  const files0 = parts.length === 1 ? fileName(0) : `${src}/model-*.safetensors`;
  if (unexpected.length) {
    throw new WeightsMismatchError(
      `${files0}: unexpected tensor(s) ${unexpected.slice(0, 3).join(', ')}${unexpected.length > 3 ? ` and ${unexpected.length - 3} more` : ''}; is this ${kind} checkpoint?`,
    );
  }
  for (const [name, shape] of expected) {
    const f = found.get(name);
    if (!f)
      throw new WeightsMismatchError(
        `${files0}: tensor ${name} is missing (config.json expects shape [${shape}])`,
      );
    const stored = transposed(name) ? [shape[1]!, shape[0]!] : shape;
    if (f.info.shape.length !== stored.length || f.info.shape.some((d, i) => d !== stored[i])) {
      throw new WeightsMismatchError(
        `${f.file}: tensor ${f.info.name} has shape [${f.info.shape}] but config.json implies [${stored}]; config and weights do not match`,
      );
    }
  }
  const weights = new Map<string, tf.Variable>();
  try {
    for (const [name, shape] of expected) {
      const f = found.get(name)!;
      const data = readTensorAsFloat32(f.bytes, f.info);
      const t = transposed(name)
        ? tf.tidy(() => tf.transpose(tf.tensor2d(data, [shape[1]!, shape[0]!], 'float32')))
        : tf.tensor(data, shape, 'float32');
      weights.set(name, newVariable(t, false));
    }
  } catch (e) {
    for (const v of weights.values()) v.dispose();
    throw e;
  }
  return weights;
}

/** Serialises a model as HF's GPT2LMHeadModel does (keys with `transformer.`, tied head omitted). */
export async function saveGpt2(
  model: Gpt2Model,
  dtype: 'F32' | 'F16' = 'F32',
): Promise<{ config: string; weights: Uint8Array }> {
  if (model.weightsF16) {
    // Halves are not in `weights`: a file written now would lack them.
    throw new SettingsError(
      'the model holds weights as f16 halves (weightsF16): unpack them (unpackWeightsF16) before saving the model',
    );
  }
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, v] of model.weights) {
    tensors.set(`transformer.${name}`, { dtype, shape: v.shape, data: (await v.data()) as Float32Array });
  }
  return {
    config: JSON.stringify(toHfConfigJson(model.config), null, 2),
    weights: writeSafetensors(tensors, { format: 'pt' }),
  };
}

export type { Gpt2Config };
