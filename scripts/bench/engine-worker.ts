/**
 * One engine of `npm run bench` (ours or nanogpt) in a Node process of its own, driven over
 * stdin/stdout JSON lines by engine-child.ts, as HF PEFT is in peft_worker.py. Each engine runs as
 * it would for its users: alone in its process with tfjs wasm. In one process, nanogpt's import
 * adds 19 wasm kernels and re-registers all of tfjs-core's gradients from its bundled copy, and its
 * runs grow the wasm heap and leave JS garbage; none of that may be charged to ours or the reverse.
 *
 *   {cmd: 'setup', engine, modelDir, explicit, batch, seq, steps, tokens (base64 int32)}
 *     -> {ok, jobs: [{what, tokensPerRun}], ...engine facts}
 *   {cmd: 'run', job} -> {ok, wallMs, cpuMs}     the run timed here, in this process's CPU time
 *   {cmd: 'tensors'} -> {ok, numTensors}
 *   {cmd: 'trained'} -> {ok, trained: (number | null)[]}
 *   {cmd: 'quit'}
 */
import * as tf from '@tensorflow/tfjs';
import { createInterface } from 'node:readline';
import { initNodeBackend } from '../../src/lib/backend/node';
import { randomLmBatch } from '../../src/lib/data/lm-data';
import { Rng } from '../../src/lib/util/rng';
import { errorMessage } from './measure';
import type { Job } from './measure';
import { nanoConfig, nanoJobs, setupNanogpt } from './nanogpt';
import { chooseModel, ourJobs } from './ours';

interface Setup {
  engine: 'ours' | 'nanogpt';
  modelDir: string;
  explicit: boolean;
  batch: number;
  seq: number;
  steps: number;
  tokens: string;
}

let jobs: Job[] = [];

async function setup(s: Setup): Promise<Record<string, unknown>> {
  await initNodeBackend('wasm');
  const b = Buffer.from(s.tokens, 'base64');
  const tokens = new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const choice = chooseModel(s.modelDir, s.explicit);
  const shape = { batch: s.batch, seq: s.seq };
  if (s.engine === 'ours') {
    jobs = ourJobs(choice, tokens, shape, s.steps);
    return {};
  }
  const probe = choice.make();
  const config = nanoConfig(probe.config);
  probe.dispose();
  const nano = await setupNanogpt();
  const batchRng = new Rng(99);
  const made = nanoJobs(nano, config, tokens, shape, () => randomLmBatch(tokens, s.batch, s.seq, batchRng));
  jobs = made.jobs;
  return { version: nano.version, shims: nano.shims, config, params: made.params };
}

async function handle(msg: { cmd: string; job?: number } & Partial<Setup>): Promise<Record<string, unknown>> {
  switch (msg.cmd) {
    case 'setup': {
      const facts = await setup(msg as Setup);
      return { ...facts, jobs: jobs.map((j) => ({ what: j.what, tokensPerRun: j.tokensPerRun })) };
    }
    case 'run': {
      const job = jobs[msg.job ?? -1];
      if (!job) throw new Error(`no job ${msg.job}`);
      job.prepare?.();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await job.run();
      const wallMs = performance.now() - t0;
      const c = process.cpuUsage(c0);
      return { wallMs, cpuMs: (c.user + c.system) / 1000 };
    }
    case 'tensors':
      return { numTensors: tf.memory().numTensors };
    case 'trained':
      return { trained: jobs.map((j) => j.trainedParams()) };
    default:
      throw new Error(`unknown command ${msg.cmd}`);
  }
}

const reply = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');
// One request at a time, in order: the parent waits for each reply before the next request.
let queue = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  queue = queue.then(async () => {
    const msg = JSON.parse(line) as { cmd: string };
    if (msg.cmd === 'quit') {
      for (const j of jobs) j.dispose();
      reply({ ok: true });
      process.exit(0);
    }
    try {
      reply({ ok: true, ...(await handle(msg)) });
    } catch (e) {
      reply({ ok: false, error: errorMessage(e) });
    }
  });
});
