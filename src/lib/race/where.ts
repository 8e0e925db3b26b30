/**
 * Where an adapter's trainable parameters live in a GPT-2 or a Llama-family model, read from their
 * state-dict names (the names PEFT gives them): beside a layer's linear modules (LoRA, AdaLoRA, IA3), virtual tokens
 * before the input (prompt tuning, P-tuning), keys and values at every layer (prefix tuning,
 * P-tuning v2), every weight (full fine-tuning), and the task head. No tfjs: the diagram is drawn
 * from this.
 */
import type { ModelFamily } from '../model/family';
import type { MethodKind } from '../peft/types';

/** The modules of one layer as the diagram draws them, input to output: state-dict id and label. */
export interface LayerModule {
  id: string;
  label: string;
}

/** The rows outside the layers, as the diagram names them. */
export interface MapNames {
  /** Short row label of the final norm. */
  output: string;
  outputText: string;
  embedText: string;
  /** The causal LM's head. */
  lmHeadText: string;
  /** The LM head is the embedding table (it trains with it in full fine-tuning). */
  tiedHead: boolean;
}

const GPT2_NAMES: MapNames = {
  output: 'ln_f',
  outputText: 'final LayerNorm',
  embedText: 'token + position embeddings (wte, wpe)',
  lmHeadText: 'LM head (tied to wte)',
  tiedHead: true,
};

export const GPT2_LAYER: LayerModule[] = [
  { id: 'ln_1', label: 'ln_1' },
  { id: 'attn.c_attn', label: 'c_attn' },
  { id: 'attn.c_proj', label: 'a.c_proj' },
  { id: 'ln_2', label: 'ln_2' },
  { id: 'mlp.c_fc', label: 'c_fc' },
  { id: 'mlp.c_proj', label: 'm.c_proj' },
];

export const LLAMA_LAYER: LayerModule[] = [
  { id: 'input_layernorm', label: 'in_norm' },
  { id: 'self_attn.q_proj', label: 'q_proj' },
  { id: 'self_attn.k_proj', label: 'k_proj' },
  { id: 'self_attn.v_proj', label: 'v_proj' },
  { id: 'self_attn.o_proj', label: 'o_proj' },
  { id: 'post_attention_layernorm', label: 'post_norm' },
  { id: 'mlp.gate_proj', label: 'gate_proj' },
  { id: 'mlp.up_proj', label: 'up_proj' },
  { id: 'mlp.down_proj', label: 'down_proj' },
];

export interface ParameterMap {
  laneId: string;
  name: string;
  kind: MethodKind;
  nLayer: number;
  /**
   * The modules of a layer, as this model's family names them (the keys of `layers`); absent in
   * races saved before the Llama family came, which were GPT-2's (see mapModules).
   */
  modules?: LayerModule[];
  /** What the rows outside the layers are called in this model; absent as `modules` is. */
  names?: MapNames;
  /** Parameters before the first layer: virtual tokens and their encoder, or (full) the embeddings. */
  input: number;
  /** Virtual tokens prepended (prompt kind) or per layer as keys/values (prefix kind). */
  numVirtualTokens: number;
  /** Prefix kind: the encoder's parameters, which make keys and values for every layer. */
  everyLayer: number;
  /**
   * Per layer, per module ("attn.c_attn", "ln_1"... on GPT-2; "self_attn.q_proj",
   * "input_layernorm"... on the Llama family): parameters that train there.
   */
  layers: Record<string, number>[];
  /** The final norm (full fine-tuning). */
  output: number;
  /** The task head, or an untied LM head (full fine-tuning). */
  head: number;
  total: number;
}

const LAYER = /(?:^|\.)h\.(\d+)\.((?:attn|mlp)\.c_\w+|ln_\d)\b/;
const LLAMA_LAYER_KEY =
  /(?:^|\.)layers\.(\d+)\.((?:self_attn|mlp)\.\w+_proj|input_layernorm|post_attention_layernorm)\b/;
/** A task head, or the Llama family's untied lm_head. */
const HEAD = /(?:^|\.)(score|classifier|lm_head)\./;
/** GPT-2's ln_f; the Llama family's final norm (`model.norm`). */
const OUTPUT = /(?:^|\.)(ln_f|norm)\./;

export function parameterMap(
  laneId: string,
  name: string,
  kind: MethodKind,
  nLayer: number,
  numVirtualTokens: number,
  params: Iterable<[string, number]>,
  model: { family: ModelFamily; tiedHead: boolean },
): ParameterMap {
  const llama = model.family !== 'gpt2';
  const layerKey = llama ? LLAMA_LAYER_KEY : LAYER;
  const map: ParameterMap = {
    laneId,
    name,
    kind,
    nLayer,
    modules: llama ? LLAMA_LAYER : GPT2_LAYER,
    names: llama
      ? {
          output: 'norm',
          outputText: 'final RMSNorm',
          embedText: 'token embeddings (embed_tokens; positions are rotary)',
          lmHeadText: model.tiedHead ? 'LM head (tied to embed_tokens)' : 'LM head (lm_head)',
          tiedHead: model.tiedHead,
        }
      : GPT2_NAMES,
    input: 0,
    numVirtualTokens,
    everyLayer: 0,
    layers: Array.from({ length: nLayer }, () => ({})),
    output: 0,
    head: 0,
    total: 0,
  };
  for (const [key, size] of params) {
    map.total += size;
    const layer = layerKey.exec(key);
    if (HEAD.test(key)) map.head += size;
    else if (layer) {
      const row = map.layers[Number(layer[1])]!;
      row[layer[2]!] = (row[layer[2]!] ?? 0) + size;
    } else if (key.startsWith('prompt_encoder.')) {
      if (kind === 'prefix') map.everyLayer += size;
      else map.input += size;
    } else if (OUTPUT.test(key)) map.output += size;
    else map.input += size; // wte, wpe, embed_tokens
  }
  return map;
}

/** A map's layer modules and row names (GPT-2's for maps saved without them). */
export function mapModules(m: ParameterMap): { modules: LayerModule[]; names: MapNames } {
  return { modules: m.modules ?? GPT2_LAYER, names: m.names ?? GPT2_NAMES };
}
