/**
 * Our files in Python PEFT, in CI: for every method and task type we support, an adapter is made
 * on the tiny GPT-2 fixture with our code, its weights randomised (PEFT's inits make LoRA's B and
 * AdaLoRA's E zero, which any reader would pass) and then trained a few steps with our Trainer (so
 * AdaLoRA's budget cuts ranks), and written with saveAdapter, the function `peft-lab train --out`
 * calls. One Python process (ours_in_peft.py) then loads every folder with
 * PeftModel.from_pretrained and PEFT's AutoPeftModelFor... classes and computes the logits, which
 * must be ours to 1e-4; loading must log no warning PEFT does not give for its own save of the same
 * config, and our adapter_config.json must have exactly the keys PEFT's save_pretrained writes.
 *
 * Python: $PEFT_LAB_PYTHON, then .cache/peft-venv (`npm run setup:python`); skipped with a message
 * when there is none, failed instead under PEFT_LAB_REQUIRE_PYTHON=1 (as .ci/run sets).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initNodeBackend } from '../../../src/lib/backend/node';
import type { DecoderModel } from '../../../src/lib/model/decoder';
import { lmLogits } from '../../../src/lib/model/heads';
import type { ClsTask } from '../../../src/lib/model/heads';
import type { EncodedSet } from '../../../src/lib/data/cls-data';
import { padBatch } from '../../../src/lib/data/cls-data';
import type { TaskType } from '../../../src/lib/data/tasks/registry';
import { TINY_GPT2_DIR, tinyGpt2, tinyLlama } from '../../../src/lib/model/testing';
import { withFamilyDefaults } from '../../../src/lib/train/plan';
import { adapterDecorator, virtualPositions } from '../../../src/lib/peft/forward';
import { methodByCliName } from '../../../src/lib/peft/registry';
import { configForRun } from '../../../src/lib/peft/catalog';
import { headFor, withHeadConfig } from '../../../src/lib/peft/task-head';
import type { Adapter, PeftConfigBase } from '../../../src/lib/peft/types';
import { saveAdapter } from '../../../src/lib/io/peft-format';
import { Trainer } from '../../../src/lib/train/trainer';
import { clsBatchSource, clsLogits } from '../../../src/lib/train/classification';
import { pythonForTests, requirePython, skipWithoutPython } from '../../python-for-tests';

interface Case {
  name: string;
  method: string;
  task: TaskType;
  config?: Record<string, unknown>;
  /** The base: the tiny GPT-2 unless a method PEFT refuses on Conv1D needs nn.Linear layers. */
  base?: 'tiny-llama';
}

/** The tiny Llama written by transformers (src/lib/model/fixtures/tiny-llama). */
const TINY_LLAMA_DIR = join(TINY_GPT2_DIR, '..', 'tiny-llama');

