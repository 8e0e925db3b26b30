/**
 * OFT's implementation and registry entry (see info.ts), after peft/tuners/oft/layer.py
 * (OFTRotationModule.forward, _cayley_batch, _project_batch; Linear.merge):
 *   Q_i = skew(oft_R.weight[i])      the upper triangle (torch.triu_indices order) minus its transpose
 *   R_i = I + 2Q + 2Q² + ... + Q^(n-1) (use_cayley_neumann, n terms) or (I - Q)(I + Q)⁻¹
 *   y   = (x diag(R_1 ... R_r)) W + b   the layer's input rotated block by block
 * oft_R.weight [r, b (b - 1) / 2] ([1, ...] with block_share) is saved under PEFT's name, so no
 * transpose happens on save or load. Merge folds the rotation into the weight as PEFT does
 * (W^T <- R W^T, in our [in, out] layout W <- R W); the bias stays. COFT projects the weight onto
 * its eps-ball in place before every use, as PEFT's forward does under no_grad.
 *
 * PEFT applies OFT to nn.Linear (the Llama family's layers) and refuses GPT-2's Conv1D; here the
 * same math runs on Conv1D (the rotation acts on the input, whatever the weight's layout), so such
 * a file has no PEFT counterpart to check against.
 */
import * as tf from '@tensorflow/tfjs';
import { AdapterError } from '../../errors';
import type { DecoderModel, ForwardContext, LinearHook } from '../../model/decoder';
import { linearShape } from '../../model/family';
import { newVariable } from '../../model/ops';
import { Rng } from '../../util/rng';
import type { InjectSite } from '../inject-base';
import { InjectBase } from '../inject-base';
import { targetedSites } from '../inject';
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import { PEFT_PREFIX } from '../state';
import { checkLycorisJson } from '../lycoris-info';
import type { InjectAdapter, PeftMethod } from '../types';
import type { OFTConfig } from './info';
import { oftBlocks, oftDefaults, oftInfo, oftParamCount, validateOft } from './info';

/** PEFT fields we do not model, at the values PEFT's save_pretrained writes. */
const OFT_PEFT_EXTRA = { exclude_modules: null, layers_pattern: null, revision: null, auto_mapping: null };

interface OftSite extends InjectSite {
  /** oft_R.weight [r or 1, b (b - 1) / 2]. */
  weight: tf.Variable<tf.Rank.R2>;
  /** Blocks per layer (r) and their size (b): r · b = the layer's input width. */
  r: number;
  blockSize: number;
}

/** PEFT's `_pytorch_skew_symmetric`: vec [n, b (b - 1) / 2] -> Q [n, b, b], Q^T = -Q. */
export function skewSymmetric(vec: tf.Tensor2D, b: number): tf.Tensor3D {
  return tf.tidy(() => {
    const n = vec.shape[0];
    // The upper triangle row by row, in torch.triu_indices(b, b, 1) order: row i is i + 1 zeros
    // then the next b - 1 - i entries. Slices and one concat, whose gradients are slices again:
    // a lookup (gather, or our embed's one-hot) would cost a [b (b - 1) / 2, b²] tensor per layer.
    const pieces: tf.Tensor2D[] = [];
    let offset = 0;
    for (let i = 0; i < b; i++) {
      const len = b - 1 - i;
      pieces.push(tf.zeros([n, i + 1]));
      if (len > 0) pieces.push(tf.slice(vec, [0, offset], [n, len]));
      offset += len;
    }
    const upper = tf.reshape(tf.concat(pieces, 1), [n, b, b]); // [n, b, b]
    return tf.sub(upper, tf.transpose(upper, [0, 2, 1]));
  });
}

/** PEFT's `_cayley_batch` with use_cayley_neumann: I + 2Q + 2Q² + ... + 2Q^(n-2) + Q^(n-1). */
export function cayleyNeumann(q: tf.Tensor3D, terms: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [n, b] = q.shape;
    let r: tf.Tensor3D = tf.tile(tf.expandDims(tf.eye(b), 0), [n, 1, 1]);
    if (terms > 1) {
      r = tf.add(r, tf.mul(q, 2));
      if (terms > 2) {
        let power = tf.matMul(q, q);
        r = tf.add(r, tf.mul(power, 2));
        for (let k = 3; k < terms - 1; k++) {
          power = tf.matMul(power, q);
          r = tf.add(r, tf.mul(power, 2));
        }
        power = tf.matMul(power, q);
        r = tf.add(r, power);
      }
    }
    return r;
  });
}

/**
 * PEFT's exact `_cayley_batch`: R = solve(I + Q, I - Q, left=False) = (I - Q)(I + Q)⁻¹. tfjs has
 * no solve, so Gauss-Jordan on [I - Q | I + Q] gives (I - Q)⁻¹(I + Q) = R^T (Q^T = -Q); a
 * skew-symmetric Q makes I - Q's symmetric part the identity, so no pivot is ever zero and none
 * needs swapping. Built of differentiable ops, so the gradient comes by autodiff. PEFT's series
 * (cayleyNeumann) expands (I + Q)(I - Q)⁻¹, this one's inverse: the two settings turn the same
 * weights the opposite way, as they do in PEFT, and each matches PEFT's own (the fixtures).
 */
