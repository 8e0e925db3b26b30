/**
 * BOFT's implementation and registry entry (see info.ts), after peft/tuners/boft/layer.py
 * (BOFTLayer.update_layer, block_butterfly_perm, cayley_batch; Linear.forward, merge):
 *   R_ij = (I - S)(I + S)⁻¹, S = (A - A^T) / 2, A = boft_R[i, j]   the exact Cayley transform
 *   B_i  = P_i diag(R_i0 ... R_iD) P_i^T                           one butterfly factor
 *   y    = ((x B_m ... B_0) W) ⊙ s + b                             s = boft_s, b the layer's bias
 * P_i is PEFT's block_butterfly_perm as a matrix; here x P_i and x P_i^T are reshapes and
 * transposes (the permutation interleaves pieces of half a block, evens first), so no
 * [in, in] matrix is built in the forward. boft_R [m + 1, D, H, H] and boft_s [out, 1] are saved
 * under PEFT's names. Merge folds both into the weight as PEFT does (W^T <- M W^T, rows scaled by
 * s; in our [in, out] layout W <- (M W) ⊙ s); the bias stays.
 *
 * PEFT builds the factors' block diagonals with a CUDA extension and, where none compiles (every
 * CPU-only machine), warns and sets boft_n_butterfly_factor to 1 for the layers it makes (the file
 * still says what was asked). We compute the factors the config names, as PEFT with the extension
 * does; the fixtures check both (scripts/reference/peft_interop/make_boft_fixtures.py). PEFT
 * refuses GPT-2's Conv1D; here the same math runs on it, with no PEFT counterpart to check.
 */
import * as tf from '@tensorflow/tfjs';
import { AdapterError, PeftConfigError } from '../../errors';
import type { DecoderModel, ForwardContext, LinearHook } from '../../model/decoder';
import { linearShape } from '../../model/family';
import { newVariable } from '../../model/ops';
import { fnv1a } from '../../util/hash';
import { Rng } from '../../util/rng';
import type { InjectSite } from '../inject-base';
import { InjectBase } from '../inject-base';
import { targetedSites } from '../inject';
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { StateDict } from '../state';
import { PEFT_PREFIX } from '../state';
import { cayleyExact } from '../oft';
import type { InjectAdapter, PeftMethod } from '../types';
import type { BOFTConfig, BoftShape } from './info';
import { boftDefaults, boftInfo, boftParamCount, boftShape, validateBoft } from './info';

/** PEFT fields we do not model, at the values PEFT's save_pretrained writes. */
const BOFT_PEFT_EXTRA = { exclude_modules: null, layers_pattern: null, revision: null, auto_mapping: null };

interface BoftSite extends InjectSite {
  /** boft_R [factors, D, H, H]. */
  rot: tf.Variable<tf.Rank.R4>;
  /** boft_s [out, 1]. */
  scale: tf.Variable<tf.Rank.R2>;
  shape: BoftShape;
  inDim: number;
  outDim: number;
}

/**
 * x P_i (inverse) or x P_i^T (forward) for factor i of PEFT's block_butterfly_perm: within chunks
 * of H 2^i columns, pieces of H / 2 columns; x P_i^T takes the even pieces then the odd ones.
 * Factor 0 and a one-factor butterfly are the identity.
 */
function butterflyPermute(x: tf.Tensor2D, s: BoftShape, i: number, inverse: boolean): tf.Tensor2D {
  if (s.factors === 1 || i === 0) return x;
  const [n, width] = x.shape;
  const piece = s.blockSize / 2;
  const half = 2 ** i; // pieces per chunk / 2
  const chunks = width / (piece * 2 * half);
  const split = inverse ? [n, chunks, 2, half, piece] : [n, chunks, half, 2, piece];
  return tf.reshape(tf.transpose(tf.reshape(x, split), [0, 1, 3, 2, 4]), [n, width]);
}

/** x [N, in] times diag(R_0 ... R_D), R [D, H, H]: each block of columns by its own block. */
function blockRotate(x: tf.Tensor2D, r: tf.Tensor3D): tf.Tensor2D {
  const [n, width] = x.shape;
  const [d, h] = r.shape;
  const xr = tf.transpose(tf.reshape(x, [n, d, h]), [1, 0, 2]); // [D, N, H]
  return tf.reshape(tf.transpose(tf.matMul(xr, r), [1, 0, 2]), [n, width]); // [N, in]
}

class BoftAdapter extends InjectBase<BOFTConfig, BoftSite> implements InjectAdapter<BOFTConfig> {
  constructor(model: DecoderModel, config: BOFTConfig, seed: number) {
    super(model, config, 'BOFT adapter');
    const rng = new Rng(seed);
    for (const site of targetedSites(model.config, config.targetModules, config.layersToTransform)) {
      const [inDim, outDim] = linearShape(model.config, site.module);
      const shape = boftShape(config, inDim);
      if (typeof shape === 'string') throw new PeftConfigError(`${site.hfName}: ${shape}`);
      const { factors, blockNum, blockSize } = shape;
      const rShape: [number, number, number, number] = [factors, blockNum, blockSize, blockSize];
      // reset_boft_parameters: R zero and s one, or R ~ N(0, 0.1²) and s ~ N(1, 0.1²).
      const rot = newVariable(
        config.initWeights
          ? tf.zeros<tf.Rank.R4>(rShape)
          : tf.randomNormal<tf.Rank.R4>(rShape, 0, 0.1, 'float32', rng.seed()),
        true,
      );
      const scale = newVariable(
        config.initWeights
          ? tf.ones<tf.Rank.R2>([outDim, 1])
          : tf.randomNormal<tf.Rank.R2>([outDim, 1], 1, 0.1, 'float32', rng.seed()),
        true,
      );
      const p = `${PEFT_PREFIX}${site.hfName}`;
      const vars = new Map<string, tf.Variable>([
        [`${p}.boft_R`, rot],
        [`${p}.boft_s`, scale],
      ]);
      const s: BoftSite = { site, vars, rot, scale, shape, inDim, outDim };
      const salt = fnv1a(site.key);
      const bias = model.weights.get(`${site.key}.bias`);
      const hook: LinearHook = {
        input: (x: tf.Tensor2D, ctx: ForwardContext) => (this.merged ? x : this.rotate(s, x, ctx, salt)),
        // (base - b) ⊙ s + b: the scale applies to x W, not to the bias.
        apply: (_x: tf.Tensor2D, base: tf.Tensor2D) => {
          if (this.merged) return base;
          const sRow = tf.reshape(s.scale, [s.outDim]);
          return bias ? tf.add(tf.mul(tf.sub(base, bias), sRow), bias) : tf.mul(base, sRow);
        },
      };
      this.install(s, hook);
    }
  }

