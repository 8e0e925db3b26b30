/**
 * The flags that set a method's config fields (--r, --lora-alpha...). They map onto config fields
 * by name, so a flag applies to every method whose config has the field, and to no other.
 */
import { PeftConfigError, UsageError } from '../lib/errors';
import type { Gpt2Model } from '../lib/model/gpt2';
import type { PeftConfigBase, PeftMethod } from '../lib/peft/types';
import type { Values } from './args';
import { int, list, num, requiredStr } from './args';

/** Method flags -> config fields; a flag whose field the chosen method lacks is a UsageError. */
const CONFIG_FLAGS: { flag: string; field: string; read: (v: Values, flag: string) => unknown }[] = [
  { flag: 'r', field: 'r', read: (v, f) => int(v, f, undefined, { min: 1 }) },
  {
    flag: 'lora-alpha',
    field: 'loraAlpha',
    read: (v, f) => num(v, f, undefined, { min: 0, exclusiveMin: true }),
  },
  { flag: 'lora-dropout', field: 'loraDropout', read: (v, f) => num(v, f, undefined, { min: 0, max: 0.99 }) },
  { flag: 'target-modules', field: 'targetModules', read: (v, f) => list(v, f) },
];

type Registry = typeof import('../lib/peft/registry');

/** The method named by --method (required); an unknown name is a UsageError listing the known ones. */
export function pickMethod(values: Values, { methodByCliName, METHODS }: Registry): PeftMethod {
  const names = Object.values(METHODS).map((m) => m.cliName);
  const name = requiredStr(values, 'method', `choose one of ${names.join(', ')}`);
  try {
    return methodByCliName(name);
  } catch (e) {
    if (e instanceof PeftConfigError) throw new UsageError(`--method: ${e.message}`);
    throw e;
  }
}

/** The method's defaults with the method flags given applied. */
export function buildConfig(values: Values, method: PeftMethod, base: PeftConfigBase): PeftConfigBase {
  const config: Record<string, unknown> = { ...base };
  for (const { flag, field, read } of CONFIG_FLAGS) {
    const v = read(values, flag);
    if (v === undefined) continue;
    if (!(field in config)) throw new UsageError(`--${flag} does not apply to --method ${method.cliName}`);
    config[field] = v;
  }
  return config as unknown as PeftConfigBase;
}

/** Runs the method's own checks; a fault in a field set by a flag is reported under that flag. */
export function validateWithFlags(method: PeftMethod, config: PeftConfigBase, model: Gpt2Model): void {
  try {
    method.validate(config as never, model);
  } catch (e) {
    if (!(e instanceof PeftConfigError)) throw e;
    const field = /^\w+/.exec(e.message)?.[0];
    const hit = CONFIG_FLAGS.find((f) => f.field === field);
    throw hit ? new UsageError(`--${hit.flag}: ${e.message}`) : e;
  }
}
