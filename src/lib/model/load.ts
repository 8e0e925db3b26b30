/**
 * Reading and writing HuggingFace GPT-2 folders: config.json + model.safetensors.
 * Keys may carry the `transformer.` prefix (GPT2LMHeadModel) or not (GPT2Model); `lm_head.weight`
 * is optional and tied to wte; Conv1D weights are [in, out]; F32, F16 and BF16 load as float32.
 */
import * as tf from '@tensorflow/tfjs';
import { WeightsMismatchError } from '../errors';
import { parseSafetensorsHeader, readTensorAsFloat32, writeSafetensors } from '../io/safetensors';
import type { TensorToWrite } from '../io/safetensors';
import type { Gpt2Config } from './config';
import { expectedWeightShapes, parseGpt2Config, toHfConfigJson } from './config';
import { Gpt2Model } from './gpt2';
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
  weights: Uint8Array;
  /** Shown in error messages, e.g. the folder or repo id. */
  source?: string;
}

export function loadGpt2(files: ModelFiles): Gpt2Model {
  const src = files.source ?? 'model';
  const config = parseGpt2Config(files.config, `${src}/config.json`);
  const fileName = `${src}/model.safetensors`;
  const header = parseSafetensorsHeader(files.weights, fileName);
  const expected = expectedWeightShapes(config);
  const found = new Map<string, (typeof header.tensors)[number]>();
  const unexpected: string[] = [];
  for (const info of header.tensors) {
    const name = canonicalWeightName(info.name);
    if (name === null) continue;
    if (!expected.has(name)) unexpected.push(info.name);
    else found.set(name, info);
  }
  if (unexpected.length) {
    throw new WeightsMismatchError(
      `${fileName}: unexpected tensor(s) ${unexpected.slice(0, 3).join(', ')}${unexpected.length > 3 ? ` and ${unexpected.length - 3} more` : ''}; is this a GPT-2 checkpoint?`,
    );
  }
  for (const [name, shape] of expected) {
    const info = found.get(name);
    if (!info)
      throw new WeightsMismatchError(
        `${fileName}: tensor ${name} is missing (config.json expects shape [${shape}])`,
      );
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new WeightsMismatchError(
        `${fileName}: tensor ${info.name} has shape [${info.shape}] but config.json implies [${shape}]; config and weights do not match`,
      );
    }
  }
  const weights = new Map<string, tf.Variable>();
  try {
    for (const [name, shape] of expected) {
      const data = readTensorAsFloat32(files.weights, found.get(name)!);
      const t = tf.tensor(data, shape, 'float32');
      weights.set(name, newVariable(t, false));
    }
  } catch (e) {
    for (const v of weights.values()) v.dispose();
    throw e;
  }
  return new Gpt2Model(config, weights);
}

/** Serialises a model as HF's GPT2LMHeadModel does (keys with `transformer.`, tied head omitted). */
export async function saveGpt2(
  model: Gpt2Model,
  dtype: 'F32' | 'F16' = 'F32',
): Promise<{ config: string; weights: Uint8Array }> {
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
