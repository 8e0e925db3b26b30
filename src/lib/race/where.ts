/**
 * Where an adapter's trainable parameters live in a GPT-2, read from their state-dict names (the
 * names PEFT gives them): beside a layer's linear modules (LoRA, AdaLoRA, IA3), virtual tokens
 * before the input (prompt tuning, P-tuning), keys and values at every layer (prefix tuning,
 * P-tuning v2), every weight (full fine-tuning), and the task head. No tfjs: the diagram is drawn
 * from this.
 */
import type { MethodKind } from '../peft/types';

export interface ParameterMap {
  laneId: string;
  name: string;
  kind: MethodKind;
  nLayer: number;
  /** Parameters before the first layer: virtual tokens and their encoder, or (full) the embeddings. */
  input: number;
  /** Virtual tokens prepended (prompt kind) or per layer as keys/values (prefix kind). */
  numVirtualTokens: number;
  /** Prefix kind: the encoder's parameters, which make keys and values for every layer. */
  everyLayer: number;
  /** Per layer, per module ("attn.c_attn", "mlp.c_proj", "ln_1"...): parameters that train there. */
  layers: Record<string, number>[];
  /** The final LayerNorm (full fine-tuning). */
  output: number;
  head: number;
  total: number;
}

const LAYER = /(?:^|\.)h\.(\d+)\.((?:attn|mlp)\.c_\w+|ln_\d)\b/;
const HEAD = /(?:^|\.)(score|classifier)\./;

export function parameterMap(
  laneId: string,
  name: string,
  kind: MethodKind,
  nLayer: number,
  numVirtualTokens: number,
  params: Iterable<[string, number]>,
): ParameterMap {
  const map: ParameterMap = {
    laneId,
    name,
    kind,
    nLayer,
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
    const layer = LAYER.exec(key);
    if (HEAD.test(key)) map.head += size;
    else if (layer) {
      const row = map.layers[Number(layer[1])]!;
      row[layer[2]!] = (row[layer[2]!] ?? 0) + size;
    } else if (key.startsWith('prompt_encoder.')) {
      if (kind === 'prefix') map.everyLayer += size;
      else map.input += size;
    } else if (/(?:^|\.)ln_f\./.test(key)) map.output += size;
    else map.input += size; // wte, wpe
  }
  return map;
}
