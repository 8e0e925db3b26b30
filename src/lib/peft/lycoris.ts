/**
 * What LoHa and LoKr share (peft/tuners/lycoris_utils.py, LycorisLayer): each adapted layer gets
 * a delta weight built from small factors, ΔW [out, in] scaled by alpha / r, and its output is
 *   y = x W + b + x ΔW^T
 * (PEFT's `result + F.linear(x, get_delta_weight())`: the delta is materialised on every call,
 * which costs an [in, out] tensor per layer, not a low-rank pair of matmuls). Training-time
 * regularisers as PEFT has them: rank dropout zeroes whole output rows of ΔW (rescaled by the kept
 * fraction where the method says so), module dropout skips the whole update for a call. The
 * factors are kept and saved in PEFT's own layout (PEFT_PREFIX + module + "." + name, no
 * `.weight`), so no transpose happens on save or load.
 *
 * PEFT applies these only to nn.Linear (and convolutions): the Llama family's layers. GPT-2's
 * Conv1D is refused by PEFT 0.21; here the same math runs on it with ΔW in nn.Linear's [out, in]
 * orientation, so such a file has no PEFT counterpart to check against.
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderModel, ForwardContext, LinearHook } from '../model/decoder';
import { linearShape } from '../model/family';
import { matmul, newVariable } from '../model/ops';
import { fnv1a } from '../util/hash';
import { Rng } from '../util/rng';
import type { LinearSite } from './inject';
import { targetedSites } from './inject';
import type { InjectSite } from './inject-base';
import { InjectBase } from './inject-base';
import { PEFT_PREFIX } from './state';
import type { LycorisConfig } from './lycoris-info';

/** Kaiming-uniform with a = sqrt(5), as torch's nn.init does: bound 1 / sqrt(fan_in), fan_in = shape[1]. */
export function kaimingA5(shape: [number, number], seed: number): tf.Tensor2D {
  const bound = 1 / Math.sqrt(shape[1]);
  return tf.randomUniform<tf.Rank.R2>(shape, -bound, bound, 'float32', seed);
}

export interface LycorisSite extends InjectSite {
  inDim: number;
  outDim: number;
  /** The factors by their PEFT name (hada_w1_a, lokr_w1...), in PEFT's layout. */
  factors: Map<string, tf.Variable<tf.Rank.R2>>;
}

/** A factor's variable at a site, by its PEFT name and shape, with its init. */
export type FactorInit = [name: string, init: tf.Tensor2D];

export abstract class LycorisAdapter<C extends LycorisConfig> extends InjectBase<C, LycorisSite> {
  protected readonly scaling: number;

  constructor(model: DecoderModel, config: C, what: string, seed: number) {
    super(model, config, what);
    this.scaling = config.alpha / config.r;
    const rng = new Rng(seed);
    for (const site of targetedSites(model.config, config.targetModules, config.layersToTransform)) {
      const [inDim, outDim] = linearShape(model.config, site.module);
      const factors = new Map<string, tf.Variable<tf.Rank.R2>>();
      const vars = new Map<string, tf.Variable>();
      for (const [name, init] of this.factorInits(site, inDim, outDim, () => rng.seed())) {
        const v = newVariable(init, true);
        factors.set(name, v);
        vars.set(`${PEFT_PREFIX}${site.hfName}.${name}`, v);
      }
      const s: LycorisSite = { site, vars, factors, inDim, outDim };
      const salt = fnv1a(site.key);
      const hook: LinearHook = {
        apply: (x: tf.Tensor2D, base: tf.Tensor2D, ctx: ForwardContext) => {
          if (this.merged) return base;
          const train = ctx.training;
          if (train && config.moduleDropout > 0) {
            // PEFT draws torch.rand(1) > module_dropout per call; ours is seeded per step and layer.
            // A skipped layer still joins the graph with a zero gradient: tfjs refuses a step in
            // which no trainable variable reaches the loss (every layer skipped at once), where
            // torch leaves the grads empty and AdamW skips them.
            if (new Rng((ctx.seed ^ salt) >>> 0).next() <= config.moduleDropout)
              return tf.add(base, tf.mul(tf.sum(this.deltaT(s)), 0));
          }
          let dT = this.deltaT(s); // [in, out]
          if (train && config.rankDropout > 0) dT = tf.mul(dT, this.rowMask(s, ctx, salt));
          return tf.add(base, matmul(x, dT)); // [N, out]
        },
      };
      this.install(s, hook);
    }
  }

  /** The factors of one layer with their starting values (PEFT's init for the config). */
  protected abstract factorInits(
    site: LinearSite,
    inDim: number,
    outDim: number,
    seed: () => number,
  ): FactorInit[];

  /** ΔW [out, in], scaled (PEFT's get_delta_weight without rank dropout). */
  protected abstract delta(s: LycorisSite): tf.Tensor2D;

  /** Whether rank dropout divides the kept rows by their mean (LoHa always; LoKr by config). */
  protected abstract get rankDropoutRescales(): boolean;

  /** ΔW^T [in, out]: our layers' orientation. */
  deltaT(s: LycorisSite): tf.Tensor2D {
    return tf.tidy(() => tf.transpose(this.delta(s)));
  }

  /** Rank dropout's mask over output rows [out], as PEFT: keep where rand > p, maybe / mean. */
  private rowMask(s: LycorisSite, ctx: ForwardContext, salt: number): tf.Tensor1D {
    return tf.tidy(() => {
      const seed = (ctx.seed ^ salt ^ 0x5bd1e995) >>> 0;
      const keep = tf.cast(
        tf.greater(tf.randomUniform([s.outDim], 0, 1, 'float32', seed), this.config.rankDropout),
        'float32',
      ) as tf.Tensor1D;
      if (!this.rankDropoutRescales) return keep;
      const mean = tf.mean(keep);
      // All rows dropped: PEFT divides 0 by 0; keep the zero update instead of NaN.
      return tf.div(keep, tf.maximum(mean, 1e-12)) as tf.Tensor1D;
    });
  }

  protected mergeSite(s: LycorisSite, weight: tf.Variable): void {
    weight.assign(tf.add(weight, this.deltaT(s)));
  }
}

/** Trainable parameters of a LyCORIS method: the sum of its factors' sizes over the targeted layers. */
export function lycorisParamCount(
  model: DecoderModel,
  c: LycorisConfig,
  perLayer: (inDim: number, outDim: number) => number,
): number {
  let n = 0;
  for (const s of targetedSites(model.config, c.targetModules, c.layersToTransform)) {
    const [i, o] = linearShape(model.config, s.module);
    n += perLayer(i, o);
  }
  return n;
}
