/**
 * `npm run bench:webgpu`: our WGSL kernels against the stock tfjs composition they replace, on
 * whatever WebGPU adapter this Node process finds (the `webgpu` package: a hardware GPU through the
 * system's Vulkan driver, else SwiftShader from chromium, which is the CPU and not a GPU). Prints
 * the adapter, the matmul rate it reaches, then per kernel: ms forward, ms forward + backward, and
 * dispatches, stock vs ours. Every timing ends with a readback, so queued work is included.
 *
 *   --reps N (3 timed runs after 1 untimed)  --size N (1: shapes sized for SwiftShader, about a
 *   minute; 4 or 8 on a real GPU)  --json FILE (the same numbers as JSON)
 *
 * Then AdamW over a LoRA adapter's tensors (one optimizer step: ms and dispatches, stock
 * train/adamw.ts vs FusedAdamW) and the tied LM head with cross-entropy.
 *
 * Then whole training steps through the model and trainer (bench/webgpu-steps.ts): LoRA and full
 * steps on peftlab-l and GPT-2 small's shape, a row per registered method, and nanogpt's LoRA step.
 */
import * as tf from '@tensorflow/tfjs';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { causalAttention, causalAttentionStock } from '../src/lib/kernels/webgpu/attention';
import { biasGelu, biasGeluStock } from '../src/lib/kernels/webgpu/bias-gelu';
import { newVariable } from '../src/lib/model/ops';
import { AdamW } from '../src/lib/train/adamw';
import { FusedAdamW } from '../src/lib/kernels/webgpu/adamw';
import { countDispatches } from '../src/lib/kernels/webgpu/dispatch-counter';
import { lmHeadCrossEntropy, lmHeadCrossEntropyStock } from '../src/lib/kernels/webgpu/lm-head';
import { layerNorm, layerNormStock } from '../src/lib/kernels/webgpu/layer-norm';
import { loraLinear, loraLinearStock, registerLoraLinear } from '../src/lib/kernels/webgpu/lora-linear';
import { describeAdapter, initNodeWebGpu } from '../src/lib/kernels/webgpu/node-webgpu';
import { fusedMatMul, pickTile } from '../src/lib/kernels/webgpu/program';
import { benchSteps } from './bench/webgpu-steps';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    size: { type: 'string', default: '1' },
    json: { type: 'string' },
  },
});
const reps = Math.max(1, Number(args.reps));
const size = Math.max(1, Math.round(Number(args.size)));

/** Median ms of fn over reps runs after one warm-up (which also compiles the shaders). */
async function timeMs(fn: () => tf.Tensor[]): Promise<number> {
  const once = async () => {
    const t0 = performance.now();
    const outs = fn();
    await Promise.all(outs.map((t) => t.data()));
    const ms = performance.now() - t0;
    tf.dispose(outs);
    return ms;
  };
  await once();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) times.push(await once());
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

async function dispatches(fn: () => tf.Tensor[]): Promise<number> {
  const { result, counts } = await countDispatches(fn);
  await Promise.all(result.map((t) => t.data()));
  tf.dispose(result);
  return counts.dispatches;
}

function rand(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed);
}

interface Row {
  kernel: string;
  shape: string;
  stockFwdMs: number;
  oursFwdMs: number;
  stockStepMs: number;
  oursStepMs: number;
  stockFwdDispatches: number;
  oursFwdDispatches: number;
  stockStepDispatches: number;
  oursStepDispatches: number;
}

/** Times forward alone and forward + backward (gradients of every differentiable input). */
async function compare(
  kernel: string,
  shape: string,
  inputs: tf.Tensor[],
  stock: (...x: tf.Tensor[]) => tf.Tensor,
  ours: (...x: tf.Tensor[]) => tf.Tensor,
): Promise<Row> {
  const fwd = (f: typeof stock) => () => [f(...inputs)];
  const step = (f: typeof stock) => () => tf.grads((...x: tf.Tensor[]) => f(...x))(inputs);
  const row: Row = {
    kernel,
    shape,
    stockFwdDispatches: await dispatches(fwd(stock)),
    oursFwdDispatches: await dispatches(fwd(ours)),
    stockStepDispatches: await dispatches(step(stock)),
    oursStepDispatches: await dispatches(step(ours)),
    stockFwdMs: await timeMs(fwd(stock)),
    oursFwdMs: await timeMs(fwd(ours)),
    stockStepMs: await timeMs(step(stock)),
    oursStepMs: await timeMs(step(ours)),
  };
  console.log(
    `${kernel.padEnd(16)} ${shape.padEnd(28)} fwd ${row.stockFwdMs.toFixed(1).padStart(8)} / ${row.oursFwdMs.toFixed(1).padStart(8)} ms` +
      `  fwd+bwd ${row.stockStepMs.toFixed(1).padStart(8)} / ${row.oursStepMs.toFixed(1).padStart(8)} ms` +
      `  dispatches fwd ${row.stockFwdDispatches}/${row.oursFwdDispatches}, fwd+bwd ${row.stockStepDispatches}/${row.oursStepDispatches}`,
  );
  return row;
}

