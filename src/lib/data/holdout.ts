/**
 * The one rule that decides which whole documents are held out of pretraining. Every corpus
 * goes through it, so a held-out document is never trained on by the base models, and the
 * built-in tasks can keep their test splits inside the held-out set.
 */
import { fnv1a } from '../util/hash';

/** One document in twenty (by the hash of `corpus/docId`) is held out. */
export const HOLDOUT_MODULUS = 20;

export function isHeldOut(corpus: string, docId: string): boolean {
  return fnv1a(`${corpus}/${docId}`) % HOLDOUT_MODULUS === 0;
}
