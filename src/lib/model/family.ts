/**
 * The decoder families PEFT Lab reads, told apart by config.json, and the facts about their linear
 * layers that PEFT methods need (names, shapes). tfjs-free: the UI may import it.
 * A new family adds its config reader here and its model file beside gpt2.ts and llama.ts.
 */
import { ModelConfigError } from '../errors';
import { showValue } from '../util/show';
import type { Gpt2Config, LinearModule as Gpt2LinearModule } from './config';
import {
  LINEAR_MODULES as GPT2_LINEAR_MODULES,
  countParameters as countGpt2Parameters,
  linearShape as gpt2LinearShape,
  parseGpt2Config,
} from './config';
import type { LlamaConfig, LlamaLinearModule, LlamaModelType } from './llama-config';
import {
  LLAMA_ARCHITECTURES,
  LLAMA_LINEAR_MODULES,
  countLlamaParameters,
  isLlamaConfig,
  llamaLinearShape,
  llamaModelType,
  parseLlamaConfig,
} from './llama-config';

export type ModelFamily = 'gpt2' | LlamaModelType;
export type DecoderConfig = Gpt2Config | LlamaConfig;
export type LinearModule = Gpt2LinearModule | LlamaLinearModule;

/** What a family's model is called in the app (Models screen, `peft-lab info`). */
export const FAMILY_LABEL: Record<ModelFamily, string> = {
  gpt2: 'GPT-2 (GPT2LMHeadModel)',
  llama: 'Llama (LlamaForCausalLM)',
  qwen2: 'Qwen2 (Qwen2ForCausalLM)',
  mistral: 'Mistral (MistralForCausalLM)',
};

/** config.json -> the family's config; an unknown architecture names what was found and what is read. */
export function parseModelConfig(raw: unknown, file = 'config.json'): DecoderConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelConfigError(`${file}: expected a JSON object`);
  }
  const json = raw as Record<string, unknown>;
  if (llamaModelType(json)) return parseLlamaConfig(json, file);
  const arch = Array.isArray(json.architectures) ? json.architectures[0] : undefined;
  if (
    json.model_type === 'gpt2' ||
    (json.model_type === undefined && (arch === undefined || arch === 'GPT2LMHeadModel'))
  )
    return parseGpt2Config(json, file);
  throw new ModelConfigError(
    `${file}: model_type ${showValue(json.model_type ?? null)} (architectures ${showValue(json.architectures ?? null)}) is not supported; PEFT Lab reads GPT2LMHeadModel (model_type "gpt2") and ${Object.entries(
      LLAMA_ARCHITECTURES,
    )
      .map(([a, t]) => `${a} ("${t}")`)
      .join(', ')}`,
  );
}

/** The MLP's hidden width: GPT-2's n_inner, the Llama family's intermediate_size. */
export function mlpWidth(c: DecoderConfig): number {
  return isLlamaConfig(c) ? c.intermediateSize : c.nInner;
}

export function modelFamily(c: DecoderConfig): ModelFamily {
  return isLlamaConfig(c) ? c.modelType : 'gpt2';
}

/**
 * One line on the architecture for the Models screen and the Lab: family, depth, heads (key/value
 * heads when grouped), rotary base, e.g. "Llama (LlamaForCausalLM), 2 layers, 4 heads / 2 key-value
 * heads, RoPE theta 10,000".
 */
export function describeArchitecture(c: DecoderConfig): string {
  const { nHead, nKvHead } = attentionShape(c);
  const heads = nKvHead === nHead ? `${nHead} heads` : `${nHead} heads / ${nKvHead} key-value heads`;
  const rope = isLlamaConfig(c) ? `, RoPE theta ${c.ropeTheta.toLocaleString('en')}` : '';
  return `${FAMILY_LABEL[modelFamily(c)]}, ${c.nLayer} layers, ${heads}${rope}`;
}

/** Query heads and key/value heads (equal without grouped-query attention), and the width of one head. */
export function attentionShape(c: DecoderConfig): { nHead: number; nKvHead: number; headDim: number } {
  if (isLlamaConfig(c)) return { nHead: c.nHead, nKvHead: c.nKvHead, headDim: c.headDim };
  return { nHead: c.nHead, nKvHead: c.nHead, headDim: c.nEmbd / c.nHead };
}

/** The linear layers of one block, in order, as PEFT's module names end. */
export function linearModules(c: DecoderConfig): readonly LinearModule[] {
  return isLlamaConfig(c) ? LLAMA_LINEAR_MODULES : GPT2_LINEAR_MODULES;
}

