/**
 * add_weighted_adapter's combination types and options, without the arithmetic (combine.ts), so the
 * UI and the protocol can name them without reaching TensorFlow.js.
 */
export const COMBINATION_TYPES = [
  'linear',
  'cat',
  'svd',
  'ties',
  'dare_linear',
  'dare_ties',
  'magnitude_prune',
] as const;
export type CombinationType = (typeof COMBINATION_TYPES)[number];

export interface CombineOptions {
  /** The fraction of each tensor's entries kept by ties / dare / magnitude_prune, in [0, 1]. */
  density?: number;
  /** How ties / dare_ties elect each entry's sign: by the sum ("total") or by count ("frequency"). */
  majoritySignMethod?: 'total' | 'frequency';
  /** Rank of the svd result (default: the largest input rank). */
  svdRank?: number;
  /** Quantile in (0, 1] at which the svd result's entries are clamped (default: none). */
  svdClamp?: number | null;
  /** Seed of dare's random masks. */
  seed?: number;
}