  /** Every factor's blocks [factors, D, H, H] by PEFT's cayley_batch, with its multiplicative dropout. */
  private blocks(s: BoftSite, ctx: ForwardContext | null, salt: number): tf.Tensor4D {
    return tf.tidy(() => {
      const { factors: f, blockNum: d, blockSize: h } = s.shape;
      const a = tf.reshape(s.rot, [f * d, h, h]);
      const skew = tf.mul(tf.sub(a, tf.transpose(a, [0, 2, 1])), 0.5);
      let r: tf.Tensor4D = tf.reshape(cayleyExact(skew as tf.Tensor3D), [f, d, h, h]);
      const p = this.config.boftDropout;
      const drop = Math.floor(p * d);
      if (ctx?.training && drop > 0) {
        // MultiplicativeDropoutLayer: in one random factor, int(p D) random blocks become I.
        const rng = new Rng((ctx.seed ^ salt) >>> 0);
        const order = Array.from({ length: d }, (_, j) => j);
        for (let j = d - 1; j > 0; j--) {
          const k = Math.floor(rng.next() * (j + 1));
          [order[j], order[k]] = [order[k]!, order[j]!];
        }
        const which = Math.floor(rng.next() * f);
        const mask = new Float32Array(f * d);
        for (const j of order.slice(0, drop)) mask[which * d + j] = 1;
        const m = tf.tensor4d(mask, [f, d, 1, 1]);
        r = tf.add(tf.mul(r, tf.sub(1, m)), tf.mul(tf.reshape(tf.eye(h), [1, 1, h, h]), m));
      }
      return r;
    });
  }

  /** x [N, in] -> x B_m ... B_0 (PEFT's x @ butterfly_oft_mat). */
  private rotate(s: BoftSite, x: tf.Tensor2D, ctx: ForwardContext | null, salt: number): tf.Tensor2D {
    return tf.tidy(() => {
      const r = this.blocks(s, ctx, salt);
      let y = x;
      for (let i = s.shape.factors - 1; i >= 0; i--) {
        const { blockNum: d, blockSize: h } = s.shape;
        const ri: tf.Tensor3D = tf.reshape(tf.slice(r, [i, 0, 0, 0], [1, d, h, h]), [d, h, h]);
        y = butterflyPermute(blockRotate(butterflyPermute(y, s.shape, i, true), ri), s.shape, i, false);
      }
      return y;
    });
  }

  /** PEFT's Linear.merge: W^T <- M W^T, then its rows times s; in our [in, out] layout W <- (M W) ⊙ s. */
  protected mergeSite(s: BoftSite, weight: tf.Variable): void {
    const m = this.rotate(s, tf.eye(s.inDim) as tf.Tensor2D, null, 0); // I M = M [in, in]
    weight.assign(tf.mul(tf.matMul(m, weight as tf.Tensor2D), tf.reshape(s.scale, [1, s.outDim])));
  }

  /** Refuses a file whose butterfly factor count differs from the config's, then loads as usual. */
  protected override loadSite(s: BoftSite, tensors: StateDict, source: string): void {
    const rKey = `${PEFT_PREFIX}${s.site.hfName}.boft_R`;
    const saved = tensors.get(rKey);
    if (saved && saved.shape[0] !== s.shape.factors) {
      // A file trained where PEFT had no CUDA extension holds one factor whatever its config says.
      throw new AdapterError(
        `${source}: ${rKey} has ${saved.shape[0]} butterfly factor(s) but boft_n_butterfly_factor is ${s.shape.factors}: PEFT without its CUDA extension trains one factor whatever the config asks; set boft_n_butterfly_factor to ${saved.shape[0]} in adapter_config.json`,
      );
    }
    super.loadSite(s, tensors, source);
  }
}

export const boft: PeftMethod<BOFTConfig> = {
  ...boftInfo,
  validate: validateBoft,
  toPeftJson: (c) => configToPeftJson(c, BOFT_PEFT_EXTRA),
  fromPeftJson: (json, source) => {
    if (json.exclude_modules != null) {
      throw new AdapterError(
        `${source}: exclude_modules ${JSON.stringify(json.exclude_modules)} is not supported yet: name the layers in target_modules instead`,
      );
    }
    return configFromPeftJson(json, boftDefaults('CAUSAL_LM'), source);
  },
  create: (model, config, seed) => {
    validateBoft(config, model);
    return new BoftAdapter(model, config, seed);
  },
  countParams: boftParamCount,
};
