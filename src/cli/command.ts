/** What every `peft-lab <command>` module exports. Commands import tfjs lazily inside `run`, so `--help` and usage errors stay fast. */
import type { GlobalFlags, OptionSpec, Values } from './args';

export interface Command {
  name: string;
  /** A word that must follow the name (`peft-lab swarm serve`). */
  subcommand?: string;
  summary: string;
  /** Full `--help` text. */
  usage: string;
  options: OptionSpec;
  run(values: Values, flags: GlobalFlags): Promise<void>;
}

export const GLOBAL_HELP = `Global options:
  --backend wasm|cpu   tfjs backend (default wasm)
  --debug              show stack traces on errors
  -h, --help           show help`;

/** Starts the requested backend; returns its name as tfjs reports it. */
export async function startBackend(flags: GlobalFlags): Promise<string> {
  const { initNodeBackend } = await import('../lib/backend/node');
  return initNodeBackend(flags.backend);
}

export function print(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n');
}