/** Every method, with the variants that change what is saved (encoders, projection, heads). */
const CASES: Case[] = [
  {
    name: 'lora',
    method: 'lora',
    task: 'CAUSAL_LM',
    config: { r: 4, loraAlpha: 8, targetModules: ['c_attn', 'mlp.c_fc'] },
  },
  { name: 'lora_seq_cls', method: 'lora', task: 'SEQ_CLS' },
  { name: 'lora_token_cls', method: 'lora', task: 'TOKEN_CLS' },
  // The budget falls from 4 to 2 ranks per matrix over the 4 steps, so rank_pattern is written.
  {
    name: 'adalora',
    method: 'adalora',
    task: 'CAUSAL_LM',
    config: { initR: 4, targetR: 2, tinit: 0, tfinal: 0, deltaT: 1 },
  },
  {
    name: 'adalora_seq_cls',
    method: 'adalora',
    task: 'SEQ_CLS',
    config: { initR: 4, targetR: 2, tinit: 0, tfinal: 0, deltaT: 1 },
  },
  {
    name: 'lora_dora',
    method: 'lora',
    task: 'CAUSAL_LM',
    config: { r: 4, loraAlpha: 8, targetModules: ['c_attn', 'mlp.c_fc'], useDora: true },
  },
  // PiSSA and OLoRA train A, B over a residual base and save PEFT's converted form (rank 2r,
  // init_lora_weights true), which PEFT loads on the original base.
  {
    name: 'lora_pissa',
    method: 'lora',
    task: 'CAUSAL_LM',
    config: { r: 4, loraAlpha: 8, targetModules: ['c_attn', 'mlp.c_fc'], initLoraWeights: 'pissa' },
  },
  {
    name: 'lora_olora',
    method: 'lora',
    task: 'CAUSAL_LM',
    config: { r: 4, loraAlpha: 8, targetModules: ['c_attn', 'mlp.c_fc'], initLoraWeights: 'olora' },
  },
  { name: 'ln_tuning', method: 'ln-tuning', task: 'CAUSAL_LM' },
  { name: 'ln_tuning_seq_cls', method: 'ln-tuning', task: 'SEQ_CLS' },
  // The Llama family's RMSNorms (gain only, model.norm included) with PEFT's llama defaults.
  { name: 'ln_tuning_llama', method: 'ln-tuning', task: 'CAUSAL_LM', base: 'tiny-llama' },
  {
    name: 'vera',
    method: 'vera',
    task: 'CAUSAL_LM',
    config: { r: 4, targetModules: ['c_attn', 'mlp.c_fc'] },
  },
  { name: 'vera_seq_cls', method: 'vera', task: 'SEQ_CLS', config: { r: 4 } },
  // PEFT 0.21 refuses LoHa and LoKr on GPT-2's Conv1D: checked on tiny-llama (PEFT's targets there).
  { name: 'loha_llama', method: 'loha', task: 'CAUSAL_LM', base: 'tiny-llama', config: { r: 4, alpha: 6 } },
  {
    name: 'lokr_llama',
    method: 'lokr',
    task: 'CAUSAL_LM',
    base: 'tiny-llama',
    config: { r: 2, alpha: 3, decomposeBoth: true, targetModules: ['q_proj', 'v_proj', 'down_proj'] },
  },
  // PEFT 0.21's OFT also takes nn.Linear only: the series with PEFT's targets, then the exact
  // Cayley transform with one shared block and COFT's projection, on other layers; blocks sized by r.
  { name: 'oft_llama', method: 'oft', task: 'CAUSAL_LM', base: 'tiny-llama', config: { oftBlockSize: 8 } },
  {
    name: 'oft_llama_exact_share_coft',
    method: 'oft',
    task: 'CAUSAL_LM',
    base: 'tiny-llama',
    config: {
      oftBlockSize: 4,
      useCayleyNeumann: false,
      blockShare: true,
      coft: true,
      eps: 0.5,
      targetModules: ['k_proj', 'o_proj', 'down_proj'],
    },
  },
  {
    name: 'oft_llama_r',
    method: 'oft',
    task: 'CAUSAL_LM',
    base: 'tiny-llama',
    config: { r: 4, oftBlockSize: 0, numCayleyNeumannTerms: 3, targetModules: ['q_proj', 'up_proj'] },
  },
  // BOFT likewise, with one butterfly factor: PEFT without its CUDA extension (as here) builds
  // one-factor layers whatever the config asks, so our multi-factor files load only where PEFT has
  // it; their math is checked the other way (src/lib/peft/boft/boft.test.ts).
  { name: 'boft_llama', method: 'boft', task: 'CAUSAL_LM', base: 'tiny-llama', config: { boftBlockSize: 4 } },
  { name: 'ia3', method: 'ia3', task: 'CAUSAL_LM' },
  { name: 'ia3_seq_cls', method: 'ia3', task: 'SEQ_CLS' },
  { name: 'prompt_tuning', method: 'prompt-tuning', task: 'CAUSAL_LM', config: { numVirtualTokens: 4 } },
  {
    name: 'prompt_tuning_seq_cls',
    method: 'prompt-tuning',
    task: 'SEQ_CLS',
    config: { numVirtualTokens: 4 },
  },
  { name: 'prefix_tuning', method: 'prefix-tuning', task: 'CAUSAL_LM', config: { numVirtualTokens: 4 } },
  {
    name: 'prefix_tuning_projection',
    method: 'prefix-tuning',
    task: 'CAUSAL_LM',
    config: { numVirtualTokens: 4, prefixProjection: true, encoderHiddenSize: 8 },
  },
  {
    name: 'prefix_tuning_seq_cls',
    method: 'prefix-tuning',
    task: 'SEQ_CLS',
    config: { numVirtualTokens: 4 },
  },
  {
    name: 'p_tuning_mlp',
    method: 'p-tuning',
    task: 'CAUSAL_LM',
    config: { numVirtualTokens: 4, encoderReparameterizationType: 'MLP', encoderHiddenSize: 8 },
  },
  {
    name: 'p_tuning_lstm',
    method: 'p-tuning',
    task: 'CAUSAL_LM',
    config: { numVirtualTokens: 4, encoderReparameterizationType: 'LSTM', encoderHiddenSize: 8 },
  },
  {
    name: 'p_tuning_seq_cls',
    method: 'p-tuning',
    task: 'SEQ_CLS',
    config: { numVirtualTokens: 4, encoderHiddenSize: 8 },
  },
  { name: 'p_tuning_v2_seq_cls', method: 'p-tuning-v2', task: 'SEQ_CLS', config: { numVirtualTokens: 4 } },
  {
    name: 'p_tuning_v2_token_cls',
    method: 'p-tuning-v2',
    task: 'TOKEN_CLS',
    config: { numVirtualTokens: 4 },
  },
];

