/**
 * PEFT's `add_weighted_adapter` for LoRA (peft/tuners/lora/model.py, peft/utils/merge_utils.py), on
 * saved state dicts, so it needs no model and no tensors: a new LoRA adapter whose update is a
 * weighted combination of others. The result has lora_alpha = r, so its scaling is 1 and the
 * weights and scalings are folded into A (and B):
 * - `cat` (exact): A = concat_i(w_i s_i A_i) over rows, B = concat_i(B_i) over columns, r = sum r_i,
 *   so B A = sum_i w_i s_i B_i A_i;
 * - `linear` (PEFT's task arithmetic; needs equal r): with c_i = sqrt(|w_i s_i|),
 *   A = sum_i sign(w_i s_i) c_i A_i and B = sum_i c_i B_i, which is not the weighted sum of the
 *   updates (cross terms B_i A_j remain), as in PEFT;
 * - `ties`, `dare_linear`, `dare_ties`, `magnitude_prune` (equal r): the same weights, applied to
 *   the A's and the B's separately after pruning each to `density` (by magnitude: ties and
 *   magnitude_prune; at random, kept values divided by density: dare), and for ties / dare_ties
 *   only the entries whose sign agrees with the majority (`total`: sign of the sum of the pruned
 *   tensors; `frequency`: the more frequent sign), averaged over the agreeing adapters;
 * - `svd` (exact up to the rank): ΔW = sum_i w_i s_i B_i A_i [out, in], then its leading
 *   `svdRank` (default max r_i) singular triplets, B = U S and A = V^T, optionally clamped to the
 *   `svdClamp` quantile of their entries.
 * PEFT's dare draws its masks with torch's RNG; ours come from our seeded PRNG, so a dare result
 * has PEFT's distribution, not its numbers.
 */
import { AdapterCombineError, PeftConfigError } from '../../errors';
import { Rng } from '../../util/rng';
import type { StateDict } from '../state';
import type { LoraConfig } from './config';
import { mat, topSvd } from './linalg';
import { loraScaling } from './lora';
import { COMBINATION_TYPES } from './combine-types';
import type { CombinationType, CombineOptions } from './combine-types';

export { COMBINATION_TYPES };
export type { CombinationType, CombineOptions };

/** Types that merge A's and B's entry by entry with PEFT's merge_utils (equal ranks). */
const ENTRYWISE = new Set<CombinationType>(['linear', 'ties', 'dare_linear', 'dare_ties', 'magnitude_prune']);

/** Keeps the int(density * n) largest magnitudes (torch.topk), zeroing the rest. */
function magnitudePrune(t: Float32Array, density: number): Float32Array {
  if (density >= 1) return t;
  const k = Math.floor(density * t.length);
  const order = Array.from(t.keys()).sort((a, b) => Math.abs(t[b]!) - Math.abs(t[a]!));
  const out = new Float32Array(t.length);
  for (let j = 0; j < k; j++) out[order[j]!] = t[order[j]!]!;
  return out;
}

/** Keeps each entry with probability density, divided by density (DARE's rescale). */
function randomPrune(t: Float32Array, density: number, rng: Rng): Float32Array {
  if (density >= 1) return t;
  return t.map((x) => (rng.next() < density ? x / density : 0));
}

/** merge_utils' ties / dare / magnitude_prune / task_arithmetic over tensors of one shape. */
function mergeEntrywise(
  type: CombinationType,
  tensors: Float32Array[],
  weights: number[],
  density: number,
  signMethod: 'total' | 'frequency',
  rng: Rng,
): Float32Array {
  const pruned = tensors.map((t) =>
    type === 'ties' || type === 'magnitude_prune'
      ? magnitudePrune(t, density)
      : type === 'dare_linear' || type === 'dare_ties'
        ? randomPrune(t, density, rng)
        : t,
  );
  const n = tensors[0]!.length;
  const out = new Float32Array(n);
  const elect = type === 'ties' || type === 'dare_ties';
  for (let j = 0; j < n; j++) {
    if (!elect) {
      let x = 0;
      pruned.forEach((t, i) => (x += t[j]! * weights[i]!));
      out[j] = x;
      continue;
    }
    // The majority sign is elected on the pruned tensors before weighting (PEFT's order).
    let m = 0;
    for (const t of pruned) m += signMethod === 'total' ? t[j]! : Math.sign(t[j]!);
    const majority = m >= 0 ? 1 : -1;
    let sum = 0;
    let kept = 0;
    pruned.forEach((t, i) => {
      if (Math.sign(t[j]!) === majority) {
        sum += t[j]! * weights[i]!;
        kept++;
      }
    });
    out[j] = sum / Math.max(kept, 1);
  }
  return out;
}

