/**
 * Lesson 4, LoRA (Hu et al. 2021): W' = W + (loraAlpha / r) · B·A with A: r x in and B: out x r, B
 * starting at zero so training starts from the base model (PEFT: tuners/lora/layer.py). The survey's
 * claim tested: full fine-tuning beats LoRA, but LoRA is the choice when resources are low.
 */
import { raceRun, seedKnob, stepsKnob } from '../build';
import type { Lesson } from '../types';
import {
  answersOneClass,
  better,
  int,
  laneOf,
  memoryOf,
  metricAfter,
  metricBefore,
  metricText,
  mib,
  oneClassNote,
  raceOf,
} from '../verdict';

const ALL_LINEAR = ['c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];

export const loraLesson: Lesson = {
  id: 'lora',
  number: 4,
  title: 'LoRA: a low-rank update beside frozen weights',
  summary:
    'r and alpha, which modules to target, merging; full fine-tuning against LoRA, memory beside accuracy.',
  steps: [
    {
      title: 'The update is a product of two thin matrices',
      body: [
        'LoRA leaves every weight matrix **W** frozen and learns an update beside it: `W x + (loraAlpha / r) · B A x`. **A** is r x in, **B** is out x r, so a 320 x 960 attention matrix gets 320·r + 960·r trainable values instead of 307,200.',
        '**B** starts at zero, so at step 0 the adapted model is exactly the base model; `loraAlpha / r` scales the update so that changing r does not change the learning rate you need.',
        'The figure shows where LoRA puts its parameters on this model when it targets only the attention input (`c_attn`, as PEFT does for GPT-2) and when it targets every linear layer.',
      ],
      figure: {
        kind: 'where',
        model: 'peftlab-m',
        task: 'spam',
        seqLen: 48,
        lanes: [
          { method: 'lora', name: 'LoRA on c_attn' },
          { method: 'lora', name: 'LoRA on every linear layer', config: { targetModules: ALL_LINEAR } },
        ],
      },
    },
    {
      title: 'Merging costs nothing at inference',
      body: [
        'Once trained, `B A` can be added into **W** (`merge_and_unload` in PEFT): the merged model is the base architecture again, with no extra latency. Adapters that change the input (prompt and prefix tuning) cannot be merged this way: they always cost their extra tokens.',
      ],
    },
    {
      title: 'Experiment: full fine-tuning against LoRA, with memory beside accuracy',
      body: [
        'The survey: full fine-tuning tends to reach the best accuracy, but LoRA gets close while training a sliver of the parameters, so it is the choice when memory is short. Here the three race on **peftlab-m** and SpamAssassin (the same batches and seed), and the memory ledger of each is measured on its 2nd step.',
        'Change the rank, alpha or steps and run again: a larger r trains more parameters; more steps give every method more time.',
      ],
      setup: [
        { id: 'r', label: 'LoRA rank r', kind: 'number', min: 1, max: 64, default: 8 },
        { id: 'loraAlpha', label: 'loraAlpha', kind: 'number', min: 1, max: 128, default: 16 },
        stepsKnob(40),
        seedKnob(),
      ],
      run: (v) => [
        raceRun(
          'race',
          'LoRA and full fine-tuning on peftlab-m, spam',
          'peftlab-m',
          'spam',
          [
            {
              method: 'lora',
              name: 'LoRA on c_attn',
              config: { r: Number(v.r), loraAlpha: Number(v.loraAlpha) },
            },
            {
              method: 'lora',
              name: 'LoRA on every linear layer',
              config: { r: Number(v.r), loraAlpha: Number(v.loraAlpha), targetModules: ALL_LINEAR },
            },
            { method: 'full', name: 'Full fine-tuning' },
          ],
          { steps: Number(v.steps), seed: Number(v.seed) },
        ),
      ],
      check: (results) => {
        const snap = raceOf(results, 'race');
        const full = laneOf(snap, 'Full fine-tuning');
        const loras = [laneOf(snap, 'LoRA on c_attn'), laneOf(snap, 'LoRA on every linear layer')];
        const best = better(snap, metricAfter(loras[1]!), metricAfter(loras[0]!)) ? loras[1]! : loras[0]!;
        // A win counts only for a lane that learned more than the class balance.
        const fullWins = !answersOneClass(full, 2) && better(snap, metricAfter(full), metricAfter(best));
        const fm = memoryOf(full);
        const lm = memoryOf(best);
        const lighter = lm.total < fm.total;
        const claim =
          'Full fine-tuning beats LoRA, but LoRA needs far less memory (the choice when resources are low).';
        const accuracy = fullWins
          ? `Full fine-tuning reached ${metricText(snap, metricAfter(full))}, ahead of ${best.name} at ${metricText(snap, metricAfter(best))}`
          : `${best.name} reached ${metricText(snap, metricAfter(best))}, not behind full fine-tuning at ${metricText(snap, metricAfter(full))}`;
        const memory = `${best.name} trained ${int(best.trainableParams)} parameters against ${int(full.trainableParams)} and its step needed ${mib(lm.total)} against ${mib(fm.total)} (gradients and optimizer state: ${mib(lm.weightsState)} against ${mib(fm.weightsState)})`;
        const outcome = fullWins && lighter ? 'holds' : fullWins || lighter ? 'mixed' : 'does-not-hold';
        const why =
          outcome === 'holds'
            ? 'Both halves of the claim hold in miniature.'
            : !fullWins
              ? 'Full fine-tuning did not come out ahead in this short run: with so few steps and a small model, its many parameters have not yet paid off.'
              : 'LoRA did not save memory here, because activations, not weights, dominate a step at this size.';
        return {
          outcome,
          claim,
          text: `${accuracy}. ${memory}. ${why}` + oneClassNote([...loras, full], 2, 'e-mail'),
          table: {
            columns: ['method', 'trainable', `${snap.metric} before`, `${snap.metric} after`, 'step memory'],
            rows: [...loras, full].map((l) => [
              l.name,
              int(l.trainableParams),
              metricText(snap, metricBefore(l)),
              metricText(snap, metricAfter(l)),
              mib(memoryOf(l).total),
            ]),
          },
        };
      },
      cost: 'about 45 s in Chromium on wasm, 2 cores',
    },
  ],
};
