/**
 * Which Python the tests that drive torch + transformers + peft use (ours-in-peft, the exported
 * project), found as bench does: $PEFT_LAB_PYTHON, then `.cache/peft-venv` (`npm run setup:python`).
 * With none, those tests are skipped with the reason, unless PEFT_LAB_REQUIRE_PYTHON=1 (CI sets it
 * in .ci/run after making the venv), when they fail instead, so CI can never skip them silently.
 */
import { findPython } from './bench/peft';

export interface TestPython {
  /** The interpreter, or null when there is none. */
  python: string | null;
  /** Why there is none (with how to get one). */
  reason: string;
  /** PEFT_LAB_REQUIRE_PYTHON=1: a missing Python is a failure, not a skip. */
  required: boolean;
}

export function pythonForTests(): TestPython {
  const found = findPython();
  const required = process.env.PEFT_LAB_REQUIRE_PYTHON === '1';
  if ('python' in found) return { python: found.python, reason: '', required };
  return { python: null, reason: found.error, required };
}

/** Whether to skip, after saying why on stderr (a skip must never look like a pass). */
export function skipWithoutPython(p: TestPython, what: string): boolean {
  if (p.python !== null || p.required) return false;
  process.stderr.write(`skipping ${what}: ${p.reason}\n`);
  return true;
}

/** The interpreter, or the failure PEFT_LAB_REQUIRE_PYTHON=1 asks for. */
export function requirePython(p: TestPython): string {
  if (p.python === null) throw new Error(`PEFT_LAB_REQUIRE_PYTHON=1 but ${p.reason}`);
  return p.python;
}
