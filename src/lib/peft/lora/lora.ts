/**
 * LoRA (Hu et al. 2021): beside each targeted frozen linear layer W, a low-rank update
 *   y = x W + b + dropout(x) A^T B^T * scaling,   scaling = loraAlpha / r   (or / sqrt(r), rsLoRA)
 * (peft/tuners/lora/layer.py: `result + lora_B(lora_A(dropout(x))) * scaling`).
 * A is Kaiming-uniform (a = sqrt(5)), B is zero, so training starts from the base model exactly.
 * We keep A^T [in, r] and B^T [r, out] so the forward is two plain matmuls; the state dict stores
 * PEFT's layout, lora_A.weight [r, in] and lora_B.weight [out, r].
 */
import * as tf from '@tensorflow/tfjs';
import type { ForwardContext, DecoderModel, LinearHook } from '../../model/decoder';
import { linearShape } from '../../model/family';
import { isFrozen, matmul } from '../../model/ops';
import { loraLinear } from '../../kernels/webgpu/lora-linear';
import { HalfMatrix } from '../../kernels/webgpu/halves';
import { Rng } from '../../util/rng';
import { fnv1a } from '../../util/hash';
import { targetedSites } from '../inject';
import { adapterDropout } from '../inject-base';
import type { InjectAdapter } from '../types';
import type { LoraConfig } from './config';
import type { LoraFamilySite } from './lora-family';
import { LoraFamilyAdapter, loraFactors, loraVars } from './lora-family';

export function loraScaling(c: LoraConfig): number {
  return c.useRslora ? c.loraAlpha / Math.sqrt(c.r) : c.loraAlpha / c.r;
}

class LoraHook implements LinearHook {
  constructor(
    private readonly s: LoraFamilySite,
    private readonly scaling: number,
    private readonly dropout: number,
    private readonly salt: number,
    private readonly isMerged: () => boolean,
  ) {}

  apply(x: tf.Tensor2D, base: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D {
    let y = base;
    if (this.s.biasDelta) y = tf.add(y, this.s.biasDelta);
    if (this.isMerged()) return y;
    const xin = adapterDropout(x, ctx, this.dropout, this.salt);
    // The scaling goes on the rank-r side, x A^T [N, r], not on the [N, out] product: the same
    // value up to rounding, for r columns of multiplies (forward and backward) instead of out.
    const low: tf.Tensor2D = tf.mul(matmul(xin, this.s.aT), this.scaling); // [N, r]
    return tf.add(y, matmul(low, this.s.bT)); // [N, out]
  }

  /**
   * The whole layer in our fused kernel (asked only on WebGPU): x W + b + s (x A) B with gradients
   * for x, A and B. It has no bias delta, no dropout mask and a frozen base, so anything else
   * falls back to dense + apply.
   */
  fused(
    x: tf.Tensor2D,
    w: tf.Tensor2D | HalfMatrix,
    b: tf.Tensor1D | undefined,
    ctx: ForwardContext,
  ): tf.Tensor2D | null {
    if (this.isMerged() || this.s.biasDelta) return null;
    if (ctx.training && this.dropout > 0) return null;
    if (!(w instanceof HalfMatrix || isFrozen(w)) || (b && !isFrozen(b))) return null;
    return loraLinear(x, w, b, this.s.aT, this.s.bT, this.scaling);
  }
}

export class LoraAdapter extends LoraFamilyAdapter<LoraFamilySite> implements InjectAdapter<LoraConfig> {
  constructor(model: DecoderModel, config: LoraConfig, seed: number) {
    super(model, config, 'LoRA adapter');
    const rng = new Rng(seed);
    const scaling = loraScaling(config);
    for (const site of targetedSites(model.config, config.targetModules, config.layersToTransform)) {
      const [inDim, outDim] = linearShape(model.config, site.module);
      const f = loraFactors(config, inDim, outDim, rng.seed());
      const s: LoraFamilySite = { site, vars: loraVars(site, f), ...f };
      this.install(s, new LoraHook(s, scaling, config.loraDropout, fnv1a(site.key), () => this.merged));
    }
  }

  /** B A * scaling in Conv1D layout [in, out] (PEFT `get_delta_weight`, transposed by fan_in_fan_out). */
  deltaWeight(s: LoraFamilySite): tf.Tensor2D {
    return tf.tidy(() => tf.mul(tf.matMul(s.aT, s.bT), loraScaling(this.config)));
  }

  /** The bias delta stays in the hook (it is applied merged or not), so only the weight changes. */
  protected mergeSite(s: LoraFamilySite, weight: tf.Variable): void {
    weight.assign(tf.add(weight, this.deltaWeight(s)));
  }
}

/** Trainable parameters: r (in + out) per targeted layer, plus out per trained bias. */
export function loraParamCount(model: DecoderModel, c: LoraConfig): number {
  let n = 0;
  for (const s of targetedSites(model.config, c.targetModules, c.layersToTransform)) {
    const [i, o] = linearShape(model.config, s.module);
    n += c.r * (i + o) + (c.bias === 'none' ? 0 : o);
  }
  return n;
}
