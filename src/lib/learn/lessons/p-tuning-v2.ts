/**
 * Lesson 6, P-tuning v2 (Liu et al. 2022, "P-Tuning v2: Prompt Tuning Can Be Comparable to
 * Fine-tuning Universally Across Scales and Tasks"): deep prompts at every layer plus a linear
 * head. Claims tested: shallow prompts (v1, prompt tuning) lag on small models and deep prompts
 * close the gap; a linear head does as well as a verbalizer; it works for sequence tagging.
 */
import { raceRun, seedKnob, stepsKnob } from '../build';
import type { Lesson } from '../types';
import {
  CLOSE,
  answersOneClass,
  better,
  laneOf,
  metricAfter,
  metricRows,
  metricText,
  oneClassNote,
  raceOf,
  standing,
} from '../verdict';
import type { LaneState } from '../../protocol/compare-protocol';

export const pTuningV2Lesson: Lesson = {
  id: 'p-tuning-v2',
  number: 6,
  title: 'P-tuning v2: deep prompts for small models and hard tasks',
  summary: 'Why shallow prompts struggle on small models; a linear head vs a verbalizer; POS tagging.',
  steps: [
    {
      title: 'Deep prompts',
      body: [
        'Prompt tuning and P-tuning only change the input, so on a small model their few vectors must steer every layer from below, and they lag behind fine-tuning. **P-tuning v2** puts trained prompts in front of the keys and values of **every layer** (as prefix tuning does) and reads the task off a plain **linear head**, which also makes it fit token-level tasks such as tagging.',
      ],
      figure: {
        kind: 'where',
        model: 'peftlab-s',
        task: 'spam',
        seqLen: 48,
        lanes: [
          { method: 'prompt-tuning', name: 'Prompt tuning (shallow)' },
          { method: 'p-tuning-v2', name: 'P-tuning v2 (deep)' },
        ],
      },
    },
    {
      title: 'Experiment: shallow against deep prompts on the smallest model',
      body: [
        'The paper: on models below 10B parameters shallow prompts fall well behind fine-tuning, deep prompts match it. Prompt tuning, P-tuning v2 and full fine-tuning race on **peftlab-s**, our smallest model, with the same number of virtual tokens.',
      ],
      setup: [stepsKnob(150, 400), seedKnob()],
      run: (v) => [
        raceRun(
          'race',
          'Shallow and deep prompts on peftlab-s, spam',
          'peftlab-s',
          'spam',
          [
            { method: 'prompt-tuning', name: 'Prompt tuning', config: { numVirtualTokens: 20 } },
            { method: 'p-tuning-v2', name: 'P-tuning v2', config: { numVirtualTokens: 20 } },
            { method: 'full', name: 'Full fine-tuning' },
          ],
          { steps: Number(v.steps), seed: Number(v.seed) },
        ),
      ],
      check: (results) => {
        const snap = raceOf(results, 'race');
        const [pt, v2, full] = ['Prompt tuning', 'P-tuning v2', 'Full fine-tuning'].map((n) =>
          laneOf(snap, n),
        ) as [LaneState, LaneState, LaneState];
        // A win counts only for a lane that learned more than the class balance.
        const skilled = !answersOneClass(v2, 2);
        const deepWins = skilled && better(snap, metricAfter(v2), metricAfter(pt));
        const close = skilled && metricAfter(full) - metricAfter(v2) <= CLOSE;
        return {
          outcome: deepWins && close ? 'holds' : deepWins || close ? 'mixed' : 'does-not-hold',
          claim: 'On small models shallow prompts lag behind fine-tuning; deep prompts close the gap.',
          text:
            `Prompt tuning reached ${metricText(snap, metricAfter(pt))}, P-tuning v2 ${metricText(snap, metricAfter(v2))} and full fine-tuning ${metricText(snap, metricAfter(full))}. ` +
            (deepWins
              ? 'Deep prompts beat the shallow ones'
              : 'Deep prompts did not beat the shallow ones here') +
            `, and ended ${standing(metricAfter(full) - metricAfter(v2), 'full fine-tuning')}.` +
            oneClassNote([pt, v2, full], 2, 'e-mail'),
          table: {
            columns: ['method', 'trainable', 'before', 'after'],
            rows: metricRows(snap, [pt, v2, full]),
          },
        };
      },
      cost: 'about 20 s in Chromium on wasm, 2 cores',
    },
    {
      title: 'Experiment: a linear head or a verbalizer',
      body: [
        'P-tuning v1 read the class from the LM head\'s logits for label words (a **verbalizer**). v2 drops it for a randomly initialised **linear head**; the paper\'s ablation found the two about equal, the head being simpler and usable for any label set. Both race on **peftlab-s** (the verbalizer reads the words "ham" and "spam").',
      ],
      setup: [stepsKnob(250, 400), seedKnob()],
      run: (v) => [
        raceRun(
          'race',
          'Linear head and verbalizer on peftlab-s, spam',
          'peftlab-s',
          'spam',
          [
            { method: 'p-tuning-v2', name: 'Linear head' },
            { method: 'p-tuning-v2', name: 'Verbalizer', config: { verbalizer: true } },
          ],
          { steps: Number(v.steps), seed: Number(v.seed) },
        ),
      ],
      check: (results) => {
        const snap = raceOf(results, 'race');
        const head = laneOf(snap, 'Linear head');
        const verb = laneOf(snap, 'Verbalizer');
        const diff = metricAfter(head) - metricAfter(verb);
        const level = Math.abs(diff) <= CLOSE;
        return {
          outcome: level || diff > 0 ? 'holds' : 'does-not-hold',
          claim: 'A linear head does as well as a verbalizer, without needing label words.',
          text:
            `The linear head reached ${metricText(snap, metricAfter(head))}, the verbalizer ${metricText(snap, metricAfter(verb))}. ` +
            (level
              ? 'Within 3 points: the head costs nothing in accuracy and needs no label words.'
              : diff > 0
                ? 'The linear head did better.'
                : 'The verbalizer did better here: its label words carry what pretraining knows about them, which matters when training is this short.') +
            oneClassNote([head, verb], 2, 'e-mail'),
          table: { columns: ['head', 'trainable', 'before', 'after'], rows: metricRows(snap, [head, verb]) },
        };
      },
      cost: 'about 15 s in Chromium on wasm, 2 cores',
    },
    {
      title: 'Experiment: sequence tagging',
      body: [
        'With a linear head on every token, deep prompts can tag words. Part-of-speech tagging on the Brown corpus (12 universal tags), on **peftlab-s**: prompt tuning with a tagging head, P-tuning v2 and full fine-tuning.',
      ],
      setup: [stepsKnob(200, 400), seedKnob()],
      run: (v) => [
        raceRun(
          'race',
          'Tagging on peftlab-s, Brown POS',
          'peftlab-s',
          'brown-pos',
          [
            { method: 'prompt-tuning', name: 'Prompt tuning' },
            { method: 'p-tuning-v2', name: 'P-tuning v2' },
            { method: 'full', name: 'Full fine-tuning' },
          ],
          { steps: Number(v.steps), seed: Number(v.seed), evalExamples: 128 },
        ),
      ],
      check: (results) => {
        const snap = raceOf(results, 'race');
        const pt = laneOf(snap, 'Prompt tuning');
        const v2 = laneOf(snap, 'P-tuning v2');
        const full = laneOf(snap, 'Full fine-tuning');
        const deepWins = better(snap, metricAfter(v2), metricAfter(pt));
        const close = metricAfter(full) - metricAfter(v2) <= CLOSE;
        return {
          outcome: deepWins && close ? 'holds' : deepWins ? 'mixed' : 'does-not-hold',
          claim:
            'P-tuning v2 handles sequence tagging, where shallow prompts struggle, close to fine-tuning.',
          text:
            `Token accuracy: prompt tuning ${metricText(snap, metricAfter(pt))}, P-tuning v2 ${metricText(snap, metricAfter(v2))}, full fine-tuning ${metricText(snap, metricAfter(full))}. ` +
            (deepWins
              ? 'Deep prompts tagged better than the shallow prompt'
              : 'Deep prompts did not tag better than the shallow prompt') +
            `, and ended ${standing(metricAfter(full) - metricAfter(v2), 'full fine-tuning')}.`,
          table: {
            columns: ['method', 'trainable', 'before', 'after'],
            rows: metricRows(snap, [pt, v2, full]),
          },
        };
      },
      cost: 'about 20 s in Chromium on wasm, 2 cores',
    },
  ],
};
