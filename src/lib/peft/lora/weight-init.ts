/**
 * PiSSA (Meng et al. 2024) and OLoRA (Büyükakyüz 2024): LoRA started from the base weight's own
 * principal directions instead of from zero (peft/tuners/lora/layer.py, `pissa_init`,
 * `olora_init`). With M = W^T [out, in] (PEFT's layout; GPT-2's Conv1D stores W as [in, out]):
 * - PiSSA: M = U S Vh; B0 = U_r sqrt(S_r / s), A0 = sqrt(S_r / s) Vh_r, so s B0 A0 is M's best
 *   rank-r part;
 * - OLoRA: M = Q R (Householder); B0 = Q[:, :r], A0 = R[:r].
 * PEFT then replaces the base weight by the residual M - s B0 A0, so the model starts unchanged and
 * A, B train from there. We leave the shared base weight alone and subtract the start in the hook
 * instead, y = x W + b + s x (A^T B^T - A0^T B0^T), which is the same function: as one rank-2r
 * product x [A | A0]^T [B | -B0]^T, exactly PEFT's conversion of a trained PiSSA/OLoRA adapter to
 * plain LoRA (save_pretrained with path_initial_model_for_weight_conversion: r and lora_alpha
 * doubled, init_lora_weights true). That is what we save, so the file loads on the original base,
 * in PEFT and here, with the same outputs. A PEFT file saved without the conversion (its
 * init_lora_weights still "pissa"/"olora", meant for the residual base) loads too: its start
 * A0, B0 is recomputed from the original base, as PEFT computed it.
 *
 * Not matched: `pissa_niter_N` (PEFT's randomized svd_lowrank, torch's RNG) is computed here as the
 * exact SVD it approximates. PEFT 0.21's OLoRA ignores fan_in_fan_out: on GPT-2's Conv1D it
 * factors [in, out] and breaks the layer (a wrong output for square layers, a shape error for
 * c_attn and the MLP); ours factors W^T as PEFT does for every nn.Linear.
 */
import * as tf from '@tensorflow/tfjs';
import { AdapterError } from '../../errors';
import type { DecoderModel, ForwardContext, LinearHook } from '../../model/decoder';
import { linearShape } from '../../model/family';
import { matmul, newVariable } from '../../model/ops';
import { fnv1a } from '../../util/hash';
import { targetedSites } from '../inject';
import { adapterDropout } from '../inject-base';
import type { InjectAdapter } from '../types';
import type { StateDict } from '../state';
import { PEFT_PREFIX, readForState } from '../state';
import type { LoraConfig, LoraInit } from './config';
import { loraInit } from './config';
import { mat, qr, topSvd, transpose } from './linalg';
import { loraScaling } from './lora';
import type { LoraFamilySite } from './lora-family';
import { LoraFamilyAdapter, loraVars } from './lora-family';

/**
 * A0^T [in, r] and B0^T [r, out] in our layout for a base weight W [in, out] (row-major), and the
 * residual W - s A0^T B0^T that PEFT would leave in the base layer (in the same layout).
 */
export function weightInit(
  w: Float32Array,
  inDim: number,
  outDim: number,
  r: number,
  scaling: number,
  init: Exclude<LoraInit, true>,
): { aT: Float32Array; bT: Float32Array; residual: Float32Array } {
  const m = transpose(mat(inDim, outDim, w)); // M = W^T [out, in]
  const aT = new Float32Array(inDim * r);
  const bT = new Float32Array(r * outDim);
  if (init === 'olora') {
    const { q, r: rr } = qr(m); // Q [out, k], R [k, in]
    const k = q.cols;
    for (let c = 0; c < r; c++) {
      for (let o = 0; o < outDim; o++) bT[c * outDim + o] = q.data[o * k + c]!;
      for (let i = 0; i < inDim; i++) aT[i * r + c] = rr.data[c * inDim + i]!;
    }
  } else {
    const { u, s, vh } = topSvd(m, r); // U [out, r], S [r], Vh [r, in]
    for (let c = 0; c < r; c++) {
      const root = Math.sqrt(s[c]! / scaling);
      for (let o = 0; o < outDim; o++) bT[c * outDim + o] = u.data[o * r + c]! * root;
      for (let i = 0; i < inDim; i++) aT[i * r + c] = vh.data[c * inDim + i]! * root;
    }
  }
  const residual = new Float32Array(inDim * outDim);
  for (let i = 0; i < inDim; i++) {
    for (let o = 0; o < outDim; o++) {
      let d = 0;
      for (let c = 0; c < r; c++) d += aT[i * r + c]! * bT[c * outDim + o]!;
      residual[i * outDim + o] = w[i * outDim + o]! - scaling * d;
    }
  }
  return { aT, bT, residual };
}

/** aT and bT start at A0^T and B0^T; no bias delta (validateLora refuses a bias with these inits). */
interface StartSite extends LoraFamilySite {
  a0T: tf.Tensor2D; // [in, r], frozen
  negB0T: tf.Tensor2D; // [r, out], frozen, -B0^T
}

