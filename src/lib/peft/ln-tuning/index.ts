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
import type { TaskHead } from '../../model/heads';
import { newVariable } from '../../model/ops';
import { linearSites, matchesTarget } from '../inject';
import { configFromPeftJson, configToPeftJson } from '../peft-json';
import type { StateDict } from '../state';
import {
  PEFT_PREFIX,
  assignFromState,
  checkHeadFits,
  checkNoExtraKeys,
  headKeys,
  headState,
  loadHeadState,
  readForState,
} from '../state';
import type { InjectAdapter, PeftMethod } from '../types';
import { CLS_HEAD_MODULES } from '../lora/config';
import type { LnTuningConfig } from './info';
import { lnTuningDefaults, lnTuningInfo, normNames, tunedNorms } from './info';

/** One tuned norm: parallel lists, one entry per parameter (weight, and bias for a LayerNorm). */
interface TunedSite {
  /** Our weight names, e.g. `h.0.ln_1.weight` or `layers.0.input_layernorm.weight`. */
  names: string[];
  /** PEFT's keys for the copies. */
  keys: string[];
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

class LnTuningAdapter implements InjectAdapter<LnTuningConfig> {
  readonly kind = 'inject' as const;
  private readonly sites: TunedSite[] = [];
  private clsHead: TaskHead | null = null;
  private isMerged = false;
  /** The originals' values while merged (they hold the tuned values then). */
  private saved: tf.Tensor[] = [];
  private enabled = true;

  constructor(
    private readonly model: DecoderModel,
    readonly config: LnTuningConfig,
  ) {
    for (const n of tunedNorms(model.config, config)) {
      const names = n.params.map((p) => `${n.key}.${p}`);
      const originals = names.map((w) => model.w(w));
      // Copies start at the frozen values, so training starts from the base model exactly.
      const copies = originals.map((o) => newVariable(tf.clone(o), true));
      const keys = n.params.map((p) => `${PEFT_PREFIX}${n.hfName}.ln_tuning_layers.${p}`);
      this.sites.push({ names, keys, copies, originals });
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

  get head(): TaskHead | null {
    return this.clsHead;
  }

  attachHead(head: TaskHead): void {
    this.clsHead = checkHeadFits(this.clsHead, head, this.config.taskType, 'LN tuning adapter');
  }

  trainable(): Map<string, tf.Variable> {
    const m = new Map<string, tf.Variable>();
    for (const s of this.sites) s.keys.forEach((k, i) => m.set(k, s.copies[i]!));
    for (const [k, p] of headKeys(this.clsHead, PEFT_PREFIX)) m.set(k, p.variable);
    return m;
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

  async stateDict(): Promise<StateDict> {
    const out: StateDict = new Map();
    for (const s of this.sites) {
      for (let i = 0; i < s.keys.length; i++) out.set(s.keys[i]!, await readForState(s.copies[i]!));
    }
    await headState(out, this.head, PEFT_PREFIX);
    return out;
  }

  loadStateDict(tensors: StateDict, source: string): void {
    checkNoExtraKeys(tensors, new Set(this.trainable().keys()), source);
    for (const s of this.sites) {
      for (let i = 0; i < s.keys.length; i++) assignFromState(tensors, s.keys[i]!, s.copies[i]!, source);
    }
    loadHeadState(tensors, this.head, PEFT_PREFIX, source);
  }

  dispose(): void {
    this.unmerge();
    this.swapOut();
    for (const s of this.sites) tf.dispose(s.copies);
    this.sites.length = 0;
    this.clsHead?.dispose();
    this.clsHead = null;
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
