/**
 * Lesson 1: what fine-tuning changes, and why freezing most weights saves memory. The memory
 * ledger (src/lib/race/ledger.ts) splits a training step into parameters, gradients, AdamW's two
 * moments and activations, measured on each lane's 2nd step; the survey's point is that a frozen
 * weight needs no gradient and no optimizer state.
 */
import type { LaneSpec } from '../../race/race';
import { raceRun, stepsKnob } from '../build';
import type { Lesson } from '../types';
import { int, laneOf, memoryOf, mib, pct, raceOf } from '../verdict';

const LANES: LaneSpec[] = [
  { method: 'full', name: 'Full fine-tuning' },
  { method: 'lora', name: 'LoRA' },
  { method: 'prompt-tuning', name: 'Prompt tuning' },
];

export const whatChangesLesson: Lesson = {
  id: 'what-changes',
  number: 1,
  title: 'What fine-tuning changes, and why freezing saves memory',
  summary: 'Which parameters train under each method, and the memory ledger of a step, measured live.',
  steps: [
    {
      title: 'A pretrained model, adapted',
      body: [
        'A pretrained language model already predicts text well; fine-tuning adapts it to one task. **Full fine-tuning** updates every weight. **Parameter-efficient** methods freeze the pretrained weights and train a small set of new ones: low-rank updates (LoRA), scaling vectors (IA3), or vectors that enter the input or every layer (prompt and prefix tuning).',
        'The figure is drawn from the model loaded here: where each method puts its trainable parameters, and how many.',
      ],
      figure: { kind: 'where', model: 'peftlab-m', task: 'spam', seqLen: 48, lanes: LANES },
    },
    {
      title: 'Experiment: the memory of one training step',
      body: [
        'A training step holds four kinds of memory: the **parameters**; a **gradient** for every trainable value; the optimizer state, which for AdamW is **two moments** per trainable value; and the **activations** the backward pass needs. Freezing a weight removes its gradient and its two moments, three times its size.',
        'The three methods take a few steps on **peftlab-m** and SpamAssassin; each step is measured by tfjs (its peak memory on the 2nd step). Try a larger batch: activations grow with it, weights do not.',
      ],
      setup: [
        stepsKnob(6, 50),
        { id: 'batch', label: 'Batch size', kind: 'number', min: 1, max: 32, default: 8 },
      ],
      run: (v) => [
        raceRun('race', 'Three methods on peftlab-m, spam', 'peftlab-m', 'spam', LANES, {
          steps: Number(v.steps),
          batchSize: Number(v.batch),
          evalExamples: 32,
        }),
      ],
      check: (results) => {
        const snap = raceOf(results, 'race');
        const full = laneOf(snap, 'Full fine-tuning');
        const peft = [laneOf(snap, 'LoRA'), laneOf(snap, 'Prompt tuning')];
        const fm = memoryOf(full);
        const state = peft.map((l) => memoryOf(l).weightsState);
        const savedState = state.every((s) => s < fm.weightsState / 10);
        const peaks = peft.map((l) => memoryOf(l).total);
        const peakSaving = 1 - Math.max(...peaks) / fm.total;
        const act = (full.ledger.measured ?? full.ledger.predicted).activations;
        const claim =
          'Freezing most weights saves memory: frozen weights need no gradients and no optimizer state.';
        const stateText = `Full fine-tuning's ${int(full.trainableParams)} trainable values needed ${mib(fm.weightsState)} of gradients and AdamW state; LoRA's ${int(peft[0]!.trainableParams)} needed ${mib(state[0]!)} and prompt tuning's ${int(peft[1]!.trainableParams)} ${mib(state[1]!)}`;
        const peakText =
          peakSaving > 0.05
            ? `The whole step needed ${pct(peakSaving, 0)} less at its peak with the frozen base (at most ${mib(Math.max(...peaks))} against ${mib(fm.total)}).`
            : `Yet the whole step's peak barely moved (${mib(Math.max(...peaks))} at most against ${mib(fm.total)}): at this batch size the activations (${mib(act)} for full fine-tuning) outweigh every weight of this small model. Freezing saves the weights' share; on a model of billions of parameters that share is most of the memory.`;
        return {
          outcome: savedState ? (peakSaving > 0.05 ? 'holds' : 'mixed') : 'does-not-hold',
          claim,
          text: `${stateText}. ${peakText}`,
          table: {
            columns: [
              'method',
              'trainable',
              'parameters',
              'gradients',
              'optimizer',
              'activations',
              'step total',
            ],
            rows: [full, ...peft].map((l) => {
              const m = l.ledger.measured ?? l.ledger.predicted;
              return [
                l.name,
                int(l.trainableParams),
                mib(m.parameters),
                mib(m.gradients),
                mib(m.optimizer),
                mib(m.activations),
                mib(m.total),
              ];
            }),
          },
        };
      },
      cost: 'about 10 s in Chromium on wasm, 2 cores',
    },
  ],
};
