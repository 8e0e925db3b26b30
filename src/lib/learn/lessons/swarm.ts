/**
 * Lesson 9, one model over many machines (Petals, Borzunov et al. 2023): the same LoRA steps on one
 * model, offloaded to IndexedDB at stage 3 (lesson 8's answer to a model that does not fit) and
 * spread over a swarm of peers behind emulated links (src/lib/swarm, engine/swarm-trial.ts), at
 * several latencies, then with a peer killed mid-run. Claims tested: while the network is fast, the
 * swarm beats offloading; each millisecond of latency costs every step a known number of round trips,
 * so past some latency offloading wins; a peer's death costs a reroute and a replay, not the run.
 */
import { offloadRun, swarmRun } from '../build';
import type { OffloadTrial, SwarmTrialRun } from '../../protocol/compare-protocol';
import type { OffloadRequest } from '../../offload/session';
import type { Lesson } from '../types';
import { num, swarmOf, trialOf } from '../verdict';

/**
 * The largest bundled model at batch 1: Petals' regime, where a step's activations are small beside
 * the weights an offloaded step must page in.
 */
const MODEL = 'peftlab-l';
const RUN = { task: 'spam', method: 'lora', batchSize: 1, seqLen: 32, seed: 0 };
/** One-way latencies measured, ms: a rack, a LAN, a city, a continent. */
export const SWARM_LATENCIES = [0, 10, 30, 100];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
/** A step's time without the first step (it warms the kernels and, offloaded, records the trace). */
const stepMs = (ms: number[]): number => median(ms.slice(1));
const sec = (ms: number): string => `${Math.round(ms)} ms`;
const maxDiff = (a: number[], b: number[]): number =>
  a.length === b.length ? Math.max(...a.map((x, i) => Math.abs(x - b[i]!))) : Infinity;

/**
 * The latency at which the swarm's step time reaches `target`, by linear interpolation between the
 * measured latencies; null when it stays under it at every one measured (or is over it at the first).
 */
export function crossover(runs: SwarmTrialRun[], target: number): number | null {
  const pts = runs.map((r) => [r.latencyMs, stepMs(r.ms)] as const).sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < pts.length; i++) {
    const [l0, t0] = pts[i - 1]!;
    const [l1, t1] = pts[i]!;
    if (t0 < target && t1 >= target) return l0 + ((target - t0) / Math.max(t1 - t0, 1e-9)) * (l1 - l0);
  }
  return null;
}

/** The swarm's step time at `latencyMs`, interpolated between (and clamped to) the measured latencies. */
export function stepMsAt(runs: SwarmTrialRun[], latencyMs: number): number {
  const pts = runs.map((r) => [r.latencyMs, stepMs(r.ms)] as const).sort((a, b) => a[0] - b[0]);
  if (pts.length === 0) return NaN;
  if (latencyMs <= pts[0]![0]) return pts[0]![1];
  for (let i = 1; i < pts.length; i++) {
    const [l0, t0] = pts[i - 1]!;
    const [l1, t1] = pts[i]!;
    if (latencyMs <= l1) return t0 + ((latencyMs - l0) / Math.max(l1 - l0, 1e-9)) * (t1 - t0);
  }
  return pts.at(-1)![1];
}

