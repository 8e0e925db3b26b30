/**
 * Llama-family configuration (LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM), read from
 * HuggingFace's `config.json`. tfjs-free, so the UI may show a folder's family and sizes.
 *
 * The fields every decoder shares keep the names the rest of the app already reads (GPT-2's:
 * `nEmbd` is hidden_size, `nLayer` num_hidden_layers, `nHead` num_attention_heads, `nPositions`
 * max_position_embeddings); what only this family has is named after HF's fields.
 */
import { ModelConfigError } from '../errors';
import { showValue } from '../util/show';

/** The HF model types this family file reads, by the architecture each folder names. */
export const LLAMA_ARCHITECTURES = {
  LlamaForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  MistralForCausalLM: 'mistral',
} as const;
export type LlamaModelType = (typeof LLAMA_ARCHITECTURES)[keyof typeof LLAMA_ARCHITECTURES];
const MODEL_TYPES: readonly string[] = Object.values(LLAMA_ARCHITECTURES);

/** Rotary frequency scaling, as HF's `rope_scaling` / `rope_parameters` (the types these models ship). */
export type RopeScaling =
  | { type: 'default' }
  /** Position interpolation: every inverse frequency divided by factor. */
  | { type: 'linear'; factor: number }
  /** Llama 3.1/3.2: long wavelengths divided by factor, short ones kept, the band between blended. */
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    }
  /**
   * Dynamic NTK: past max_position_embeddings the rotary base grows with the sequence length, so
   * the frequencies depend on how long the sequence is (HF's _compute_dynamic_ntk_parameters).
   */
  | { type: 'dynamic'; factor: number }
  /**
   * YaRN (Qwen2.5's long-context configs): low frequencies interpolated by factor, high ones kept,
   * a linear ramp between by rotation count; cos and sin scaled by attentionFactor.
   */
  | {
      type: 'yarn';
      factor: number;
      originalMaxPositionEmbeddings: number;
      attentionFactor: number;
      betaFast: number;
      betaSlow: number;
      truncate: boolean;
    }
  /**
   * LongRoPE (Phi-3's): one rescale per frequency, the short list up to
   * originalMaxPositionEmbeddings and the long one past it; cos and sin scaled by attentionFactor.
   */
  | {
      type: 'longrope';
      shortFactor: number[];
      longFactor: number[];
      originalMaxPositionEmbeddings: number;
      attentionFactor: number;
    };

/** The rope types transformers 5.18 has (ROPE_INIT_FUNCTIONS, and "default") that PEFT Lab reads. */
export const ROPE_TYPES = ['default', 'linear', 'llama3', 'dynamic', 'yarn', 'longrope'] as const;

export interface LlamaConfig {
  modelType: LlamaModelType;
  /** As config.json's `architectures[0]`, e.g. `Qwen2ForCausalLM`. */
  architecture: string;
  vocabSize: number;
  /** max_position_embeddings: the longest sequence generation runs before cropping. */
  nPositions: number;
  /** hidden_size. */
  nEmbd: number;
  nLayer: number;
  /** num_attention_heads (query heads). */
  nHead: number;
  /** num_key_value_heads: nHead / nKvHead query heads share each key/value head (GQA). */
  nKvHead: number;
  /** head_dim; HF's default is hidden_size / num_attention_heads (Mistral may set it apart). */
  headDim: number;
  intermediateSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  tieWordEmbeddings: boolean;
  /** Bias on q_proj, k_proj, v_proj (Qwen2 always; Llama's attention_bias also on o_proj). */
  qkvBias: boolean;
  oBias: boolean;
  /** mlp_bias (Llama): bias on gate_proj, up_proj, down_proj. */
  mlpBias: boolean;
  /** Per layer: the attention window (a query sees this many keys, itself included), or null for full. */
  slidingWindow: (number | null)[];
  bosTokenId: number;
  eosTokenId: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Upper bounds far above any Llama-family model a browser can hold (Llama 3.1 405B: 126 layers,
 * width 16384, 128 query and 8 key/value heads, intermediate 53248, 128256 tokens, 131072
 * positions), as GPT-2's reader has: a damaged or hostile file is refused here rather than sizing a
 * loop or an allocation (a claimed 10^9 layers would list 10^10 weights before anything fails).
 */
const MAX: Record<string, number> = {
  vocab_size: 2 ** 20,
  max_position_embeddings: 2 ** 20,
  hidden_size: 2 ** 16,
  num_hidden_layers: 1024,
  num_attention_heads: 2 ** 12,
  num_key_value_heads: 2 ** 12,
  head_dim: 2 ** 12,
  intermediate_size: 2 ** 18,
  sliding_window: 2 ** 20,
  max_window_layers: 2 ** 20,
};

function int(json: Record<string, unknown>, key: string, file: string, min = 1): number {
  const v = json[key];
  const max = MAX[key] ?? 2 ** 20;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ModelConfigError(
      `${file}: "${key}" must be an integer from ${min} to ${max}, got ${showValue(v)}; fix the file or use the config.json the model came with`,
    );
  }
  return v;
}

