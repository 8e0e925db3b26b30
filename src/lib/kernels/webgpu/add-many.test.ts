/**
 * model/ops.ts's addMany on webgpu: tfjs's webgpu AddN binds every input as a storage buffer, and
 * WebGPU allows 8 per stage, so tf.addN of more inputs builds an invalid pipeline and sums garbage
 * (the gradient norm, AdaLoRA's regulariser). addMany adds in groups of 7 there.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { addMany } from '../../model/ops';
import { onBackend, webgpuForTests } from './testing';

const gpu = await webgpuForTests();

describe.skipIf(!gpu)('addMany on webgpu', () => {
  it.each([1, 7, 8, 20, 50])('sums %i tensors as the cpu does', async (n) => {
    const run = () => () => [addMany(Array.from({ length: n }, (_, i) => tf.fill([3, 5], i + 1)))];
    const [got] = await onBackend('webgpu', run());
    const [want] = await onBackend('cpu', run());
    expect(Array.from(got!)).toEqual(Array.from(want!));
    expect(got![0]).toBe((n * (n + 1)) / 2);
  });
});
