/**
 * Lesson 5, P-tuning (Liu et al. 2021, "GPT Understands, Too"; PEFT: tuners/p_tuning): virtual
 * tokens produced by a prompt encoder (MLP or LSTM) before a frozen model. The paper's table sets a
 * manual prompt (MP), fine-tuning (FT), fine-tuning with the manual prompt (MP+FT) and P-tuning (PT)
 * side by side; here on one classification task, with the label words read off the LM head (a
 * verbalizer, as the paper's cloze set-up) wherever a manual prompt is used.
 */
import { raceRun, seedKnob, stepsKnob } from '../build';
import type { Lesson } from '../types';
import {
  answersOneClass,
  better,
  int,
  laneOf,
  metricAfter,
  metricBefore,
  metricText,
  oneClassNote,
  pct,
  probeOf,
  raceOf,
  CLOSE,
  standing,
} from '../verdict';

/**
 * Why a P-tuning lane stuck at the class balance is not read as a fault of this app: HF PEFT 0.21's P-tuning,
 * run on peftlab-s with the same data, batches, verbalizer loss, optimizer and initial encoder weights, retraces
 * ours step for step (loss gap under 1e-6 over 200 steps) and also answers the majority class for every e-mail,
 * at learning rates 3e-3 to 3e-2 and both encoders (scripts/reference/p_tuning_training).
 */
const PEFT_SAME =
  "HF PEFT's own P-tuning does the same on this model and data, step for step: on a model this small the encoder settles on a prompt that only leans toward the majority class, while the paper's gains came on models of hundreds of millions of parameters. Prompt tuning and P-tuning v2 do learn this task here (lessons 2 and 6).";

export const MANUAL_PROMPT = 'E-mail: {text}\nIs this e-mail spam or ham? It is';

