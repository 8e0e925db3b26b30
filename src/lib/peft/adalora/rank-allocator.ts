/**
 * AdaLoRA's budget allocation (Zhang et al. 2023, section 3; PEFT's RankAllocator in
 * peft/tuners/adalora/layer.py and AdaLoraModel.update_and_allocate in model.py):
 * - importance of every entry: I = |w * grad|, smoothed  Ī ← β1 Ī + (1-β1) I, with uncertainty
 *   Ū ← β2 Ū + (1-β2) |I - Ī|, and score s = Ī · Ū;
 * - the score of singular triplet i of a matrix: s(Λ_i) + mean_j s(P_ji) + mean_j s(Q_ij);
 * - the budget (total rank) falls from initR per matrix to targetR on a cubic schedule between
 *   tinit and totalStep - tfinal; every deltaT steps the lowest-scoring triplets have Λ_i zeroed,
 *   and the surviving pattern is recorded. After totalStep - tfinal the pattern is fixed and re-applied.
 * Pure bookkeeping over tensors; the adapter (adalora.ts) owns the variables.
 */
import * as tf from '@tensorflow/tfjs';
import type { AdaLoraConfig } from './config';

/** One SVD-form matrix: its variables in compute layout, and its rank-pattern name. */
export interface Triplet {
  /** PEFT's rank_pattern key, e.g. `transformer.h.0.attn.c_attn.lora_E`. */
  name: string;
  /** P^T: [in, r] (PEFT's lora_A is [r, in]). */
  a: tf.Variable<tf.Rank.R2>;
  /** Λ: [r] (PEFT's lora_E is [r, 1]). */
  e: tf.Variable;
  /** Q^T: [r, out] (PEFT's lora_B is [out, r]). */
  b: tf.Variable<tf.Rank.R2>;
}

/** PEFT's budget_schedule: the total rank allowed at `step`, and whether to mask at this step. */
export function budgetSchedule(
  c: Pick<AdaLoraConfig, 'tinit' | 'tfinal' | 'deltaT'> & { totalStep: number },
  initBgt: number,
  targetBgt: number,
  step: number,
): { budget: number; maskInd: boolean } {
  if (step <= c.tinit) return { budget: initBgt, maskInd: false };
  if (step > c.totalStep - c.tfinal) return { budget: targetBgt, maskInd: true };
  const mul = 1 - (step - c.tinit) / (c.totalStep - c.tfinal - c.tinit);
  return {
    budget: Math.trunc((initBgt - targetBgt) * mul ** 3 + targetBgt),
    maskInd: step % c.deltaT === 0,
  };
}

/** A triplet's three variables with the part names its exported state uses. */
const parts = (t: Triplet): [string, tf.Variable][] => [
  ['a', t.a],
  ['e', t.e],
  ['b', t.b],
];

export class RankAllocator {
  readonly initBgt: number;
  readonly targetBgt: number;
  /** Ī and Ū per variable (keyed by the variable's name). */
  private readonly expAvgIpt = new Map<string, tf.Tensor>();
  private readonly expAvgUnc = new Map<string, tf.Tensor>();

  constructor(
    private readonly config: AdaLoraConfig & { totalStep: number },
    private readonly triplets: Triplet[],
  ) {
    this.initBgt = triplets.reduce((s, t) => s + t.e.size, 0);
    this.targetBgt = config.targetR * triplets.length;
  }

  /** Updates Ī and Ū from this step's gradients (by variable name); variables without one are skipped. */
  updateIpt(grads: Map<tf.Variable, tf.Tensor>): void {
    const { beta1, beta2 } = this.config;
    for (const t of this.triplets) {
      for (const p of [t.a, t.e, t.b]) {
        const g = grads.get(p);
        if (!g) continue;
        const oldIpt = this.expAvgIpt.get(p.name);
        const oldUnc = this.expAvgUnc.get(p.name);
        const [ipt, unc] = tf.tidy(() => {
          const cur = tf.abs(tf.mul(p, g));
          const avg = tf.add(tf.mul(oldIpt ?? tf.zerosLike(cur), beta1), tf.mul(cur, 1 - beta1));
          // PEFT's uncertainty uses the freshly updated Ī.
          const u = tf.add(
            tf.mul(oldUnc ?? tf.zerosLike(cur), beta2),
            tf.mul(tf.abs(tf.sub(cur, avg)), 1 - beta2),
          );
          return [tf.keep(avg), tf.keep(u)];
        });
        oldIpt?.dispose();
        oldUnc?.dispose();
        this.expAvgIpt.set(p.name, ipt);
        this.expAvgUnc.set(p.name, unc);
      }
    }
  }

