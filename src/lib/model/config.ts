/**
 * GPT-2 configuration, read from and written to HuggingFace's `config.json` (GPT2Config).
 * Field names inside the app are camelCase; the file keeps HF's snake_case.
 */
import { ModelConfigError } from '../errors';
import { showValue } from '../util/show';

export interface Gpt2Config {
  vocabSize: number;
  /** Longest sequence the position table covers (prompt, virtual tokens and generated text together). */
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  /** Hidden size of the MLP; HF's null means 4 * nEmbd. */
  nInner: number;
  layerNormEpsilon: number;
  bosTokenId: number;
  eosTokenId: number;
}

/**
 * Upper bounds far above any GPT-2-family model a browser can hold (GPT-2 XL: 48 layers, width
 * 1600, 50257 tokens, 1024 positions), so a damaged file is refused here rather than sizing a
 * loop or an allocation (a claimed 10^9 layers would list 10^10 weights before anything fails).
 */
const MAX = {
  vocab_size: 2 ** 20,
  n_positions: 2 ** 20,
  n_embd: 2 ** 16,
  n_layer: 1024,
  n_head: 2 ** 12,
  n_inner: 2 ** 18,
} as const;

function int(json: Record<string, unknown>, key: keyof typeof MAX, file: string, min = 1): number {
  const v = json[key];
  const max = MAX[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ModelConfigError(
      `${file}: "${key}" must be an integer from ${min} to ${max}, got ${showValue(v)}; fix the file or use the config.json the model came with`,
    );
  }
  return v;
}

/** Validates a parsed config.json; every fault names the field and its value. */
export function parseGpt2Config(raw: unknown, file = 'config.json'): Gpt2Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelConfigError(`${file}: expected a JSON object`);
  }
  const json = raw as Record<string, unknown>;
  const type = json.model_type;
  if (type !== undefined && type !== 'gpt2') {
    throw new ModelConfigError(
      `${file}: model_type ${showValue(type)} is not supported; PEFT Lab runs GPT-2-family models (model_type "gpt2")`,
    );
  }
  const act = json.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
    throw new ModelConfigError(
      `${file}: activation_function ${showValue(act)} is not supported (use gelu_new)`,
    );
  }
  const nEmbd = int(json, 'n_embd', file);
  const nHead = int(json, 'n_head', file);
  if (nEmbd % nHead !== 0) {
    throw new ModelConfigError(`${file}: n_embd ${nEmbd} is not divisible by n_head ${nHead}`);
  }
  const vocabSize = int(json, 'vocab_size', file);
  const nInnerRaw = json.n_inner;
  const nInner = nInnerRaw === null || nInnerRaw === undefined ? 4 * nEmbd : int(json, 'n_inner', file);
  const eps = json.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) {
    throw new ModelConfigError(
      `${file}: "layer_norm_epsilon" must be a positive number, got ${showValue(eps)}`,
    );
  }
  const eos = json.eos_token_id ?? vocabSize - 1;
  const bos = json.bos_token_id ?? eos;
  for (const [k, v] of [
    ['eos_token_id', eos],
    ['bos_token_id', bos],
  ] as const) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= vocabSize) {
      throw new ModelConfigError(
        `${file}: "${k}" ${showValue(v)} is outside the vocabulary (0..${vocabSize - 1})`,
      );
    }
  }
  return {
    vocabSize,
    nPositions: int(json, 'n_positions', file),
    nEmbd,
    nLayer: int(json, 'n_layer', file),
    nHead,
    nInner,
    layerNormEpsilon: eps,
    bosTokenId: bos as number,
    eosTokenId: eos as number,
  };
}

/** config.json as HuggingFace writes it for GPT2LMHeadModel. */
export function toHfConfigJson(c: Gpt2Config): Record<string, unknown> {
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: c.vocabSize,
    n_positions: c.nPositions,
    n_ctx: c.nPositions,
    n_embd: c.nEmbd,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_inner: c.nInner === 4 * c.nEmbd ? null : c.nInner,
    activation_function: 'gelu_new',
    resid_pdrop: 0.0,
    embd_pdrop: 0.0,
    attn_pdrop: 0.0,
    layer_norm_epsilon: c.layerNormEpsilon,
    initializer_range: 0.02,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
  };
}

/** Canonical weight names (HF's, without the `transformer.` prefix) and their shapes. */
export function expectedWeightShapes(c: Gpt2Config): Map<string, number[]> {
  const d = c.nEmbd;
  const m = new Map<string, number[]>([
    ['wte.weight', [c.vocabSize, d]],
    ['wpe.weight', [c.nPositions, d]],
  ]);
  for (let i = 0; i < c.nLayer; i++) {
    const p = `h.${i}.`;
    m.set(p + 'ln_1.weight', [d]);
    m.set(p + 'ln_1.bias', [d]);
    // Conv1D stores weights [in, out].
    m.set(p + 'attn.c_attn.weight', [d, 3 * d]);
    m.set(p + 'attn.c_attn.bias', [3 * d]);
    m.set(p + 'attn.c_proj.weight', [d, d]);
    m.set(p + 'attn.c_proj.bias', [d]);
    m.set(p + 'ln_2.weight', [d]);
    m.set(p + 'ln_2.bias', [d]);
    m.set(p + 'mlp.c_fc.weight', [d, c.nInner]);
    m.set(p + 'mlp.c_fc.bias', [c.nInner]);
    m.set(p + 'mlp.c_proj.weight', [c.nInner, d]);
    m.set(p + 'mlp.c_proj.bias', [d]);
  }
  m.set('ln_f.weight', [d]);
  m.set('ln_f.bias', [d]);
  return m;
}

/** Parameter count of the base model (lm_head is tied to wte, so it adds nothing). */
export function countParameters(c: Gpt2Config): number {
  let n = 0;
  for (const s of expectedWeightShapes(c).values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/** The linear layers of one block, as PEFT's targetModules name them. */
export const LINEAR_MODULES = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;
export type LinearModule = (typeof LINEAR_MODULES)[number];

/** [in, out] of a block's linear layer. */
export function linearShape(c: Gpt2Config, module: LinearModule): [number, number] {
  const d = c.nEmbd;
  switch (module) {
    case 'attn.c_attn':
      return [d, 3 * d];
    case 'attn.c_proj':
      return [d, d];
    case 'mlp.c_fc':
      return [d, c.nInner];
    case 'mlp.c_proj':
      return [c.nInner, d];
  }
}
