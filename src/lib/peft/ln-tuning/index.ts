/**
 * LN tuning's implementation and registry entry (see info.ts). Each tuned norm gets trained copies
 * of its parameters (a LayerNorm's gain and bias, an RMSNorm's gain), swapped into the model's
 * weight table in place of the frozen originals, as PEFT's LNTuningLayer runs a deep copy of the
 * norm instead of the base one; the originals are kept and swapped back when the adapter is disabled
 * or disposed, so the shared base model never changes. Saved as PEFT saves it:
 * `<norm>.ln_tuning_layers.weight` (and `.bias` for a LayerNorm).
 */
import * as tf from '@tensorflow/tfjs';
import { PeftConfigError } from '../../errors';
import type { DecoderModel } from '../../model/decoder';
import { newVariable } from '../../model/ops';
import { linearSites, matchesTarget } from '../inject';
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import { PEFT_PREFIX } from '../state';
import type { AdapterSite } from '../inject-base';
import { SiteAdapter } from '../inject-base';
import type { InjectAdapter, PeftMethod } from '../types';
import { CLS_HEAD_MODULES } from '../lora/config';
import type { LnTuningConfig } from './info';
import { lnTuningDefaults, lnTuningInfo, normNames, tunedNorms } from './info';

/**
 * One tuned norm: the trained copies by PEFT key (vars), and parallel to them our weight names and
 * the frozen originals, one entry per parameter (weight, and bias for a LayerNorm).
 */
interface TunedSite extends AdapterSite {
  /** Our weight names, e.g. `h.0.ln_1.weight` or `layers.0.input_layernorm.weight`. */
  names: string[];
  copies: tf.Variable[];
  originals: tf.Variable[];
}

function validate(c: LnTuningConfig, decoder?: DecoderModel): void {
  if (c.modulesToSave !== null && c.modulesToSave.length > 0) {
    const other = c.modulesToSave.filter((m) => !(CLS_HEAD_MODULES as readonly string[]).includes(m));
    if (other.length > 0 || c.taskType === 'CAUSAL_LM') {
      throw new PeftConfigError(
        `modulesToSave ${JSON.stringify(c.modulesToSave)}: only the classification heads ${JSON.stringify(CLS_HEAD_MODULES)} of a SEQ_CLS or TOKEN_CLS task can be trained in full and saved`,
      );
    }
  }
  if (!decoder) return;
  // PEFT would deep-copy any module it matches; here only norms are tuned, so a target that names
  // a linear layer is a config for something else.
  const linear = linearSites(decoder.config).find((s) => matchesTarget(s.hfName, c.targetModules));
  if (linear) {
    throw new PeftConfigError(
      `targetModules ${JSON.stringify(c.targetModules)} names the linear layer ${linear.hfName}: LN tuning trains norms only (${normNames(decoder.config)}); use LoRA or IA3 for linear layers`,
    );
  }
  tunedNorms(decoder.config, c);
}

class LnTuningAdapter
  extends SiteAdapter<LnTuningConfig, TunedSite>
  implements InjectAdapter<LnTuningConfig>
{
  private isMerged = false;
  /** The originals' values while merged (they hold the tuned values then). */
  private saved: tf.Tensor[] = [];
  private enabled = true;

  constructor(
    private readonly model: DecoderModel,
    config: LnTuningConfig,
  ) {
    super(config, 'LN tuning adapter');
    for (const n of tunedNorms(model.config, config)) {
      const names = n.params.map((p) => `${n.key}.${p}`);
      const originals = names.map((w) => model.w(w));
      // Copies start at the frozen values, so training starts from the base model exactly.
      const copies = originals.map((o) => newVariable(tf.clone(o), true));
      const keys = n.params.map((p) => `${PEFT_PREFIX}${n.hfName}.ln_tuning_layers.${p}`);
      const vars = new Map(keys.map((k, i) => [k, copies[i]!] as const));
      this.sites.push({ vars, names, copies, originals });
    }
    this.swapIn();
  }

  private swapIn(): void {
    for (const s of this.sites) s.names.forEach((w, i) => this.model.weights.set(w, s.copies[i]!));
    this.model.invalidateCaches();
  }

  private swapOut(): void {
    for (const s of this.sites) s.names.forEach((w, i) => this.model.weights.set(w, s.originals[i]!));
    this.model.invalidateCaches();
  }

  get merged(): boolean {
    return this.isMerged;
  }

  /** The tuned values become the base weights' (PEFT swaps the copy in as the base layer). */
  merge(): void {
    if (this.isMerged) return;
    for (const s of this.sites) {
      s.originals.forEach((o, i) => {
        this.saved.push(tf.clone(o));
        o.assign(s.copies[i]!);
      });
    }
    if (this.enabled) this.swapOut();
    this.isMerged = true;
  }

  unmerge(): void {
    if (!this.isMerged) return;
    let k = 0;
    for (const s of this.sites) for (const o of s.originals) o.assign(this.saved[k++]!);
    tf.dispose(this.saved);
    this.saved = [];
    if (this.enabled) this.swapIn();
    else this.model.invalidateCaches();
    this.isMerged = false;
  }

  disableAdapter(): () => void {
    const wasMerged = this.isMerged;
    this.unmerge();
    this.swapOut();
    this.enabled = false;
    return () => {
      this.enabled = true;
      this.swapIn();
      if (wasMerged) this.merge();
    };
  }

  dispose(): void {
    this.unmerge();
    this.swapOut();
    this.disposeState();
  }
}

export const lnTuning: PeftMethod<LnTuningConfig> = {
  ...lnTuningInfo,
  validate,
  toPeftJson: (c) => configToPeftJson(c, { revision: null, auto_mapping: null }),
  fromPeftJson: (json, source) => configFromPeftJson(json, lnTuningDefaults('CAUSAL_LM'), source),
  create: (model, config) => {
    validate(config, model);
    return new LnTuningAdapter(model, config);
  },
  // A gain (and a LayerNorm's bias) per feature of each tuned norm.
  countParams: (model, c) =>
    tunedNorms(model.config, c).reduce((n, s) => n + s.params.length * model.config.nEmbd, 0),
};
