/**
 * VeRA's implementation and registry entry (see info.ts), after peft/tuners/vera/layer.py:
 *   y = x W + b + lambda_b * ((lambda_d * (dropout(x) A_s^T)) B_s^T),
 * with A_s = A[:, :in] and B_s = B[:out, :] sliced from the shared projections, which are
 * Kaiming-uniform with gain sqrt(2) (PEFT's `_kaiming_init`: bound sqrt(6 / fan_in)). PEFT draws
 * them with torch's generator seeded by projection_prng_key; ours come from our own seeded PRNG,
 * so they are not PEFT's numbers, and the file always carries them (save_projection true, PEFT's
 * default) as `base_model.vera_A` [r, in_max] and `base_model.vera_B` [out_max, r]; a file
 * carrying them loads with PEFT's own. lambda_b starts at zero, so the model starts unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import { AdapterError } from '../../errors';
import type { DecoderModel, ForwardContext, LinearHook } from '../../model/decoder';
import { matmul, newVariable } from '../../model/ops';
import { fnv1a } from '../../util/hash';
import { Rng } from '../../util/rng';
import type { InjectSite } from '../inject-base';
import { InjectBase, adapterDropout } from '../inject-base';
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { StateDict } from '../state';
import { PEFT_PREFIX } from '../state';
import type { InjectAdapter, PeftMethod } from '../types';
import type { VeraConfig } from './info';
import { validateVera, veraDefaults, veraDims, veraInfo } from './info';

const A_KEY = 'base_model.vera_A';
const B_KEY = 'base_model.vera_B';

interface VeraSite extends InjectSite {
  lambdaD: tf.Variable<tf.Rank.R1>; // [r]
  lambdaB: tf.Variable<tf.Rank.R1>; // [out]
  inDim: number;
  outDim: number;
}

class VeraAdapter extends InjectBase<VeraConfig, VeraSite> implements InjectAdapter<VeraConfig> {
  /** Shared frozen projections in our layout: A^T [in_max, r] and B^T [r, out_max]. */
  private readonly aT: tf.Variable<tf.Rank.R2>;
  private readonly bT: tf.Variable<tf.Rank.R2>;

  constructor(model: DecoderModel, config: VeraConfig) {
    super(model, config, 'VeRA adapter');
    const { sites, shapes, inMax, outMax } = veraDims(model, config);
    const r = config.r;
    const rng = new Rng(config.projectionPrngKey + 1); // tfjs reads seed 0 as "unseeded"
    // _kaiming_init: fan_in is the second dimension of A [r, in_max] and of B [out_max, r].
    const bA = Math.sqrt(6 / inMax);
    const bB = Math.sqrt(6 / r);
    this.aT = newVariable(tf.randomUniform<tf.Rank.R2>([inMax, r], -bA, bA, 'float32', rng.seed()), false);
    this.bT = newVariable(tf.randomUniform<tf.Rank.R2>([r, outMax], -bB, bB, 'float32', rng.seed()), false);
    sites.forEach((site, i) => {
      const [inDim, outDim] = shapes[i]!;
      const lambdaD = newVariable(tf.fill([r], config.dInitial) as tf.Tensor1D, true);
      const lambdaB = newVariable(tf.zeros<tf.Rank.R1>([outDim]), true);
      const p = `${PEFT_PREFIX}${site.hfName}`;
      const vars = new Map<string, tf.Variable>([
        [`${p}.vera_lambda_b`, lambdaB],
        [`${p}.vera_lambda_d`, lambdaD],
      ]);
      const s: VeraSite = { site, vars, lambdaD, lambdaB, inDim, outDim };
      const salt = fnv1a(site.key);
      const hook: LinearHook = {
        apply: (x: tf.Tensor2D, base: tf.Tensor2D, ctx: ForwardContext) => {
          if (this.merged) return base;
          const xin = adapterDropout(x, ctx, config.veraDropout, salt);
          const [a, b] = this.sliced(s);
          const low: tf.Tensor2D = tf.mul(matmul(xin, a), s.lambdaD); // [N, r]
          return tf.add(base, tf.mul(matmul(low, b), s.lambdaB)); // [N, out]
        },
      };
      this.install(s, hook);
    });
  }

  /** A_s^T [in, r] and B_s^T [r, out] for one layer. */
  private sliced(s: VeraSite): [tf.Tensor2D, tf.Tensor2D] {
    const a = s.inDim === this.aT.shape[0] ? this.aT : tf.slice(this.aT, [0, 0], [s.inDim, -1]);
    const b = s.outDim === this.bT.shape[1] ? this.bT : tf.slice(this.bT, [0, 0], [-1, s.outDim]);
    return [a, b];
  }

  /** Delta [in, out] = A_s^T diag(lambda_d) B_s^T diag(lambda_b) (PEFT's get_delta_weight, transposed). */
  protected mergeSite(s: VeraSite, weight: tf.Variable): void {
    const [a, b] = this.sliced(s);
    weight.assign(tf.add(weight, tf.mul(tf.matMul(tf.mul(a, s.lambdaD), b), s.lambdaB)));
  }

  /** The shared projections, saved with the sites as PEFT's save_projection does, in PEFT's layout. */
  protected override sharedState(): Map<string, { variable: tf.Variable; transpose: boolean }> {
    return new Map([
      [A_KEY, { variable: this.aT, transpose: true }],
      [B_KEY, { variable: this.bT, transpose: true }],
    ]);
  }

  override loadStateDict(tensors: StateDict, source: string): void {
    if (!tensors.has(A_KEY) || !tensors.has(B_KEY)) {
      throw new AdapterError(
        `${source}: ${A_KEY} / ${B_KEY} are missing (saved with save_projection false): PEFT redraws them with torch's generator, which PEFT Lab cannot reproduce; save the adapter with save_projection=True`,
      );
    }
    super.loadStateDict(tensors, source);
  }

  override dispose(): void {
    super.dispose();
    tf.dispose([this.aT, this.bT]);
  }
}

export const vera: PeftMethod<VeraConfig> = {
  ...veraInfo,
  validate: validateVera,
  toPeftJson: (c) => configToPeftJson(c, { layers_pattern: null, revision: null, auto_mapping: null }),
  fromPeftJson: (json, source) => configFromPeftJson(json, veraDefaults('CAUSAL_LM'), source),
  create: (model, config) => {
    validateVera(config, model);
    return new VeraAdapter(model, config);
  },
  // lambda_d [r] and lambda_b [out] per adapted layer; the shared projections are frozen.
  countParams: (model, c) => veraDims(model, c).shapes.reduce((n, [, o]) => n + c.r + o, 0),
};