export const pTuningLesson: Lesson = {
  id: 'p-tuning',
  number: 5,
  title: 'P-tuning: a prompt encoder writes the prompt',
  summary: 'MP, FT, MP+FT and PT on one task as in the paper; MLP vs LSTM encoder; the prompt read back.',
  steps: [
    {
      title: 'A prompt written by an encoder',
      body: [
        "P-tuning's virtual tokens are not trained directly: a small **prompt encoder** (an MLP, or an LSTM as in the paper) turns trained input vectors into them, which ties the tokens together. Like prompt tuning, it only touches the input of a frozen model.",
        'The paper compares four ways to use a language model for a task: a hand-written **manual prompt** with nothing trained (MP), **fine-tuning** (FT), fine-tuning with the manual prompt (MP+FT), and **P-tuning** (PT). Where a manual prompt is used, the class is read from the LM head at the last position: the logits of the label words "ham" and "spam" (a verbalizer).',
      ],
      figure: {
        kind: 'where',
        model: 'peftlab-m',
        task: 'spam',
        seqLen: 48,
        lanes: [
          { method: 'p-tuning', name: 'P-tuning (MLP)' },
          { method: 'full', name: 'Fine-tuning' },
        ],
      },
    },
    {
      title: "Experiment: the paper's four rows on SpamAssassin",
      body: [
        `The manual prompt wraps every e-mail: "${MANUAL_PROMPT.replace('\n', ' ')}". MP is the MP+FT lane before it trains (the frozen model reading the label words). FT fine-tunes with a linear head and no prompt. All on **peftlab-m**, the same batches.`,
      ],
      setup: [stepsKnob(55), seedKnob()],
      run: (v) => {
        const o = { steps: Number(v.steps), seed: Number(v.seed), evalExamples: 160 };
        return [
          raceRun(
            'ft',
            'Fine-tuning (FT) on peftlab-m',
            'peftlab-m',
            'spam',
            [{ method: 'full', name: 'FT' }],
            o,
          ),
          raceRun(
            'prompted',
            'Manual prompt: MP+FT and P-tuning on peftlab-m',
            'peftlab-m',
            'spam',
            [
              { method: 'full', name: 'MP+FT', config: { verbalizer: true } },
              { method: 'p-tuning', name: 'PT', config: { verbalizer: true } },
            ],
            { ...o, template: MANUAL_PROMPT },
          ),
        ];
      },
      check: (results) => {
        const ft = laneOf(raceOf(results, 'ft'), 'FT');
        const snap = raceOf(results, 'prompted');
        const mpft = laneOf(snap, 'MP+FT');
        const pt = laneOf(snap, 'PT');
        const mp = metricBefore(mpft);
        const rows: [string, number, number][] = [
          ['MP (manual prompt, nothing trained)', mp, 0],
          ['FT (fine-tuning)', metricAfter(ft), ft.trainableParams],
          ['MP+FT', metricAfter(mpft), mpft.trainableParams],
          ['PT (P-tuning, frozen model)', metricAfter(pt), pt.trainableParams],
        ];
        // A lane that answers one class has learned the class balance, not the task.
        const skilled = !answersOneClass(pt, 2);
        const beatsMp = skilled && better(snap, metricAfter(pt), mp);
        const nearFt = skilled && metricAfter(ft) - metricAfter(pt) <= CLOSE;
        return {
          outcome: beatsMp && nearFt ? 'holds' : beatsMp || nearFt ? 'mixed' : 'does-not-hold',
          claim:
            'P-tuning beats manual prompts by far and comes close to fine-tuning while the model stays frozen.',
          text:
            `The manual prompt alone scored ${metricText(snap, mp)}; P-tuning ${metricText(snap, metricAfter(pt))} with ${int(pt.trainableParams)} trained values; ` +
            `fine-tuning ${metricText(snap, metricAfter(ft))} and MP+FT ${metricText(snap, metricAfter(mpft))} with ${int(ft.trainableParams)}. ` +
            (!skilled
              ? 'P-tuning learned only the class balance here (below), so neither part of the claim is shown. ' +
                PEFT_SAME
              : (beatsMp ? 'P-tuning beat the manual prompt' : 'P-tuning did not beat the manual prompt') +
                ` and ended ${standing(metricAfter(ft) - metricAfter(pt), 'fine-tuning')}.`) +
            (mp < 0.6
              ? ' A model this small has not learned to answer questions in its pretraining text, so a manual prompt alone is near chance: the reason the paper turns to trained prompts.'
              : '') +
            oneClassNote([ft, mpft, pt], 2, 'e-mail'),
          table: {
            columns: ['set-up', 'accuracy', 'trained values'],
            rows: rows.map(([name, m, n]) => [name, pct(m), int(n)]),
          },
        };
      },
      cost: 'about 30 s in Chromium on wasm, 2 cores',
    },
    {
      title: 'Experiment: MLP or LSTM encoder, and the prompt read back',
      body: [
        "The paper's encoder is a bidirectional LSTM followed by an MLP; PEFT offers both (`encoderReparameterizationType`). Both race on **peftlab-s** with the manual prompt and verbalizer; afterwards each learned virtual token is read back as its nearest vocabulary tokens by cosine similarity.",
      ],
      setup: [stepsKnob(200, 400), seedKnob()],
      run: (v) => [
        raceRun(
          'race',
          'MLP and LSTM encoders on peftlab-s',
          'peftlab-s',
          'spam',
          [
            { method: 'p-tuning', name: 'MLP encoder', config: { verbalizer: true } },
            {
              method: 'p-tuning',
              name: 'LSTM encoder',
              config: { verbalizer: true, encoderReparameterizationType: 'LSTM' },
            },
          ],
          { steps: Number(v.steps), seed: Number(v.seed), template: MANUAL_PROMPT },
        ),
        {
          kind: 'probe',
          id: 'nearest',
          label: 'Reading the MLP prompt back',
          model: 'peftlab-s',
          probe: 'nearest',
          race: 'race',
          lane: 'MLP encoder',
        },
      ],
      check: (results) => {
        const snap = raceOf(results, 'race');
        const mlp = laneOf(snap, 'MLP encoder');
        const lstm = laneOf(snap, 'LSTM encoder');
        const rows = probeOf(results, 'nearest').nearest?.rows ?? [];
        const firsts = rows.map((r) => r.tokens[0] ?? '');
        const distinct = new Set(firsts).size;
        const lstmWins = !answersOneClass(lstm, 2) && better(snap, metricAfter(lstm), metricAfter(mlp));
        const bothOneClass = answersOneClass(lstm, 2) && answersOneClass(mlp, 2);
        const shown = firsts.map((t) => JSON.stringify(t)).join(' ');
        return {
          outcome: lstmWins ? 'holds' : 'does-not-hold',
          claim: "The paper's LSTM encoder trains better prompts than a plain MLP.",
          text:
            `The LSTM encoder reached ${metricText(snap, metricAfter(lstm))} with ${int(lstm.trainableParams)} trained values; the MLP ${metricText(snap, metricAfter(mlp))} with ${int(mlp.trainableParams)}. ` +
            (lstmWins
              ? 'The LSTM came out ahead. '
              : bothOneClass
                ? `Neither encoder got past the class balance, so this run cannot tell them apart. ${PEFT_SAME} `
                : 'The LSTM did not come out ahead here, for many more parameters. ') +
            `Read back, the MLP prompt's ${rows.length} virtual tokens are nearest to ${shown}: ${distinct} distinct token${distinct === 1 ? '' : 's'}` +
            (distinct <= rows.length / 2
              ? ', so the encoder wrote nearly the same vector in every position: a trained prompt need not read as words.'
              : '.') +
            oneClassNote([mlp, lstm], 2, 'e-mail'),
        };
      },
      cost: 'about 25 s in Chromium on wasm, 2 cores',
    },
  ],
};
