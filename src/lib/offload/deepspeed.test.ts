import { describe, it, expect } from 'vitest';
import { PeftConfigError } from '../errors';
import { mapDeepSpeedConfig } from './deepspeed';

describe('DeepSpeed config mapping', () => {
  it('maps a ZeRO-3 offload config as HF examples write it, naming what it ignores', () => {
    const ds = {
      fp16: { enabled: 'auto', loss_scale: 0, initial_scale_power: 16 },
      zero_optimization: {
        stage: 3,
        offload_optimizer: { device: 'cpu', pin_memory: true },
        offload_param: { device: 'nvme', nvme_path: '/local_nvme' },
        overlap_comm: true,
        stage3_prefetch_bucket_size: 'auto',
      },
      activation_checkpointing: { partition_activations: false },
      gradient_accumulation_steps: 4,
      gradient_clipping: 0.5,
      train_micro_batch_size_per_gpu: 'auto',
      wall_clock_breakdown: false,
    };
    const m = mapDeepSpeedConfig(JSON.stringify(ds));
    expect(m.settings).toEqual({
      stage: 3,
      offloadOptimizer: 'cpu',
      offloadParam: 'nvme',
      gradientAccumulationSteps: 4,
      maxGradNorm: 0.5,
      gradientCheckpointing: true,
    });
    expect(m.used.sort()).toEqual(
      [
        'activation_checkpointing',
        'gradient_accumulation_steps',
        'gradient_clipping',
        'zero_optimization.offload_optimizer.device',
        'zero_optimization.offload_param.device',
        'zero_optimization.stage',
      ].sort(),
    );
    const ignored = Object.fromEntries(m.ignored.map((x) => [x.field, x.why]));
    expect(ignored.fp16).toMatch(/float32/);
    expect(ignored['zero_optimization.overlap_comm']).toBeDefined();
    expect(ignored['zero_optimization.offload_optimizer.pin_memory']).toBeDefined();
    expect(ignored.train_micro_batch_size_per_gpu).toMatch(/set in the Lab/);
    expect(ignored.wall_clock_breakdown).toMatch(/not a setting/);
  });

  it('drops offload a stage does not allow, and keeps "auto" values as the run has them', () => {
    const m = mapDeepSpeedConfig({
      zero_optimization: { stage: 2, offload_param: { device: 'cpu' } },
      gradient_accumulation_steps: 'auto',
    });
    expect(m.settings.stage).toBe(2);
    expect(m.settings.offloadParam).toBe('none');
    expect(m.settings.gradientAccumulationSteps).toBe(1);
    expect(m.ignored.map((x) => x.field)).toEqual([
      'gradient_accumulation_steps',
      'zero_optimization.offload_param',
    ]);
  });

  it.each([
    ['{', /not valid JSON/],
    ['[]', /must be a JSON object/],
    ['{"zero_optimization": {"stage": 4}}', /zero_optimization.stage must be 0, 1, 2 or 3, got 4/],
    [
      '{"zero_optimization": {"offload_param": {"device": "gpu"}}}',
      /offload_param.device must be "cpu", "nvme" or "none"/,
    ],
    ['{"gradient_accumulation_steps": 0}', /gradient_accumulation_steps must be a positive integer/],
    ['{"gradient_clipping": -1}', /gradient_clipping must be a number >= 0/],
  ])('refuses %s with the field named', (text, message) => {
    expect(() => mapDeepSpeedConfig(text)).toThrow(PeftConfigError);
    expect(() => mapDeepSpeedConfig(text)).toThrow(message);
  });
});

describe('DeepSpeed config: fuzzing findings (src/lib/fuzz)', () => {
  it('refuses a count past the exact integers (9007199254740993 read as 2^53) and an infinite clipping', () => {
    expect(() => mapDeepSpeedConfig('{"gradient_accumulation_steps": 9007199254740993}')).toThrow(
      /gradient_accumulation_steps must be a positive integer up to 1000000/,
    );
    expect(() => mapDeepSpeedConfig('{"gradient_clipping": 1e999}')).toThrow(PeftConfigError);
  });

  it('names a value nested thousands deep with PeftConfigError, not RangeError from printing it', () => {
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    expect(() => mapDeepSpeedConfig(`{"zero_optimization": {"stage": ${deep}}}`)).toThrow(PeftConfigError);
    expect(() => mapDeepSpeedConfig(`{"gradient_accumulation_steps": ${deep}}`)).toThrow(PeftConfigError);
  });
});
