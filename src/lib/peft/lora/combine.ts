/**
 * PEFT's `add_weighted_adapter` for LoRA (peft/tuners/lora/model.py), on saved state dicts, so it
 * needs no model and no tensors: a new LoRA adapter whose update is a weighted combination of
 * others. The result has lora_alpha = r, so its scaling is 1 and the weights and scalings are
 * folded into A (and B):
 * - `cat` (exact): A = concat_i(w_i s_i A_i) over rows, B = concat_i(B_i) over columns, r = sum r_i,
 *   so B A = sum_i w_i s_i B_i A_i;
 * - `linear` (PEFT's task arithmetic; needs equal r): with c_i = sqrt(|w_i s_i|),
 *   A = sum_i sign(w_i s_i) c_i A_i and B = sum_i c_i B_i, which is not the weighted sum of the
 *   updates (cross terms B_i A_j remain), as in PEFT.
 */
import { PeftConfigError } from '../../errors';
import type { StateDict } from '../state';
import type { LoraConfig } from './config';
import { loraScaling } from './lora';

export type CombinationType = 'linear' | 'cat';

export interface SavedLora {
  config: LoraConfig;
  state: StateDict;
}

const A_SUFFIX = '.lora_A.weight';
const B_SUFFIX = '.lora_B.weight';

export function addWeightedAdapter(
  adapters: SavedLora[],
  weights: number[],
  type: CombinationType,
): SavedLora {
  if (adapters.length === 0) throw new PeftConfigError('combining adapters needs at least one adapter');
  if (weights.length !== adapters.length) {
    throw new PeftConfigError(
      `${adapters.length} adapters but ${weights.length} weights: give one weight each`,
    );
  }
  const first = adapters[0]!;
  const modules = [...first.state.keys()]
    .filter((k) => k.endsWith(A_SUFFIX))
    .map((k) => k.slice(0, -A_SUFFIX.length));
  adapters.forEach((a, i) => {
    if (a.config.peftType !== 'LORA')
      throw new PeftConfigError(`adapter ${i + 1} is ${a.config.peftType}: only LoRA adapters combine`);
    if (a.config.taskType !== 'CAUSAL_LM' || a.config.bias !== 'none') {
      throw new PeftConfigError(
        `adapter ${i + 1} carries a head or biases: only plain CAUSAL_LM LoRA adapters combine`,
      );
    }
    const mine = [...a.state.keys()]
      .filter((k) => k.endsWith(A_SUFFIX))
      .map((k) => k.slice(0, -A_SUFFIX.length));
    const missing = modules.filter((m) => !mine.includes(m));
    if (missing.length || mine.length !== modules.length) {
      throw new PeftConfigError(
        `adapter ${i + 1} targets other layers than adapter 1 (${missing[0] ?? mine.find((m) => !modules.includes(m))}): combine adapters with the same targetModules`,
      );
    }
  });
  const ranks = adapters.map((a) => a.config.r);
  if (type === 'linear' && new Set(ranks).size !== 1) {
    throw new PeftConfigError(`linear combination needs equal ranks, got r = ${ranks.join(', ')}: use "cat"`);
  }
  const r = type === 'cat' ? ranks.reduce((a, b) => a + b, 0) : ranks[0]!;
  const out: StateDict = new Map();
  for (const m of modules) {
    const As = adapters.map((a) => a.state.get(m + A_SUFFIX)!); // [r_i, in]
    const Bs = adapters.map((a) => a.state.get(m + B_SUFFIX)!); // [out, r_i]
    const inDim = As[0]!.shape[1]!;
    const outDim = Bs[0]!.shape[0]!;
    const A = new Float32Array(r * inDim);
    const B = new Float32Array(outDim * r);
    let row = 0;
    adapters.forEach((a, i) => {
      const ws = weights[i]! * loraScaling(a.config);
      const ri = a.config.r;
      const ai = As[i]!.data;
      const bi = Bs[i]!.data;
      if (type === 'cat') {
        for (let k = 0; k < ri * inDim; k++) A[row * inDim + k] = ai[k]! * ws;
        for (let o = 0; o < outDim; o++) for (let k = 0; k < ri; k++) B[o * r + row + k] = bi[o * ri + k]!;
        row += ri;
      } else {
        const c = Math.sqrt(Math.abs(ws));
        const sign = ws >= 0 ? 1 : -1;
        for (let k = 0; k < r * inDim; k++) A[k] = A[k]! + sign * c * ai[k]!;
        for (let k = 0; k < outDim * r; k++) B[k] = B[k]! + c * bi[k]!;
      }
    });
    out.set(m + A_SUFFIX, { shape: [r, inDim], data: A });
    out.set(m + B_SUFFIX, { shape: [outDim, r], data: B });
  }
  return {
    config: { ...first.config, r, loraAlpha: r, useRslora: false, loraDropout: first.config.loraDropout },
    state: out,
  };
}
