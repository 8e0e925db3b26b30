/**
 * `npx tsx scripts/bench/ab.ts --off NAME[,NAME...] [--rounds 12]`: an A/B of some of our wasm
 * kernels (src/lib/kernels/wasm) in ONE process, in CPU time (process.cpuUsage), so that other
 * processes on a shared machine move both sides alike: "on" runs every kernel of ours, "off" switches
 * off (setWasmKernels) each kernel whose name starts with one of NAMEs, and the two alternate round
 * by round over the bench's forward and LoRA step jobs (scripts/bench/ours.ts, peftlab-s, batch 8 x
 * 128). Prints each median and minimum, and the LoRA step / forward ratio of both.
 *   e.g. --off PeftLabCausalAttention,PeftLabGeluSimd,PeftLabCrossEntropyGradSimd,PeftLabMatMulTA,PeftLabNormSimd
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initNodeBackend } from '../../src/lib/backend/node';
import { setWasmKernels } from '../../src/lib/kernels/wasm/heap';
import { chooseModel, ourJobs } from './ours';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const { values: f } = parseArgs({ options: { off: { type: 'string' }, rounds: { type: 'string' } } });
const off = (f.off ?? '').split(',').filter(Boolean);
if (off.length === 0)
  throw new Error('--off: name at least one kernel (prefix) to switch off, e.g. PeftLabNormSimd');
const rounds = Number(f.rounds ?? 12);
await initNodeBackend('wasm');
const choice = chooseModel(join(root, 'public/models/peftlab-s'), false);
const tokens = Int32Array.from({ length: 8 * 128 * 4 }, (_, i) => (i * 7919) % 2048);
const jobs = ourJobs(choice, tokens, { batch: 8, seq: 128 }, 1000).slice(0, 2); // forward, LoRA step
const sides: [string, (kernel: string) => boolean][] = [
  ['on', () => true],
  ['off', (k) => !off.some((o) => k.startsWith(o))],
];
const samples = new Map<string, number[]>();
const warmup = 2;
for (let r = 0; r < rounds + warmup; r++) {
  for (const [side, on] of sides) {
    setWasmKernels(on);
    for (const job of jobs) {
      const c0 = process.cpuUsage();
      await job.run();
      const c = process.cpuUsage(c0);
      const key = `${side} | ${job.what}`;
      if (r >= warmup) samples.set(key, [...(samples.get(key) ?? []), (c.user + c.system) / 1000]);
    }
  }
}
setWasmKernels(true);
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;
for (const [key, v] of samples) {
  console.log(`${key.padEnd(34)} median ${median(v).toFixed(1)} cpu ms, min ${Math.min(...v).toFixed(1)}`);
}
for (const [side] of sides) {
  const m = (what: string): number => median(samples.get(`${side} | ${what}`)!);
  console.log(`${side}: LoRA step / forward ${(m(jobs[1]!.what) / m(jobs[0]!.what)).toFixed(2)}x`);
}
for (const job of jobs) job.dispose();
