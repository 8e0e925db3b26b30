/**
 * AdaLoRA (Zhang et al. 2023): LoRA's update in SVD form beside each targeted layer,
 *   y = x W + b + dropout(x) (P Λ Q)^T * scaling / (ranknum + 1e-5)
 * with P = lora_A [r, in], Λ = lora_E [r, 1], Q = lora_B [out, r] (peft/tuners/adalora/layer.py,
 * SVDLinear); scaling = loraAlpha, ranknum = initR. Λ starts at zero and P, Q at N(0, 0.02), so
 * training starts from the base model. The budget moves in `onStep` (rank-allocator.ts) and the
 * orthogonal regulariser is `extraLoss`, so no training loop can forget either (in PEFT a loop that
 * forgets `update_and_allocate` silently trains plain SVD-form LoRA).
 * Saved as PEFT does: each matrix cut to the ranks its pattern keeps, the pattern in rank_pattern.
 */
import * as tf from '@tensorflow/tfjs';
import { AdapterError } from '../../errors';
import { fnv1a } from '../../util/hash';
import type { ForwardContext, DecoderModel, LinearHook } from '../../model/decoder';
import { linearShape } from '../../model/family';
import { addMany, matmul, newVariable } from '../../model/ops';
import { Rng } from '../../util/rng';
import type { LinearSite } from '../inject';
import { targetedSites } from '../inject';
import type { InjectSite } from '../inject-base';
import { InjectBase, adapterDropout } from '../inject-base';
import type { AdapterTrainingState, InjectAdapter, RankBudget, StepContext } from '../types';
import type { StateDict } from '../state';
import { PEFT_PREFIX, readForState } from '../state';
import type { AdaLoraConfig } from './config';
import { RankAllocator, budgetSchedule } from './rank-allocator';
import type { Triplet } from './rank-allocator';

interface SvdSite extends InjectSite, Triplet {
  rank: number;
}

/** PEFT's rank_pattern key of a layer. */
export const patternKey = (site: LinearSite): string => `${site.hfName}.lora_E`;

class SvdHook implements LinearHook {
  constructor(
    private readonly s: SvdSite,
    private readonly scale: number,
    private readonly dropout: number,
    private readonly salt: number,
    private readonly isMerged: () => boolean,
  ) {}

