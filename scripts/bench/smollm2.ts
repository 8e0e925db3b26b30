/**
 * SmolLM2-135M's shape in Node (HuggingFaceTB/SmolLM2-135M's config.json: a Llama with 30 layers,
 * 576 wide, 9 query heads sharing 3 key/value heads, SwiGLU 1536, vocabulary 49152, tied head):
 * random weights made here, never committed, written as BF16 safetensors (the real checkpoint's
 * dtype) with HF's key names and nn.Linear's [out, in] layout into a temp folder; then the loading
 * path the CLI takes (read the file, loadModel) is timed, memory read, and LoRA with PEFT's default
 * targets for llama (q_proj, v_proj, r 8) trains a few steps on random token ids. The folder is
 * deleted at the end. Then the same LoRA run again under ZeRO stage 3 with gradient checkpointing:
 * the frozen layers paged to files in the temp folder (DeepSpeed's NVMe offload) under a budget of a
 * few layers, AdamW's state and the accumulated gradients paged too; its first losses must equal the
 * resident run's (same adapter seed, same batches), or the bench fails.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/lib/io/safetensors';
import type { TensorToWrite } from '../../src/lib/io/safetensors';
import { countParameters, parseModelConfig } from '../../src/lib/model/family';
import type { LlamaConfig } from '../../src/lib/model/llama-config';
import { expectedLlamaWeightShapes } from '../../src/lib/model/llama-config';
import { loadModel } from '../../src/lib/model/load';
import { FilePageStore } from '../../src/lib/offload/file-page-store';
import { OffloadSession } from '../../src/lib/offload/session';
import { methodByCliName } from '../../src/lib/peft/registry';
import { countTrainable } from '../../src/lib/peft/state';
import type { PeftConfigBase } from '../../src/lib/peft/types';
import type { DecoderModel } from '../../src/lib/model/decoder';
import { withFamilyDefaults } from '../../src/lib/train/plan';
import { Trainer } from '../../src/lib/train/trainer';
import { Rng } from '../../src/lib/util/rng';
import { fmt } from './report';

/** HuggingFaceTB/SmolLM2-135M's config.json, the fields that set its shape. */
export const SMOLLM2_135M_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  rope_scaling: null,
  tie_word_embeddings: true,
  attention_bias: false,
  mlp_bias: false,
  vocab_size: 49152,
  bos_token_id: 0,
  eos_token_id: 0,
};
/** SmolLM2-135M's parameter count (lm_head tied to embed_tokens). */
export const SMOLLM2_135M_PARAMS = 134_515_008;

export interface SmolLm2Report {
  params: number;
  fileBytes: number;
  /** Reading model.safetensors from disk (page cache: it was just written). */
  readMs: number;
  /** loadModel: header parse, shape checks, BF16 -> F32, transposes, upload into tfjs tensors. */
  loadMs: number;
  /** tf.memory() bytes after loading (the weights as float32). */
  tfBytes: number;
  rssBytes: number;
  lora: {
    trainable: number;
    batch: number;
    seq: number;
    warmup: number;
    stepMs: number[];
    medianMs: number;
    tokensPerSec: number;
    losses: number[];
  };
  /** The same LoRA run under stage 3 (layers paged to files) with gradient checkpointing. */
  offloaded: {
    budgetMB: number;
    /** One layer's frozen weights (float32). */
    layerBytes: number;
    /** OffloadSession.start: every layer written to its page files and freed. */
    pageOutMs: number;
    /** tf.memory() bytes once the layers left (embedding, norms and the budget's layers stay). */
    tfBytesPaged: number;
    /** Most tf.memory() bytes seen after a step. */
    tfBytesPeak: number;
    peakResidentLayerBytes: number;
    stepMs: number[];
    medianMs: number;
    tokensPerSec: number;
    stallMs: number;
    pageIns: number;
    losses: number[];
    /** Largest |loss - resident loss| over the steps. */
    maxLossDiff: number;
  };
}

export interface SmolLm2Options {
  batch?: number;
  seq?: number;
  warmup?: number;
  steps?: number;
  /** Stage 3's budget for resident frozen layers, MB (default 64: four of SmolLM2-135M's layers). */
  budgetMB?: number;
}