const IDS = [1, 8, 4, 0, 7, 3, 12, 5];
const LABELS = { SEQ_CLS: ['no', 'yes'], TOKEN_CLS: ['a', 'b', 'c'] } as const;
const STEPS = 4;
const TOL = 1e-4;
/** A char-per-token stand-in for the tokenizer (the tiny fixture has none; TEXT init is not used). */
const tokenize = (text: string): number[] => Array.from(text.trim(), (c) => c.charCodeAt(0) % 90);
/** A learnable stream for the causal-LM steps. */
const STREAM = Int32Array.from({ length: 600 }, (_, i) => (i * 7) % 11);

function clsSet(task: ClsTask): EncodedSet {
  const examples = Array.from({ length: 16 }, (_, i) => {
    const ids = Array.from({ length: 6 + (i % 3) }, (_, t) => (i * 13 + t * 7) % 40);
    return { ids, label: task === 'SEQ_CLS' ? (ids.includes(5) ? 1 : 0) : ids.map((x) => x % 3) };
  });
  return { task, examples, padId: 96 };
}

/** [1, T, V], [1, numLabels] or [1, T, numLabels], eval mode, real tokens only. */
function logitsOf(model: DecoderModel, adapter: Adapter | null, task: TaskType): tf.Tensor {
  return tf.tidy(() => {
    if (task === 'CAUSAL_LM') {
      const ids = tf.tensor2d([IDS], undefined, 'int32');
      const opts = adapter ? adapterDecorator(model, adapter)({ ids }, true) : { ids };
      let hidden = model.forward(opts).hidden; // [1, n + T, C]
      const n = virtualPositions(adapter);
      if (n > 0) hidden = tf.slice(hidden, [0, n, 0], [-1, -1, -1]); // [1, T, C]
      return lmLogits(model, hidden);
    }
    const set: EncodedSet = {
      task,
      examples: [{ ids: IDS, label: task === 'SEQ_CLS' ? 0 : IDS.map(() => 0) }],
      padId: 96,
    };
    return clsLogits(model, adapter, adapter!.head!, padBatch(set, [0]), false, 0);
  });
}

/**
 * Sets every trainable tensor to N(0, 0.2), as the PEFT fixtures do; scales that multiply (IA3's
 * vectors, LN tuning's gains, DoRA's magnitudes) become their start times 1 + N(0, 0.2), so the
 * model stays near its base and a sign flip cannot hide a mistake.
 */
function randomise(adapter: Adapter, seed: number): void {
  let i = 0;
  for (const [key, v] of adapter.trainable()) {
    const scale =
      key.includes('ia3_l') ||
      key.includes('lora_magnitude_vector') ||
      (key.includes('ln_tuning_layers') && key.endsWith('.weight'));
    v.assign(
      tf.tidy(() => {
        const noise = tf.randomNormal(v.shape, scale ? 1 : 0, 0.2, 'float32', seed + i++);
        return scale && !key.includes('ia3_l') ? tf.mul(v, noise) : noise;
      }),
    );
  }
}

interface Made {
  name: string;
  /** The base model's folder (transformers reads it). */
  model: string;
  dir: string;
  task: TaskType;
  input_ids: number[][];
  logits: number[];
  shape: number[];
  /** Max |ours - base| for CAUSAL_LM, so a do-nothing adapter cannot pass. */
  effect: number | null;
  configKeys: string[];
}

async function make(c: Case, root: string, seed: number): Promise<Made> {
  const model: DecoderModel = c.base === 'tiny-llama' ? tinyLlama() : tinyGpt2();
  const baseDir = c.base === 'tiny-llama' ? TINY_LLAMA_DIR : TINY_GPT2_DIR;
  const method = methodByCliName(c.method);
  let config: PeftConfigBase = configForRun(
    {
      ...withFamilyDefaults(method.defaults(c.task), model),
      ...c.config,
      baseModelNameOrPath: baseDir,
    } as PeftConfigBase,
    STEPS,
  );
  if (c.task !== 'CAUSAL_LM') config = withHeadConfig(config, LABELS[c.task], tokenize);
  const adapter = method.create(model, config, seed, { tokenize });
  try {
    if (c.task !== 'CAUSAL_LM')
      adapter.attachHead!(headFor(model, config, c.task, LABELS[c.task].length, seed + 1));
    randomise(adapter, seed);
    const source = c.task === 'CAUSAL_LM' ? STREAM : clsBatchSource(clsSet(c.task), adapter.head!);
    const trainer = new Trainer(model, adapter, source, {
      steps: STEPS,
      lr: 1e-2,
      batchSize: 4,
      seqLen: 12,
      seed,
      maxGradNorm: 1,
      warmupSteps: 0,
    });
    for (let s = 0; s < STEPS; s++) await trainer.trainStep();
    if (c.method === 'adalora') {
      // The point of the AdaLoRA cases: a cut budget, saved as PEFT's rank_pattern.
      const ranks = (adapter as Adapter & { ranks(): number[] }).ranks();
      expect(Math.min(...ranks), `${c.name} ranks ${ranks}`).toBeLessThan(4);
    }
    const out = logitsOf(model, adapter, c.task);
    let effect: number | null = null;
    if (c.task === 'CAUSAL_LM') {
      const undo = adapter.kind === 'inject' ? adapter.disableAdapter() : null;
      const base = logitsOf(model, null, c.task);
      undo?.();
      effect = tf.tidy(() => tf.max(tf.abs(tf.sub(out, base))).dataSync()[0]!);
      base.dispose();
    }
    const files = await saveAdapter(adapter, baseDir);
    const dir = join(root, c.name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'adapter_config.json'), files.config);
    writeFileSync(join(dir, 'adapter_model.safetensors'), files.weights);
    const made: Made = {
      name: c.name,
      model: baseDir,
      dir,
      task: c.task,
      input_ids: [IDS],
      logits: Array.from(out.dataSync()),
      shape: out.shape,
      effect,
      configKeys: Object.keys(JSON.parse(files.config) as object).sort(),
    };
    out.dispose();
    return made;
  } finally {
    adapter.dispose();
    model.dispose();
  }
}