export function cayleyExact(q: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const [n, b] = q.shape;
    const eye = tf.tile(tf.expandDims(tf.eye(b), 0), [n, 1, 1]);
    let m: tf.Tensor3D = tf.concat([tf.sub(eye, q), tf.add(eye, q)], 2); // [n, b, 2b]
    for (let k = 0; k < b; k++) {
      const pivotRow = tf.div(tf.slice(m, [0, k, 0], [n, 1, 2 * b]), tf.slice(m, [0, k, k], [n, 1, 1]));
      const unit = tf.oneHot(tf.tensor1d([k], 'int32'), b).reshape([1, b, 1]); // e_k
      const column = tf.sub(tf.slice(m, [0, 0, k], [n, b, 1]), unit); // [n, b, 1]
      m = tf.sub(m, tf.mul(column, pivotRow)); // row k becomes the pivot row, the others lose column k
    }
    return tf.transpose(tf.slice(m, [0, 0, b], [n, b, b]), [0, 2, 1]);
  });
}

/** PEFT's `_project_batch` on the weight: each block's Q scaled onto the ball of radius eps / sqrt(rows). */
export function projectCoft(vec: tf.Tensor2D, eps: number): tf.Tensor2D {
  return tf.tidy(() => {
    const radius = eps / Math.sqrt(vec.shape[0]);
    // ||Q||_F counts each upper element twice (Q and -Q^T).
    const norm = tf.sqrt(tf.mul(tf.sum(tf.square(vec), 1, true), 2)); // [n, 1]
    // A weight already on the sphere stays as it is: float rounding can put its norm an ulp past
    // the radius, and PEFT's `norm <= eps` would then rescale it by 1 - 1e-7 on every forward, so a
    // saved COFT adapter would not load back bit for bit. The slack is far below the 1e-4 we match.
    const inside = tf.lessEqual(norm, radius * (1 + 1e-6));
    return tf.mul(vec, tf.where(inside, tf.onesLike(norm), tf.div(radius, norm)));
  });
}

class OftAdapter extends InjectBase<OFTConfig, OftSite> implements InjectAdapter<OFTConfig> {
  constructor(model: DecoderModel, config: OFTConfig, seed: number) {
    super(model, config, 'OFT adapter');
    const rng = new Rng(seed);
    for (const site of targetedSites(model.config, config.targetModules, config.layersToTransform)) {
      const [inDim] = linearShape(model.config, site.module);
      const { r, blockSize: b } = oftBlocks(config, inDim);
      const shape: [number, number] = [config.blockShare ? 1 : r, (b * (b - 1)) / 2];
      // reset_oft_parameters: zero (the identity rotation), or N(0, 0.1²) with init_weights false.
      const init = config.initWeights
        ? tf.zeros<tf.Rank.R2>(shape)
        : tf.randomNormal<tf.Rank.R2>(shape, 0, 0.1, 'float32', rng.seed());
      const weight = newVariable(init, true);
      const vars = new Map<string, tf.Variable>([[`${PEFT_PREFIX}${site.hfName}.oft_R.weight`, weight]]);
      const s: OftSite = { site, vars, weight, r, blockSize: b };
      const hook: LinearHook = {
        // The frozen layer sees the rotated input; its output is then left as it is.
        input: (x: tf.Tensor2D, _ctx: ForwardContext) => (this.merged ? x : this.rotate(s, x)),
        apply: (_x: tf.Tensor2D, base: tf.Tensor2D) => base,
      };
      this.install(s, hook);
    }
  }

  /** The blocks R_i [r, b, b] (one repeated r times under block share), COFT's projection applied first. */
  private blocks(s: OftSite): tf.Tensor3D {
    if (this.config.coft) s.weight.assign(projectCoft(s.weight, this.config.eps));
    return tf.tidy(() => {
      const q = skewSymmetric(s.weight, s.blockSize);
      const rot = this.config.useCayleyNeumann
        ? cayleyNeumann(q, this.config.numCayleyNeumannTerms)
        : cayleyExact(q);
      return this.config.blockShare ? tf.tile(rot, [s.r, 1, 1]) : rot;
    });
  }

  /** x [N, in] -> x diag(R_1 ... R_r) [N, in]: einsum("...rk,rkc->...rc") as PEFT's forward. */
  private rotate(s: OftSite, x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const n = x.shape[0];
      const xr = tf.transpose(tf.reshape(x, [n, s.r, s.blockSize]), [1, 0, 2]); // [r, N, b]
      const y = tf.matMul(xr, this.blocks(s)); // [r, N, b]
      return tf.reshape(tf.transpose(y, [1, 0, 2]), [n, s.r * s.blockSize]); // [N, in]
    });
  }

  /** PEFT's Linear.merge: W^T <- diag(R) W^T; ours is [in, out], so W <- diag(R) W block by block. */
  protected mergeSite(s: OftSite, weight: tf.Variable): void {
    const out = weight.shape[1]!;
    const w = tf.reshape(weight, [s.r, s.blockSize, out]); // [r, b, out]
    weight.assign(tf.reshape(tf.matMul(this.blocks(s), w), [s.r * s.blockSize, out]));
  }
}

export const oft: PeftMethod<OFTConfig> = {
  ...oftInfo,
  validate: validateOft,
  toPeftJson: (c) => configToPeftJson(c, OFT_PEFT_EXTRA),
  fromPeftJson: (json, source) => {
    // OFTConfig.check_kwargs: a file without oft_block_size predates PEFT 0.14's OFT, whose weights differ.
    if (!('oft_block_size' in json)) {
      throw new AdapterError(
        `${source}: no oft_block_size: this OFT adapter was saved by PEFT before 0.14, whose OFT weights are laid out differently; retrain it with PEFT 0.14 or later`,
      );
    }
    // The same refusal as LoHa's and LoKr's for exclude_modules (OFT has no rank or alpha patterns).
    checkLycorisJson(json, source);
    return configFromPeftJson(json, oftDefaults('CAUSAL_LM'), source);
  },
  create: (model, config, seed) => {
    validateOft(config, model);
    return new OftAdapter(model, config, seed);
  },
  countParams: oftParamCount,
};
