/**
 * HF PEFT (torch + transformers + peft, one thread) in a long-lived Python child process, driven
 * over stdin/stdout JSON lines (scripts/bench/peft_worker.py), so its runs interleave with ours and
 * nanogpt's in the same rounds and see the same load. Each run is timed inside the child.
 *
 * Python is found as $PEFT_LAB_PYTHON, else `.cache/peft-venv/bin/python` in the repo (made by
 * `npm run setup:python`). When neither exists or it lacks torch, transformers or peft, the rows
 * are skipped with a message saying how to get one.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonLineChild } from './child';
import type { Job, SelfTimed } from './measure';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const WORKER = join(root, 'scripts/bench/peft_worker.py');
export const SETUP_HINT =
  'run `npm run setup:python` (a venv in .cache/peft-venv from the local wheel mirror: torch 2.13, transformers, peft, accelerate) or set PEFT_LAB_PYTHON to a Python that has torch, transformers and peft';

export interface PeftInfo {
  python: string;
  torch: string;
  transformers: string;
  peft: string;
  threads: number;
  loraParams: number;
  fullParams: number;
}

/** The Python to use, or why there is none. */
export function findPython(): { python: string } | { error: string } {
  const fromEnv = process.env.PEFT_LAB_PYTHON;
  if (fromEnv) {
    return existsSync(fromEnv)
      ? { python: fromEnv }
      : { error: `PEFT_LAB_PYTHON=${fromEnv} does not exist; ${SETUP_HINT}` };
  }
  const venv = join(root, '.cache/peft-venv/bin/python');
  if (existsSync(venv)) return { python: venv };
  return { error: `no Python with torch, transformers and peft found; ${SETUP_HINT}` };
}

/**
 * Starts the child and loads the model three times (forward, LoRA, full), or says why not.
 * A Python without torch/transformers/peft fails its imports; that becomes the skip message.
 */
export async function setupPeft(
  modelDir: string,
  s: { batch: number; seq: number },
): Promise<{ jobs: Job[]; info: PeftInfo } | { error: string }> {
  const found = findPython();
  if ('error' in found) return found;
  const child = new JsonLineChild(found.python, [WORKER], {
    ...process.env,
    OMP_NUM_THREADS: '1',
    MKL_NUM_THREADS: '1',
    OPENBLAS_NUM_THREADS: '1',
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_VERBOSITY: 'error',
    TQDM_DISABLE: '1',
    PYTHONUNBUFFERED: '1',
  });
  const r = await child.request({ cmd: 'setup', model: modelDir, batch: s.batch, seq: s.seq, seed: 1234 });
  if (!r.ok) {
    await child.close();
    const missing = /No module named|ModuleNotFoundError/.test(r.error);
    return {
      error: missing
        ? `${found.python} lacks a package (${r.error}); ${SETUP_HINT}`
        : `${found.python}: ${r.error}`,
    };
  }
  const info = { python: found.python, ...(r as unknown as Omit<PeftInfo, 'python'>) };
  const job = (what: string, name: string, params: number | null, last = false): Job => ({
    engine: 'HF PEFT',
    what,
    tokensPerRun: s.batch * s.seq,
    run: async (): Promise<SelfTimed> => {
      const out = await child.request({ cmd: 'run', job: name });
      if (!out.ok) throw new Error(out.error);
      return { selfTimed: { wallMs: Number(out.wallMs), cpuMs: Number(out.cpuMs) } };
    },
    trainedParams: () => params,
    dispose: () => {
      if (last) void child.close();
    },
  });
  return {
    info,
    jobs: [
      job('forward + LM logits', 'forward', null),
      job('LoRA step (r 8, c_attn)', 'lora', info.loraParams),
      job('full fine-tune step', 'full', info.fullParams, true),
    ],
  };
}
