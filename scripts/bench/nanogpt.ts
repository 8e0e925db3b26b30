/**
 * @genai-fi/nanogpt (the browser GPT trainer built on tfjs) on the tfjs wasm backend in Node.
 *
 * It does not run there as shipped; three shims make it run without changing what it computes:
 * 1. Its bundle carries its own copy of tfjs-core, built for the browser with Node's `util` replaced
 *    by an empty module, so on import in Node its platform setup throws
 *    `this.util.TextEncoder is not a constructor`. IS_NODE is set false for the import, so that copy
 *    registers no platform and the one of our tfjs (shared through the global engine) stays.
 * 2. Its custom ops (QKV, AttentionMask, RMSNorm, Rope, MatMul16, Adam moments...) have kernels
 *    for cpu, webgl and webgpu only; `selectBackend` accepts only those three. Its cpu kernels are
 *    compositions of tfjs ops, so they are registered again for wasm as they are. MatMul16 takes the
 *    webgl composition instead: the cpu one ignores the `activation` attribute (its MLP would lose
 *    its GELU). Those not on cpu (RMSNormNoGamma, Softmax16, Pack16...) stay missing, which is why
 *    the v2 model (RMSNorm without gain) cannot run and the v1 model is used.
 * 3. tfjs-backend-wasm has no UnsortedSegmentSum, the gradient of tf.gather, which its token and
 *    position embeddings need to train: a plain scatter-add on the CPU is registered for wasm.
 *
 * Importing it re-registers tfjs-core's gradients from its bundled copy (the same 4.22.0 code) and
 * registers no wasm kernel of its own; the ones added here have names our engine never calls.
 *
 * Steps are timed through its own training step (`BasicTrainer.trainStep`, what its training loop
 * runs per batch), the trainer coming from its own factory (`training/factory.js`, which the package
 * uses but does not export).
 */
import * as tf from '@tensorflow/tfjs';
import type { Job } from './measure';

type NanoModule = typeof import('@genai-fi/nanogpt');
type NanoModel = InstanceType<NanoModule['models']['NanoGPTV1']>;

/** Its TrainingOptions, narrowed to what the bench sets. */
interface NanoTrainingOptions {
  method: { type: 'pretraining' | 'supervised'; supervised?: 'full' | 'lora' };
  batchSize: number;
  learningRate: number;
  loraConfig?: { rank: number; alpha: number; variables: string[] };
  loraName?: string;
}

/** The parts of its BasicTrainer we call; `trainStep` is protected in its typings. */
interface NanoTrainer {
  optimizer: { applyGradients(grads: unknown): tf.Tensor };
  configure(options: NanoTrainingOptions): void;
  trainStep(state: object, batch: { xs: tf.Tensor; ys: tf.Tensor }): tf.Scalar;
  dispose(): void;
}

type CreateTrainer = (model: NanoModel, tokeniser: unknown, options: NanoTrainingOptions) => NanoTrainer;

export interface NanoSetup {
  ng: NanoModule;
  createTrainer: CreateTrainer;
  version: string;
  /** What had to be done to run it here, one line each. */
  shims: string[];
}

/** Scatter-add of rows of x into numSegments rows (the gradient of gather), read back and done in JS. */
function registerUnsortedSegmentSumForWasm(): boolean {
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) return false;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const { numSegments } = attrs as unknown as { numSegments: number };
      const b = backend as unknown as { readSync(dataId: object): ArrayLike<number> };
      const xv = b.readSync(x.dataId);
      const ids = b.readSync(segmentIds.dataId);
      const inner = x.shape.slice(1).reduce((p, d) => p * d, 1);
      const out = new Float32Array(numSegments * inner);
      for (let i = 0; i < ids.length; i++) {
        const s = ids[i]!;
        if (s < 0 || s >= numSegments) continue; // tf drops out-of-range ids
        const o = s * inner;
        const xi = i * inner;
        for (let j = 0; j < inner; j++) out[o + j]! += xv[xi + j]!;
      }
      return tf.tensor(out, [numSegments, ...x.shape.slice(1)], 'float32');
    },
  });
  return true;
}

/** Imports nanogpt and makes it run on wasm; call only after our own measurements. */
export async function setupNanogpt(): Promise<NanoSetup> {
  if (tf.getBackend() !== 'wasm') throw new Error(`expected the wasm backend, got ${tf.getBackend()}`);
  const shims: string[] = [];
  const cpuBefore = new Set(tf.getKernelsForBackend('cpu').map((k) => k.kernelName));

  const env = tf.env();
  const wasNode = env.getBool('IS_NODE');
  env.set('IS_NODE', false);
  let ng: NanoModule;
  try {
    ng = await import('@genai-fi/nanogpt');
  } finally {
    env.set('IS_NODE', wasNode);
  }
  shims.push(
    "import with tfjs IS_NODE=false: its bundled tfjs-core copy stubs Node's util and throws 'this.util.TextEncoder is not a constructor' otherwise",
  );

  const mainUrl = import.meta.resolve('@genai-fi/nanogpt');
  const factoryUrl = new URL('./training/factory.js', mainUrl).href;
  const factory = (await import(factoryUrl)) as { default: CreateTrainer };
  const pkgUrl = new URL('../package.json', mainUrl);
  const { readFileSync } = await import('node:fs');
  const version = (JSON.parse(readFileSync(pkgUrl, 'utf8')) as { version: string }).version;

  const wasm = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  const webgl = new Map(tf.getKernelsForBackend('webgl').map((k) => [k.kernelName, k]));
  const ported: string[] = [];
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (cpuBefore.has(k.kernelName) || wasm.has(k.kernelName)) continue;
    const src = k.kernelName === 'MatMul16' ? (webgl.get('MatMul16') ?? k) : k;
    tf.registerKernel({ ...src, backendName: 'wasm' });
    ported.push(k.kernelName);
  }
  shims.push(
    `its ${ported.length} custom kernels (cpu/webgl/webgpu only) re-registered for wasm from their tf-op compositions: ${ported.join(', ')} (MatMul16 from webgl: the cpu one drops the activation)`,
  );
  shims.push(
    'model NanoGPTV1 (GELU, learned positions): V2, its default, needs RMSNormNoGamma, which it implements for webgl/webgpu only (no tf-op version to port)',
  );
  if (registerUnsortedSegmentSumForWasm()) {
    shims.push(
      'UnsortedSegmentSum (gather gradient, absent from tfjs-backend-wasm) added as a JS scatter-add, for its trainable embeddings',
    );
  }
  return { ng, createTrainer: factory.default, version, shims };
}