export const swarmLesson: Lesson = {
  id: 'swarm',
  number: 9,
  title: 'One model, many machines',
  summary: 'Swarm or offload? The latency at which the swarm stops winning, and what a dead peer costs.',
  steps: [
    {
      title: "Petals: each machine holds a span of the model's blocks",
      body: [
        "When a model does not fit, lesson 8 moved its weights to slower storage and fetched them layer by layer. **Petals** does the opposite: the weights stay put, spread over machines, and the activations travel. Each peer serves a span of the transformer's blocks; the client keeps the embeddings, the head and its own small trainable parameters (a soft prompt, or LoRA's matrices sent with each request), and sends each batch's hidden states through a chain of peers that covers every block, and their gradients back.",
        'So a training step costs round trips: one forward and one backward request per peer of the chain, each paying the link latency twice. When a peer dies, the client chooses a new chain around it and replays what the dead peer had seen: the step is retried, nothing is lost. The **Swarm** screen shows this with block workers, other tabs and `peft-lab swarm serve` processes; this lesson measures it.',
      ],
    },
    {
      title: 'Experiment: swarm or offload, and what a failure costs',
      body: [
        'LoRA on **peftlab-l** (8.1M parameters, 6 blocks of 4.7 MiB; the spam task, one example of 32 tokens per step, as an interactive user of a large model would send). First the steps in the lesson worker alone, for reference; then offloaded at stage 3 with the layers in IndexedDB and only a few MiB of them resident; then through a swarm whose chain has the given number of spans, each held by two peers, at one-way link latencies of ' +
          SWARM_LATENCIES.join(', ') +
          " ms; and once more with the chain's first peer killed in the middle of the run.",
        "The peers here run in the lesson's worker, behind emulated links that carry the same binary frames as a worker's port or a socket: the swarm's extra time is the network's and the protocol's. On real machines each peer would bring its own processor too, which only helps the swarm.",
      ],
      setup: [
        { id: 'peers', label: 'Spans in the chain (machines)', kind: 'number', min: 1, max: 4, default: 2 },
        {
          id: 'layers',
          label: 'Layer weights resident when offloaded (MiB)',
          kind: 'number',
          min: 1,
          max: 32,
          default: 8,
        },
        {
          id: 'failureLatency',
          label: 'Link latency when the peer dies (ms)',
          kind: 'number',
          min: 0,
          max: 200,
          default: 20,
        },
        { id: 'steps', label: 'Steps per configuration', kind: 'number', min: 2, max: 12, default: 3 },
      ],
      run: (v) => {
        const steps = Number(v.steps);
        const offload: OffloadRequest = {
          stage: 3,
          budgetMB: Number(v.layers),
          prefetch: true,
          policy: 'trace',
          int8: false,
          gradientCheckpointing: true,
          device: 'indexeddb',
        };
        return [
          offloadRun('offload', 'Offloaded to IndexedDB, stage 3', MODEL, {
            ...RUN,
            steps,
            offload,
            memoryBudgetMB: null,
          }),
          swarmRun(
            'swarm',
            `Through a swarm of ${v.peers} span(s), each latency, then a peer killed`,
            MODEL,
            {
              ...RUN,
              steps,
              peers: Number(v.peers),
              latenciesMs: SWARM_LATENCIES,
              failureLatencyMs: Number(v.failureLatency),
            },
          ),
        ];
      },
      check: (results) => {
        const off: OffloadTrial = trialOf(results, 'offload');
        const sw = swarmOf(results, 'swarm');
        const local = stepMs(sw.local.ms);
        const offMs = stepMs(off.ms);
        const first = sw.runs[0]!;
        const fastest = stepMs(first.ms);
        const steps = first.ms.length;
        const at = crossover(sw.runs, offMs);
        const beatsAtFirst = fastest < offMs;
        const wins = sw.runs.filter((r) => stepMs(r.ms) < offMs).map((r) => r.latencyMs);
        const losses = sw.runs.filter((r) => stepMs(r.ms) >= offMs).map((r) => r.latencyMs);
        const f = sw.failure;
        const k = f.killedAtStep;
        const killedMs = k !== null ? (f.ms[k - 1] ?? NaN) : NaN;
        // What that step would have taken without the failure: the runs without one, at its latency.
        const normalMs = stepMsAt(sw.runs, f.latencyMs);
        const sameLosses = maxDiff(f.losses, first.losses);
        const survived = f.failures >= 1 && f.losses.length === steps && sameLosses < 1e-5;
        const spans = sw.spans.map(([a, b]) => `${a}:${b}`).join(', ');
        const last = sw.runs.at(-1)!;
        // Measured: what each millisecond of one-way latency added to a step.
        const perMs = (stepMs(last.ms) - fastest) / Math.max(last.latencyMs - first.latencyMs, 1e-9);
        const vs = (ms: number): string =>
          ms < offMs ? `${num(offMs / ms, 2)}x faster` : `${num(ms / offMs, 2)}x slower`;
        const sentences = [
          `In the worker alone a step took ${sec(local)}; offloaded to IndexedDB at stage 3 it took ${sec(offMs)}; through the swarm (spans ${spans}) it took ${sec(fastest)} at ${first.latencyMs} ms of latency and ${sec(stepMs(last.ms))} at ${last.latencyMs} ms.`,
          `A step made about ${num(first.requests / steps, 0)} round trips over the links (a forward and a backward per span, and the greetings of new connections) and moved ${(first.bytes / steps / 1024).toFixed(0)} KiB, so each millisecond of one-way latency added about ${num(perMs, 1)} ms to a step.`,
          wins.length === 0
            ? `Offloading was faster at every latency measured here: the swarm's protocol cost more than paging this model.`
            : wins.length === sw.runs.length
              ? `The swarm beat offloading at every latency measured, up to ${last.latencyMs} ms.`
              : `The swarm beat offloading at ${wins.join(', ')} ms and lost at ${losses.join(', ')} ms${at !== null ? `; its step first reached the offloaded one at about ${Math.round(at)} ms of latency per link, beyond which paging from local storage wins` : ''}.`,
          f.killed
            ? `With ${f.latencyMs} ms links, peer ${f.killed} died as step ${k} began: the client rerouted its blocks to the other peer holding them (${f.failures} failure(s) survived); that step took ${sec(killedMs)} against about ${sec(normalMs)} without a failure at that latency (${killedMs > normalMs ? `${sec(killedMs - normalMs)} for the failure, its reroute and the replay` : 'no slower: the failure cost less than the noise of this machine'}). Its losses ${sameLosses < 1e-5 ? `equal those of the run without a failure (largest difference ${sameLosses.toExponential(1)})` : `differ from the run without a failure by ${num(sameLosses, 6)}`}.`
            : 'No peer was killed: the run was too short to reach the middle.',
        ];
        return {
          outcome: beatsAtFirst && survived ? 'holds' : beatsAtFirst || survived ? 'mixed' : 'does-not-hold',
          claim:
            'Spread over peers, a model trains faster than offloaded to slow storage while the network is fast, and a dead peer costs a reroute and a replay, not the run.',
          text: sentences.join(' '),
          table: {
            columns: ['configuration', 'ms/step', 'vs offloaded', 'requests/step', 'KiB/step', 'last loss'],
            rows: [
              ['Worker alone', sec(local), vs(local), '-', '-', num(sw.local.losses.at(-1) ?? NaN, 4)],
              ['Offloaded, stage 3', sec(offMs), '-', '-', '-', num(off.losses.at(-1) ?? NaN, 4)],
              ...[...sw.runs, f].map((r) => [
                r === f ? `Swarm, ${r.latencyMs} ms, peer killed` : `Swarm, ${r.latencyMs} ms`,
                sec(stepMs(r.ms)),
                vs(stepMs(r.ms)),
                num(r.requests / r.ms.length, 0),
                (r.bytes / r.ms.length / 1024).toFixed(0),
                num(r.losses.at(-1) ?? NaN, 4),
              ]),
            ],
          },
        };
      },
      cost: 'about 10 s in Chromium on wasm, 2 cores',
    },
  ],
};