/** torch.quantile with linear interpolation. */
function quantile(values: Float64Array, q: number): number {
  const sorted = Float64Array.from(values).sort();
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface SavedLora {
  config: LoraConfig;
  state: StateDict;
}

const A_SUFFIX = '.lora_A.weight';
const B_SUFFIX = '.lora_B.weight';

export function addWeightedAdapter(
  adapters: SavedLora[],
  weights: number[],
  type: CombinationType,
  options: CombineOptions = {},
): SavedLora {
  if (!(COMBINATION_TYPES as readonly string[]).includes(type)) {
    throw new PeftConfigError(
      `combination type ${JSON.stringify(type)} is not known: use one of ${COMBINATION_TYPES.join(', ')}`,
    );
  }
  const density = options.density ?? 1;
  if (!(density >= 0 && density <= 1)) throw new PeftConfigError(`density must be in [0, 1], got ${density}`);
  const signMethod = options.majoritySignMethod ?? 'total';
  if (signMethod !== 'total' && signMethod !== 'frequency') {
    throw new PeftConfigError(
      `majoritySignMethod must be "total" or "frequency", got ${JSON.stringify(signMethod)}`,
    );
  }
  const clamp = options.svdClamp ?? null;
  if (clamp !== null && !(clamp > 0 && clamp <= 1))
    throw new PeftConfigError(`svdClamp must be in (0, 1], got ${clamp}`);
  const rng = new Rng(options.seed ?? 1);
  if (adapters.length === 0) throw new PeftConfigError('combining adapters needs at least one adapter');
  if (weights.length !== adapters.length) {
    throw new PeftConfigError(
      `${adapters.length} adapters but ${weights.length} weights: give one weight each`,
    );
  }
  const first = adapters[0]!;
  const modules = [...first.state.keys()]
    .filter((k) => k.endsWith(A_SUFFIX))
    .map((k) => k.slice(0, -A_SUFFIX.length));
  adapters.forEach((a, i) => {
    if (a.config.peftType !== 'LORA')
      throw new AdapterCombineError(
        `adapter ${i + 1} is ${a.config.peftType}: only LoRA adapters combine`,
        'method',
      );
    if (a.config.useDora)
      throw new AdapterCombineError(
        `adapter ${i + 1} is DoRA: its magnitude vectors have no weighted combination here; combine plain LoRA adapters`,
        'method',
      );
    if (a.config.taskType !== 'CAUSAL_LM' || a.config.bias !== 'none') {
      throw new AdapterCombineError(
        `adapter ${i + 1} carries a head or biases: only plain CAUSAL_LM LoRA adapters combine`,
        'task',
      );
    }
    const mine = [...a.state.keys()]
      .filter((k) => k.endsWith(A_SUFFIX))
      .map((k) => k.slice(0, -A_SUFFIX.length));
    const missing = modules.filter((m) => !mine.includes(m));
    if (missing.length || mine.length !== modules.length) {
      throw new AdapterCombineError(
        `adapter ${i + 1} targets other layers than adapter 1 (${missing[0] ?? mine.find((m) => !modules.includes(m))}): combine adapters with the same targetModules`,
        'targets',
      );
    }
  });
  const ranks = adapters.map((a) => a.config.r);
  // PEFT: one adapter is always combined linearly.
  const kind: CombinationType = adapters.length === 1 ? 'linear' : type;
  if (ENTRYWISE.has(kind) && new Set(ranks).size !== 1) {
    throw new AdapterCombineError(
      `${kind} combination needs equal ranks, got r = ${ranks.join(', ')}: use "cat" or "svd"`,
      'rank',
    );
  }
  const r =
    kind === 'cat'
      ? ranks.reduce((a, b) => a + b, 0)
      : kind === 'svd'
        ? (options.svdRank ?? Math.max(...ranks))
        : ranks[0]!;
  if (!Number.isInteger(r) || r < 1)
    throw new PeftConfigError(`svdRank must be a positive integer, got ${r}`);
  const out: StateDict = new Map();
  for (const m of modules) {
    const As = adapters.map((a) => a.state.get(m + A_SUFFIX)!); // [r_i, in]
    const Bs = adapters.map((a) => a.state.get(m + B_SUFFIX)!); // [out, r_i]
    const inDim = As[0]!.shape[1]!;
    const outDim = Bs[0]!.shape[0]!;
    if (kind === 'svd') {
      if (r > Math.min(inDim, outDim)) {
        throw new PeftConfigError(`svdRank ${r} exceeds ${m}'s smaller side ${Math.min(inDim, outDim)}`);
      }
      // ΔW [out, in] = sum_i w_i s_i B_i A_i, in float64.
      const d = mat(outDim, inDim);
      adapters.forEach((a, i) => {
        const ws = weights[i]! * loraScaling(a.config);
        const ri = a.config.r;
        const ai = As[i]!.data;
        const bi = Bs[i]!.data;
        for (let o = 0; o < outDim; o++)
          for (let k = 0; k < ri; k++) {
            const b = ws * bi[o * ri + k]!;
            for (let c = 0; c < inDim; c++)
              d.data[o * inDim + c] = d.data[o * inDim + c]! + b * ai[k * inDim + c]!;
          }
      });
      const { u, s: sv, vh } = topSvd(d, r);
      const B = new Float64Array(outDim * r);
      for (let o = 0; o < outDim; o++) for (let k = 0; k < r; k++) B[o * r + k] = u.data[o * r + k]! * sv[k]!;
      const A = Float64Array.from(vh.data);
      if (clamp !== null) {
        const hi = quantile(Float64Array.from([...B, ...A]), clamp);
        for (const t of [A, B]) for (let j = 0; j < t.length; j++) t[j] = Math.min(hi, Math.max(-hi, t[j]!));
      }
      out.set(m + A_SUFFIX, { shape: [r, inDim], data: Float32Array.from(A) });
      out.set(m + B_SUFFIX, { shape: [outDim, r], data: Float32Array.from(B) });
      continue;
    }
    if (kind !== 'cat' && kind !== 'linear') {
      // merge_utils on the A's with sign(w s) sqrt|w s| and on the B's with sqrt|w s|.
      const wA: number[] = [];
      const wB: number[] = [];
      adapters.forEach((a, i) => {
        const ws = weights[i]! * loraScaling(a.config);
        wA.push(Math.sqrt(Math.abs(ws)) * (ws >= 0 ? 1 : -1));
        wB.push(Math.sqrt(Math.abs(ws)));
      });
      const merge = (ts: Float32Array[], w: number[]): Float32Array =>
        mergeEntrywise(kind, ts, w, density, signMethod, rng);
      out.set(m + A_SUFFIX, {
        shape: [r, inDim],
        data: merge(
          As.map((t) => t.data),
          wA,
        ),
      });
      out.set(m + B_SUFFIX, {
        shape: [outDim, r],
        data: merge(
          Bs.map((t) => t.data),
          wB,
        ),
      });
      continue;
    }
    const A = new Float32Array(r * inDim);
    const B = new Float32Array(outDim * r);
    let row = 0;
    adapters.forEach((a, i) => {
      const ws = weights[i]! * loraScaling(a.config);
      const ri = a.config.r;
      const ai = As[i]!.data;
      const bi = Bs[i]!.data;
      if (kind === 'cat') {
        for (let k = 0; k < ri * inDim; k++) A[row * inDim + k] = ai[k]! * ws;
        for (let o = 0; o < outDim; o++) for (let k = 0; k < ri; k++) B[o * r + row + k] = bi[o * ri + k]!;
        row += ri;
      } else {
        const c = Math.sqrt(Math.abs(ws));
        const sign = ws >= 0 ? 1 : -1;
        for (let k = 0; k < r * inDim; k++) A[k] = A[k]! + sign * c * ai[k]!;
        for (let k = 0; k < outDim * r; k++) B[k] = B[k]! + c * bi[k]!;
      }
    });
    out.set(m + A_SUFFIX, { shape: [r, inDim], data: A });
    out.set(m + B_SUFFIX, { shape: [outDim, r], data: B });
  }
  return {
    config: { ...first.config, r, loraAlpha: r, useRslora: false, loraDropout: first.config.loraDropout },
    state: out,
  };
}
