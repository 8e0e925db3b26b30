/**
 * `npx tsx scripts/bench/nanogpt-effect.ts`: what importing and running @genai-fi/nanogpt in OUR
 * process changes for our engine (why the bench runs each engine in its own process). Prints what
 * its import changed in tfjs's registries (wasm kernels, gradients, env flags), then our forward and
 * LoRA step (peftlab-s, batch 8 x 128) in CPU time, with the V8 GC time seen during them and the
 * heap sizes: alone, after its import, after its model is built, after it ran, interleaved with its
 * jobs, and alone again. FORCE_GC=1 with node --expose-gc collects before each of our runs.
 */
import * as tf from '@tensorflow/tfjs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initNodeBackend } from '../../src/lib/backend/node';
import { randomLmBatch } from '../../src/lib/data/lm-data';
import { Rng } from '../../src/lib/util/rng';
import { nanoConfig, nanoJobs, setupNanogpt } from './nanogpt';
import { chooseModel, ourJobs } from './ours';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
await initNodeBackend('wasm');
const choice = chooseModel(join(root, 'public/models/peftlab-s'), false);
const probe = choice.make();
const c = probe.config;
probe.dispose();
const tokens = Int32Array.from({ length: 8 * 128 * 4 }, (_, i) => (i * 7919) % 2048);
const jobs = ourJobs(choice, tokens, { batch: 8, seq: 128 }, 1000).slice(0, 2);
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;
const G = (globalThis as unknown as { _tfGlobals: Map<string, Map<string, unknown>> })._tfGlobals;
function snap() {
  const kernels = new Map(tf.getKernelsForBackend('wasm').map((k) => [k.kernelName, k.kernelFunc]));
  const grads = new Map([...(G.get('gradRegistry') ?? new Map()).entries()]);
  const flags = { ...(tf.env() as unknown as { flags: Record<string, unknown> }).flags };
  return { kernels, grads, flags };
}
function diff(a: ReturnType<typeof snap>, b: ReturnType<typeof snap>, label: string) {
  const kAdded = [...b.kernels.keys()].filter((k) => !a.kernels.has(k));
  const kChanged = [...b.kernels.keys()].filter(
    (k) => a.kernels.has(k) && a.kernels.get(k) !== b.kernels.get(k),
  );
  const gAdded = [...b.grads.keys()].filter((k) => !a.grads.has(k));
  const gChanged = [...b.grads.keys()].filter((k) => a.grads.has(k) && a.grads.get(k) !== b.grads.get(k));
  const fChanged = Object.keys(b.flags).filter((k) => a.flags[k] !== b.flags[k]);
  console.log(
    `[${label}] wasm kernels added ${kAdded.length} (${kAdded.join(',')}), replaced ${kChanged.length} (${kChanged.join(',')})`,
  );
  console.log(
    `[${label}] gradients added ${gAdded.length} (${gAdded.slice(0, 20).join(',')}), replaced ${gChanged.length} of ${a.grads.size} (${gChanged.slice(0, 30).join(',')}...)`,
  );
  console.log(
    `[${label}] flags changed: ${fChanged.map((k) => `${k}: ${String(a.flags[k])} -> ${String(b.flags[k])}`).join('; ')}`,
  );
}
import { PerformanceObserver } from 'node:perf_hooks';
let gcMs = 0;
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });
const gcNow = (globalThis as { gc?: () => void }).gc;
async function phase(label: string, rounds: number, between?: () => Promise<void> | void) {
  const s: number[][] = jobs.map(() => []);
  const g: number[][] = jobs.map(() => []);
  for (let r = 0; r < rounds + 2; r++) {
    for (let i = 0; i < jobs.length; i++) {
      if (process.env.FORCE_GC && gcNow) gcNow();
      await new Promise((r) => setTimeout(r, 0));
      const g0 = gcMs;
      const c0 = process.cpuUsage();
      await jobs[i]!.run();
      const d = process.cpuUsage(c0);
      await new Promise((r) => setTimeout(r, 0));
      if (r >= 2) {
        s[i]!.push((d.user + d.system) / 1000);
        g[i]!.push(gcMs - g0);
      }
      if (between) await between();
    }
  }
  const heap = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
  const mu = process.memoryUsage();
  console.log(
    `${label.padEnd(44)} forward ${median(s[0]!).toFixed(1)}  LoRA ${median(s[1]!).toFixed(1)} cpu ms, gc during forward ${median(g[0]!).toFixed(1)} LoRA ${median(g[1]!).toFixed(1)} ms (wasm heap ${(heap / 2 ** 20).toFixed(0)} MiB, js heap ${(mu.heapUsed / 2 ** 20).toFixed(0)} MiB)`,
  );
}
const which = process.argv[2] ?? 'all';
await phase('A alone', 8);
await phase('A2 alone', 8);
const s0 = snap();
const setup = await setupNanogpt();
const s1 = snap();
diff(s0, s1, 'import');
await phase('B after import + shims', 8);
if (which === 'import') process.exit(0);
const batchRng = new Rng(99);
const nano = nanoJobs(setup, nanoConfig(c), tokens, { batch: 8, seq: 128 }, () =>
  randomLmBatch(tokens, 8, 128, batchRng),
);
const s2 = snap();
diff(s1, s2, 'model');
await phase('C after nanogpt model built', 8);
for (const j of nano.jobs) {
  j.prepare?.();
  await j.run();
}
const s3 = snap();
diff(s2, s3, 'ran');
await phase('D after nanogpt ran each job once', 8);
let k = 0;
await phase('E interleaved with nanogpt jobs', 8, async () => {
  const j = nano.jobs[k++ % 3]!;
  j.prepare?.();
  await j.run();
});
await phase('F again alone', 8);
