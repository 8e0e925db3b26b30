/** SmolLM2-135M's shape as the bench builds it: HF's parameter count and the Llama family's layer shapes. */
import { describe, expect, it } from 'vitest';
import { attentionShape, countParameters, linearShape, parseModelConfig } from '../../src/lib/model/family';
import { SMOLLM2_135M_CONFIG, SMOLLM2_135M_PARAMS } from './smollm2';

describe("SmolLM2-135M's shape", () => {
  it('parses as a tied Llama of 134,515,008 parameters with 9 query heads on 3 key/value heads', () => {
    const c = parseModelConfig(SMOLLM2_135M_CONFIG);
    expect(countParameters(c)).toBe(SMOLLM2_135M_PARAMS);
    expect(attentionShape(c)).toEqual({ nHead: 9, nKvHead: 3, headDim: 64 });
    expect(linearShape(c, 'self_attn.v_proj')).toEqual([576, 192]);
    expect(linearShape(c, 'mlp.down_proj')).toEqual([1536, 576]);
  });
});