/**
 * One AdamW step over a LoRA adapter's tensors on a 4-layer model of width C (A [C, 8] and
 * B [8, 3C] per layer's c_attn), with a clip scale as the trainer applies: ms and dispatches.
 */
async function benchAdamW(C: number): Promise<{
  tensors: number;
  stockMs: number;
  oursMs: number;
  stockDispatches: number;
  oursDispatches: number;
}> {
  const shapes = Array.from({ length: 4 }, () => [
    [C, 8],
    [8, 3 * C],
  ]).flat();
  const make = () => new Map(shapes.map((s, i) => [`p${i}`, newVariable(rand(s, 20 + i), true)]));
  const grads = new Map(shapes.map((s, i) => [`p${i}`, rand(s, 40 + i)]));
  const scale = tf.scalar(0.5);
  const measure = async (fused: boolean) => {
    const vars = make();
    const opt = fused ? new FusedAdamW({ weightDecay: 0.01 }) : new AdamW({ weightDecay: 0.01 });
    const step = async () => {
      if (fused) (opt as FusedAdamW).apply(vars, grads, 1e-3, undefined, scale);
      else {
        const scaled = new Map([...grads].map(([k, g]) => [k, tf.mul(g, scale)]));
        opt.apply(vars, scaled, 1e-3);
        tf.dispose([...scaled.values()]);
      }
      await Promise.all([...vars.values()].map((v) => v.data()));
    };
    await step(); // allocates the moments and compiles the shaders
    const { counts } = await countDispatches(step);
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await step();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    opt.dispose();
    tf.dispose([...vars.values()]);
    return { ms: times[Math.floor(times.length / 2)]!, dispatches: counts.dispatches };
  };
  const stock = await measure(false);
  const ours = await measure(true);
  tf.dispose([...grads.values(), scale]);
  console.log(
    `${'adamw'.padEnd(16)} ${`${shapes.length} LoRA tensors, clip scale`.padEnd(28)} step ${stock.ms.toFixed(1).padStart(8)} / ${ours.ms.toFixed(1).padStart(8)} ms` +
      `  dispatches ${stock.dispatches}/${ours.dispatches}`,
  );
  return {
    tensors: shapes.length,
    stockMs: stock.ms,
    oursMs: ours.ms,
    stockDispatches: stock.dispatches,
    oursDispatches: ours.dispatches,
  };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const r = await initNodeWebGpu();
  if (!r.ok) {
    console.error(`bench:webgpu cannot run: ${r.reason}`);
    process.exit(1);
  }
  const gpu = r.gpu;
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  console.log(`adapter: ${describeAdapter(gpu)}`);
  console.log(`found through ${gpu.how}; shader-f16: ${gpu.features.includes('shader-f16') ? 'yes' : 'no'}`);
  console.log(`reps ${reps} (median), size ${size}\n`);

  // Matmul rate: stock tfjs's best matmul against our register-blocked product (the LoRA kernels'
  // core, program.ts fusedMatMul), square and in the LoRA step's own shapes.
  registerLoraLinear();
  const peak: { shape: string; stockGflops: number; oursGflops: number }[] = [];
  console.log('matmul [M, K] x [K, N], GFLOP/s (stock tfjs / ours, the tile ours picked)');
  const shapes: [number, number, number][] = [
    [128, 128, 128],
    [256 * size, 256 * size, 256 * size],
    [512 * size, 512, 512],
    [128 * size, 128, 384],
    [128 * size, 128, 8],
  ];
  for (const [m, k, n] of shapes) {
    const a = rand([m, k], 1);
    const b = rand([k, n], 2);
    const flops = 2 * m * n * k;
    const stockMs = await timeMs(() => [tf.matMul(a, b)]);
    const oursMs = await timeMs(() => [
      tf.engine().makeTensorFromTensorInfo(
        fusedMatMul(tf.backend() as WebGPUBackend, {
          a1: { t: a, transpose: false },
          b1: { t: b, transpose: false },
          alpha1: 1,
        }),
      ),
    ]);
    const p = {
      shape: `${m}x${k}x${n}`,
      stockGflops: flops / stockMs / 1e6,
      oursGflops: flops / oursMs / 1e6,
    };
    peak.push(p);
    console.log(
      `  ${p.shape.padEnd(14)} ${p.stockGflops.toFixed(3)} / ${p.oursGflops.toFixed(3)} (${pickTile(m, n)})`,
    );
    tf.dispose([a, b]);
  }

  console.log(
    '\nkernel           shape                        ms stock / ours (median)            dispatches stock/ours',
  );
  const rows: Row[] = [];
  // peftlab-s-like widths, 128 tokens times size: d 128, MLP 512, 4 heads of 32, LoRA r 8.
  const N = 128 * size;
  const C = 128;
  {
    const w = rand([C, 3 * C], 3);
    const bias = rand([3 * C], 4);
    const scale = 2;
    rows.push(
      await compare(
        'loraLinear',
        `x [${N},${C}] W [${C},${3 * C}] r 8`,
        [rand([N, C], 5), rand([C, 8], 6), rand([8, 3 * C], 7)],
        (x, a, b) =>
          loraLinearStock(
            x as tf.Tensor2D,
            w as tf.Tensor2D,
            bias as tf.Tensor1D,
            a as tf.Tensor2D,
            b as tf.Tensor2D,
            scale,
          ),
        (x, a, b) =>
          loraLinear(
            x as tf.Tensor2D,
            w as tf.Tensor2D,
            bias as tf.Tensor1D,
            a as tf.Tensor2D,
            b as tf.Tensor2D,
            scale,
          ),
      ),
    );
  }
  rows.push(
    await compare(
      'biasGelu',
      `x [${N},${4 * C}] b [${4 * C}]`,
      [rand([N, 4 * C], 8), rand([4 * C], 9)],
      (x, b) => biasGeluStock(x as tf.Tensor2D, b as tf.Tensor1D),
      (x, b) => biasGelu(x as tf.Tensor2D, b as tf.Tensor1D),
    ),
  );
  rows.push(
    await compare(
      'layerNorm',
      `x [${N},${C}]`,
      [rand([N, C], 10), tf.add(rand([C], 11), 1), rand([C], 12)],
      (x, g, b) => layerNormStock(x!, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5),
      (x, g, b) => layerNorm(x!, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5),
    ),
  );
  {
    const [B, H, T, D] = [size, 4, 128, 32];
    const shape = [B, H, T, D];
    rows.push(
      await compare(
        'causalAttention',
        `q,k,v [${shape}]`,
        [rand(shape, 13), rand(shape, 14), rand(shape, 15)],
        (q, k, v) =>
          causalAttentionStock(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, 1 / Math.sqrt(D)),
        (q, k, v) => causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, 1 / Math.sqrt(D)),
      ),
    );
  }
  {
    // The tied LM head over a 1024-token vocabulary: GPT-2's 50257 would take minutes on SwiftShader.
    const V = 1024;
    const e = rand([V, C], 16);
    const labels = Int32Array.from({ length: N }, (_, i) => (i % 7 === 0 ? -100 : (i * 131) % V));
    rows.push(
      await compare(
        'lmHeadCE',
        `h [${N},${C}] E [${V},${C}]`,
        [rand([N, C], 17)],
        (h) => lmHeadCrossEntropyStock(h as tf.Tensor2D, e as tf.Tensor2D, labels),
        (h) => lmHeadCrossEntropy(h as tf.Tensor2D, e as tf.Tensor2D, labels),
      ),
    );
  }
  const total = (f: (r: Row) => number) => rows.reduce((s, r) => s + f(r), 0);
  const adamw = await benchAdamW(C);
  console.log(
    `\nall five, forward + backward: ${total((r) => r.stockStepDispatches)} dispatches stock, ${total((r) => r.oursStepDispatches)} ours ` +
      `(${(total((r) => r.stockStepDispatches) / total((r) => r.oursStepDispatches)).toFixed(1)}x fewer); ` +
      `with the AdamW step: ${total((r) => r.stockStepDispatches) + adamw.stockDispatches} stock, ` +
      `${total((r) => r.oursStepDispatches) + adamw.oursDispatches} ours`,
  );
  // The peak a step is measured against: the fastest product either side reached above.
  const peakGflops = Math.max(...peak.map((p) => Math.max(p.stockGflops, p.oursGflops)));
  console.log(`\nmatmul peak measured on this adapter: ${peakGflops.toFixed(3)} GFLOP/s`);
  const steps = await benchSteps({ software: gpu.software, peakGflops, reps });
  if (gpu.software) console.log(`\nthese timings are SwiftShader's on the CPU, not a GPU's.`);
  console.log(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (args.json)
    writeFileSync(
      args.json,
      JSON.stringify({ adapter: gpu, reps, size, peak, peakGflops, rows, adamw, steps }, null, 2),
    );
}

await main();
