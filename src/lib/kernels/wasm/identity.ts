/**
 * Identity on wasm that shares its input's memory (one more reference) instead of copying it.
 *
 * Why: tfjs saves every tensor a gradient needs through Identity (engine.clone: customGrad's `save`
 * and each stock op's saved inputs and outputs), and tfjs-backend-wasm 4.22's Identity copies the
 * data, so a LoRA step copied about 60 tensors (10 ms of a 190 ms step on peftlab-s) only to keep
 * them. The cpu and webgl backends already share (incRef), as wasm's own Reshape does: tensor data
 * is never written after its kernel returns (a Variable's assign takes a new dataId), so a shared
 * copy cannot tell the difference.
 */
import type * as tf from '@tensorflow/tfjs';
import { heapOf, onWasm } from './heap';

export function shareIdentityOnWasm(): void {
  onWasm('Identity', ({ inputs, backend }) => {
    const x = inputs.x as tf.TensorInfo;
    heapOf(backend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
}
