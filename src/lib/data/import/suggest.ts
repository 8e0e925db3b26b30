/** "Did you mean ...?" for column names. */

/** Levenshtein distance (insertions, deletions and substitutions each cost 1). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur[j] = Math.min(sub, prev[j]! + 1, cur[j - 1]! + 1);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/**
 * The candidate closest to `name` (case-insensitive edit distance; ties go to the first), or
 * undefined when even the closest is so far off that suggesting it would only confuse: more than
 * half of the longer name must not change.
 */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const want = name.trim().toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const have = c.trim().toLowerCase();
    let dist = editDistance(want, have);
    // "text" for "review_text": containing the name is as good as a small typo.
    if (dist > 1 && want.length >= 3 && have.length >= 3 && (have.includes(want) || want.includes(have)))
      dist = 1;
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(2, Math.floor(Math.max(want.length, best.trim().length) / 2));
  return bestDistance <= limit ? best : undefined;
}

/** `'a', 'b', 'c'` (names quoted so empty and spaced names stay visible); long lists are cut. */
export function listNames(names: readonly string[], max = 20): string {
  const shown = names.slice(0, max).map((n) => `'${n}'`);
  if (names.length > max) shown.push(`and ${names.length - max} more`);
  return shown.join(', ');
}
