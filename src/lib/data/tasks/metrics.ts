/**
 * Classification metrics over label ids (plain arrays or typed arrays). Conventions follow
 * scikit-learn: an F1 whose precision and recall are both undefined or zero is 0, and macro-F1
 * averages over the classes that occur in the gold labels or the predictions.
 * Empty inputs give NaN; inputs of different lengths throw a RangeError.
 */
import { IGNORE_INDEX } from './align';

type Labels = ArrayLike<number>;

function checkLengths(name: string, predictions: Labels, gold: Labels): void {
  if (predictions.length !== gold.length) {
    // Internal (predictions are made one per gold label), kept a RangeError as the header says.
    throw new RangeError(`${name}: ${predictions.length} predictions but ${gold.length} gold labels`);
  }
}

function f1(tp: number, fp: number, fn: number): number {
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/** Fraction of predictions equal to the gold label. */
export function accuracy(predictions: Labels, gold: Labels): number {
  checkLengths('accuracy', predictions, gold);
  let correct = 0;
  for (let i = 0; i < gold.length; i++) if (predictions[i] === gold[i]) correct++;
  return correct / gold.length;
}

/** F1 of one class against all others. */
export function binaryF1(predictions: Labels, gold: Labels, positive = 1): number {
  checkLengths('binaryF1', predictions, gold);
  if (gold.length === 0) return NaN;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < gold.length; i++) {
    const p = predictions[i] === positive;
    const g = gold[i] === positive;
    if (p && g) tp++;
    else if (p) fp++;
    else if (g) fn++;
  }
  return f1(tp, fp, fn);
}

/** Unweighted mean of the per-class F1 over the classes seen in gold or predictions. */
export function macroF1(predictions: Labels, gold: Labels): number {
  checkLengths('macroF1', predictions, gold);
  if (gold.length === 0) return NaN;
  const counts = new Map<number, { tp: number; fp: number; fn: number }>();
  const of = (c: number): { tp: number; fp: number; fn: number } => {
    let k = counts.get(c);
    if (!k) counts.set(c, (k = { tp: 0, fp: 0, fn: 0 }));
    return k;
  };
  for (let i = 0; i < gold.length; i++) {
    const p = predictions[i]!;
    const g = gold[i]!;
    if (p === g) of(g).tp++;
    else {
      of(p).fp++;
      of(g).fn++;
    }
  }
  let sum = 0;
  for (const { tp, fp, fn } of counts.values()) sum += f1(tp, fp, fn);
  return sum / counts.size;
}

/** Accuracy over the tokens whose gold label is not `ignoreIndex` (sub-tokens after a word's first, padding). */
export function tokenAccuracy(predictions: Labels, gold: Labels, ignoreIndex = IGNORE_INDEX): number {
  checkLengths('tokenAccuracy', predictions, gold);
  let counted = 0;
  let correct = 0;
  for (let i = 0; i < gold.length; i++) {
    if (gold[i] === ignoreIndex) continue;
    counted++;
    if (predictions[i] === gold[i]) correct++;
  }
  return correct / counted;
}