  apply(x: tf.Tensor2D, base: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D {
    if (this.isMerged() || this.s.rank === 0) return base;
    const xin = adapterDropout(x, ctx, this.dropout, this.salt);
    const low = tf.mul(matmul(xin, this.s.a), this.s.e) as tf.Tensor2D; // [N, r]: (x P^T) Λ
    return tf.add(base, tf.mul(matmul(low, this.s.b), this.scale)); // [N, out]
  }
}

export class AdaLoraAdapter
  extends InjectBase<AdaLoraConfig, SvdSite>
  implements InjectAdapter<AdaLoraConfig>
{
  private readonly allocator: RankAllocator | null;
  private pattern: Record<string, boolean[]> | null;
  /** scaling / (ranknum + 1e-5), with ranknum = initR even after the ranks are cut (as PEFT keeps it). */
  private readonly scale: number;
  /** Ranks kept per layer after each allocation, for the budget heatmap. */
  readonly rankHistory: { step: number; ranks: number[] }[] = [];

  constructor(model: DecoderModel, config: AdaLoraConfig, seed: number) {
    super(model, config, 'AdaLoRA adapter');
    this.pattern = config.rankPattern ? { ...config.rankPattern } : null;
    const rng = new Rng(seed);
    // AdaLoRA's scaling is loraAlpha itself (not / r); a non-positive alpha falls back to r.
    const scaling = config.loraAlpha > 0 ? config.loraAlpha : config.initR;
    this.scale = scaling / (config.initR + 1e-5);
    for (const site of targetedSites(model.config, config.targetModules, config.layersToTransform)) {
      const [inDim, outDim] = linearShape(model.config, site.module);
      // A loaded adapter's matrices have the ranks its pattern kept.
      const rank = this.pattern?.[patternKey(site)]?.filter(Boolean).length ?? config.initR;
      const a = newVariable(
        tf.randomNormal<tf.Rank.R2>([inDim, rank], 0, 0.02, 'float32', rng.seed() + 1),
        true,
      );
      const e = newVariable(tf.zeros([rank]), true);
      const b = newVariable(
        tf.randomNormal<tf.Rank.R2>([rank, outDim], 0, 0.02, 'float32', rng.seed() + 1),
        true,
      );
      const p = `${PEFT_PREFIX}${site.hfName}`;
      const vars = new Map([
        [`${p}.lora_A`, a],
        [`${p}.lora_E`, e],
        [`${p}.lora_B`, b],
      ]);
      const s: SvdSite = { site, vars, a, e, b, rank, name: patternKey(site) };
      this.install(s, new SvdHook(s, this.scale, config.loraDropout, fnv1a(site.key), () => this.merged));
    }
    // A loaded adapter (rank pattern already cut) keeps its ranks; a new one allocates its budget.
    this.allocator =
      config.inferenceMode || config.rankPattern || config.totalStep === null
        ? null
        : new RankAllocator({ ...config, totalStep: config.totalStep }, this.sites);
  }

  /** The config with the rank pattern as it stands (PEFT writes it into adapter_config.json). */
  override get config(): AdaLoraConfig {
    return { ...super.config, rankPattern: this.pattern };
  }

  /** The adapted matrices in ranks() order, as HF names them (e.g. `transformer.h.0.attn.c_attn`). */
  siteNames(): string[] {
    return this.sites.map((s) => s.site.hfName);
  }

  /** The rank budget's history from step 0 (every matrix at initR), for the budget heatmap. */
  rankBudget(): RankBudget {
    const matrices = this.siteNames();
    const initR = this.config.initR;
    return { matrices, initR, points: [{ step: 0, ranks: matrices.map(() => initR) }, ...this.rankHistory] };
  }

  /** Current rank of each layer's update (nonzero Λ entries kept by the pattern). */
  ranks(): number[] {
    return this.sites.map((s) => this.pattern?.[s.name]?.filter(Boolean).length ?? s.rank);
  }

  /** PEFT's AdaLoraModel.update_and_allocate, once per optimizer step (after the update). */
  async onStep(ctx: StepContext): Promise<void> {
    const al = this.allocator;
    if (!al) return;
    const c = { ...this.config, totalStep: this.config.totalStep! };
    const end = c.totalStep - c.tfinal;
    const step = ctx.step;
    if (step > end) {
      if (this.pattern) al.applyPattern(this.pattern);
      return;
    }
    if (step < end) {
      const trainable = this.trainable();
      const byVar = new Map<tf.Variable, tf.Tensor>();
      for (const [k, g] of ctx.grads) {
        const v = trainable.get(k);
        if (v) byVar.set(v, g);
      }
      al.updateIpt(byVar);
    }
    const { budget, maskInd } = budgetSchedule(c, al.initBgt, al.targetBgt, step);
    if (maskInd || step === end) {
      this.pattern = await al.maskToBudget(budget);
      this.rankHistory.push({ step, ranks: this.ranks() });
    }
    if (step === end) al.resetIpt();
  }

  /** The importance averages, the rank pattern and its history: what a resumed run needs besides the weights. */
  async trainingState(): Promise<AdapterTrainingState> {
    return {
      tensors: this.allocator ? await this.allocator.exportState() : new Map(),
      json: { rankPattern: this.pattern, rankHistory: this.rankHistory },
    };
  }

  loadTrainingState(state: AdapterTrainingState): void {
    const j = state.json as {
      rankPattern?: Record<string, boolean[]> | null;
      rankHistory?: { step: number; ranks: number[] }[];
    };
    this.pattern = j.rankPattern ?? null;
    this.rankHistory.splice(0, this.rankHistory.length, ...(j.rankHistory ?? []));
    this.allocator?.importState(state.tensors);
  }

  /**
   * The orthogonal regulariser R = mean over P and Q of ||P P^T - I||_F and ||Q^T Q - I||_F
   * (AdaLoraModel.forward), weighted by orthRegWeight; added to the training loss.
   */
  extraLoss(): tf.Scalar | null {
    const w = this.config.orthRegWeight;
    const live = this.sites.filter((s) => s.rank > 0);
    if (w === 0 || live.length === 0) return null;
    const terms: tf.Scalar[] = [];
    for (const s of live) {
      const a = s.a; // P^T [in, r]
      const b = s.b; // Q^T [r, out]
      const eye = tf.eye(s.rank);
      terms.push(tf.norm(tf.sub(matmul(tf.transpose(a), a), eye)) as tf.Scalar); // P P^T [r, r]
      terms.push(tf.norm(tf.sub(matmul(b, tf.transpose(b)), eye)) as tf.Scalar); // Q^T Q [r, r]
    }
    return tf.mul(tf.div(addMany(terms), terms.length), w);
  }

  /** P Λ Q in Conv1D layout [in, out], times scaling / (ranknum + 1e-5) (PEFT get_delta_weight). */
  protected mergeSite(s: SvdSite, weight: tf.Variable): void {
    if (s.rank === 0) return;
    weight.assign(tf.add(weight, tf.mul(tf.matMul(tf.mul(s.a, s.e), s.b), this.scale)));
  }

  /** Indices a layer keeps under the pattern (all of them without one). */
  private kept(s: SvdSite): number[] {
    const keep = this.pattern?.[s.name];
    const all = Array.from({ length: s.rank }, (_, i) => i);
    // A loaded site is already cut to its pattern; a training site still has initR rows.
    return keep && keep.length === s.rank ? all.filter((i) => keep[i]) : all;
  }

  /** Each matrix cut to the ranks its pattern keeps, in PEFT's layout; lora_E as [k, 1]. */
  protected override async saveSite(s: SvdSite, out: StateDict): Promise<void> {
    const idx = tf.tensor1d(this.kept(s), 'int32');
    const p = `${PEFT_PREFIX}${s.site.hfName}`;
    const [a, e, b] = tf.tidy(() => [tf.gather(s.a, idx, 1), tf.gather(s.e, idx), tf.gather(s.b, idx, 0)]);
    const k = idx.size;
    out.set(`${p}.lora_A`, await readForState(a!, true)); // [k, in]
    out.set(`${p}.lora_E`, { shape: [k, 1], data: (await e!.data()) as Float32Array });
    out.set(`${p}.lora_B`, await readForState(b!, true)); // [out, k]
    tf.dispose([idx, a!, e!, b!]);
  }

  /** The ranks the loaded config's pattern kept; AdaLoRA's own shape check names the pattern. */
  protected override loadSite(s: SvdSite, tensors: StateDict, source: string): void {
    const p = `${PEFT_PREFIX}${s.site.hfName}`;
    const [inDim, outDim] = [s.a.shape[0]!, s.b.shape[1]!];
    const want: [string, number[], tf.Variable, (d: Float32Array) => tf.Tensor][] = [
      [`${p}.lora_A`, [s.rank, inDim], s.a, (d) => tf.transpose(tf.tensor2d(d, [s.rank, inDim]))],
      [`${p}.lora_E`, [s.rank, 1], s.e, (d) => tf.tensor1d(d)],
      [`${p}.lora_B`, [outDim, s.rank], s.b, (d) => tf.transpose(tf.tensor2d(d, [outDim, s.rank]))],
    ];
    for (const [key, shape, v, make] of want) {
      const t = tensors.get(key);
      if (!t) throw new AdapterError(`${source}: tensor ${key} is missing`);
      if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
        throw new AdapterError(
          `${source}: tensor ${key} has shape [${t.shape}] but this model and rank_pattern need [${shape}]`,
        );
      }
      tf.tidy(() => v.assign(make(t.data)));
    }
  }

  override dispose(): void {
    this.allocator?.dispose();
    super.dispose();
  }
}

/** Trainable parameters: r (in + out + 1) per targeted layer at the starting rank (or the kept ranks). */
export function adaloraParamCount(model: DecoderModel, c: AdaLoraConfig): number {
  let n = 0;
  for (const s of targetedSites(model.config, c.targetModules, c.layersToTransform)) {
    const [i, o] = linearShape(model.config, s.module);
    const r = c.rankPattern?.[patternKey(s)]?.filter(Boolean).length ?? c.initR;
    n += r * (i + o + 1);
  }
  return n;
}
