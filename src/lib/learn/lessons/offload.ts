/**
 * Lesson 8, offload and memory (DeepSpeed ZeRO-Offload, Ren et al. 2021; gradient checkpointing,
 * Chen et al. 2016; 8-bit bases as PEFT's prepare_model_for_kbit_training): the same LoRA run on
 * peftlab-l under a memory budget, resident and offloaded (src/lib/offload). Claims tested: a budget
 * too small for a resident step trains at stage 3; prefetch hides paging; checkpointing trades
 * compute for activation memory; int8 frozen weights barely change the loss.
 */
import { offloadRun } from '../build';
import type { OffloadTrial } from '../../protocol/compare-protocol';
import type { OffloadRequest } from '../../offload/session';
import type { Lesson, LessonRun } from '../types';
import { mib, num, pct, trialOf } from '../verdict';

const MODEL = 'peftlab-l';
const RUN = { task: 'spam', method: 'lora', batchSize: 4, seqLen: 48, seed: 0 };
const RESIDENT: OffloadRequest = {
  stage: 0,
  budgetMB: 0,
  prefetch: false,
  policy: 'trace',
  int8: false,
  gradientCheckpointing: false,
  device: 'indexeddb',
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
/** Step time without the first step (it records the trace and warms the kernels). */
const stepMs = (t: OffloadTrial): number => median(t.ms.slice(1));
const peak = (t: OffloadTrial): number => Math.max(...t.peakBytes);

export const offloadLesson: Lesson = {
  id: 'offload',
  number: 8,
  title: 'Offload and memory: training what does not fit',
  summary: 'A budget that fails at stage 0 and trains at stage 3; what prefetch and checkpointing buy; int8.',
  steps: [
    {
      title: 'Where the memory goes, and where it can go instead',
      body: [
        "When a step does not fit, DeepSpeed's **ZeRO** moves state out of the accelerator: stage 1 the optimizer state, stage 2 the gradients too, stage 3 the parameters, each layer's weights fetched just before its forward and backward and released after. PEFT Lab does the same in the browser, with IndexedDB as the slow tier, under a budget for the layers' weights.",
        "**Gradient checkpointing** keeps only each layer's input during the forward pass and recomputes the layer inside the backward pass, so activations shrink from all layers to one. Paging needs it: a layer recomputed in the backward pass must be fetched again anyway. **Prefetch** fetches the next layer along the trace recorded in the first step while the current one computes. **int8** stores the frozen weights as 8-bit integers with a scale per output channel, a quarter of the bytes to move.",
      ],
    },
    {
      title: 'Experiment: the same LoRA step, resident and offloaded',
      body: [
        "LoRA on **peftlab-l** (8.1M parameters, the largest bundled model; batch 4 x 48). Each configuration takes a few steps and tfjs measures every step's peak memory. A step that peaks over the **memory budget** is refused, as a GPU of that size would run out of memory. In the browser the pages go to IndexedDB (DeepSpeed's NVMe tier) and are cleared afterwards; one configuration keeps them in the page's own memory (its CPU tier) instead.",
      ],
      setup: [
        { id: 'budget', label: 'Memory budget (MiB)', kind: 'number', min: 8, max: 4096, default: 64 },
        {
          id: 'layers',
          label: 'Layer weights resident at stage 3 (MiB)',
          kind: 'number',
          min: 1,
          max: 64,
          default: 10,
        },
        { id: 'steps', label: 'Steps per configuration', kind: 'number', min: 2, max: 20, default: 3 },
      ],
      run: (v) => {
        const budget = Number(v.budget);
        const steps = Number(v.steps);
        const paged = (o: Partial<OffloadRequest>): OffloadRequest => ({
          ...RESIDENT,
          stage: 3,
          budgetMB: Number(v.layers),
          prefetch: true,
          gradientCheckpointing: true,
          ...o,
        });
        const trial = (id: string, label: string, offload: OffloadRequest, limit: number | null): LessonRun =>
          offloadRun(id, label, MODEL, { ...RUN, steps, offload, memoryBudgetMB: limit });
        return [
          trial('resident', 'Stage 0, no limit', RESIDENT, null),
          trial('over', `Stage 0 under ${budget} MiB`, RESIDENT, budget),
          trial('paged', `Stage 3 under ${budget} MiB, prefetch`, paged({}), budget),
          trial(
            'demand',
            `Stage 3 under ${budget} MiB, on demand + LRU`,
            paged({ prefetch: false, policy: 'lru' }),
            budget,
          ),
          trial(
            'ckpt',
            'Stage 0 with gradient checkpointing',
            { ...RESIDENT, gradientCheckpointing: true },
            null,
          ),
          trial('int8', `Stage 3 under ${budget} MiB, int8 pages`, paged({ int8: true }), budget),
          trial(
            'memory',
            `Stage 3 under ${budget} MiB, pages in memory`,
            paged({ device: 'memory' }),
            budget,
          ),
        ];
      },
      check: (results, v) => {
        const budget = Number(v.budget);
        const [resident, over, paged, demand, ckpt, int8, memory] = [
          'resident',
          'over',
          'paged',
          'demand',
          'ckpt',
          'int8',
          'memory',
        ].map((id) => trialOf(results, id)) as OffloadTrial[];
        const failed0 = over!.refused !== null;
        const trained3 = paged!.refused === null;
        const speed = (t: OffloadTrial): number => stepMs(resident!) / stepMs(t);
        const lossDiff = Math.abs((int8!.losses.at(-1) ?? NaN) - (paged!.losses.at(-1) ?? NaN));
        const hits = paged!.pager
          ? paged!.pager.prefetchHits / Math.max(1, paged!.pager.prefetchHits + paged!.pager.misses)
          : NaN;
        const sentences = [
          failed0
            ? `At stage 0 the step needed ${mib(peak(resident!))} at its peak: over the ${budget} MiB budget, so it was refused (${over!.refused}).`
            : `At stage 0 the step needed ${mib(peak(resident!))}, which fits the ${budget} MiB budget: lower the budget to see it refused.`,
          trained3
            ? `At stage 3 with ${v.layers} MiB of layers resident it trained within the budget, peaking at ${mib(peak(paged!))}, at ${pct(speed(paged!), 0)} of the resident speed; the losses match the resident run's (${num(paged!.losses.at(-1) ?? NaN, 4)} against ${num(resident!.losses.at(-1) ?? NaN, 4)}).`
            : `Stage 3 did not fit either: ${paged!.refused}.`,
          trained3 && demand!.refused === null
            ? `Prefetch along the trace: ${pct(hits, 0)} of layer fetches were ready in time and the step ran at ${pct(speed(paged!), 0)} of resident speed, against ${pct(speed(demand!), 0)} fetching on demand with LRU eviction.`
            : '',
          `Gradient checkpointing alone cut the peak from ${mib(peak(resident!))} to ${mib(peak(ckpt!))} (${pct(1 - peak(ckpt!) / peak(resident!), 0)} less) at ${pct(speed(ckpt!), 0)} of the speed.`,
          int8!.refused === null
            ? `With int8 pages the last loss was ${num(int8!.losses.at(-1) ?? NaN, 4)} against ${num(paged!.losses.at(-1) ?? NaN, 4)} in float32, moving ${mib(int8!.pager?.bytesIn ?? 0)} instead of ${mib(paged!.pager?.bytesIn ?? 0)}.`
            : '',
          memory!.refused === null && trained3
            ? `Kept in the page's memory instead of IndexedDB (DeepSpeed's cpu rather than nvme), the paged step ran at ${pct(speed(memory!), 0)} of resident speed.`
            : '',
        ].filter(Boolean);
        return {
          outcome: failed0 && trained3 ? 'holds' : trained3 ? 'mixed' : 'does-not-hold',
          claim:
            'Offloading lets a model train under a memory budget its resident step does not fit, at a cost in speed.',
          text: sentences.join(' ') + (lossDiff > 0.05 ? ' int8 changed the loss noticeably here.' : ''),
          table: {
            columns: ['configuration', 'peak memory', 'ms/step', 'vs resident', 'last loss', 'result'],
            rows: (
              [
                ['Stage 0', resident],
                [`Stage 0, ${budget} MiB budget`, over],
                ['Stage 3, prefetch', paged],
                ['Stage 3, on demand + LRU', demand],
                ['Gradient checkpointing', ckpt],
                ['Stage 3, int8 pages', int8],
                ['Stage 3, pages in memory', memory],
              ] as [string, OffloadTrial][]
            ).map(([name, t]) => [
              name,
              mib(peak(t)),
              t.ms.length > 1 ? stepMs(t).toFixed(0) : '-',
              t.ms.length > 1 ? pct(speed(t), 0) : '-',
              num(t.losses.at(-1) ?? NaN, 4),
              t.refused ? 'refused: over budget' : 'trained',
            ]),
          },
        };
      },
      cost: 'about 10 s in Chromium on wasm, 2 cores',
    },
  ],
};
