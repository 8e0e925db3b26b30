/**
 * `npx tsx scripts/bench/gemm-shapes.ts [--reps 15]`: our SIMD gemm (simd.ts, 4 x 8 tile) with and
 * without relaxed SIMD's fused multiply-add against tf.matMul on tfjs-wasm (XNNPACK), on the
 * products of a peftlab-s LoRA step at batch 8 x 128, in CPU time (process.cpuUsage, median).
 * tf.matMul runs each product the way the model does (transposeB for the input gradient dy W^T and
 * for the tied LM head x E^T); ours reads B with contiguous rows, so such a B is transposed once
 * beforehand (frozen weights) and that transpose is not timed. Sets V8's relaxed SIMD flag itself
 * (Node 20 has it off by default; Chromium 114 and later have it on).
 */
import v8 from 'node:v8';
import { parseArgs } from 'node:util';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const { values: f } = parseArgs({ options: { reps: { type: 'string' } } });
const reps = Number(f.reps ?? 15);

const tf = await import('@tensorflow/tfjs');
const { initNodeBackend } = await import('../../src/lib/backend/node');
const { relaxedSimd } = await import('../../src/lib/kernels/wasm/emit');
const { simdKernels } = await import('../../src/lib/kernels/wasm/simd');
const { offsetOf } = await import('../../src/lib/kernels/wasm/heap');
await initNodeBackend('wasm');
console.log(`backend ${tf.getBackend()}, relaxed SIMD ${relaxedSimd()}`);

interface Internals {
  wasm: { asm?: { memory?: WebAssembly.Memory }; wasmMemory?: WebAssembly.Memory };
  dataIdMap: { get(id: unknown): { memoryOffset: number } };
}
const be = tf.backend() as unknown as Internals;
const memory = (be.wasm.asm?.memory ?? be.wasm.wasmMemory)!;
const plain = simdKernels(memory, false)!;
const fused = simdKernels(memory, true)!;
const ready = { be: { wasm: be.wasm, dataIdMap: be.dataIdMap }, k: plain } as never;

function cpuMs(fn: () => void): number {
  const times: number[] = [];
  fn();
  for (let i = 0; i < reps; i++) {
    const t0 = process.cpuUsage();
    fn();
    const d = process.cpuUsage(t0);
    times.push((d.user + d.system) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1]!;
}

// [M, K, N, transposeB, label]: C[M, N] = A[M, K] B (B [K, N], or [N, K] with transposeB).
const V = 2048;
const shapes: [number, number, number, boolean, string][] = [
  [1024, 96, 288, false, 'c_attn x W'],
  [1024, 96, 96, false, 'attn c_proj x W'],
  [1024, 96, 384, false, 'c_fc x W'],
  [1024, 384, 96, false, 'mlp c_proj x W'],
  [1024, 96, V, true, 'LM head x E^T'],
  [1024, 288, 96, true, 'c_attn dy W^T'],
  [1024, 96, 96, true, 'attn c_proj dy W^T'],
  [1024, 384, 96, true, 'c_fc dy W^T'],
  [1024, 96, 384, true, 'mlp c_proj dy W^T'],
  [1024, V, 96, false, 'LM head dlogits E'],
];
console.log('shape | tf.matMul | ours mul+add | ours fma | GFLOP/s (tf / plain / fma) | max |fma - plain|');
for (const [M, K, N, tB, label] of shapes) {
  const a = tf.randomNormal([M, K]);
  const b = tf.randomNormal(tB ? [N, K] : [K, N]);
  const bKN = tB ? tf.transpose(b) : b;
  const out = tf.zeros([M, N]);
  const outF = tf.zeros([M, N]);
  const tfMs = cpuMs(() => tf.matMul(a, b, false, tB).dispose());
  const run = (k: typeof plain, o: typeof out) => () =>
    k.gemm(
      M,
      N,
      K,
      offsetOf(ready, a),
      4 * K,
      4,
      offsetOf(ready, bKN),
      4 * N,
      offsetOf(ready, o),
      4 * N,
      1,
      0,
      0,
    );
  const pMs = cpuMs(run(plain, out));
  const fMs = cpuMs(run(fused, outF));
  const ref = tf.matMul(a, b, false, tB);
  const d1 = tf.max(tf.abs(tf.sub(out, outF))).dataSync()[0]!;
  const d2 = tf.max(tf.abs(tf.sub(ref, outF))).dataSync()[0]!;
  const gf = (ms: number) => ((2 * M * N * K) / ms / 1e6).toFixed(1);
  console.log(
    `${label} [${M},${K}]x[${K},${N}] | ${tfMs.toFixed(2)} | ${pMs.toFixed(2)} | ${fMs.toFixed(2)} | ${gf(tfMs)} / ${gf(pMs)} / ${gf(fMs)} | ${d1.toExponential(1)} (vs tf ${d2.toExponential(1)})`,
  );
  tf.dispose([a, b, bKN, out, outF, ref]);
}
