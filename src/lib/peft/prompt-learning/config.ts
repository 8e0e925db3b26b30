/**
 * Fields every prompt-learning config shares, with PEFT's names and defaults
 * (peft/config.py, PromptLearningConfig): prompt tuning, P-tuning and prefix tuning (and our
 * P-tuning v2, which PEFT saves as prefix tuning).
 */
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import { attentionShape } from '../../model/family';
import { isLlamaConfig } from '../../model/llama-config';
import type { PeftConfigBase } from '../types';
import type { TaskType } from '../../data/tasks/registry';
import { CLS_HEAD_MODULES } from '../lora/config';

export interface PromptLearningConfig extends PeftConfigBase {
  /** Number of virtual tokens (soft prompt length). */
  numVirtualTokens: number;
  /** Hidden size of the base model; filled from the model (n_embd) when null. */
  tokenDim: number | null;
  /** 1 for a decoder-only model such as GPT-2; filled when null. */
  numTransformerSubmodules: number | null;
  /** Attention heads of the base model (n_head); filled when null. */
  numAttentionHeads: number | null;
  /** Layers of the base model (n_layer); filled when null. */
  numLayers: number | null;
  /** Modules trained in full and saved beside the prompt: the classification head. */
  modulesToSave: string[] | null;
}

/** PEFT leaves num_virtual_tokens without a default; 10 fits our small models' 256 positions with room. */
export const DEFAULT_VIRTUAL_TOKENS = 10;

export function promptLearningBase(taskType: TaskType): Omit<PromptLearningConfig, 'peftType'> {
  return {
    taskType,
    baseModelNameOrPath: null,
    inferenceMode: false,
    numVirtualTokens: DEFAULT_VIRTUAL_TOKENS,
    tokenDim: null,
    numTransformerSubmodules: null,
    numAttentionHeads: null,
    numLayers: null,
    // PeftModelForSequenceClassification / ForTokenClassification train and save these heads.
    modulesToSave: taskType === 'CAUSAL_LM' ? null : [...CLS_HEAD_MODULES],
  };
}

/**
 * The model's own sizes where the config left them null (PEFT's `_prepare_prompt_learning_config`),
 * and an encoder's hidden size of null as the width it means, as PEFT writes it.
 */
export function withModelSizes<C extends PromptLearningConfig>(c: C, model: DecoderModel): C {
  const enc = c as C & { encoderHiddenSize?: number | null };
  let tokenDim = c.tokenDim ?? model.config.nEmbd;
  let numAttentionHeads = c.numAttentionHeads ?? model.config.nHead;
  // Grouped-query attention (PEFT #1901): a prefix holds keys and values, so it is as wide as the
  // key/value heads, head_dim * num_key_value_heads. PEFT does this for every config with
  // num_key_value_heads, which GPT-2's lacks.
  if (c.peftType === 'PREFIX_TUNING' && isLlamaConfig(model.config)) {
    const { nKvHead, headDim } = attentionShape(model.config);
    tokenDim = headDim * nKvHead;
    numAttentionHeads = nKvHead;
  }
  return {
    ...c,
    ...('encoderHiddenSize' in enc && enc.encoderHiddenSize === null ? { encoderHiddenSize: tokenDim } : {}),
    tokenDim,
    numTransformerSubmodules: c.numTransformerSubmodules ?? 1,
    numAttentionHeads,
    numLayers: c.numLayers ?? model.config.nLayer,
  };
}

export function validatePromptLearning(c: PromptLearningConfig, model?: DecoderModel): void {
  if (!Number.isInteger(c.numVirtualTokens) || c.numVirtualTokens < 1) {
    throw new PeftConfigError(`numVirtualTokens must be a positive integer, got ${c.numVirtualTokens}`);
  }
  if (c.numTransformerSubmodules !== null && c.numTransformerSubmodules !== 1) {
    throw new PeftConfigError(
      `numTransformerSubmodules ${c.numTransformerSubmodules} is for encoder-decoder models; GPT-2 has 1`,
    );
  }
  if (c.modulesToSave !== null && c.modulesToSave.length > 0 && c.taskType === 'CAUSAL_LM') {
    throw new PeftConfigError(
      `modulesToSave ${JSON.stringify(c.modulesToSave)} needs task_type SEQ_CLS or TOKEN_CLS (a causal LM has no classification head); got ${c.taskType}`,
    );
  }
  if (!model) return;
  const m = model.config;
  // What withModelSizes fills in: under GQA a prefix's width and heads are the key/value heads'.
  const sized = withModelSizes({ ...c, tokenDim: null, numAttentionHeads: null }, model);
  const fits: [keyof PromptLearningConfig, number | null, number, string][] = [
    ['tokenDim', c.tokenDim, sized.tokenDim!, 'n_embd'],
    ['numAttentionHeads', c.numAttentionHeads, sized.numAttentionHeads!, 'n_head'],
    ['numLayers', c.numLayers, m.nLayer, 'n_layer'],
  ];
  for (const [field, value, want, hf] of fits) {
    if (value !== null && value !== want) {
      throw new PeftConfigError(
        `${field} ${value} does not fit this model (${hf} ${want}): was this adapter made for another model?`,
      );
    }
  }
  // Virtual tokens take positions too (prefixes count as past tokens), so leave room for text.
  if (c.numVirtualTokens >= m.nPositions) {
    throw new PeftConfigError(
      `numVirtualTokens ${c.numVirtualTokens} leaves no room for text: the model reads ${m.nPositions} positions in all; choose fewer than ${m.nPositions}`,
    );
  }
}
