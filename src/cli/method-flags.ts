/**
 * The flags that set a method's config fields, made from the catalog's field specs
 * (src/lib/peft/catalog.ts), so the CLI offers exactly the settings the Lab's form does: a field
 * `loraAlpha` is the flag `--lora-alpha`. A flag applies to every method whose config has the
 * field, and to no other. Read from the catalog when asked, so every method in it has its flags.
 */
import { PeftConfigError, UsageError } from '../lib/errors';
import type { DecoderModel } from '../lib/model/decoder';
import type { FieldSpec } from '../lib/peft/catalog';
import { METHOD_INFO, methodInfo } from '../lib/peft/catalog';
import type { PeftConfigBase, PeftMethod } from '../lib/peft/types';
import type { OptionSpec, Values } from './args';
import { int, list, num, requiredStr, str } from './args';

/** `loraAlpha` -> `lora-alpha`, `deltaT` -> `delta-t`. */
export const flagOf = (field: string): string => field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Every field any method has, once (the first method's spec wins; they agree where shared). */
function methodFields(): FieldSpec[] {
  return [...new Map(METHOD_INFO.flatMap((m) => m.fields).map((f) => [f.field, f] as const)).values()];
}

/** Options for parseArgs: booleans are switches, everything else takes a value. */
export function methodOptions(): OptionSpec {
  return Object.fromEntries(
    methodFields().map((f) => [flagOf(f.field), { type: f.type === 'bool' ? 'boolean' : 'string' }]),
  );
}

function read(values: Values, f: FieldSpec): unknown {
  const flag = flagOf(f.field);
  if (values[flag] === undefined) return undefined;
  switch (f.type) {
    case 'bool':
      return values[flag] === true;
    case 'int':
      if (f.nullable && str(values, flag) === 'null') return null;
      return int(values, flag, undefined, { min: f.min, max: f.max });
    case 'number':
      return num(values, flag, undefined, { min: f.min, max: f.max });
    case 'modules':
      return list(values, flag);
    case 'enum': {
      const v = str(values, flag)!;
      if (!f.options!.includes(v))
        throw new UsageError(`--${flag} must be one of ${f.options!.join(', ')}, got ${JSON.stringify(v)}`);
      return v;
    }
    case 'text':
      return str(values, flag);
  }
}

/** Method flags for --help, grouped by method, from the catalog. */
export function methodFlagsHelp(): string {
  return METHOD_INFO.filter((m) => m.fields.length > 0)
    .map((m) => {
      const lines = m.fields.map((f) => {
        const ARG: Record<FieldSpec['type'], string> = {
          bool: ' / --no-…',
          int: ' N',
          number: ' X',
          text: ' TEXT',
          modules: ' LIST',
          enum: '',
        };
        const arg = f.type === 'enum' ? ` ${f.options!.join('|')}` : ARG[f.type];
        return (
          `  --${flagOf(f.field)}${arg}`.padEnd(26) + ` ${f.doc}${f.nullable ? ` (null: ${f.nullable})` : ''}`
        );
      });
      return `${m.label} (--method ${m.cliName}):\n${lines.join('\n')}`;
    })
    .join('\n');
}

type Registry = typeof import('../lib/peft/registry');

/** The method named by --method (required); an unknown name is a UsageError listing the known ones. */
export function pickMethod(values: Values, { methodByCliName }: Registry): PeftMethod {
  const names = METHOD_INFO.map((m) => m.cliName);
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
  const flags: Record<string, unknown> = {};
  const own = new Set(methodInfo(method.cliName).fields.map((f) => f.field));
  for (const f of methodFields()) {
    const v = read(values, f);
    if (v === undefined) continue;
    if (!own.has(f.field) || !(f.field in base)) {
      throw new UsageError(`--${flagOf(f.field)} does not apply to --method ${method.cliName}`);
    }
    flags[f.field] = v;
  }
  return { ...base, ...flags };
}

/** Runs the method's own checks; a fault in a field set by a flag is reported under that flag. */
export function validateWithFlags(method: PeftMethod, config: PeftConfigBase, model: DecoderModel): void {
  try {
    method.validate(config, model);
  } catch (e) {
    if (!(e instanceof PeftConfigError)) throw e;
    const field = /^\w+/.exec(e.message)?.[0];
    const hit = methodFields().find((f) => f.field === field);
    throw hit ? new UsageError(`--${flagOf(hit.field)}: ${e.message}`) : e;
  }
}