/** A positive finite number (an infinite rope_theta or epsilon would make every activation NaN). */
function positive(json: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
    throw new ModelConfigError(`${file}: "${key}" must be a positive number, got ${showValue(v)}`);
  }
  return v;
}

function bool(json: Record<string, unknown>, key: string, file: string, fallback: boolean): boolean {
  const v = json[key] ?? fallback;
  if (typeof v !== 'boolean') {
    throw new ModelConfigError(`${file}: "${key}" must be true or false, got ${showValue(v)}`);
  }
  return v;
}

/** The first id of a token-id field (HF allows a list of eos ids). */
function tokenId(
  json: Record<string, unknown>,
  key: string,
  file: string,
  vocab: number,
  fallback: number,
): number {
  const raw = json[key] ?? fallback;
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= vocab) {
    throw new ModelConfigError(
      `${file}: "${key}" ${showValue(raw)} is outside the vocabulary (0..${vocab - 1})`,
    );
  }
  return v;
}

/**
 * rope_theta and the scaling: transformers 5 writes both in `rope_parameters`; older folders (the
 * Hub's) write `rope_theta` and `rope_scaling` at the top level. Defaults as transformers'
 * standardize_rope_params and its ROPE_INIT_FUNCTIONS take them.
 */
function parseRope(
  json: Record<string, unknown>,
  file: string,
  headDim: number,
  maxPositions: number,
): { theta: number; scaling: RopeScaling } {
  const params = json.rope_parameters ?? json.rope_scaling ?? null;
  const where = json.rope_parameters !== undefined ? 'rope_parameters' : 'rope_scaling';
  if (params !== null && !isObject(params)) {
    throw new ModelConfigError(`${file}: "${where}" must be an object or null, got ${showValue(params)}`);
  }
  const p = params ?? {};
  const theta = positive(isObject(params) && 'rope_theta' in p ? p : json, 'rope_theta', file, 10000);
  const type = p.rope_type ?? p.type ?? 'default';
  const at = `${file}: ${where}`;
  const num = (key: string, fallback?: number): number => positive(p, key, at, fallback);
  // A derived attention factor can still overflow (LongRoPE's divides by ln of the original length).
  const finite = (attentionFactor: number): number => {
    if (!(attentionFactor > 0) || !Number.isFinite(attentionFactor)) {
      throw new ModelConfigError(
        `${at}: the attention factor comes out as ${attentionFactor}; give "attention_factor" or an original_max_position_embeddings above 1`,
      );
    }
    return attentionFactor;
  };
  // A top-level original_max_position_embeddings wins over the one in the scaling (Phi-3 writes it
  // there); with neither, transformers takes max_position_embeddings.
  const originalMax = (): number =>
    json.original_max_position_embeddings != null
      ? int(json, 'original_max_position_embeddings', file)
      : num('original_max_position_embeddings', maxPositions);
  if (type !== 'default' && type !== 'linear' && type !== 'llama3') {
    // Rotating a fraction of each head is other families' (Phi, GPT-NeoX); Llama's rotate_half takes all of it.
    const partial = p.partial_rotary_factor ?? json.partial_rotary_factor ?? 1;
    if (partial !== 1) {
      throw new ModelConfigError(
        `${at}: partial_rotary_factor ${showValue(partial)} is not supported on this family (it rotates the whole head); remove it or use a config of the model's own family`,
      );
    }
  }
  switch (type) {
    case 'default':
      return { theta, scaling: { type: 'default' } };
    case 'linear':
      return { theta, scaling: { type: 'linear', factor: num('factor') } };
    case 'llama3':
      return {
        theta,
        scaling: {
          type: 'llama3',
          factor: num('factor'),
          lowFreqFactor: num('low_freq_factor'),
          highFreqFactor: num('high_freq_factor'),
          originalMaxPositionEmbeddings: originalMax(),
        },
      };
    case 'dynamic':
      return { theta, scaling: { type: 'dynamic', factor: num('factor') } };
    case 'yarn': {
      const original = originalMax();
      const factor = p.factor == null ? maxPositions / original : num('factor');
      // YaRN's attention factor ("mscale"): given, else from mscale and mscale_all_dim, else from factor.
      const mscale = (scale: number, m = 1): number => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      let attentionFactor: number;
      if (p.attention_factor != null) attentionFactor = num('attention_factor');
      else if (p.mscale && p.mscale_all_dim)
        attentionFactor = mscale(factor, num('mscale')) / mscale(factor, num('mscale_all_dim'));
      else attentionFactor = mscale(factor);
      const truncate = p.truncate ?? true;
      if (typeof truncate !== 'boolean') {
        throw new ModelConfigError(`${at}: "truncate" must be true or false, got ${showValue(truncate)}`);
      }
      return {
        theta,
        scaling: {
          type: 'yarn',
          factor,
          originalMaxPositionEmbeddings: original,
          attentionFactor: finite(attentionFactor),
          // `or` in transformers: a 0 or null beta takes the default too.
          betaFast: p.beta_fast ? num('beta_fast') : 32,
          betaSlow: p.beta_slow ? num('beta_slow') : 1,
          truncate,
        },
      };
    }
    case 'longrope': {
      const original = originalMax();
      const list = (key: string): number[] => {
        const v = p[key];
        if (
          !Array.isArray(v) ||
          v.length !== headDim / 2 ||
          !v.every((x) => typeof x === 'number' && x > 0 && Number.isFinite(x))
        ) {
          throw new ModelConfigError(
            `${at}: "${key}" must be a list of ${headDim / 2} positive numbers (one per rotary frequency, head_dim ${headDim} / 2), got ${showValue(v)}`,
          );
        }
        return v as number[];
      };
      const factor = p.factor == null ? maxPositions / original : num('factor');
      const attentionFactor =
        p.attention_factor != null
          ? num('attention_factor')
          : factor <= 1
            ? 1
            : Math.sqrt(1 + Math.log(factor) / Math.log(original));
      return {
        theta,
        scaling: {
          type: 'longrope',
          shortFactor: list('short_factor'),
          longFactor: list('long_factor'),
          originalMaxPositionEmbeddings: original,
          attentionFactor: finite(attentionFactor),
        },
      };
    }
    default:
      throw new ModelConfigError(
        `${file}: ${where} type ${showValue(type)} is not supported; PEFT Lab reads ${ROPE_TYPES.map((t) => `"${t}"`).join(', ')}. Use a config with one of these (or none, for plain rotary embeddings)`,
      );
  }
}

