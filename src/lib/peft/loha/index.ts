/**
 * LoHa's implementation and registry entry (see info.ts), after peft/tuners/loha/layer.py:
 *   ΔW [out, in] = (hada_w1_a @ hada_w1_b) ⊙ (hada_w2_a @ hada_w2_b) · alpha / r
 * with hada_w1_a, hada_w2_a [out, r] and hada_w1_b, hada_w2_b [r, in], saved under those names
 * (no `.weight`). PEFT's init: w1_a, w1_b, w2_a Kaiming-uniform (a = sqrt(5)), w2_b zero.
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderModel } from '../../model/decoder';
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { FactorInit, LycorisSite } from '../lycoris';
import { LycorisAdapter, kaimingA5, lycorisParamCount } from '../lycoris';
import { LYCORIS_PEFT_EXTRA, checkLycorisJson, validateLycoris } from '../lycoris-info';
import type { InjectAdapter, PeftMethod } from '../types';
import type { LoHaConfig } from './info';
import { lohaDefaults, lohaInfo, lohaLayerParams } from './info';

class LoHaAdapter extends LycorisAdapter<LoHaConfig> implements InjectAdapter<LoHaConfig> {
  constructor(model: DecoderModel, config: LoHaConfig, seed: number) {
    super(model, config, 'LoHa adapter', seed);
  }

  protected factorInits(_site: unknown, inDim: number, outDim: number, seed: () => number): FactorInit[] {
    const r = this.config.r;
    return [
      ['hada_w1_a', kaimingA5([outDim, r], seed())],
      ['hada_w1_b', kaimingA5([r, inDim], seed())],
      ['hada_w2_a', kaimingA5([outDim, r], seed())],
      // Zero, so the model starts unchanged; init_weights false makes it random too.
      [
        'hada_w2_b',
        this.config.initWeights ? tf.zeros<tf.Rank.R2>([r, inDim]) : kaimingA5([r, inDim], seed()),
      ],
    ];
  }

  protected delta(s: LycorisSite): tf.Tensor2D {
    const f = (n: string) => s.factors.get(n)!;
    const w1 = tf.matMul(f('hada_w1_a'), f('hada_w1_b')); // [out, in]
    const w2 = tf.matMul(f('hada_w2_a'), f('hada_w2_b')); // [out, in]
    return tf.mul(tf.mul(w1, w2), this.scaling);
  }

  // PEFT's LoHa always divides the kept rows by their mean.
  protected get rankDropoutRescales(): boolean {
    return true;
  }
}

export const loha: PeftMethod<LoHaConfig> = {
  ...lohaInfo,
  validate: validateLycoris,
  toPeftJson: (c) => configToPeftJson(c, LYCORIS_PEFT_EXTRA),
  fromPeftJson: (json, source) => {
    checkLycorisJson(json, source);
    return configFromPeftJson(json, lohaDefaults('CAUSAL_LM'), source);
  },
  create: (model, config, seed) => {
    validateLycoris(config, model);
    return new LoHaAdapter(model, config, seed);
  },
  countParams: (model, c) => lycorisParamCount(model, c, (i, o) => lohaLayerParams(c.r, i, o)),
};
