/**
 * The one rule that decides which whole documents are held out of pretraining. Every corpus
 * goes through it, so a held-out document is never trained on by the base models, and the
 * built-in tasks can keep their test splits inside the held-out set.
 */

/** FNV-1a 32-bit hash of a string: stable across platforms and versions. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** One document in twenty (by the hash of `corpus/docId`) is held out. */
export const HOLDOUT_MODULUS = 20;

export function isHeldOut(corpus: string, docId: string): boolean {
  return fnv1a(`${corpus}/${docId}`) % HOLDOUT_MODULUS === 0;
}
