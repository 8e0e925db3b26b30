/**
 * Lesson 4, LoRA (Hu et al. 2021): W' = W + (loraAlpha / r) · B·A with A: r x in and B: out x r, B
 * starting at zero so training starts from the base model (PEFT: tuners/lora/layer.py). The survey's
 * claim tested: full fine-tuning beats LoRA, but LoRA is the choice when resources are low. A second
 * experiment sets two of today's LoRA variants against it at the same rank: DoRA (`useDora`, Liu et
 * al. 2024) and PiSSA's start (`initLoraWeights: "pissa"`, Meng et al. 2024), with LoRA run again on
 * another seed as the yardstick of what a difference in held-out loss means.
 */
import { modelKnob, raceRun, seedKnob, stepsKnob } from '../build';
import type { Lesson } from '../types';
import type { LaneState } from '../../protocol/compare-protocol';
import {
  answersOneClass,
  better,
  earlyLoss,
  int,
  laneOf,
  memoryOf,
  metricAfter,
  metricBefore,
  metricText,
  mib,
  num,
  oneClassNote,
  raceOf,
} from '../verdict';

const ALL_LINEAR = ['c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];

/**
 * The smallest difference in held-out loss (nats per example) the variants experiment reads as
 * real, even when LoRA's two seeds happen to land closer than that: the loss is printed to three
 * decimals, and a gap below this is not one a reader could act on.
 */
export const MIN_LOSS_GAP = 0.01;

/**
 * Held-out examples the variants experiment scores each lane on: its eight evaluations (before and
 * after, four lanes) were half its time at 256, so it stays below the lessons' default (384), and
 * every lane is scored on the same examples.
 */
const VARIANTS_EVAL = 192;

/** The held-out loss at the end (NaN when the lane failed before evaluating). */
const heldOutLoss = (l: LaneState): number => l.evals.at(-1)?.loss ?? NaN;
/** The median optimizer step, in ms: a lane's first steps also compile its kernels, and a mean would carry that. */
function stepMs(l: LaneState): number {
  const ms = l.steps.map((s) => s.ms).sort((a, b) => a - b);
  if (ms.length === 0) return NaN;
  const mid = Math.floor(ms.length / 2);
  return ms.length % 2 ? ms[mid]! : (ms[mid - 1]! + ms[mid]!) / 2;
}

/** Where a variant's held-out loss stands against LoRA's, given the seed-to-seed gap `noise`. */
type Standing = 'ahead' | 'behind' | 'within' | 'failed';

function against(x: LaneState, lora: LaneState, noise: number): { standing: Standing; phrase: string } {
  const d = heldOutLoss(lora) - heldOutLoss(x);
  if (!Number.isFinite(d))
    return { standing: 'failed', phrase: `${x.name} or LoRA has no held-out loss (${x.status})` };
  if (d > noise)
    return { standing: 'ahead', phrase: `${x.name} is ahead of LoRA by ${num(d)}, more than that` };
  if (d < -noise)
    return { standing: 'behind', phrase: `${x.name} is behind LoRA by ${num(-d)}, more than that` };
  return {
    standing: 'within',
    phrase: `${x.name} is within it (${d >= 0 ? 'ahead' : 'behind'} by ${num(Math.abs(d))})`,
  };
}

/** What one variant's standing says, in a sentence. */
function reading(what: string, s: Standing): string {
  switch (s) {
    case 'ahead':
      return `${what} paid off in this run.`;
    case 'behind':
      return `${what} cost held-out loss in this run, by more than the spread between seeds.`;
    case 'within':
      return `${what} made a difference no larger than the spread between two seeds of plain LoRA.`;
    case 'failed':
      return `${what} could not be judged: a lane has no held-out loss.`;
  }
}

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
        stepsKnob(60),
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
      cost: 'about 35 s in Chromium on wasm, 2 cores',
    },
    {
      title: 'Experiment: DoRA and PiSSA against LoRA at the same rank',
      body: [
        "Two of the LoRA variants people use today change LoRA at one place each. **DoRA** (`useDora`) splits the adapted weight into a direction and a trained **magnitude** per output, `W' = m · (W + s B A) / ||W + s B A||`, so LoRA's update only has to turn the weight, not scale it; it adds one value per output of each adapted matrix, and its step computes that norm every time. **PiSSA** (`initLoraWeights: \"pissa\"`) keeps LoRA's shape but starts A and B at the top r singular directions of **W** instead of at zero (the model still starts unchanged: the start is subtracted), so training moves the weight's principal part from the first step.",
        'Here the three race at the same rank on `c_attn` of **peftlab-m** (or the model you pick) and SpamAssassin (the same batches and seed, `loraAlpha` = 2r), and are judged on the held-out loss after the same steps, on the same 192 held-out e-mails. LoRA also runs once more on the next seed: how far its two runs land apart is the yardstick, and a variant counts as ahead or behind only by more than that (and at least 0.01).',
      ],
      setup: [
        { id: 'r', label: 'Rank r (all three)', kind: 'number', min: 1, max: 64, default: 8 },
        modelKnob('peftlab-m'),
        stepsKnob(60),
        seedKnob(),
      ],
      run: (v) => {
        const lora = { r: Number(v.r), loraAlpha: 2 * Number(v.r) };
        const seed = Number(v.seed);
        const model = String(v.model);
        return [
          raceRun(
            'race',
            `LoRA, DoRA and PiSSA on ${model}, spam`,
            model,
            'spam',
            [
              { method: 'lora', name: 'LoRA', config: lora },
              { method: 'lora', name: 'DoRA', config: { ...lora, useDora: true } },
              { method: 'lora', name: 'PiSSA', config: { ...lora, initLoraWeights: 'pissa' } },
            ],
            { steps: Number(v.steps), seed, evalExamples: VARIANTS_EVAL },
          ),
          raceRun(
            'again',
            `LoRA again on seed ${seed + 1}, for the noise`,
            model,
            'spam',
            [{ method: 'lora', name: 'LoRA, next seed', config: lora }],
            { steps: Number(v.steps), seed: seed + 1, evalExamples: VARIANTS_EVAL },
          ),
        ];
      },
      check: (results, v) => {
        const snap = raceOf(results, 'race');
        const lora = laneOf(snap, 'LoRA');
        const dora = laneOf(snap, 'DoRA');
        const pissa = laneOf(snap, 'PiSSA');
        const again = laneOf(raceOf(results, 'again'), 'LoRA, next seed');
        const seedGap = Math.abs(heldOutLoss(lora) - heldOutLoss(again));
        // A failed rerun gives no yardstick: fall back to the floor rather than call everything noise.
        const noise = Math.max(Number.isFinite(seedGap) ? seedGap : 0, MIN_LOSS_GAP);
        const d = against(dora, lora, noise);
        const p = against(pissa, lora, noise);
        const steps = lora.steps.length;
        const early = Math.min(10, steps);
        const losses = `After ${steps} steps at rank ${v.r}, the held-out loss is ${num(heldOutLoss(lora))} for LoRA, ${num(heldOutLoss(dora))} for DoRA and ${num(heldOutLoss(pissa))} for PiSSA`;
        const yardstick = `LoRA on the next seed ended at ${num(heldOutLoss(again))}, so a gap under ${num(noise)} is read as noise`;
        const extra = dora.trainableParams - lora.trainableParams;
        const cost = `DoRA trained ${int(dora.trainableParams)} parameters against ${int(lora.trainableParams)} (${int(extra)} magnitudes, one per output of each adapted matrix) and its median step took ${num(stepMs(dora), 0)} ms against ${num(stepMs(lora), 0)} ms (x${num(stepMs(dora) / stepMs(lora), 2)}); PiSSA trained ${int(pissa.trainableParams)}, as many as LoRA, at ${num(stepMs(pissa), 0)} ms a step`;
        const start = `Over the first ${early} steps PiSSA's training loss averaged ${num(earlyLoss(pissa, early))} against LoRA's ${num(earlyLoss(lora, early))}`;
        const ahead = [d, p].filter((x) => x.standing === 'ahead').length;
        const outcome = ahead === 2 ? 'holds' : ahead === 1 ? 'mixed' : 'does-not-hold';
        const why =
          `${reading("DoRA's magnitude", d.standing)} ${reading("PiSSA's start", p.standing)}` +
          ([d, p].some((x) => x.standing === 'behind')
            ? ` All three train at the same learning rate (${lora.lr}, LoRA's); the papers tune each method's own, so a variant behind here may be one that wants another rate.`
            : ahead === 0
              ? ' At this size and length the seed moves the result as much as the choice of variant: the gains reported for them come from larger models and longer runs.'
              : '');
        return {
          outcome,
          claim:
            'At the same rank, DoRA (a trained magnitude) and PiSSA (a start from the principal singular directions) each reach a lower loss than plain LoRA after the same steps.',
          text:
            `${losses}. ${yardstick}: ${d.phrase}; ${p.phrase}. ${start}. ${cost}. ${why}` +
            oneClassNote([lora, dora, pissa], 2, 'e-mail'),
          table: {
            columns: ['method', 'trainable', `${snap.metric} after`, 'held-out loss', 'median step ms'],
            rows: [lora, dora, pissa, again].map((l) => [
              l.name,
              int(l.trainableParams),
              metricText(snap, metricAfter(l)),
              num(heldOutLoss(l)),
              num(stepMs(l), 0),
            ]),
          },
        };
      },
      cost: 'about 35 s in Chromium on wasm, 2 cores',
    },
  ],
};
