import { describe, expect, it } from 'vitest';
import { weightsF16Problem } from './weights-f16-rules';

describe('weightsF16Problem', () => {
  it('allows an adapter method on webgpu', () => {
    for (const methodKind of ['inject', 'prompt', 'prefix']) {
      expect(weightsF16Problem({ backend: 'webgpu', methodKind })).toBeNull();
    }
  });

  it('names the backend off webgpu, with the caller’s way to webgpu', () => {
    for (const backend of ['wasm', 'webgl', 'cpu']) {
      expect(weightsF16Problem({ backend, methodKind: 'inject' })).toBe(
        `f16 weights are for the webgpu backend (its kernels read them in place), and ${backend} is running: pick webgpu, or leave f16 weights off`,
      );
    }
    expect(weightsF16Problem({ backend: null, methodKind: 'inject' })).toMatch(/no backend is running/);
    expect(weightsF16Problem({ backend: 'cpu', methodKind: 'inject', toWebGpu: 'use the Lab' })).toMatch(
      /cpu is running: use the Lab, or leave f16 weights off$/,
    );
  });

  it('refuses full fine-tuning, DoRA and offload on webgpu, each saying what to change', () => {
    expect(weightsF16Problem({ backend: 'webgpu', methodKind: 'full' })).toMatch(
      /^full fine-tuning trains the base weights.*pick an adapter method/,
    );
    expect(weightsF16Problem({ backend: 'webgpu', methodKind: 'inject', useDora: true })).toMatch(
      /^DoRA reads.*turn DoRA off/,
    );
    expect(weightsF16Problem({ backend: 'webgpu', methodKind: 'inject', offload: true })).toMatch(
      /^offload moves f32 base weights.*ZeRO stage to 0/,
    );
  });
});
