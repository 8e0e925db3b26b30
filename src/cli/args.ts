/**
 * Command-line parsing on node:util's parseArgs (strict: an unknown flag is a UsageError naming it),
 * plus checked number readers so `--steps abc` says which flag is wrong and what it accepts.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../lib/errors';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;
export type Values = Record<string, string | boolean | undefined>;

/** Flags every command accepts. */
export const GLOBAL_OPTIONS = {
  backend: { type: 'string' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export interface GlobalFlags {
  backend: 'wasm' | 'cpu';
  debug: boolean;
}

/** Parses a command's arguments (its own options plus the global ones); no positionals allowed. */
export function parseCommand(command: string, argv: string[], options: OptionSpec): Values {
  try {
    const { values } = parseArgs({
      args: argv,
      options: { ...GLOBAL_OPTIONS, ...options },
      strict: true,
      allowPositionals: false,
      // `--no-<switch>` sets a switch false: the way to turn off a method setting that PEFT has on
      // by default (OFT's use_cayley_neumann).
      allowNegative: true,
    });
    return values as Values;
  } catch (e) {
    throw usageFromParseError(e, `peft-lab ${command}`);
  }
}

/** Turns parseArgs' long multi-sentence messages into one line naming the flag. */
export function usageFromParseError(e: unknown, where: string): UsageError {
  const err = e as { code?: string; message?: string };
  const quoted = /'([^']+)'/.exec(err.message ?? '')?.[1] ?? '';
  const help = `see ${where} --help`;
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new UsageError(`unknown option ${quoted} for ${where}; ${help}`);
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new UsageError(`unexpected argument ${JSON.stringify(quoted)} for ${where}; ${help}`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const flag = /--[\w-]+/.exec(err.message ?? '')?.[0] ?? 'an option';
      const msg = err.message ?? '';
      if (/argument missing/.test(msg)) return new UsageError(`${flag} needs a value; ${help}`);
      if (/ambiguous/.test(msg)) {
        return new UsageError(
          `${flag} is followed by a flag; for a value that starts with "-", write ${flag}=VALUE`,
        );
      }
      return new UsageError(`${flag} is a switch and takes no value; ${help}`);
    }
    default:
      return new UsageError(`${(err.message ?? String(e)).split('\n')[0]}; ${help}`);
  }
}

export function globalFlags(values: Values): GlobalFlags {
  const backend = values.backend ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'cpu') {
    throw new UsageError(`--backend must be wasm or cpu, got ${JSON.stringify(backend)}`);
  }
  return { backend, debug: values.debug === true };
}

export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function requiredStr(values: Values, name: string, what: string): string {
  const v = str(values, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required: ${what}`);
  return v;
}

interface NumberRule {
  min?: number;
  max?: number;
  /** The lower bound itself is not allowed (e.g. a learning rate > 0). */
  exclusiveMin?: boolean;
}

function describe(kind: string, r: NumberRule): string {
  const parts: string[] = [];
  if (r.min !== undefined) parts.push(`${r.exclusiveMin ? '>' : '>='} ${r.min}`);
  if (r.max !== undefined) parts.push(`<= ${r.max}`);
  return parts.length ? `${kind} ${parts.join(' and ')}` : kind;
}

function checkRange(name: string, raw: string, n: number, kind: string, r: NumberRule): number {
  const low = r.min !== undefined && (r.exclusiveMin ? n <= r.min : n < r.min);
  const high = r.max !== undefined && n > r.max;
  if (low || high) throw new UsageError(`--${name} must be ${describe(kind, r)}, got ${JSON.stringify(raw)}`);
  return n;
}

/** An integer flag; `fallback` when absent. */
export function int(values: Values, name: string, fallback: number, rule?: NumberRule): number;
export function int(values: Values, name: string, fallback: undefined, rule?: NumberRule): number | undefined;
export function int(
  values: Values,
  name: string,
  fallback: number | undefined,
  rule: NumberRule = {},
): number | undefined {
  const raw = str(values, name);
  if (raw === undefined) return fallback;
  const n = /^[+-]?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new UsageError(`--${name} must be ${describe('an integer', rule)}, got ${JSON.stringify(raw)}`);
  }
  return checkRange(name, raw, n, 'an integer', rule);
}

/** A finite number flag; `fallback` when absent. */
export function num(values: Values, name: string, fallback: number, rule?: NumberRule): number;
export function num(values: Values, name: string, fallback: undefined, rule?: NumberRule): number | undefined;
export function num(
  values: Values,
  name: string,
  fallback: number | undefined,
  rule: NumberRule = {},
): number | undefined {
  const raw = str(values, name);
  if (raw === undefined) return fallback;
  const n = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(n)) {
    throw new UsageError(`--${name} must be ${describe('a number', rule)}, got ${JSON.stringify(raw)}`);
  }
  return checkRange(name, raw, n, 'a number', rule);
}

/** `a,b, c` -> ['a', 'b', 'c']; empty items are a UsageError. */
export function list(values: Values, name: string): string[] | undefined {
  const raw = str(values, name);
  if (raw === undefined) return undefined;
  const items = raw.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) {
    throw new UsageError(
      `--${name} must be a comma-separated list without empty items, got ${JSON.stringify(raw)}`,
    );
  }
  return items;
}
