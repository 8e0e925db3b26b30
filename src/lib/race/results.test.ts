import { describe, it, expect } from 'vitest';
import type { LaneState } from './race';
import { raceResults, resultsCsv } from './results';

const ledger = (total: number): LaneState['ledger'] => ({
  predicted: { parameters: total, gradients: 0, optimizer: 0, activations: 0, total },
  measured: null,
});

function lane(name: string, trainable: number, metrics: number[], ms: number[], status = 'done'): LaneState {
  return {
    id: name,
    name,
    method: name.toLowerCase(),
    peftType: 'LORA',
    config: {} as LaneState['config'],
    lr: 1e-3,
    trainableParams: trainable,
    totalParams: 1000,
    status: status as LaneState['status'],
    steps: ms.map((m, i) => ({ step: i + 1, loss: 10 - i, lr: 1e-3, ms: m, tokens: 100 })),
    evals: metrics.map((metric, i) => ({ step: i * 2, loss: 1 / (i + 1), metric })),
    trainMs: ms.reduce((a, b) => a + b, 0),
    tokens: 100 * ms.length,
    ledger: ledger(trainable * 10),
  };
}

describe('race results', () => {
  it('ranks accuracy higher-is-better and counts steps to 90% of the best', () => {
    const r = raceResults('accuracy', [
      lane('A', 100, [0.5, 0.7, 0.8], [10, 30, 20]),
      lane('B', 10, [0.5, 0.75, 0.7], [5, 5, 5]),
    ]);
    expect(r.target).toBeCloseTo(0.72, 10);
    const [a, b] = r.rows;
    expect(a!.metric).toBe(0.8);
    expect(a!.msPerStep).toBe(20); // median
    expect(a!.finalLoss).toBe((10 + 9 + 8) / 3);
    expect(a!.stepsToTarget).toBe(4);
    expect(b!.stepsToTarget).toBe(2);
    expect(r.verdicts[0]).toBe('A won on held-out accuracy: 80.0%, ahead of B at 70.0%.');
    expect(r.verdicts[1]).toMatch(/^B reached the target \(72\.0%\) first, at step 2/);
    expect(r.verdicts[2]).toMatch(
      /^B trained the fewest parameters \(10\); B needed the least memory; B took/,
    );
    expect(r.verdicts[3]).toBe('The most accurate trained 10x as many parameters as the smallest.');
  });

  it('ranks perplexity lower-is-better, says ties, and leaves failed lanes out of the ranking', () => {
    const r = raceResults('perplexity', [
      lane('A', 5, [90, 60], [1]),
      lane('B', 50, [90, 60], [1]),
      lane('C', 1, [90, 40], [1], 'failed'),
    ]);
    expect(r.target).toBeCloseTo(66, 10); // 110% of the best final perplexity of the lanes that finished
    expect(r.verdicts[0]).toBe('A and B tied on held-out perplexity at 60.00.');
    expect(r.verdicts.at(-1)).toBe('C failed.');
  });

  it('writes RFC 4180 CSV with the metric named', () => {
    const r = raceResults('accuracy', [lane('LoRA, r=8 "big"', 1, [0.1, 0.2], [1])], 0.15);
    const csv = resultsCsv(r);
    const [head, row] = csv.split('\r\n');
    expect(head).toContain(',accuracyBefore,accuracy,stepsToTarget,');
    expect(row!.startsWith('"LoRA, r=8 ""big""",')).toBe(true);
    expect(csv.endsWith('\r\n')).toBe(true);
  });
});
