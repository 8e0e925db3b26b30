/**
 * LoKr's implementation and registry entry (see info.ts), after peft/tuners/lokr/layer.py:
 *   ΔW [out, in] = kron(W1, W2) · alpha / r,   W1 [a, c], W2 [b, d],  out = a b, in = c d
 * where W1 is `lokr_w1` or `lokr_w1_a` [a, r] @ `lokr_w1_b` [r, c], and W2 is `lokr_w2` or
 * `lokr_w2_a` [b, r] @ `lokr_w2_b` [r, d] (kronShape says which), saved under those names.
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderModel } from '../../model/decoder';
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { FactorInit, LycorisSite } from '../lycoris';
import { LycorisAdapter, kaimingA5, lycorisParamCount } from '../lycoris';
import { LYCORIS_PEFT_EXTRA, checkLycorisJson } from '../lycoris-info';
import type { InjectAdapter, PeftMethod } from '../types';
import type { LoKrConfig } from './info';
import { kronShape, lokrDefaults, lokrInfo, lokrLayerParams, validateLokr } from './info';

/** kron(x [a, c], y [b, d]) = [a b, c d], element (i b + k, j d + l) = x[i, j] y[k, l]. */
export function kron(x: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor2D {
  const [a, c] = x.shape;
  const [b, d] = y.shape;
  const outer = tf.mul(tf.reshape(x, [a, 1, c, 1]), tf.reshape(y, [1, b, 1, d])); // [a, b, c, d]
  return tf.reshape(outer, [a * b, c * d]);
}

class LoKrAdapter extends LycorisAdapter<LoKrConfig> implements InjectAdapter<LoKrConfig> {
  constructor(model: DecoderModel, config: LoKrConfig, seed: number) {
    super(model, config, 'LoKr adapter', seed);
  }

  protected factorInits(_site: unknown, inDim: number, outDim: number, seed: () => number): FactorInit[] {
    const { r, initWeights } = this.config;
    const k = kronShape(this.config, inDim, outDim);
    // PEFT's init zeroes W1 (or W1a) so the model starts unchanged; "lycoris" zeroes W2 (or W2b)
    // instead; false leaves everything random.
    const zero1 = initWeights === true;
    const zero2 = initWeights === 'lycoris';
    const init = (shape: [number, number], zero: boolean): tf.Tensor2D =>
      zero ? tf.zeros<tf.Rank.R2>(shape) : kaimingA5(shape, seed());
    const out: FactorInit[] = [];
    if (k.fullW1) out.push(['lokr_w1', init([k.a, k.c], zero1)]);
    else out.push(['lokr_w1_a', init([k.a, r], zero1)], ['lokr_w1_b', init([r, k.c], false)]);
    if (k.fullW2) out.push(['lokr_w2', init([k.b, k.d], zero2)]);
    else out.push(['lokr_w2_a', init([k.b, r], false)], ['lokr_w2_b', init([r, k.d], zero2)]);
    return out;
  }

  protected delta(s: LycorisSite): tf.Tensor2D {
    const f = (n: string) => s.factors.get(n);
    const w1 = f('lokr_w1') ?? tf.matMul(f('lokr_w1_a')!, f('lokr_w1_b')!); // [a, c]
    const w2 = f('lokr_w2') ?? tf.matMul(f('lokr_w2_a')!, f('lokr_w2_b')!); // [b, d]
    return tf.mul(kron(w1, w2), this.scaling); // [out, in]
  }

  protected get rankDropoutRescales(): boolean {
    return this.config.rankDropoutScale;
  }
}

export const lokr: PeftMethod<LoKrConfig> = {
  ...lokrInfo,
  validate: validateLokr,
  toPeftJson: (c) => configToPeftJson(c, LYCORIS_PEFT_EXTRA),
  fromPeftJson: (json, source) => {
    // init_weights is a bool or "lycoris" in PEFT: read apart from the typed fields.
    checkLycorisJson(json, source);
    const { init_weights: init, ...rest } = json;
    const c = configFromPeftJson(rest, lokrDefaults('CAUSAL_LM'), source);
    return { ...c, initWeights: init === undefined ? true : (init as LoKrConfig['initWeights']) };
  },
  create: (model, config, seed) => {
    validateLokr(config, model);
    return new LoKrAdapter(model, config, seed);
  },
  countParams: (model, c) => lycorisParamCount(model, c, (i, o) => lokrLayerParams(c, i, o)),
};