/** Random weights of the config's shape as HF names them; norms at 1, the rest N(0, 0.02)-ish. */
export function randomCheckpoint(c: LlamaConfig, rng: Rng): Uint8Array {
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, shape] of expectedLlamaWeightShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('norm.weight')) data.fill(1);
    // A sum of three uniforms: close enough to a normal, and fast for 135M values.
    else for (let i = 0; i < n; i++) data[i] = (rng.next() + rng.next() + rng.next() - 1.5) * 0.04;
    // Block linears are held [in, out]; nn.Linear stores [out, in].
    const stored =
      name.startsWith('layers.') && name.endsWith('_proj.weight') ? [shape[1]!, shape[0]!] : shape;
    const key = name === 'lm_head.weight' ? name : `model.${name}`;
    tensors.set(key, { dtype: 'BF16', shape: stored, data });
  }
  return writeSafetensors(tensors, { format: 'pt' });
}

export async function runSmolLm2(opts: SmolLm2Options = {}): Promise<SmolLm2Report> {
  const batch = opts.batch ?? 1;
  const seq = opts.seq ?? 128;
  const warmup = opts.warmup ?? 1;
  const steps = opts.steps ?? 3;
  const config = parseModelConfig(SMOLLM2_135M_CONFIG) as LlamaConfig;
  const params = countParameters(config);
  if (params !== SMOLLM2_135M_PARAMS) {
    throw new Error(`SmolLM2-135M's shape counts ${params} parameters, not ${SMOLLM2_135M_PARAMS}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'peft-lab-smollm2-'));
  try {
    writeFileSync(join(dir, 'config.json'), JSON.stringify(SMOLLM2_135M_CONFIG));
    writeFileSync(join(dir, 'model.safetensors'), randomCheckpoint(config, new Rng(135)));
    const fileBytes = statSync(join(dir, 'model.safetensors')).size;

    const t0 = performance.now();
    const bytes = new Uint8Array(readFileSync(join(dir, 'model.safetensors')));
    const readMs = performance.now() - t0;
    const t1 = performance.now();
    const model = loadModel({
      config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
      weights: bytes,
      source: 'SmolLM2-135M (random)',
    });
    const loadMs = performance.now() - t1;
    const tfBytes = tf.memory().numBytes;
    const rssBytes = process.memoryUsage().rss;

    const rng = new Rng(1234);
    const stream = Int32Array.from({ length: Math.max(1 << 14, 4 * batch * seq) }, () =>
      rng.int(config.vocabSize),
    );
    const resident = await loraRun(model, stream, { batch, seq, warmup, steps }, null);
    const stepMs = resident.stepMs;
    const losses = resident.losses;
    const trainable = resident.trainable;

    const budgetMB = opts.budgetMB ?? 64;
    let layerBytes = 0;
    for (const [name, v] of model.weights) if (name.startsWith('layers.0.')) layerBytes += 4 * v.size;
    const offloaded = await loraRun(model, stream, { batch, seq, warmup, steps }, { dir, budgetMB });
    let maxLossDiff = 0;
    for (let i = 0; i < losses.length; i++)
      maxLossDiff = Math.max(maxLossDiff, Math.abs(offloaded.losses[i]! - losses[i]!));
    // Paging and recomputation change where the numbers live, not what they are.
    if (!(maxLossDiff < 1e-3)) {
      throw new Error(
        `stage 3 with checkpointing gave losses ${offloaded.losses.join(', ')}; resident ${losses.join(', ')}`,
      );
    }
    model.dispose();
    const medianMs = median(stepMs);
    return {
      params,
      fileBytes,
      readMs,
      loadMs,
      tfBytes,
      rssBytes,
      lora: {
        trainable,
        batch,
        seq,
        warmup,
        stepMs,
        medianMs,
        tokensPerSec: (batch * seq * 1000) / medianMs,
        losses,
      },
      offloaded: {
        budgetMB,
        layerBytes,
        pageOutMs: offloaded.session!.pageOutMs,
        tfBytesPaged: offloaded.session!.tfBytesPaged,
        tfBytesPeak: offloaded.session!.tfBytesPeak,
        peakResidentLayerBytes: offloaded.session!.peakResidentLayerBytes,
        stepMs: offloaded.stepMs,
        medianMs: median(offloaded.stepMs),
        tokensPerSec: (batch * seq * 1000) / median(offloaded.stepMs),
        stallMs: offloaded.session!.stallMs,
        pageIns: offloaded.session!.pageIns,
        losses: offloaded.losses,
        maxLossDiff,
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * LoRA with PEFT's llama defaults (r 8 on q_proj, v_proj) for warmup + steps steps; with `offload`,
 * under ZeRO stage 3 (layers paged to files in `dir`) and gradient checkpointing.
 */
async function loraRun(
  model: DecoderModel,
  stream: Int32Array,
  run: { batch: number; seq: number; warmup: number; steps: number },
  offload: { dir: string; budgetMB: number } | null,
) {
  const lora = methodByCliName('lora');
  const cfg = { ...withFamilyDefaults(lora.defaults('CAUSAL_LM'), model), r: 8 } as PeftConfigBase;
  lora.validate(cfg as never, model);
  const adapter = lora.create(model, cfg as never, 7, { tokenize: () => [] });
  const t0 = performance.now();
  const session = offload
    ? await OffloadSession.start(
        model,
        adapter,
        {
          stage: 3,
          budgetMB: offload.budgetMB,
          prefetch: true,
          policy: 'trace',
          int8: false,
          gradientCheckpointing: true,
          device: 'indexeddb',
        },
        (kind) => Promise.resolve(new FilePageStore(join(offload.dir, `pages-${kind}`))),
      )
    : null;
  const pageOutMs = performance.now() - t0;
  const tfBytesPaged = tf.memory().numBytes;
  const trainer = new Trainer(model, adapter, stream, {
    steps: run.warmup + run.steps,
    lr: 1e-4,
    batchSize: run.batch,
    seqLen: run.seq,
    seed: 3,
    warmupSteps: 0,
    gradients: session?.gradients(),
  });
  session?.attach(trainer);
  const stepMs: number[] = [];
  const losses: number[] = [];
  let tfBytesPeak = 0;
  try {
    for (let i = 0; i < run.warmup + run.steps; i++) {
      const t = performance.now();
      const st = await trainer.trainStep(); // its loss is read back: the step has finished
      if (i >= run.warmup) stepMs.push(performance.now() - t);
      losses.push(st.loss);
      tfBytesPeak = Math.max(tfBytesPeak, tf.memory().numBytes);
    }
    const snap = session?.snapshot(run.warmup + run.steps, trainer);
    return {
      trainable: countTrainable(adapter),
      stepMs,
      losses,
      session:
        session && snap
          ? {
              pageOutMs,
              tfBytesPaged,
              tfBytesPeak,
              peakResidentLayerBytes: snap.pager!.peakResidentBytes,
              stallMs: snap.pager!.stallMs,
              pageIns: snap.pager!.pageIns,
            }
          : null,
    };
  } finally {
    await session?.end();
    trainer.dispose();
    adapter.dispose();
  }
}

export function smolLm2Text(r: SmolLm2Report): string {
  const mb = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
  return [
    `SmolLM2-135M's shape (HuggingFaceTB/SmolLM2-135M config, random weights made here, not committed)`,
    `  Llama, 30 layers, 576 wide, 9 heads / 3 key-value heads, SwiGLU 1536, vocab 49152, tied; ${fmt(r.params)} params`,
    `  load      model.safetensors ${mb(r.fileBytes)} (BF16): read ${r.readMs.toFixed(0)} ms, loadModel ${r.loadMs.toFixed(0)} ms`,
    `  memory    tfjs ${mb(r.tfBytes)} after load (float32 weights), process RSS ${mb(r.rssBytes)}`,
    `  LoRA      r 8 on q_proj, v_proj (PEFT's llama default), ${fmt(r.lora.trainable)} trainable; batch ${r.lora.batch} x ${r.lora.seq}: ` +
      `median ${r.lora.medianMs.toFixed(0)} ms/step over ${r.lora.stepMs.length} steps (after ${r.lora.warmup} warm-up) = ${r.lora.tokensPerSec.toFixed(0)} tokens/s`,
    `  offload   ZeRO stage 3 + gradient checkpointing, layers paged to files under ${r.offloaded.budgetMB} MB ` +
      `(one layer ${mb(r.offloaded.layerBytes)}): page-out ${r.offloaded.pageOutMs.toFixed(0)} ms, ` +
      `tfjs ${mb(r.offloaded.tfBytesPaged)} paged, ${mb(r.offloaded.tfBytesPeak)} at most after a step, ` +
      `layers resident at most ${mb(r.offloaded.peakResidentLayerBytes)}`,
    `            same LoRA: median ${r.offloaded.medianMs.toFixed(0)} ms/step = ${r.offloaded.tokensPerSec.toFixed(0)} tokens/s; ` +
      `${r.offloaded.pageIns} page-ins, ${r.offloaded.stallMs.toFixed(0)} ms waiting for pages over ${r.offloaded.losses.length} steps; ` +
      `losses within ${r.offloaded.maxLossDiff.toExponential(1)} of resident`,
  ].join('\n');
}
