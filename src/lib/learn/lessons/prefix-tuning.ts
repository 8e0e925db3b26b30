/**
 * Lesson 3, prefix tuning (Li & Liang 2021; PEFT: tuners/prefix_tuning): trained keys and values
 * prepended at every layer's attention, optionally produced by a reparameterising MLP
 * (`prefixProjection`) that the paper found steadier to train. Claims tested: prefix tuning comes
 * close to full fine-tuning with a fraction of a percent of the parameters; the MLP helps.
 */
import type { LaneSpec } from '../../race/race';
import { raceRun, seedKnob, stepsKnob } from '../build';
import type { Lesson } from '../types';
import {
  CLOSE,
  answersOneClass,
  better,
  int,
  laneOf,
  metricAfter,
  metricRows,
  metricText,
  oneClassNote,
  raceOf,
  standing,
} from '../verdict';

const LANES: LaneSpec[] = [
  { method: 'prefix-tuning', name: 'Prefix, no MLP', config: { prefixProjection: false } },
  {
    method: 'prefix-tuning',
    name: 'Prefix with MLP',
    config: { prefixProjection: true, encoderHiddenSize: 64 },
  },
  { method: 'full', name: 'Full fine-tuning' },
];

export const prefixTuningLesson: Lesson = {
  id: 'prefix-tuning',
  number: 3,
  title: 'Prefix tuning: trained keys and values at every layer',
  summary: 'Prefixes at every layer, with and without the reparameterising MLP, against full fine-tuning.',
  steps: [
    {
      title: 'Prefixes at every layer',
      body: [
        "Prompt tuning only touches the input. Prefix tuning gives **every layer** its own trained keys and values, which every real token attends to, so the adapter steers each layer's attention directly. With `numVirtualTokens` prefixes, a model of L layers and width d trains 2 · L · d values per prefix.",
        'Li and Liang found that training the prefixes directly was unstable, so they produce them from a smaller matrix through an **MLP** (`prefixProjection: true`, width `encoderHiddenSize`); after training only the prefixes are kept. The figure shows both on peftlab-s.',
      ],
      figure: { kind: 'where', model: 'peftlab-s', task: 'spam', seqLen: 48, lanes: LANES.slice(0, 2) },
    },
    {
      title: 'Experiment: prefix tuning against full fine-tuning',
      body: [
        'The paper: prefix tuning comes close to full fine-tuning while training about 0.1% of the parameters, and the MLP makes it train better. The three race on **peftlab-s** and SpamAssassin with the same batches. "Close" here means within 3 points of accuracy.',
      ],
      setup: [stepsKnob(200, 400), seedKnob()],
      run: (v) => [
        raceRun('race', 'Prefix tuning and full fine-tuning on peftlab-s, spam', 'peftlab-s', 'spam', LANES, {
          steps: Number(v.steps),
          seed: Number(v.seed),
        }),
      ],
      check: (results) => {
        const snap = raceOf(results, 'race');
        const plain = laneOf(snap, 'Prefix, no MLP');
        const mlp = laneOf(snap, 'Prefix with MLP');
        const full = laneOf(snap, 'Full fine-tuning');
        const best = better(snap, metricAfter(mlp), metricAfter(plain)) ? mlp : plain;
        const gap = metricAfter(full) - metricAfter(best);
        // A win counts only for a lane that learned more than the class balance.
        const close = !answersOneClass(best, 2) && gap <= CLOSE;
        const mlpHelps = !answersOneClass(mlp, 2) && better(snap, metricAfter(mlp), metricAfter(plain));
        const share = (100 * best.trainableParams) / full.trainableParams;
        return {
          outcome: close && mlpHelps ? 'holds' : close || mlpHelps ? 'mixed' : 'does-not-hold',
          claim:
            'Prefix tuning comes close to full fine-tuning with a small fraction of the parameters, and the reparameterising MLP helps.',
          text:
            `${best.name} reached ${metricText(snap, metricAfter(best))} training ${int(best.trainableParams)} values (${share.toFixed(1)}% of full fine-tuning's ${int(full.trainableParams)}), against full fine-tuning's ${metricText(snap, metricAfter(full))}: ` +
            `${standing(gap, 'full fine-tuning')}. ` +
            `With the MLP: ${metricText(snap, metricAfter(mlp))}; without: ${metricText(snap, metricAfter(plain))}. ` +
            (mlpHelps
              ? 'The reparameterisation helped, as the paper found.'
              : 'The MLP did not help in this run; on a model this small the direct prefixes train stably enough.') +
            (full.trainableParams < 1e6
              ? ' Note the share: on a 0.56M-parameter model even a small prefix is a sizeable fraction; on GPT-2 medium the same prefix would be about 0.1%.'
              : '') +
            oneClassNote([plain, mlp, full], 2, 'e-mail'),
          table: {
            columns: ['method', 'trainable', 'before', 'after'],
            rows: metricRows(snap, [plain, mlp, full]),
          },
        };
      },
      cost: 'about 20 s in Chromium on wasm, 2 cores',
    },
  ],
};