/** The HF model type a config.json names (model_type, else its architecture), or null if neither is ours. */
export function llamaModelType(json: Record<string, unknown>): LlamaModelType | null {
  const type = json.model_type;
  if (typeof type === 'string' && MODEL_TYPES.includes(type)) return type as LlamaModelType;
  const arch = Array.isArray(json.architectures) ? json.architectures[0] : undefined;
  // Own keys only: `"toString" in LLAMA_ARCHITECTURES` is true, and would make a function the model type.
  if (type === undefined && typeof arch === 'string' && Object.hasOwn(LLAMA_ARCHITECTURES, arch))
    return LLAMA_ARCHITECTURES[arch as keyof typeof LLAMA_ARCHITECTURES];
  return null;
}

/** Validates a parsed config.json of the Llama family; every fault names the field and its value. */
export function parseLlamaConfig(raw: unknown, file = 'config.json'): LlamaConfig {
  if (!isObject(raw)) throw new ModelConfigError(`${file}: expected a JSON object`);
  const json = raw;
  const modelType = llamaModelType(json);
  if (!modelType) {
    throw new ModelConfigError(
      `${file}: model_type ${showValue(json.model_type ?? null)} is not of the Llama family (${MODEL_TYPES.join(', ')})`,
    );
  }
  const act = json.hidden_act ?? 'silu';
  if (act !== 'silu') {
    throw new ModelConfigError(
      `${file}: hidden_act ${showValue(act)} is not supported (these models use "silu")`,
    );
  }
  const nEmbd = int(json, 'hidden_size', file);
  const nHead = int(json, 'num_attention_heads', file);
  const nKvHead = json.num_key_value_heads == null ? nHead : int(json, 'num_key_value_heads', file);
  if (nHead % nKvHead !== 0) {
    throw new ModelConfigError(
      `${file}: num_attention_heads ${nHead} is not a multiple of num_key_value_heads ${nKvHead}`,
    );
  }
  let headDim: number;
  if (json.head_dim == null) {
    if (nEmbd % nHead !== 0) {
      throw new ModelConfigError(
        `${file}: hidden_size ${nEmbd} is not divisible by num_attention_heads ${nHead}`,
      );
    }
    headDim = nEmbd / nHead;
  } else headDim = int(json, 'head_dim', file);
  if (headDim % 2 !== 0)
    throw new ModelConfigError(`${file}: head_dim ${headDim} must be even for rotary embeddings`);
  const nLayer = int(json, 'num_hidden_layers', file);
  const vocabSize = int(json, 'vocab_size', file);
  const nPositions = int(json, 'max_position_embeddings', file);
  const { theta, scaling } = parseRope(json, file, headDim, nPositions);
  const attentionBias = bool(json, 'attention_bias', file, false);
  // Qwen2 has q/k/v biases and none on o_proj, with no config field for either.
  const qkvBias = modelType === 'qwen2' ? true : attentionBias;
  const oBias = modelType === 'qwen2' ? false : attentionBias;
  return {
    modelType,
    architecture:
      Array.isArray(json.architectures) && typeof json.architectures[0] === 'string'
        ? json.architectures[0]
        : Object.entries(LLAMA_ARCHITECTURES).find(([, t]) => t === modelType)![0],
    vocabSize,
    nPositions,
    nEmbd,
    nLayer,
    nHead,
    nKvHead,
    headDim,
    intermediateSize: int(json, 'intermediate_size', file),
    rmsNormEps: positive(json, 'rms_norm_eps', file, 1e-6),
    ropeTheta: theta,
    ropeScaling: scaling,
    tieWordEmbeddings: bool(json, 'tie_word_embeddings', file, modelType === 'qwen2'),
    qkvBias,
    oBias,
    mlpBias: modelType === 'llama' ? bool(json, 'mlp_bias', file, false) : false,
    slidingWindow: slidingWindows(json, modelType, nLayer, file),
    bosTokenId: tokenId(json, 'bos_token_id', file, vocabSize, 1),
    eosTokenId: tokenId(json, 'eos_token_id', file, vocabSize, 2),
  };
}