  /** s = Ī · Ū of one variable, or zeros before any update. */
  private score(p: tf.Variable): tf.Tensor {
    const i = this.expAvgIpt.get(p.name);
    const u = this.expAvgUnc.get(p.name);
    return i && u ? tf.mul(i, u) : tf.zerosLike(p);
  }

  /** Triplet scores [r] per matrix: s(Λ) + mean over P's row + mean over Q's column. */
  async tripletScores(): Promise<Float32Array[]> {
    const scores = tf.tidy(() =>
      this.triplets.map((t) =>
        tf.addN([this.score(t.e), tf.mean(this.score(t.a), 0), tf.mean(this.score(t.b), 1)]),
      ),
    );
    const out = await Promise.all(scores.map((s) => s.data() as Promise<Float32Array>));
    tf.dispose(scores);
    return out;
  }

  /**
   * Zeroes Λ_i of every triplet scoring at or below the (initBgt - budget)-th smallest score
   * (PEFT's kthvalue threshold; ties at the threshold all go) and returns the pattern kept.
   */
  async maskToBudget(budget: number): Promise<Record<string, boolean[]>> {
    const scores = await this.tripletScores();
    const k = this.initBgt - budget;
    const sorted = Float32Array.from(scores.flatMap((s) => Array.from(s))).sort();
    const threshold = k >= 1 ? sorted[k - 1]! : -Infinity;
    const pattern: Record<string, boolean[]> = {};
    this.triplets.forEach((t, i) => {
      pattern[t.name] = Array.from(scores[i]!, (s) => !(s <= threshold));
    });
    this.applyPattern(pattern);
    return pattern;
  }

  /** Zeroes Λ_i wherever the pattern says false (PEFT's mask_using_rank_pattern). */
  applyPattern(pattern: Record<string, boolean[]>): void {
    for (const t of this.triplets) {
      const keep = pattern[t.name];
      if (!keep) continue;
      tf.tidy(() => t.e.assign(tf.mul(t.e, tf.tensor1d(keep.map((x) => (x ? 1 : 0)))))); // [r]
    }
  }

  /** Ī and Ū of every variable that has them, keyed `<triplet name>/<a|e|b>/<ipt|unc>` (stable across sessions). */
  async exportState(): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const t of this.triplets) {
      for (const [part, p] of parts(t)) {
        for (const [kind, m] of [
          ['ipt', this.expAvgIpt],
          ['unc', this.expAvgUnc],
        ] as const) {
          const x = m.get(p.name);
          if (x)
            out.set(`${t.name}/${part}/${kind}`, { shape: x.shape, data: (await x.data()) as Float32Array });
        }
      }
    }
    return out;
  }

  /** Puts exported averages back (replacing any). */
  importState(state: Map<string, { shape: number[]; data: Float32Array }>): void {
    this.resetIpt();
    for (const t of this.triplets) {
      for (const [part, p] of parts(t)) {
        const ipt = state.get(`${t.name}/${part}/ipt`);
        const unc = state.get(`${t.name}/${part}/unc`);
        if (ipt) this.expAvgIpt.set(p.name, tf.tensor(ipt.data, ipt.shape, 'float32'));
        if (unc) this.expAvgUnc.set(p.name, tf.tensor(unc.data, unc.shape, 'float32'));
      }
    }
  }

  resetIpt(): void {
    tf.dispose([...this.expAvgIpt.values(), ...this.expAvgUnc.values()]);
    this.expAvgIpt.clear();
    this.expAvgUnc.clear();
  }

  dispose(): void {
    this.resetIpt();
  }
}