export type NanoConfig = ReturnType<typeof nanoConfig>;

/** A model of our shape: v1 with learned positions and GELU (v2 needs kernels cpu lacks). */
export function nanoConfig(c: {
  vocabSize: number;
  nPositions: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  nInner: number;
}) {
  return {
    modelType: 'GenAI_NanoGPT_v1' as const,
    vocabSize: c.vocabSize,
    blockSize: c.nPositions,
    nLayer: c.nLayer,
    nHead: c.nHead,
    nEmbed: c.nEmbd,
    mlpFactor: c.nInner / c.nEmbd,
    useRope: false,
  };
}

/**
 * Three jobs on one nanogpt model (its variables have fixed names, so a second model in the same
 * engine would clash): forward with no LoRA attached, a full step, and a LoRA step. Before each
 * run its own `configure` switches the model to that job's mode, as its training API does.
 */
export function nanoJobs(
  setup: NanoSetup,
  config: NanoConfig,
  tokens: Int32Array,
  s: { batch: number; seq: number },
  nextBatch: () => { ids: Int32Array; labels: Int32Array },
): { jobs: Job[]; params: number } {
  const { ng, createTrainer } = setup;
  const before = new Set(Object.keys(tf.engine().registeredVariables));
  const model = new ng.models.NanoGPTV1(config);
  // Its CharTokeniser only stands in: the training step never calls the tokeniser.
  const tokeniser = new ng.tokenise.CharTokeniser(config.vocabSize);
  // Its variables are built on the first call: one tiny untimed forward, then count what appeared
  // (its position table, a tfjs-layers Embedding outside its WeightStore, included).
  tf.tidy(() => model.forward({ training: false }, tf.zeros([1, 8], 'int32')));
  let params = 0;
  for (const [name, v] of Object.entries(tf.engine().registeredVariables)) {
    if (!before.has(name)) params += v.size;
  }
  const ids = tf.tensor2d(tokens.subarray(0, s.batch * s.seq), [s.batch, s.seq], 'int32');

  const forward: Job = {
    engine: 'nanogpt',
    what: 'forward + LM logits',
    tokensPerRun: s.batch * s.seq,
    prepare: () => {
      if (model.hasLoRA()) model.detachLoRA();
    },
    run: () => {
      const logits = tf.tidy(() => model.forward({ training: false }, ids));
      logits.dataSync();
      logits.dispose();
    },
    trainedParams: () => null,
    dispose: () => ids.dispose(),
  };

  const trainJob = (what: string, options: NanoTrainingOptions): Job => {
    const trainer = createTrainer(model, tokeniser, options);
    // What its optimizer receives is what trains: its step takes gradients of every trainable
    // variable in the engine, whatever model it belongs to, and drops those with none.
    let trained = 0;
    const opt = trainer.optimizer;
    const apply = opt.applyGradients.bind(opt);
    opt.applyGradients = (grads) => {
      trained = Object.values(grads as Record<string, tf.Tensor>).reduce((n, g) => n + g.size, 0);
      return apply(grads);
    };
    const state = {};
    return {
      engine: 'nanogpt',
      what,
      tokensPerRun: s.batch * s.seq,
      prepare: () => trainer.configure(options),
      run: () => {
        const b = nextBatch();
        const xs = tf.tensor2d(b.ids, [s.batch, s.seq], 'int32');
        const ys = tf.tensor2d(b.labels, [s.batch, s.seq], 'int32');
        const loss = trainer.trainStep(state, { xs, ys });
        loss.dataSync();
        tf.dispose([loss, xs, ys]);
      },
      trainedParams: () => trained,
      dispose: () => trainer.dispose(),
    };
  };

  const jobs = [
    forward,
    // Same LoRA as ours: rank 8, alpha 8, on the fused QKV projection (GPT-2's c_attn).
    trainJob('LoRA step (rank 8, cAttn)', {
      method: { type: 'supervised', supervised: 'lora' },
      batchSize: s.batch,
      learningRate: 1e-3,
      loraName: 'bench',
      loraConfig: { rank: 8, alpha: 8, variables: ['block_*_cAttn'] },
    }),
    trainJob('full train step', { method: { type: 'pretraining' }, batchSize: s.batch, learningRate: 1e-3 }),
  ];
  // The model and tokeniser go with the last job.
  const last = jobs[jobs.length - 1]!;
  const disposeLast = last.dispose;
  last.dispose = () => {
    disposeLast();
    model.dispose();
    tokeniser.destroy();
  };
  return { jobs, params };
}
