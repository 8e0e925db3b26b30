/**
 * SmolLM2-135M's shape in Node (HuggingFaceTB/SmolLM2-135M's config.json: a Llama with 30 layers,
 * 576 wide, 9 query heads sharing 3 key/value heads, SwiGLU 1536, vocabulary 49152, tied head):
 * random weights made here, never committed, written as BF16 safetensors (the real checkpoint's
 * dtype) with HF's key names and nn.Linear's [out, in] layout into a temp folder; then the loading
 * path the CLI takes (read the file, loadModel) is timed, memory read, and LoRA with PEFT's default
 * targets for llama (q_proj, v_proj, r 8) trains a few steps on random token ids. The folder is
 * deleted at the end. Gradient checkpointing and stage-3 offload run on GPT-2 only for now, so they
 * are not measured here.
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
import { methodByCliName } from '../../src/lib/peft/registry';
import { countTrainable } from '../../src/lib/peft/state';
import type { PeftConfigBase } from '../../src/lib/peft/types';
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
}

export interface SmolLm2Options {
  batch?: number;
  seq?: number;
  warmup?: number;
  steps?: number;
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

    const lora = methodByCliName('lora');
    const cfg = { ...withFamilyDefaults(lora.defaults('CAUSAL_LM'), model), r: 8 } as PeftConfigBase;
    lora.validate(cfg as never, model);
    const adapter = lora.create(model, cfg as never, 7, { tokenize: () => [] });
    const rng = new Rng(1234);
    const stream = Int32Array.from({ length: Math.max(1 << 14, 4 * batch * seq) }, () =>
      rng.int(config.vocabSize),
    );
    const trainer = new Trainer(model, adapter, stream, {
      steps: warmup + steps,
      lr: 1e-4,
      batchSize: batch,
      seqLen: seq,
      seed: 3,
      warmupSteps: 0,
    });
    const stepMs: number[] = [];
    const losses: number[] = [];
    for (let i = 0; i < warmup + steps; i++) {
      const t = performance.now();
      const st = await trainer.trainStep(); // its loss is read back: the step has finished
      if (i >= warmup) stepMs.push(performance.now() - t);
      losses.push(st.loss);
    }
    const trainable = countTrainable(adapter);
    trainer.dispose();
    adapter.dispose();
    model.dispose();
    const sorted = [...stepMs].sort((a, b) => a - b);
    const medianMs = sorted[Math.floor(sorted.length / 2)]!;
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
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
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
    `  not here  gradient checkpointing and stage-3 offload run on GPT-2 only for now`,
  ].join('\n');
}
