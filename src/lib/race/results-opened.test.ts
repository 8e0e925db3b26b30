import { describe, expect, it } from 'vitest';
import type { LaneState } from './race';
import { raceResults } from './results';

function lane(name: string, over: Partial<LaneState>): LaneState {
  return {
    id: name,
    name,
    method: 'lora',
    peftType: 'LORA',
    config: {} as LaneState['config'],
    lr: 1e-3,
    trainableParams: 100,
    totalParams: 1000,
    status: 'done',
    steps: [1, 2, 3].map((step) => ({ step, loss: 5 - step, lr: 1e-3, ms: 10, tokens: 100 })),
    evals: [
      { step: 0, loss: 5, metric: 150 },
      { step: 3, loss: 4, metric: 120 },
    ],
    trainMs: 30,
    tokens: 300,
    ledger: {
      predicted: { parameters: 0, gradients: 0, optimizer: 0, activations: 0, total: 5000 },
      measured: null,
    },
    ...over,
  };
}

describe('race results with an opened (evaluated-only) lane', () => {
  it('ranks it on the metric but leaves time and memory to the trained lanes, and says why', () => {
    const opened = lane('From PEFT', {
      origin: 'opened',
      lr: 0,
      steps: [],
      evals: [{ step: 0, loss: 3, metric: 100 }],
      trainMs: 0,
      tokens: 0,
      // Smaller than the trained lane's, but predicted for training it never did.
      ledger: {
        predicted: { parameters: 0, gradients: 0, optimizer: 0, activations: 0, total: 10 },
        measured: null,
      },
    });
    const r = raceResults('perplexity', [lane('LoRA', {}), opened]);
    expect(r.rows[1]).toMatchObject({ evaluatedOnly: true, steps: 0, stepsToTarget: null, metric: 100 });
    expect(r.rows[0]!.evaluatedOnly).toBeUndefined();
    expect(r.verdicts[0]).toMatch(/^From PEFT won on held-out perplexity/);
    expect(r.verdicts.join(' ')).toMatch(/LoRA needed the least memory; LoRA took the least time per step/);
    expect(r.verdicts.at(-1)).toMatch(/From PEFT was opened, not trained here/);
  });
});
