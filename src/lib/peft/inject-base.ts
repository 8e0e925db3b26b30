/**
 * What every inject-kind adapter (LoRA and its siblings, AdaLoRA to BOFT, and LN tuning) shares.
 * SiteAdapter: the trainable set and the state dict (each site's tensors, then shared ones, then
 * the classification head saved as PEFT's modules_to_save). InjectBase adds what the adapters that
 * hook linear layers share: the hooks, merge into the base weights with the originals kept so
 * unmerge restores them bit for bit, switching the adapter off so the base answers, and disposal. A
 * method adds its variables, hook and delta, and says how a site is saved where PEFT's layout differs.
 */
import * as tf from '@tensorflow/tfjs';
import type { ForwardContext, DecoderModel, LinearHook } from '../model/decoder';
import type { TaskHead } from '../model/heads';
import type { LinearSite } from './inject';
import type { PeftConfigBase } from './types';
import type { StateDict } from './state';
import {
  PEFT_PREFIX,
  assignFromState,
  checkHeadFits,
  checkNoExtraKeys,
  headKeys,
  headState,
  loadHeadState,
  readForState,
} from './state';
import { InternalError } from '../errors';

/** Dropout on an adapter's input while training, seeded per step and per layer (salt). */
export function adapterDropout(x: tf.Tensor2D, ctx: ForwardContext, rate: number, salt: number): tf.Tensor2D {
  return ctx.training && rate > 0
    ? (tf.dropout(x, rate, undefined, (ctx.seed ^ salt) >>> 0) as tf.Tensor2D)
    : x;
}

/** A site's trained tensors, as the state dict and the optimizer see them. */
export interface AdapterSite {
  /** The adapter's variables at this site, by PEFT state-dict key, in the order they are saved. */
  vars: Map<string, tf.Variable>;
}

export interface InjectSite extends AdapterSite {
  site: LinearSite;
}

/**
 * What an inject-kind adapter's state is, however it changes the model (hooks on linear layers, or
 * LN tuning's swapped-in norm copies): its sites' variables, tensors shared by all sites, and the
 * classification head; so the trainable set, the state dict and its loading are written once.
 */
export abstract class SiteAdapter<C extends PeftConfigBase, S extends AdapterSite> {
  readonly kind = 'inject' as const;
  protected readonly sites: S[] = [];
  private clsHead: TaskHead | null = null;

  constructor(
    private readonly baseConfig: C,
    private readonly what: string,
  ) {}

  /** The config it was made with (a method may add what training has learned, as AdaLoRA's rank pattern). */
  get config(): C {
    return this.baseConfig;
  }

  get head(): TaskHead | null {
    return this.clsHead;
  }

  attachHead(head: TaskHead): void {
    this.clsHead = checkHeadFits(this.clsHead, head, this.config.taskType, this.what);
  }

  trainable(): Map<string, tf.Variable> {
    const m = new Map<string, tf.Variable>();
    for (const s of this.sites) for (const [k, v] of s.vars) m.set(k, v);
    for (const [k, p] of headKeys(this.clsHead, PEFT_PREFIX)) m.set(k, p.variable);
    return m;
  }

  /**
   * Tensors the file carries beside the sites' own, shared by all of them and not trained (VeRA's
   * projections), each with whether it is kept transposed against PEFT's layout; none by default.
   */
  protected sharedState(): Map<string, { variable: tf.Variable; transpose: boolean }> {
    return new Map();
  }

  /** Writes one site's tensors in PEFT's layout: by default each variable as it is, under its key. */
  protected async saveSite(s: S, out: StateDict): Promise<void> {
    for (const [k, v] of s.vars) out.set(k, await readForState(v));
  }

  /** Reads one site's tensors back, shapes checked: by default each variable as it is, under its key. */
  protected loadSite(s: S, tensors: StateDict, source: string): void {
    for (const [k, v] of s.vars) assignFromState(tensors, k, v, source);
  }

