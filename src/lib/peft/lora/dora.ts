/**
 * DoRA (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation"), LoRA with `useDora`: the
 * adapted weight W + s B A is split into a direction and a trained magnitude per output feature,
 *   W' = m * (W + s B A) / ||W + s B A||,
 * with the norm over each output feature's inputs (peft/tuners/lora/dora.py, DoraLinearLayer). PEFT
 * treats the norm as a constant in the backward (`weight_norm.detach()`, section 4.3 of the paper:
 * it saves the memory of its graph), and so do we. The forward, as PEFT writes it,
 *   y = x W + b + (g - 1) (x' W) + g s (x' A^T B^T),   g = m / ||W + s B A||,   x' = dropout(x),
 * is g (x W + s x A^T B^T) + b without dropout. GPT-2's Conv1D stores W as [in, out] (PEFT's
 * fan_in_fan_out: it transposes to [out, in] first), so the norm here runs over axis 0 and g is a
 * row vector [out]. m starts at ||W|| (B is zero), so training starts from the base model.
 * Saved as PEFT saves it: lora_A, lora_B and `lora_magnitude_vector` [out] (no `.weight`).
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderModel, ForwardContext, LinearHook } from '../../model/decoder';
import { linearShape } from '../../model/family';
import { matmul, matmulFrozen, newVariable } from '../../model/ops';
import { Rng } from '../../util/rng';
import { fnv1a } from '../../util/hash';
import { targetedSites } from '../inject';
import { adapterDropout } from '../inject-base';
import type { InjectAdapter } from '../types';
import type { LoraConfig } from './config';
import { loraParamCount, loraScaling } from './lora';
import type { LoraFamilySite } from './lora-family';
import { LoraFamilyAdapter, loraFactors, loraVars } from './lora-family';

interface DoraSite extends LoraFamilySite {
  magnitude: tf.Variable<tf.Rank.R1>; // [out]
}

/**
 * ||W + s A^T B^T|| over the inputs of each output feature, [out], with no gradient to A or B
 * (PEFT detaches the norm). W is frozen, so only A and B need a zero gradient.
 */
function columnNorm(w: tf.Tensor2D, aT: tf.Tensor2D, bT: tf.Tensor2D, scaling: number): tf.Tensor1D {
  const f = tf.customGrad((a, b, save) => {
    (save as tf.GradSaveFunc)([]);
    const full = tf.add(w, tf.mul(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), scaling)); // [in, out]
    return {
      value: tf.sqrt(tf.sum(tf.square(full), 0)), // [out]
      gradFunc: () => [tf.zerosLike(a as tf.Tensor2D), tf.zerosLike(b as tf.Tensor2D)],
    };
  }) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor1D;
  return f(aT, bT);
}

class DoraHook implements LinearHook {
  constructor(
    private readonly s: DoraSite,
    private readonly model: DecoderModel,
    private readonly scaling: number,
    private readonly dropout: number,
    private readonly salt: number,
    private readonly isMerged: () => boolean,
  ) {}

  apply(x: tf.Tensor2D, base: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D {
    const y = this.s.biasDelta ? tf.add<tf.Tensor2D>(base, this.s.biasDelta) : base;
    if (this.isMerged()) return y;
    const w = this.model.w(`${this.s.site.key}.weight`) as tf.Tensor2D; // [in, out]
    const g = tf.div(this.s.magnitude, columnNorm(w, this.s.aT, this.s.bT, this.scaling)); // [out]
    const xin = adapterDropout(x, ctx, this.dropout, this.salt);
    // x' W: without dropout it is the base output less its bias, as in PEFT (base_result - bias).
    const xw = xin === x ? tf.sub(base, this.model.w(`${this.s.site.key}.bias`)) : matmulFrozen(xin, w); // [N, out]
    const low: tf.Tensor2D = tf.mul(matmul(xin, this.s.aT), this.scaling); // [N, r]
    const lora = matmul(low, this.s.bT); // [N, out]
    return tf.add(y, tf.add(tf.mul(tf.sub(g, 1), xw), tf.mul(g, lora)));
  }
}

export class DoraAdapter extends LoraFamilyAdapter<DoraSite> implements InjectAdapter<LoraConfig> {
  constructor(model: DecoderModel, config: LoraConfig, seed: number) {
    super(model, config, 'DoRA adapter');
    // The same draws as LoRA's for A, so useDora changes nothing else about the start.
    const rng = new Rng(seed);
    const scaling = loraScaling(config);
    for (const site of targetedSites(model.config, config.targetModules, config.layersToTransform)) {
      const [inDim, outDim] = linearShape(model.config, site.module);
      const f = loraFactors(config, inDim, outDim, rng.seed());
      // B is zero, so ||W + s B A|| = ||W||: the magnitude PEFT's update_layer starts from.
      const w = model.w(`${site.key}.weight`);
      const magnitude = newVariable(
        tf.tidy(() => tf.sqrt(tf.sum(tf.square(w), 0)) as tf.Tensor1D),
        true,
      );
      const vars = loraVars(site, f, { lora_magnitude_vector: magnitude });
      const s: DoraSite = { site, vars, ...f, magnitude };
      this.install(
        s,
        new DoraHook(s, model, scaling, config.loraDropout, fnv1a(site.key), () => this.merged),
      );
    }
  }

  /**
   * W' = g (W + s A^T B^T), g per output column, from the unmerged W (PEFT's DoraLinearVariant
   * merge); the bias stays, as in PEFT (a lora_only bias delta stays in the hook).
   */
  protected mergeSite(s: DoraSite, weight: tf.Variable): void {
    const full = tf.add(weight, tf.mul(tf.matMul(s.aT, s.bT), loraScaling(this.config))); // [in, out]
    const norm = tf.sqrt(tf.sum(tf.square(full), 0)); // [out]
    weight.assign(tf.mul(full, tf.reshape(tf.div(s.magnitude, norm), [1, -1])));
  }
}

/** LoRA's count plus one magnitude per output feature of each targeted layer. */
export function doraParamCount(model: DecoderModel, c: LoraConfig): number {
  let n = loraParamCount(model, c);
  for (const s of targetedSites(model.config, c.targetModules, c.layersToTransform)) {
    n += linearShape(model.config, s.module)[1];
  }
  return n;
}
