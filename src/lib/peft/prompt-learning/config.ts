/**
 * Fields every prompt-learning config shares, with PEFT's names and defaults
 * (peft/config.py, PromptLearningConfig): prompt tuning, P-tuning and prefix tuning (and our
 * P-tuning v2, which PEFT saves as prefix tuning).
 */
import { PeftConfigError } from '../../errors';
import type { Gpt2Model } from '../../model/gpt2';
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
export function withModelSizes<C extends PromptLearningConfig>(c: C, model: Gpt2Model): C {
  const enc = c as C & { encoderHiddenSize?: number | null };
  return {
    ...c,
    ...('encoderHiddenSize' in enc && enc.encoderHiddenSize === null
      ? { encoderHiddenSize: model.config.nEmbd }
      : {}),
    tokenDim: c.tokenDim ?? model.config.nEmbd,
    numTransformerSubmodules: c.numTransformerSubmodules ?? 1,
    numAttentionHeads: c.numAttentionHeads ?? model.config.nHead,
    numLayers: c.numLayers ?? model.config.nLayer,
  };
}

export function validatePromptLearning(c: PromptLearningConfig, model?: Gpt2Model): void {
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
  const fits: [keyof PromptLearningConfig, number | null, number, string][] = [
    ['tokenDim', c.tokenDim, m.nEmbd, 'n_embd'],
    ['numAttentionHeads', c.numAttentionHeads, m.nHead, 'n_head'],
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
