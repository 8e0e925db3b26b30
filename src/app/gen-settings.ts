/**
 * The Lab's generation settings (Try it) as they live in the address, beside the task and the
 * method: `#/lab?task=moby-dick&temperature=0.8&topK=40&repetitionPenalty=1.2`. Only values off
 * their defaults are written, so a plain link stays short; a value out of range is named and the
 * default kept. The names are the library's (src/lib/model/generate.ts), which samples for the
 * CLI too.
 */
export interface GenSettings {
  maxNewTokens: number;
  /** 0 is greedy. */
  temperature: number;
  /** 0 is off. */
  topK: number;
  /** 1 is off. */
  topP: number;
  /** transformers' repetition_penalty; 1 is off. */
  repetitionPenalty: number;
  sampleSeed: number;
}

/** top-p 0.95 was the Lab's sampling before the setting was shown, so links made then answer the same. */
export const DEFAULT_GEN: Readonly<GenSettings> = {
  maxNewTokens: 40,
  temperature: 0,
  topK: 0,
  topP: 0.95,
  repetitionPenalty: 1,
  sampleSeed: 0,
};

interface Range {
  min: number;
  max: number;
  /** The minimum itself is refused. */
  aboveMin?: boolean;
  integer?: boolean;
  what: string;
}

export const GEN_RANGES: Record<keyof GenSettings, Range> = {
  maxNewTokens: { min: 1, max: 500, integer: true, what: 'new tokens, a whole number from 1 to 500' },
  temperature: { min: 0, max: 5, what: 'temperature, from 0 (greedy) to 5' },
  topK: { min: 0, max: 100000, integer: true, what: 'top-k, a whole number of tokens (0 is off)' },
  topP: { min: 0, max: 1, aboveMin: true, what: 'top-p, above 0 and at most 1 (1 is off)' },
  repetitionPenalty: {
    min: 0,
    max: 10,
    aboveMin: true,
    what: 'repetition penalty, above 0 up to 10 (1 is off)',
  },
  sampleSeed: { min: 0, max: 2 ** 32 - 1, integer: true, what: 'seed, a whole number of 0 or more' },
};

const KEYS = Object.keys(DEFAULT_GEN) as (keyof GenSettings)[];

/** Why `value` cannot be the setting `key`, or null when it can. */
export function genProblem(key: keyof GenSettings, value: number): string | null {
  const r = GEN_RANGES[key];
  const ok =
    Number.isFinite(value) &&
    (r.aboveMin ? value > r.min : value >= r.min) &&
    value <= r.max &&
    (!r.integer || Number.isInteger(value));
  return ok ? null : `${key} ${value} is out of range: give the ${r.what}`;
}

/** The settings a link's query holds (over `base`), and what it held that was refused. */
export function genFromParams(
  params: URLSearchParams,
  base: GenSettings = DEFAULT_GEN,
): { gen: GenSettings; problems: string[] } {
  const gen = { ...base };
  const problems: string[] = [];
  for (const key of KEYS) {
    const raw = params.get(key);
    if (raw === null) continue;
    const value = raw.trim() === '' ? NaN : Number(raw);
    const why = genProblem(key, value);
    if (why) problems.push(`the link's ${why.replace(`${key} ${value}`, `${key}=${raw}`)}`);
    else gen[key] = value;
  }
  return { gen, problems };
}

/** The query pairs for the settings that differ from the defaults, in a fixed order. */
export function genToParams(gen: GenSettings): [string, string][] {
  return KEYS.filter((k) => gen[k] !== DEFAULT_GEN[k]).map((k) => [k, String(gen[k])]);
}

/** The hash with the generation settings written (defaults removed), the route and other parameters kept. */
export function hashWithGen(hash: string, gen: GenSettings): string {
  const q = hash.indexOf('?');
  const route = (q < 0 ? hash : hash.slice(0, q)) || '#/lab';
  const params = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
  for (const k of KEYS) params.delete(k);
  for (const [k, v] of genToParams(gen)) params.set(k, v);
  const s = params.toString();
  return s ? `${route}?${s}` : route;
}