class StartHook implements LinearHook {
  constructor(
    private readonly s: StartSite,
    private readonly scaling: number,
    private readonly dropout: number,
    private readonly salt: number,
    private readonly isMerged: () => boolean,
  ) {}

  apply(x: tf.Tensor2D, base: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D {
    if (this.isMerged()) return base;
    const xin = adapterDropout(x, ctx, this.dropout, this.salt);
    // The same ops as LoRA's hook on the saved rank-2r adapter, so a saved file reloads to the
    // same bits: x [A | A0]^T * s [N, 2r], then times [B | -B0]^T [2r, out].
    const low: tf.Tensor2D = tf.mul(matmul(xin, tf.concat([this.s.aT, this.s.a0T], 1)), this.scaling);
    return tf.add(base, matmul(low, tf.concat([this.s.bT, this.s.negB0T], 0)));
  }
}

export class WeightInitLoraAdapter extends LoraFamilyAdapter<StartSite> implements InjectAdapter<LoraConfig> {
  private readonly starts: tf.Tensor[] = [];

  constructor(model: DecoderModel, config: LoraConfig) {
    super(model, config, 'LoRA adapter');
    const init = loraInit(config) as Exclude<LoraInit, true>;
    const scaling = loraScaling(config);
    for (const site of targetedSites(model.config, config.targetModules, config.layersToTransform)) {
      const [inDim, outDim] = linearShape(model.config, site.module);
      const w = model.w(`${site.key}.weight`).dataSync() as Float32Array;
      const start = weightInit(w, inDim, outDim, config.r, scaling, init);
      const aT = newVariable(tf.tensor2d(start.aT, [inDim, config.r]), true);
      const bT = newVariable(tf.tensor2d(start.bT, [config.r, outDim]), true);
      const a0T = tf.tensor2d(start.aT, [inDim, config.r]);
      const negB0T = tf.tensor2d(
        start.bT.map((x) => -x),
        [config.r, outDim],
      );
      this.starts.push(a0T, negB0T);
      const f = { aT, bT, biasDelta: null };
      const s: StartSite = { site, vars: loraVars(site, f), ...f, a0T, negB0T };
      this.install(s, new StartHook(s, scaling, config.loraDropout, fnv1a(site.key), () => this.merged));
    }
  }

  /**
   * What the saved file says: PEFT's converted plain LoRA, rank 2r with alpha doubled (times
   * sqrt(2) under rsLoRA) so the scaling is unchanged, init_lora_weights true.
   */
  override get config(): LoraConfig {
    const c = super.config;
    return {
      ...c,
      r: 2 * c.r,
      loraAlpha: c.useRslora ? c.loraAlpha * Math.SQRT2 : 2 * c.loraAlpha,
      initLoraWeights: true,
    };
  }

  protected mergeSite(s: StartSite, weight: tf.Variable): void {
    const d = tf.sub(tf.matMul(s.aT, s.bT), tf.matMul(s.a0T, tf.neg(s.negB0T)));
    weight.assign(tf.add(weight, tf.mul(d, loraScaling(super.config))));
  }

  /**
   * PEFT's conversion to plain LoRA, [A | A0] and [B | -B0] at rank 2r. Loading reads a file PEFT
   * saved unconverted, A [r, in] and B [out, r] over the start computed here, as LoRA's.
   */
  protected override async saveSite(s: StartSite, out: StateDict): Promise<void> {
    const p = `${PEFT_PREFIX}${s.site.hfName}`;
    const a = tf.concat([s.aT, s.a0T], 1); // [in, 2r]
    const b = tf.concat([s.bT, s.negB0T], 0); // [2r, out]
    out.set(`${p}.lora_A.weight`, await readForState(a, true));
    out.set(`${p}.lora_B.weight`, await readForState(b, true));
    tf.dispose([a, b]);
  }

  override dispose(): void {
    super.dispose();
    tf.dispose(this.starts);
    this.starts.length = 0;
  }
}

/**
 * Reads PEFT's init_lora_weights into the config's field. Inits that leave the base weight alone
 * (true, false, "gaussian", "eva": only where A and B start) load as the default, since the file's
 * weights replace the start; "pissa", "pissa_niter_N" and "olora" keep theirs (the start is
 * subtracted); inits that change the base weight in ways we do not model (LoftQ, CorDA...) are refused.
 */
export function readInitLoraWeights(v: unknown, source: string): boolean | string {
  if (v === undefined || v === true || v === false || v === 'gaussian' || v === 'eva') return true;
  if (v === 'pissa' || v === 'olora' || (typeof v === 'string' && /^pissa_niter_\d+$/.test(v))) return v;
  throw new AdapterError(
    `${source}: "init_lora_weights" ${JSON.stringify(v)} changes the base weights in a way PEFT Lab does not model; it reads true, false, "gaussian", "eva", "pissa", "pissa_niter_N" and "olora"`,
  );
}
