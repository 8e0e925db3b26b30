/**
 * The parent's side of engine-worker.ts: starts one engine (ours or nanogpt) in a Node process of
 * its own and gives its measurements as Jobs whose runs are timed in that process (SelfTimed), so
 * runInterleaved rounds them with the other engines' as before.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonLineChild } from './child';
import type { Job, SelfTimed } from './measure';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'engine-worker.ts');

export interface EngineChild {
  jobs: Job[];
  /** What the engine said about itself at setup (nanogpt: version, shims, config, params). */
  facts: Record<string, unknown>;
  numTensors(): Promise<number>;
  /** Parameters each job trained, asked for after the runs (null for a forward pass). */
  trained(): Promise<(number | null)[]>;
  close(): Promise<void>;
}

export async function startEngine(
  engine: 'ours' | 'nanogpt',
  label: string,
  o: { modelDir: string; explicit: boolean; batch: number; seq: number; steps: number; tokens: Int32Array },
): Promise<EngineChild | { error: string }> {
  // tsx as a loader of a plain node: the worker is TypeScript like every script here.
  const tsx = createRequire(import.meta.url).resolve('tsx');
  const child = new JsonLineChild(process.execPath, ['--import', tsx, WORKER], process.env);
  const { tokens, ...rest } = o;
  const r = await child.request({
    cmd: 'setup',
    engine,
    ...rest,
    tokens: Buffer.from(tokens.buffer, tokens.byteOffset, tokens.byteLength).toString('base64'),
  });
  if (!r.ok) {
    await child.close();
    return { error: r.error };
  }
  const { jobs: list, ...facts } = r as unknown as {
    jobs: { what: string; tokensPerRun: number }[];
  } & Record<string, unknown>;
  let trained: (number | null)[] = list.map(() => null);
  const jobs = list.map((j, i): Job => ({
    engine: label,
    what: j.what,
    tokensPerRun: j.tokensPerRun,
    run: async (): Promise<SelfTimed> => {
      const out = await child.request({ cmd: 'run', job: i });
      if (!out.ok) throw new Error(out.error);
      return { selfTimed: { wallMs: Number(out.wallMs), cpuMs: Number(out.cpuMs) } };
    },
    trainedParams: () => trained[i] ?? null,
    dispose: () => {},
  }));
  return {
    jobs,
    facts,
    numTensors: async () => {
      const out = await child.request({ cmd: 'tensors' });
      return out.ok ? Number(out.numTensors) : NaN;
    },
    trained: async () => {
      const out = await child.request({ cmd: 'trained' });
      if (out.ok) trained = out.trained as (number | null)[];
      return trained;
    },
    close: () => child.close(),
  };
}