interface Row {
  name: string;
  loads: boolean;
  error?: string;
  diff?: number | string;
  warnings: string[];
  auto_diff?: number | string;
  auto_error?: string;
  auto_warnings: string[];
  peft_keys?: string[];
  peft_own_warnings: string[];
  peft_own_error?: string;
}

const py = pythonForTests();

describe.skipIf(skipWithoutPython(py, 'our adapters in Python PEFT'))(
  'our adapters in Python PEFT 0.21',
  () => {
    const made = new Map<string, Made>();
    const rows = new Map<string, Row>();
    let root = '';

    beforeAll(async () => {
      const python = requirePython(py);
      await initNodeBackend('wasm');
      root = mkdtempSync(join(tmpdir(), 'ours-in-peft-'));
      let seed = 11;
      for (const c of CASES) made.set(c.name, await make(c, root, (seed += 10)));
      const manifest = join(root, 'manifest.json');
      const report = join(root, 'report.json');
      writeFileSync(manifest, JSON.stringify({ model: TINY_GPT2_DIR, cases: [...made.values()] }));
      const t0 = performance.now();
      const r = spawnSync(python, [join(import.meta.dirname, 'ours_in_peft.py'), manifest, report], {
        encoding: 'utf8',
        env: { ...process.env, OMP_NUM_THREADS: '1', TOKENIZERS_PARALLELISM: 'false' },
        timeout: 240_000,
      });
      if (r.status !== 0) {
        throw new Error(
          `ours_in_peft.py failed (exit ${r.status}, ${r.signal ?? 'no signal'}):\n${r.stderr.slice(-3000)}`,
        );
      }
      const out = JSON.parse(readFileSync(report, 'utf8')) as {
        versions: Record<string, string>;
        cases: Row[];
      };
      process.stderr.write(
        `ours in PEFT: ${CASES.length} adapters checked by peft ${out.versions.peft}, transformers ${out.versions.transformers}, torch ${out.versions.torch} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
      );
      for (const row of out.cases) rows.set(row.name, row);
    }, 600_000);

    afterAll(() => {
      if (root) rmSync(root, { recursive: true, force: true });
    });

    it.each(CASES.map((c) => [c.name, c] as const))(
      '%s loads in PeftModel and AutoPeftModel with our logits',
      (name) => {
        const m = made.get(name)!;
        const row = rows.get(name)!;
        expect(row, `${name}: no report row`).toBeDefined();
        expect(row.error ?? null, `${name}: PeftModel.from_pretrained`).toBeNull();
        expect(row.loads).toBe(true);
        expect(typeof row.diff, `${name}: ${String(row.diff)}`).toBe('number');
        expect(row.diff as number).toBeLessThan(TOL);
        if (m.effect !== null)
          expect(m.effect, `${name}: the adapter barely moves the logits`).toBeGreaterThan(0.05);
        expect(row.auto_error ?? null, `${name}: AutoPeftModel`).toBeNull();
        expect(row.auto_diff as number).toBeLessThan(TOL);
        // PEFT's own save of the same config: the same keys, and no warning it would not also give.
        expect(row.peft_own_error ?? null, `${name}: PEFT's own save`).toBeNull();
        expect(m.configKeys).toEqual(row.peft_keys);
        expect(row.warnings.filter((w) => !row.peft_own_warnings.includes(w))).toEqual([]);
        expect(row.auto_warnings.filter((w) => !row.peft_own_warnings.includes(w))).toEqual([]);
      },
    );
  },
);
