import { describe, expect, it } from 'vitest';
import {
  DEFAULT_OFFLOAD_FORM,
  applyDeepSpeed,
  formFromRequest,
  layerParams,
  layerWeightBytes,
  offloadParts,
  AUTO_CHECKPOINT_MS,
  offloadRows,
  offloadTotals,
  typicalStepMs,
} from './offload';
import type { OffloadEvent } from './offload';

const ev = (step: number, pageIns: number, bytesIn: number, stallMs: number, hits: number): OffloadEvent => ({
  step,
  stage: 3,
  backendBytes: 4 * 2 ** 20,
  layerBytes: 2 ** 20,
  layers: ['resident', 'stored'],
  gradients: null,
  optimizerBytes: 0,
  pager: {
    pageIns,
    pageOuts: pageIns,
    bytesIn,
    stallMs,
    prefetchHits: hits,
    misses: 2,
    peakResidentBytes: 0,
    readAheadHits: pageIns - 1,
    peakHeldBytes: 0,
  },
  optimizer: { pageIns: step, pageOuts: step, bytesIn: 0, bytesOut: 2 ** 20 * step, stallMs: 0 },
  ms: 10 * step,
});

describe('offload form and rows', () => {
  it('counts a GPT-2 block as 12C² + 13C parameters (peftlab-s: 3 blocks of width 96)', () => {
    // attention c_attn (C x 3C + 3C), c_proj (C x C + C), MLP (C x 4C + 4C, 4C x C + C), 2 layer norms (4C).
    const c = 96;
    expect(layerParams(c)).toBe(c * 3 * c + 3 * c + c * c + c + c * 4 * c + 4 * c + 4 * c * c + c + 4 * c);
    expect(layerWeightBytes({ nLayer: 3, nEmbd: 96 })).toBe(3 * 111840 * 4);
  });

  it('sends offload only above stage 0 or with gradient checkpointing, a checkpoint only when asked', () => {
    // No checkpoint setting: checkpointed by the clock, so a long run survives a crash by default.
    expect(offloadParts(DEFAULT_OFFLOAD_FORM, 'r')).toEqual({
      checkpoint: { runId: 'r', every: 0, everyMs: AUTO_CHECKPOINT_MS },
    });
    const p = offloadParts({ ...DEFAULT_OFFLOAD_FORM, stage: 3, budgetMB: 0.5, checkpointEvery: 2 }, 'r1');
    expect(p.offload).toEqual({
      stage: 3,
      budgetMB: 0.5,
      prefetch: true,
      policy: 'trace',
      int8: 'auto',
      gradientCheckpointing: false,
      device: 'indexeddb',
    });
    expect(p.checkpoint).toEqual({ runId: 'r1', every: 2 });
    expect(offloadParts({ ...DEFAULT_OFFLOAD_FORM, gradientCheckpointing: true }, 'r').offload?.stage).toBe(
      0,
    );
    expect(formFromRequest({ method: 'lora', config: {}, corpusUrl: '', train: {} as never, ...p })).toEqual({
      ...DEFAULT_OFFLOAD_FORM,
      stage: 3,
      budgetMB: 0.5,
      checkpointEvery: 2,
    });
  });

  it('applies a DeepSpeed config and leaves the form alone on a bad one', () => {
    const ok = applyDeepSpeed(
      DEFAULT_OFFLOAD_FORM,
      JSON.stringify({
        zero_optimization: { stage: 3, offload_param: { device: 'cpu' }, overlap_comm: true },
        fp16: { enabled: true },
        activation_checkpointing: {},
        gradient_clipping: 0.5,
        gradient_accumulation_steps: 4,
      }),
    );
    expect(ok.ok).toBe(true);
    if (!ok.ok) return;
    expect(ok.form.stage).toBe(3);
    expect(ok.form.device).toBe('memory'); // offload_param to "cpu"
    expect(ok.form.gradientCheckpointing).toBe(true);
    expect(ok.train).toEqual({ gradAccumSteps: 4, maxGradNorm: 0.5 });
    expect(ok.mapping.ignored.map((i) => i.field)).toEqual(['zero_optimization.overlap_comm', 'fp16']);
    expect(ok.mapping.used).toContain('gradient_clipping');
    expect(ok.mapping.used).toContain('gradient_accumulation_steps');
    const bad = applyDeepSpeed(DEFAULT_OFFLOAD_FORM, '{"zero_optimization": {"stage": 5}}');
    expect(bad).toEqual({ ok: false, error: expect.stringContaining('zero_optimization.stage') });
    expect(applyDeepSpeed(DEFAULT_OFFLOAD_FORM, '{').ok).toBe(false);
  });

  it("turns the pager's cumulative counters into each step's share", () => {
    const rows = offloadRows([ev(1, 3, 3 * 2 ** 20, 5, 1), ev(2, 7, 7 * 2 ** 20, 6, 4)]);
    expect(rows.map((r) => [r.pageIns, r.pageOuts, r.movedMB, r.stallMs])).toEqual([
      [4, 4, 4, 5],
      [5, 5, 5, 1],
    ]);
    expect(rows[1]!.layerMB).toBe(1);
    const t = offloadTotals(ev(2, 7, 7 * 2 ** 20, 6, 6));
    expect(t.hitRate).toBe(0.75);
    expect(t.pageIns).toBe(9);
    expect(t.readAheadRate).toBe(6 / 7); // of the layers' 7 page-ins (the optimizer's 2 are not read ahead)
    expect(typicalStepMs([100, 9, 11, 10])).toBe(10);
    expect(typicalStepMs([])).toBeNull();
  });
});