/**
 * Which layers attend through a window: `layer_types` where transformers wrote it; else Mistral's
 * sliding_window on every layer, Qwen2's on layers from max_window_layers on when use_sliding_window.
 */
function slidingWindows(
  json: Record<string, unknown>,
  modelType: LlamaModelType,
  nLayer: number,
  file: string,
): (number | null)[] {
  const full = Array<number | null>(nLayer).fill(null);
  if (modelType === 'llama' || json.sliding_window == null) return full;
  const window = int(json, 'sliding_window', file);
  const types = json.layer_types;
  if (Array.isArray(types)) {
    if (types.length !== nLayer) {
      throw new ModelConfigError(`${file}: "layer_types" has ${types.length} entries for ${nLayer} layers`);
    }
    return types.map((t) => (t === 'sliding_attention' ? window : null));
  }
  if (modelType === 'mistral') return full.map(() => window);
  if (!bool(json, 'use_sliding_window', file, false)) return full;
  const from = json.max_window_layers == null ? 0 : int(json, 'max_window_layers', file, 0);
  return full.map((_, i) => (i >= from ? window : null));
}

/** The linear layers of one block, as PEFT's targetModules name them (HF's module names). */
export const LLAMA_LINEAR_MODULES = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
] as const;
export type LlamaLinearModule = (typeof LLAMA_LINEAR_MODULES)[number];

