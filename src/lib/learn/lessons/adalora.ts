/**
 * Lesson 7, AdaLoRA (Zhang et al. 2023; PEFT: tuners/adalora): LoRA in SVD form P·Λ·Q whose
 * singular values are pruned by an importance score (sensitivity smoothed by beta1, its
 * uncertainty by beta2) on a cubic schedule from initR down to an average of targetR, so rank
 * moves to the matrices that matter. Claim tested: at the same final budget AdaLoRA beats LoRA.
 */
import { raceRun, seedKnob, stepsKnob } from '../build';
import type { Lesson } from '../types';
import {
  answersOneClass,
  better,
  laneOf,
  metricAfter,
  metricRows,
  metricText,
  probeOf,
  raceOf,
} from '../verdict';

/** AdaLoRA's schedule scaled to the run: warm up 15%, shrink, hold the final budget for the last 30%. */
export function adaloraSchedule(steps: number): { tinit: number; tfinal: number; deltaT: number } {
  const tinit = Math.floor(steps * 0.15);
  const tfinal = Math.floor(steps * 0.3);
  return {
    tinit,
    tfinal: Math.min(tfinal, Math.max(0, steps - tinit - 1)),
    deltaT: Math.max(1, Math.round(steps / 20)),
  };
}

export const adaloraLesson: Lesson = {
  id: 'adalora',
  number: 7,
  title: 'AdaLoRA: rank where it matters',
  summary: 'Importance scores move the rank budget over training; against LoRA at the same budget.',
  steps: [
    {
      title: 'LoRA in SVD form, with a budget',
      body: [
        "LoRA gives every adapted matrix the same rank r. AdaLoRA writes each update as **P Λ Q**, a product shaped like a singular value decomposition, starts every matrix at `initR` and, on a schedule, zeroes the least important singular values until the average rank is `targetR`. Importance is the sensitivity |value × gradient|, smoothed over steps (`beta1`) and weighted by its uncertainty (`beta2`). An orthogonality penalty (`orthRegWeight`) keeps P and Q close to orthogonal, so a value's size says how much it matters.",
        'The schedule: `tinit` warm-up steps at full rank, then a cubic decrease every `deltaT` steps, and `tfinal` last steps at the final budget.',
      ],
      figure: {
        kind: 'where',
        model: 'peftlab-m',
        task: 'spam',
        seqLen: 48,
        lanes: [
          { method: 'lora', name: 'LoRA r 8' },
          { method: 'adalora', name: 'AdaLoRA 12 → 8', config: { initR: 12, targetR: 8 } },
        ],
      },
    },
    {
      title: 'Experiment: AdaLoRA against LoRA at the same final budget',
      body: [
        'AdaLoRA starts at rank 12 and ends at an average of 8; LoRA keeps rank 8 everywhere, on the same matrices (`c_attn` of every layer), on **peftlab-m** and SpamAssassin. The schedule is scaled to the run (15% warm-up, 30% at the final budget). Afterwards the rank each matrix kept is read from the AdaLoRA lane.',
      ],
      setup: [stepsKnob(120), seedKnob()],
      run: (v) => [
        raceRun(
          'race',
          'AdaLoRA and LoRA on peftlab-m, spam',
          'peftlab-m',
          'spam',
          [
            { method: 'lora', name: 'LoRA', config: { r: 8 } },
            {
              method: 'adalora',
              name: 'AdaLoRA',
              config: { initR: 12, targetR: 8, ...adaloraSchedule(Number(v.steps)) },
            },
          ],
          { steps: Number(v.steps), seed: Number(v.seed) },
        ),
        {
          kind: 'probe',
          id: 'ranks',
          label: "Reading AdaLoRA's ranks",
          model: 'peftlab-m',
          probe: 'ranks',
          race: 'race',
          lane: 'AdaLoRA',
        },
      ],
      check: (results) => {
        const snap = raceOf(results, 'race');
        const lora = laneOf(snap, 'LoRA');
        const ada = laneOf(snap, 'AdaLoRA');
        const ranks = probeOf(results, 'ranks').ranks;
        const last = ranks?.points.at(-1)?.ranks ?? [];
        const moved = last.length > 0 && Math.max(...last) !== Math.min(...last);
        // A win counts only for a lane that learned more than the class balance.
        const wins = !answersOneClass(ada, 2) && better(snap, metricAfter(ada), metricAfter(lora));
        const perMatrix = (ranks?.matrices ?? [])
          .map((m, i) => `${m.replace('transformer.', '')} ${last[i]}`)
          .join(', ');
        return {
          outcome: wins && moved ? 'holds' : wins || moved ? 'mixed' : 'does-not-hold',
          claim:
            'At the same parameter budget AdaLoRA beats LoRA by giving rank to the matrices that matter.',
          text:
            `AdaLoRA reached ${metricText(snap, metricAfter(ada))}, LoRA ${metricText(snap, metricAfter(lora))}. ` +
            (moved
              ? `The budget moved: the matrices ended at ranks ${perMatrix}. `
              : `Every matrix ended at the same rank (${perMatrix}): the importance scores did not separate them in this run. `) +
            (wins
              ? 'Spending rank unevenly paid off here.'
              : 'AdaLoRA did not win here: its budget shrinks while it trains, and a run this short leaves little time to recover from pruning.'),
          table: {
            columns: ['method', 'trainable', 'before', 'after'],
            rows: metricRows(snap, [lora, ada]),
          },
        };
      },
      cost: 'about 30 s in Chromium on wasm, 2 cores',
    },
  ],
};
