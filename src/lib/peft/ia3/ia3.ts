/**
 * IA3 (Liu et al. 2022): a learned vector rescales each targeted layer, the output for attention
 * (y = (x W + b) * l, keys and values, and for GPT-2's fused c_attn the queries too, as PEFT does),
 * the input for feed-forward layers (y = (x * l) W + b). Vectors start at one, so training starts
 * from the base model (peft/tuners/ia3/layer.py). Saved as PEFT's `ia3_l`: [out, 1] for an output
 * scale, [1, in] for an input scale.
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderModel, LinearHook } from '../../model/decoder';
import { linearShape } from '../../model/family';
import { newVariable } from '../../model/ops';
import { targetedSites } from '../inject';
import type { InjectSite } from '../inject-base';
import { InjectBase } from '../inject-base';
import type { InjectAdapter } from '../types';
import type { StateDict } from '../state';
import { PEFT_PREFIX, readForState } from '../state';
import { AdapterError } from '../../errors';
import type { IA3Config } from './config';
import { isFeedforward } from './config';

interface Ia3Site extends InjectSite {
  /** [in] for a feed-forward layer, [out] otherwise. */
  l: tf.Variable;
  feedforward: boolean;
}

class Ia3Hook implements LinearHook {
  constructor(
    private readonly s: Ia3Site,
    private readonly isMerged: () => boolean,
  ) {}

  input(x: tf.Tensor2D): tf.Tensor2D {
    return this.s.feedforward && !this.isMerged() ? tf.mul(x, this.s.l) : x;
  }

  apply(_x: tf.Tensor2D, base: tf.Tensor2D): tf.Tensor2D {
    return this.s.feedforward || this.isMerged() ? base : tf.mul(base, this.s.l);
  }
}

export class Ia3Adapter extends InjectBase<IA3Config, Ia3Site> implements InjectAdapter<IA3Config> {
  constructor(model: DecoderModel, config: IA3Config) {
    super(model, config, 'IA3 adapter');
    for (const site of targetedSites(model.config, config.targetModules)) {
      const [inDim, outDim] = linearShape(model.config, site.module);
      const feedforward = isFeedforward(config, site.hfName);
      const l = newVariable(tf.ones([feedforward ? inDim : outDim]), true);
      const s: Ia3Site = { site, l, feedforward, vars: new Map([[this.key(site.hfName), l]]) };
      this.install(s, new Ia3Hook(s, () => this.merged));
    }
  }

  private key(hfName: string): string {
    return `${PEFT_PREFIX}${hfName}.ia3_l`;
  }

  /** Input scale: row i of W [in, out] times l[i]; output scale: column j and bias j times l[j]. */
  protected mergeSite(s: Ia3Site, weight: tf.Variable, bias: tf.Variable | undefined): void {
    if (s.feedforward) weight.assign(tf.mul(weight, tf.reshape(s.l, [-1, 1])));
    else {
      weight.assign(tf.mul(weight, tf.reshape(s.l, [1, -1])));
      bias?.assign(tf.mul(bias, s.l));
    }
  }

  private savedShape(s: Ia3Site): number[] {
    return s.feedforward ? [1, s.l.size] : [s.l.size, 1];
  }

  /** The vector as PEFT's ia3_l: [1, in] for an input scale, [out, 1] for an output scale. */
  protected override async saveSite(s: Ia3Site, out: StateDict): Promise<void> {
    const t = await readForState(s.l);
    out.set(this.key(s.site.hfName), { shape: this.savedShape(s), data: t.data });
  }

  protected override loadSite(s: Ia3Site, tensors: StateDict, source: string): void {
    const key = this.key(s.site.hfName);
    const t = tensors.get(key);
    if (!t) throw new AdapterError(`${source}: tensor ${key} is missing`);
    // PEFT's [out, 1] / [1, in] holds our vector: check the saved shape, then take it flat.
    const want = this.savedShape(s);
    if (t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]) {
      const swapped = t.shape.length === 2 && t.shape[0] === want[1] && t.shape[1] === want[0];
      throw new AdapterError(
        `${source}: tensor ${key} has shape [${t.shape}] but this model needs [${want}]${swapped ? '; was it saved with other feedforwardModules?' : ''}`,
      );
    }
    tf.tidy(() => s.l.assign(tf.tensor1d(t.data)));
  }
}

/** One scale per input (feed-forward) or output feature of each targeted layer. */
export function ia3ParamCount(model: DecoderModel, c: IA3Config): number {
  let n = 0;
  for (const s of targetedSites(model.config, c.targetModules)) {
    const [i, o] = linearShape(model.config, s.module);
    n += isFeedforward(c, s.hfName) ? i : o;
  }
  return n;
}
