/**
 * What every inject-kind adapter (LoRA's siblings AdaLoRA and IA3) shares: hooks installed on the
 * targeted linear layers, the classification head saved as PEFT's modules_to_save, merge into the
 * base weights with the originals kept so unmerge restores them bit for bit, switching the adapter
 * off so the base answers, and disposal. A method adds its variables, hook and delta.
 */
import * as tf from '@tensorflow/tfjs';
import type { ForwardContext, DecoderModel, LinearHook } from '../model/decoder';
import type { TaskHead } from '../model/heads';
import type { LinearSite } from './inject';
import type { PeftConfigBase } from './types';
import { PEFT_PREFIX, checkHeadFits, headKeys } from './state';
import { InternalError } from '../errors';

/** Dropout on an adapter's input while training, seeded per step and per layer (salt). */
export function adapterDropout(x: tf.Tensor2D, ctx: ForwardContext, rate: number, salt: number): tf.Tensor2D {
  return ctx.training && rate > 0
    ? (tf.dropout(x, rate, undefined, (ctx.seed ^ salt) >>> 0) as tf.Tensor2D)
    : x;
}

export interface InjectSite {
  site: LinearSite;
  /** The adapter's variables at this layer, by PEFT state-dict key. */
  vars: Map<string, tf.Variable>;
}

export abstract class InjectBase<C extends PeftConfigBase, S extends InjectSite> {
  readonly kind = 'inject' as const;
  protected readonly sites: S[] = [];
  private isMerged = false;
  private clsHead: TaskHead | null = null;
  /** Base weights (and biases) as they were before merge, by model weight name. */
  private originals = new Map<string, tf.Tensor>();

  constructor(
    protected readonly model: DecoderModel,
    private readonly baseConfig: C,
    private readonly what: string,
  ) {}

  /** The config it was made with (a method may add what training has learned, as AdaLoRA's rank pattern). */
  get config(): C {
    return this.baseConfig;
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
    for (const s of this.sites) {
      this.model.hooks.delete(s.site.key);
      tf.dispose([...s.vars.values()]);
    }
    this.sites.length = 0;
    this.clsHead?.dispose();
    this.clsHead = null;
  }
}
