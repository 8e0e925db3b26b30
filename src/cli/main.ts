/**
 * `peft-lab`: dispatch to a command, and the one place errors become output. Every failure is one
 * line `peft-lab: <message>` on stderr, exit 2 for usage errors and 1 otherwise; `--debug` adds the stack.
 */
import { readFileSync } from 'node:fs';
import { PeftLabError, UsageError } from '../lib/errors';
import { globalFlags, parseCommand } from './args';
import type { Command } from './command';
import { GLOBAL_HELP } from './command';
import { generate } from './commands/generate';
import { info } from './commands/info';
import { train } from './commands/train';
import { evalCommand } from './commands/eval';
import { merge } from './commands/merge';
import { combine } from './commands/combine';
import { compare } from './commands/compare';
import { exportCommand } from './commands/export';
import { swarm } from './commands/swarm';

const COMMANDS: readonly Command[] = [
  info,
  generate,
  train,
  exportCommand,
  evalCommand,
  compare,
  merge,
  combine,
  swarm,
];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `peft-lab ${version()}: fine-tune GPT-2-style models with PEFT adapters on TensorFlow.js

Usage: peft-lab <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

${GLOBAL_HELP}
  --version            print the version

Run "peft-lab <command> --help" for a command's options.`;
}

/** Runs the command line; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // Global flags may also come before the command name; they are handed on to its parser.
  const before: string[] = [];
  let i = 0;
  for (; i < argv.length && argv[i]!.startsWith('-'); i++) {
    const a = argv[i]!;
    if (a === '--version' || a === '-v') {
      process.stdout.write(`${version()}\n`);
      return 0;
    }
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${mainHelp()}\n`);
      return 0;
    }
    if (a === '--debug' || a.startsWith('--backend=')) before.push(a);
    else if (a === '--backend') before.push(a, argv[++i] ?? '');
    else throw new UsageError(`unknown option ${a}; see peft-lab --help`);
  }
  const name = argv[i];
  if (name === undefined) {
    process.stderr.write(`${mainHelp()}\n`);
    return 2;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    throw new UsageError(
      `unknown command ${JSON.stringify(name)}; commands: ${COMMANDS.map((c) => c.name).join(', ')}`,
    );
  }
  let rest = argv.slice(i + 1);
  if (command.subcommand !== undefined) {
    if (rest[0] === command.subcommand) rest = rest.slice(1);
    else if (!rest.includes('--help') && !rest.includes('-h')) {
      throw new UsageError(
        `peft-lab ${name} needs a subcommand: ${command.subcommand}; see peft-lab ${name} --help`,
      );
    }
  }
  const values = parseCommand(name, [...before, ...rest], command.options);
  if (values.help) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  await command.run(values, globalFlags(values));
  return 0;
}

/** One line, whatever the error: newlines in messages from deep inside a library are folded. */
export function errorLine(e: unknown): string {
  if (e instanceof PeftLabError) return e.message.replace(/\s*\n\s*/g, ' ');
  const err = e instanceof Error ? e : new Error(String(e));
  const msg = err.message.replace(/\s*\n\s*/g, ' ');
  return `${err.name}: ${msg} (an unexpected error; rerun with --debug for the stack trace)`;
}

const argv = process.argv.slice(2);
const debug = argv.includes('--debug');
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  // `peft-lab generate ... | head` closes the pipe early: that is not a failure.
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

let code: number;
try {
  code = await main(argv);
} catch (e) {
  process.stderr.write(`peft-lab: ${errorLine(e)}\n`);
  if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  code = e instanceof UsageError ? 2 : 1;
}
process.exitCode = code;