/** Hook key of a block's linear layer (our weight names without `.weight`) and its HF module name. */
export function linearNames(
  c: DecoderConfig,
  layer: number,
  module: LinearModule,
): { key: string; hfName: string } {
  if (isLlamaConfig(c)) {
    const key = `layers.${layer}.${module}`;
    return { key, hfName: `model.${key}` };
  }
  const key = `h.${layer}.${module}`;
  return { key, hfName: `transformer.${key}` };
}

/** [in, out] of a block's linear layer. */
export function linearShape(c: DecoderConfig, module: LinearModule): [number, number] {
  if (isLlamaConfig(c)) return llamaLinearShape(c, module as LlamaLinearModule);
  return gpt2LinearShape(c, module as Gpt2LinearModule);
}

/**
 * PEFT's default target modules per model type (peft/utils/constants.py:
 * TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, ..._TO_IA3_TARGET_MODULES_MAPPING,
 * ..._TO_IA3_FEEDFORWARD_MODULES_MAPPING and ..._TO_LNTUNING_TARGET_MODULES_MAPPING).
 */
export const DEFAULT_TARGET_MODULES: Record<
  ModelFamily,
  { lora: string[]; ia3: string[]; ia3FeedForward: string[]; lnTuning: string[] }
> = {
  gpt2: {
    lora: ['c_attn'],
    ia3: ['c_attn', 'mlp.c_proj'],
    ia3FeedForward: ['mlp.c_proj'],
    lnTuning: ['ln_1', 'ln_2', 'ln_f'],
  },
  llama: {
    lora: ['q_proj', 'v_proj'],
    ia3: ['k_proj', 'v_proj', 'down_proj'],
    ia3FeedForward: ['down_proj'],
    lnTuning: ['input_layernorm', 'post_attention_layernorm', 'norm'],
  },
  qwen2: {
    lora: ['q_proj', 'v_proj'],
    ia3: ['q_proj', 'v_proj', 'down_proj'],
    ia3FeedForward: ['down_proj'],
    // PEFT's choice for qwen2: only the norm before each MLP.
    lnTuning: ['post_attention_layernorm'],
  },
  mistral: {
    lora: ['q_proj', 'v_proj'],
    ia3: ['k_proj', 'v_proj', 'down_proj'],
    ia3FeedForward: ['down_proj'],
    lnTuning: ['input_layernorm', 'post_attention_layernorm', 'norm'],
  },
};

/**
 * The longest context generation keeps before cropping: max_position_embeddings, except where the
 * rotary scaling is there to go past it. Dynamic NTK stretches the base for up to factor times
 * max_position_embeddings; YaRN configs (Qwen2.5's) keep max_position_embeddings at the original
 * length and reach factor times original_max_position_embeddings. transformers itself crops
 * nothing; past these lengths the model is out of what its scaling was made for.
 */
export function generationWindow(c: DecoderConfig): number {
  if (!isLlamaConfig(c)) return c.nPositions;
  const s = c.ropeScaling;
  if (s.type === 'dynamic') return Math.floor(c.nPositions * s.factor);
  if (s.type === 'yarn')
    return Math.max(c.nPositions, Math.floor(s.originalMaxPositionEmbeddings * s.factor));
  return c.nPositions;
}

/** Parameter count of the base model (a tied LM head adds nothing). */
export function countParameters(c: DecoderConfig): number {
  return isLlamaConfig(c) ? countLlamaParameters(c) : countGpt2Parameters(c);
}

/**
 * What PEFT's target_modules=None means for this family, as overrides of a method's defaults (which
 * are GPT-2's): LoRA and AdaLoRA target q_proj and v_proj; IA3 its three modules, down_proj as
 * feed-forward; fan_in_fan_out false; LN tuning the family's RMSNorms. Empty for GPT-2 and for
 * methods without target modules.
 */
export function familyDefaults(peftType: string, family: ModelFamily): Record<string, unknown> {
  if (family === 'gpt2') return {};
  const d = DEFAULT_TARGET_MODULES[family];
  // nn.Linear layers: PEFT's fan_in_fan_out default (false), where GPT-2's Conv1D needs true.
  if (peftType === 'LORA' || peftType === 'ADALORA')
    return { targetModules: [...d.lora], fanInFanOut: false };
  // LoHa and LoKr take LoRA's targets (PEFT copies its mapping) and have no fan_in_fan_out.
  if (peftType === 'LOHA' || peftType === 'LOKR') return { targetModules: [...d.lora] };
  // OFT and BOFT too; their fan_in_fan_out is already false, which PEFT keeps for nn.Linear.
  if (peftType === 'OFT' || peftType === 'BOFT') return { targetModules: [...d.lora] };
  if (peftType === 'IA3')
    return { targetModules: [...d.ia3], feedforwardModules: [...d.ia3FeedForward], fanInFanOut: false };
  if (peftType === 'LN_TUNING') return { targetModules: [...d.lnTuning] };
  return {};
}