/** [in, out] of a block's linear layer. */
export function llamaLinearShape(c: LlamaConfig, module: LlamaLinearModule): [number, number] {
  const q = c.nHead * c.headDim;
  const kv = c.nKvHead * c.headDim;
  switch (module) {
    case 'self_attn.q_proj':
      return [c.nEmbd, q];
    case 'self_attn.k_proj':
    case 'self_attn.v_proj':
      return [c.nEmbd, kv];
    case 'self_attn.o_proj':
      return [q, c.nEmbd];
    case 'mlp.gate_proj':
    case 'mlp.up_proj':
      return [c.nEmbd, c.intermediateSize];
    case 'mlp.down_proj':
      return [c.intermediateSize, c.nEmbd];
  }
}

function hasBias(c: LlamaConfig, module: LlamaLinearModule): boolean {
  if (module.startsWith('mlp.')) return c.mlpBias;
  return module === 'self_attn.o_proj' ? c.oBias : c.qkvBias;
}

/**
 * Canonical weight names (HF's without the `model.` prefix; `lm_head.weight` as is) and their shapes
 * as PEFT Lab holds them: block linear weights [in, out] (transposed from nn.Linear's [out, in] at
 * load, as GPT-2's Conv1D stores them, so adapters see one layout); embed_tokens and lm_head [V, C].
 */
export function expectedLlamaWeightShapes(c: LlamaConfig): Map<string, number[]> {
  const m = new Map<string, number[]>([['embed_tokens.weight', [c.vocabSize, c.nEmbd]]]);
  for (let i = 0; i < c.nLayer; i++) {
    const p = `layers.${i}.`;
    m.set(p + 'input_layernorm.weight', [c.nEmbd]);
    for (const mod of LLAMA_LINEAR_MODULES) {
      const [inDim, outDim] = llamaLinearShape(c, mod);
      m.set(`${p}${mod}.weight`, [inDim, outDim]);
      if (hasBias(c, mod)) m.set(`${p}${mod}.bias`, [outDim]);
    }
    m.set(p + 'post_attention_layernorm.weight', [c.nEmbd]);
  }
  m.set('norm.weight', [c.nEmbd]);
  if (!c.tieWordEmbeddings) m.set('lm_head.weight', [c.vocabSize, c.nEmbd]);
  return m;
}

export function countLlamaParameters(c: LlamaConfig): number {
  let n = 0;
  for (const s of expectedLlamaWeightShapes(c).values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/** True for a Llama-family config (GPT-2's has no modelType). */
export function isLlamaConfig(c: object): c is LlamaConfig {
  return 'modelType' in c && MODEL_TYPES.includes((c as LlamaConfig).modelType);
}