  /** PEFT's state dict: the sites' tensors, the shared ones, then the head (modules_to_save). */
  async stateDict(): Promise<StateDict> {
    const out: StateDict = new Map();
    for (const s of this.sites) await this.saveSite(s, out);
    for (const [k, p] of this.sharedState()) out.set(k, await readForState(p.variable, p.transpose));
    await headState(out, this.head, PEFT_PREFIX);
    return out;
  }

  /** Loads what stateDict saves (or Python PEFT), refusing tensors this adapter does not know. */
  loadStateDict(tensors: StateDict, source: string): void {
    const shared = this.sharedState();
    checkNoExtraKeys(tensors, new Set([...this.trainable().keys(), ...shared.keys()]), source);
    for (const [k, p] of shared) assignFromState(tensors, k, p.variable, source, p.transpose);
    for (const s of this.sites) this.loadSite(s, tensors, source);
    loadHeadState(tensors, this.head, PEFT_PREFIX, source);
  }

  /** Frees the sites' variables and the head; the adapter holds nothing after. */
  protected disposeState(): void {
    for (const s of this.sites) tf.dispose([...s.vars.values()]);
    this.sites.length = 0;
    this.clsHead?.dispose();
    this.clsHead = null;
  }
}

/**
 * An adapter that hooks the targeted linear layers: merge into the base weights with the originals
 * kept so unmerge restores them bit for bit, switching the adapter off so the base answers, and
 * disposal.
 */
export abstract class InjectBase<C extends PeftConfigBase, S extends InjectSite> extends SiteAdapter<C, S> {
  private isMerged = false;
  /** Base weights (and biases) as they were before merge, by model weight name. */
  private originals = new Map<string, tf.Tensor>();

  constructor(
    protected readonly model: DecoderModel,
    baseConfig: C,
    what: string,
  ) {
    super(baseConfig, what);
  }

  /** Adds a site and hooks its layer; a layer with another adapter is refused. */
  protected install(s: S, hook: LinearHook): void {
    // Internal: AdapterSet parks one adapter before it builds the next.
    if (this.model.hooks.has(s.site.key))
      throw new InternalError(`${s.site.key} already has an adapter attached`);
    this.sites.push(s);
    this.model.hooks.set(s.site.key, hook);
  }

  get merged(): boolean {
    return this.isMerged;
  }

  /**
   * Folds this site's update into the weight (and bias) it names; called inside tf.tidy. The bias
   * is undefined for a layer without one (the Llama family's, but Qwen2's q/k/v).
   */
  protected abstract mergeSite(s: S, weight: tf.Variable, bias: tf.Variable | undefined): void;

  merge(): void {
    if (this.isMerged) return;
    for (const s of this.sites) {
      const w = this.model.w(`${s.site.key}.weight`);
      const b = this.model.weights.get(`${s.site.key}.bias`);
      this.originals.set(w.name, tf.clone(w));
      if (b) this.originals.set(b.name, tf.clone(b));
      tf.tidy(() => this.mergeSite(s, w, b));
    }
    this.isMerged = true;
    this.model.invalidateCaches();
  }

  unmerge(): void {
    if (!this.isMerged) return;
    for (const s of this.sites) {
      const b = this.model.weights.get(`${s.site.key}.bias`);
      for (const v of [this.model.w(`${s.site.key}.weight`), ...(b ? [b] : [])]) {
        const o = this.originals.get(v.name)!;
        v.assign(o);
        o.dispose();
      }
    }
    this.originals.clear();
    this.isMerged = false;
    this.model.invalidateCaches();
  }

  disableAdapter(): () => void {
    const wasMerged = this.isMerged;
    this.unmerge();
    const hooks = this.sites.map((s) => [s.site.key, this.model.hooks.get(s.site.key)!] as const);
    for (const [k] of hooks) this.model.hooks.delete(k);
    return () => {
      for (const [k, h] of hooks) this.model.hooks.set(k, h);
      if (wasMerged) this.merge();
    };
  }

  dispose(): void {
    if (this.isMerged) this.unmerge();
    for (const s of this.sites) this.model.hooks.delete(s.site.key);
    this.disposeState();
  }
}
