/**
 * What LoRA, DoRA and the PiSSA/OLoRA starts share: the factors A^T [in, r] and B^T [r, out] kept
 * transposed against PEFT's lora_A.weight [r, in] and lora_B.weight [out, r], LoRA's starting draws
 * for them, and the bias "lora_only" delta, saved as PEFT saves the trained bias (base + delta).
 */
import * as tf from '@tensorflow/tfjs';
import { newVariable } from '../../model/ops';
import type { LinearSite } from '../inject';
import type { InjectSite } from '../inject-base';
import { InjectBase } from '../inject-base';
import type { StateDict } from '../state';
import { PEFT_PREFIX, assignFromState, readForState } from '../state';
import type { LoraConfig } from './config';

export interface LoraFamilySite extends InjectSite {
  aT: tf.Variable<tf.Rank.R2>; // [in, r]
  bT: tf.Variable<tf.Rank.R2>; // [r, out]
  /** Trainable bias delta (bias "lora_only"): the saved bias is base bias + delta. */
  biasDelta: tf.Variable | null;
}

export type LoraFactors = Pick<LoraFamilySite, 'aT' | 'bT' | 'biasDelta'>;

/**
 * LoRA's start for one layer: A Kaiming-uniform (PEFT's kaiming_uniform_(a=sqrt(5)) on lora_A
 * [r, in], bound 1 / sqrt(in)), B zero, and a zero bias delta under bias "lora_only".
 */
export function loraFactors(config: LoraConfig, inDim: number, outDim: number, seed: number): LoraFactors {
  const bound = 1 / Math.sqrt(inDim);
  const aT = newVariable(
    tf.randomUniform<tf.Rank.R2>([inDim, config.r], -bound, bound, 'float32', seed),
    true,
  );
  const bT = newVariable(tf.zeros<tf.Rank.R2>([config.r, outDim]), true);
  const biasDelta = config.bias === 'lora_only' ? newVariable(tf.zeros([outDim]), true) : null;
  return { aT, bT, biasDelta };
}

/**
 * A site's variables by PEFT key, in the order they are saved: lora_A.weight, lora_B.weight, the
 * variant's own by name (DoRA's lora_magnitude_vector, saved as it is), then the bias delta.
 */
export function loraVars(
  site: LinearSite,
  f: LoraFactors,
  own: Record<string, tf.Variable> = {},
): Map<string, tf.Variable> {
  const p = `${PEFT_PREFIX}${site.hfName}`;
  return new Map<string, tf.Variable>([
    [`${p}.lora_A.weight`, f.aT],
    [`${p}.lora_B.weight`, f.bT],
    ...Object.entries(own).map(([name, v]) => [`${p}.${name}`, v] as const),
    ...(f.biasDelta ? [[`${p}.bias`, f.biasDelta] as const] : []),
  ]);
}

export abstract class LoraFamilyAdapter<S extends LoraFamilySite> extends InjectBase<LoraConfig, S> {
  /** The site's variables in key order: A and B transposed to PEFT's layout, the bias as base + delta. */
  protected override async saveSite(s: S, out: StateDict): Promise<void> {
    for (const [k, v] of s.vars) {
      if (v === s.biasDelta) {
        const trained = tf.add(this.model.w(`${s.site.key}.bias`), v);
        out.set(k, await readForState(trained));
        trained.dispose();
      } else out.set(k, await readForState(v, v === s.aT || v === s.bT));
    }
  }

  protected override loadSite(s: S, tensors: StateDict, source: string): void {
    for (const [k, v] of s.vars) {
      assignFromState(tensors, k, v, source, v === s.aT || v === s.bT);
      if (v === s.biasDelta) {
        const bias = this.model.w(`${s.site.key}.bias`);
        tf.tidy(() => v.assign(tf.sub(v, bias)));
      }
    }
  }
}
