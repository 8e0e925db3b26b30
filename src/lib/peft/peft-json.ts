/**
 * The one converter between our camelCase configs and PEFT's snake_case adapter_config.json.
 * Field names map mechanically (loraAlpha <-> lora_alpha); each method lists its own fields, so
 * unknown keys from newer PEFT versions are kept out of our configs but never make loading fail.
 */
import { AdapterError } from '../errors';
import { showValue } from '../util/show';

/** PEFT fields not spelled in snake_case: AdaLoraConfig's `deltaT` (peft/tuners/adalora/config.py). */
const PEFT_SPELLING = new Set(['deltaT']);

export function camelToSnake(s: string): string {
  return PEFT_SPELLING.has(s) ? s : s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function snakeToCamel(s: string): string {
  return PEFT_SPELLING.has(s) ? s : s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * The PEFT release whose adapter_config.json fields we write (PeftConfig's `peft_version`, which
 * save_pretrained fills with its own version): the fields each method lists as extras are that
 * release's, checked in CI by scripts/reference/peft_interop/ours-in-peft.test.ts.
 */
export const PEFT_FORMAT_VERSION = '0.21.0';

/** Our config -> PEFT JSON, with `extra` PEFT fields we do not model written at their PEFT defaults. */
export function configToPeftJson(
  config: object,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = { peft_version: PEFT_FORMAT_VERSION, ...extra };
  for (const [k, v] of Object.entries(config)) out[camelToSnake(k)] = v;
  // The verbalizer's fields (task-head.ts) are ours, not PEFT's: PEFT warns about unknown keys, so
  // they are written only when a verbalizer is on (a file PEFT cannot reproduce anyway).
  if (out.verbalizer !== true) {
    delete out.verbalizer;
    delete out.verbalizer_token_ids;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** PEFT JSON -> our config: takes the fields `defaults` has, checks their JSON types, fills the rest. */
export function configFromPeftJson<C extends object>(
  json: Record<string, unknown>,
  defaults: C,
  source: string,
): C {
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const key of Object.keys(defaults)) {
    const snake = camelToSnake(key);
    if (!(snake in json)) continue;
    const v = json[snake];
    const want = (defaults as Record<string, unknown>)[key];
    const ok =
      want === null ||
      v === null ||
      typeof want === typeof v ||
      (Array.isArray(want) && typeof v === 'string');
    if (!ok) throw new AdapterError(`${source}: "${snake}" should be ${typeof want}, got ${showValue(v)}`);
    out[key] = v;
  }
  return out as C;
}
