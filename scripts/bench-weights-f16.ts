/**
 * `npm run bench:webgpu:f16`: weightsF16 (frozen linear-layer matrices as f16 halves, model/
 * decoder-weights.ts packWeightsF16) against f32 on peftlab-l, on whatever WebGPU adapter this Node
 * process finds: LoRA steps (r 8, c_attn) through our kernels, ms/step and GPU memory.
 *
 * Each configuration runs in a process of its own (this script with --one f32|f16): tfjs's webgpu
 * buffer manager keeps freed buffers for reuse and never returns them, so two configurations in
 * one process would share one high-water mark. The model is packed right after loading, before any
 * forward: a weight tensor is uploaded to the GPU on first use, so its f32 copy is never allocated.
 *
 * Memory columns: tensor bytes (tf.memory().numBytes, every live tensor), GPU bytes in use by live
 * tensors, and GPU bytes allocated (buffers created, freed ones kept in the pool: the high water).
 *
 *   --steps N (3 timed after 1 untimed)  --batch B --seq T (1 x 32 on a software adapter, else 8 x 128)
 */
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { describeAdapter, initNodeWebGpu } from '../src/lib/kernels/webgpu/node-webgpu';
import { loadGpt2 } from '../src/lib/model/load';
import { METHODS } from '../src/lib/peft/registry';
import type { PeftConfigBase } from '../src/lib/peft/types';
import { Trainer } from '../src/lib/train/trainer';

const { values: args } = parseArgs({
  options: {
    one: { type: 'string' },
    steps: { type: 'string', default: '3' },
    batch: { type: 'string' },
    seq: { type: 'string' },
  },
});

interface Mem {
  tensorBytes: number;
  gpuInUse: number;
  gpuAllocated: number;
}
interface One {
  weights: 'f32' | 'f16';
  adapter: string;
  software: boolean;
  batch: number;
  seq: number;
  ms: number;
  losses: number[];
  afterLoad: Mem;
  afterSteps: Mem;
  freedByPacking: number;
}

function mem(): Mem {
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number; numBytesAllocatedInGPU?: number };
  return {
    tensorBytes: m.numBytes,
    gpuInUse: m.numBytesInGPU ?? 0,
    gpuAllocated: m.numBytesAllocatedInGPU ?? 0,
  };
}

async function one(weights: 'f32' | 'f16'): Promise<One> {
  const r = await initNodeWebGpu();
  if (!r.ok) throw new Error(`bench:webgpu:f16 cannot run: ${r.reason}`);
  const software = r.gpu.software;
  const B = Number(args.batch ?? (software ? 1 : 8));
  const T = Number(args.seq ?? (software ? 32 : 128));
  const dir = 'public/models/peftlab-l';
  const model = loadGpt2({
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
    source: dir,
  });
  const freedByPacking = weights === 'f16' ? await model.packWeightsF16() : 0;
  const afterLoad = mem();
  const m = METHODS.lora!;
  const c = { ...m.defaults('CAUSAL_LM'), r: 8, loraAlpha: 16, targetModules: ['c_attn'] } as PeftConfigBase;
  const adapter = m.create(model, c, 3);
  const V = model.config.vocabSize;
  const stream = Int32Array.from({ length: B * T * 8 + 1 }, (_, i) => (i * 7919 + (i >> 5) * 131) % V);
  const t = new Trainer(model, adapter, stream, {
    steps: 100,
    lr: 1e-4,
    warmupSteps: 0,
    batchSize: B,
    seqLen: T,
    seed: 1,
  });
  const losses = [(await t.trainStep()).loss];
  const times: number[] = [];
  for (let i = 0; i < Math.max(1, Number(args.steps)); i++) {
    const s = await t.trainStep();
    losses.push(s.loss);
    times.push(s.ms);
  }
  times.sort((a, b) => a - b);
  const afterSteps = mem();
  t.dispose();
  adapter.dispose();
  model.dispose();
  return {
    weights,
    adapter: describeAdapter(r.gpu),
    software,
    batch: B,
    seq: T,
    ms: times[Math.floor(times.length / 2)]!,
    losses,
    afterLoad,
    afterSteps,
    freedByPacking,
  };
}

const MiB = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;

if (args.one === 'f32' || args.one === 'f16') {
  // The child: one configuration, its result as the last line of stdout.
  console.log(JSON.stringify(await one(args.one)));
} else {
  const passOn = ['steps', 'batch', 'seq'].flatMap((k) => {
    const v = args[k as 'steps' | 'batch' | 'seq'];
    return v ? [`--${k}`, v] : [];
  });
  const run = (w: string): One => {
    const out = execFileSync(
      process.execPath,
      [...process.execArgv, process.argv[1]!, '--one', w, ...passOn],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    return JSON.parse(out.trim().split('\n').pop()!) as One;
  };
  const results = [run('f32'), run('f16')];
  const [a] = results;
  console.log(`adapter: ${a!.adapter}`);
  console.log(
    `peftlab-l, LoRA r 8 on c_attn, batch ${a!.batch} x ${a!.seq}, our kernels, median of the timed steps\n`,
  );
  console.log(
    'weights  ms/step   tensor bytes after load   GPU in use after steps   GPU allocated after steps   losses',
  );
  for (const r of results) {
    console.log(
      `${r.weights.padEnd(8)} ${r.ms.toFixed(0).padStart(7)}   ${MiB(r.afterLoad.tensorBytes).padStart(23)}   ${MiB(r.afterSteps.gpuInUse).padStart(22)}   ${MiB(r.afterSteps.gpuAllocated).padStart(25)}   ${r.losses.map((l) => l.toFixed(4)).join(' ')}`,
    );
  }
  const f16 = results[1]!;
  console.log(
    `\npacking freed ${MiB(f16.freedByPacking)} of f32 weights (the linear layers' matrices, halved)`,
  );
  if (a!.software) console.log(`these timings are SwiftShader's on the CPU, not a GPU's.`);
}
