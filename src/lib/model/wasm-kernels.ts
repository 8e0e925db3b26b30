/**
 * Kernels of ours for tfjs-backend-wasm, written in JS over the wasm module's own exports.
 *
 * itemMatMul: a [N, M, K] @ b [N, K, L] -> [N, M, L] as N of the backend's fast 2-D products in ONE
 * tfjs kernel call. tfjs-backend-wasm runs a matmul through XNNPACK only when both operands have
 * batch 1 (batch_mat_mul_impl.cc: any batched product takes slow_batch_matmul, a scalar loop about
 * 20x slower), so attention used to cut every (item, head) out with a copy kernel, multiply, and
 * concatenate: about 3,000 tfjs calls a step at ~20 us of overhead each. Here each item is a VIEW:
 * the C++ side knows a tensor only as (id, size, heap offset) (backend.cc register_tensor), so we
 * register temporary ids at offsets inside the operands' and the output's heap memory, call the
 * exported BatchMatMul on them with batch 1 (the XNNPACK path), and dispose the ids. Disposing the
 * weight view's id also deletes the XNNPACK operator BatchMatMul cached on it (its disposal
 * callback), so nothing outlives the call. No copies, no per-item tfjs ops.
 */
import * as tf from '@tensorflow/tfjs';
import { InternalError } from '../errors';

/** What itemMatMul uses of tfjs-backend-wasm's BackendWasm and its Emscripten module. */
interface WasmBackend {
  wasm: {
    _BatchMatMul(
      aId: number,
      aShape: number,
      aRank: number,
      bId: number,
      bShape: number,
      bRank: number,
      transposeA: number,
      transposeB: number,
      outId: number,
    ): void;
    _malloc(bytes: number): number;
    _free(ptr: number): void;
    HEAP32: Int32Array;
    tfjs: {
      registerTensor(id: number, size: number, memoryOffset: number): void;
      disposeData(id: number): void;
    };
  };
  dataIdMap: { get(dataId: tf.DataId): { id: number; memoryOffset: number } };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

/**
 * The tfjs backend name when it is the wasm backend, else null. The backend chooser (lib/backend)
 * may run wasm under a second name, `wasm-1t` (the same module started without threads), so our
 * wasm kernels are registered under whichever name is running.
 */
export function wasmBackendName(): string | null {
  const name = tf.getBackend();
  return name === 'wasm' || name === 'wasm-1t' ? name : null;
}

const ITEM_MATMUL = 'PeftLabItemMatMul';

function registerItemMatMul(backendName: string): void {
  tf.registerKernel({
    kernelName: ITEM_MATMUL,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const be = backend as unknown as WasmBackend;
      const w = be.wasm;
      const a = inputs.a as tf.TensorInfo;
      const b = inputs.b as tf.TensorInfo;
      const [n, m, k] = a.shape as [number, number, number];
      const l = b.shape[2]!;
      const out = be.makeOutput([n, m, l], 'float32');
      // Offsets, not typed arrays: malloc below may grow (and so replace) the heap's buffer.
      const aOff = be.dataIdMap.get(a.dataId).memoryOffset;
      const bOff = be.dataIdMap.get(b.dataId).memoryOffset;
      const oOff = be.dataIdMap.get(out.dataId).memoryOffset;
      // The two rank-3 shapes BatchMatMul reads (size_t is 32-bit on wasm32): [1, m, k], [1, k, l].
      const shapes = w._malloc(24);
      // Unsigned: past 2 GiB of heap a signed shift gives a negative index.
      w.HEAP32.set([1, m, k, 1, k, l], shapes >>> 2);
      for (let i = 0; i < n; i++) {
        // Fresh ids from the backend's own counter never collide with a live tensor's.
        const aId = be.dataIdNextNumber++;
        const bId = be.dataIdNextNumber++;
        const oId = be.dataIdNextNumber++;
        w.tfjs.registerTensor(aId, m * k, aOff + 4 * i * m * k);
        w.tfjs.registerTensor(bId, k * l, bOff + 4 * i * k * l);
        w.tfjs.registerTensor(oId, m * l, oOff + 4 * i * m * l);
        w._BatchMatMul(aId, shapes, 3, bId, shapes + 12, 3, 0, 0, oId);
        w.tfjs.disposeData(aId);
        w.tfjs.disposeData(bId);
        w.tfjs.disposeData(oId);
      }
      w._free(shapes);
      return out;
    },
  });
}

/**
 * a [N, M, K] @ b [N, K, L] -> [N, M, L] (float32, no gradient of its own: callers wrap it in a
 * customGrad). On wasm one call of our kernel (see above); elsewhere the stock batched matMul.
 */
export function itemMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  // Internal: attention builds both operands; a mismatch is a bug here, not a person's input.
  if (
    a.shape[0] !== b.shape[0] ||
    a.shape[2] !== b.shape[1] ||
    a.dtype !== 'float32' ||
    b.dtype !== 'float32'
  ) {
    throw new InternalError(`itemMatMul of ${a.dtype} [${a.shape}] and ${b.dtype} [${b.shape}]`);
  }
  const wasm = wasmBackendName();
  if (!wasm) return tf.matMul(a, b);
  if (!tf.getKernel(ITEM_MATMUL, wasm)) registerItemMatMul(wasm);
  return tf.engine().runKernel(ITEM_MATMUL, { a, b }, {}) as tf.Tensor3D;
}
