/**
 * `peft-lab export` end to end: the project it writes for LoRA (causal LM, Moby-Dick) and prompt
 * tuning (SEQ_CLS, spam) on the bundled peftlab-s trains 3 steps with the local mirror's torch,
 * transformers, peft and accelerate (`python train.py --max-steps 3`), saves PEFT's adapter files
 * to output/, and that adapter loads back in our engine with finite logits. Its ds_config.json
 * passes the schema check (DeepSpeed itself is not installable here) and reads back as the flags.
 *
 * Python as in ours-in-peft.test.ts: $PEFT_LAB_PYTHON, then .cache/peft-venv; skipped with a message
 * when there is none, failed instead under PEFT_LAB_REQUIRE_PYTHON=1 (as .ci/run sets).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from './main';
import { initNodeBackend } from '../lib/backend/node';
import { loadAdapter } from '../lib/io/peft-format';
import { loadGpt2 } from '../lib/model/load';
import { lmLogits } from '../lib/model/heads';
import { adapterDecorator, virtualPositions } from '../lib/peft/forward';
import { clsLogits } from '../lib/train/classification';
import { padBatch } from '../lib/data/cls-data';
import { mapDeepSpeedConfig } from '../lib/offload/deepspeed';
import { validateDeepSpeedConfig } from '../lib/export/ds-schema';
import { PINNED_REQUIREMENTS } from '../lib/export/python-project';
import { pythonForTests, requirePython, skipWithoutPython } from '../../scripts/python-for-tests';

const MODEL = 'public/models/peftlab-s';
const py = pythonForTests();

interface Project {
  name: string;
  args: string[];
  task: 'CAUSAL_LM' | 'SEQ_CLS';
}

const PROJECTS: Project[] = [
  {
    name: 'lora',
    args: ['--method', 'lora', '--r', '4', '--target-modules', 'c_attn,mlp.c_fc', '--lr', '1e-2'],
    task: 'CAUSAL_LM',
  },
  {
    name: 'prompt-tuning',
    args: [
      '--method',
      'prompt-tuning',
      '--task',
      'spam',
      '--num-virtual-tokens',
      '4',
      '--grad-accum',
      '2',
      '--zero-stage',
      '2',
      '--offload-optimizer',
      'cpu',
      '--max-grad-norm',
      '0.5',
    ],
    task: 'SEQ_CLS',
  },
];

describe.skipIf(skipWithoutPython(py, 'the exported Python project'))(
  'peft-lab export: a Python project that trains',
  () => {
    let root = '';
    const stdout = new Map<string, string>();

    beforeAll(async () => {
      const python = requirePython(py);
      root = mkdtempSync(join(tmpdir(), 'export-project-'));
      const write = process.stdout.write.bind(process.stdout);
      for (const p of PROJECTS) {
        const out = join(root, p.name);
        const argv = [
          'export',
          '--model',
          MODEL,
          ...p.args,
          '--steps',
          '50',
          '--batch-size',
          '2',
          '--seq-len',
          '32',
          '--out',
          out,
        ];
        expect(await main(argv), argv.join(' ')).toBe(0);
        const t0 = performance.now();
        const r = spawnSync(python, [join(out, 'train.py'), '--max-steps', '3'], {
          encoding: 'utf8',
          env: { ...process.env, OMP_NUM_THREADS: '1', TOKENIZERS_PARALLELISM: 'false' },
          timeout: 240_000,
        });
        if (r.status !== 0)
          throw new Error(`${p.name}: train.py failed (exit ${r.status}):\n${r.stderr.slice(-3000)}`);
        write(
          `exported ${p.name}: train.py --max-steps 3 took ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
        );
        stdout.set(p.name, r.stdout);
      }
      await initNodeBackend('wasm');
    }, 600_000);

    afterAll(() => {
      if (root) rmSync(root, { recursive: true, force: true });
    });

    it('pins the versions of the Python it ran with', () => {
      const r = spawnSync(
        requirePython(py),
        [
          '-c',
          'import importlib.metadata as m, json, sys; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))',
          ...Object.keys(PINNED_REQUIREMENTS),
        ],
        { encoding: 'utf8' },
      );
      const installed = JSON.parse(r.stdout) as Record<string, string>;
      for (const [name, v] of Object.entries(PINNED_REQUIREMENTS)) {
        // torch's local wheel says 2.13.0+cpu: the pin is the release.
        expect(installed[name]!.split('+')[0], name).toBe(v);
      }
    });

    it.each(PROJECTS.map((p) => [p.name, p] as const))(
      '%s: trains 3 steps, saves the adapter, which loads back here',
      (name, p) => {
        const dir = join(root, name);
        const lines = stdout.get(name)!.trim().split('\n');
        const last = JSON.parse(lines.at(-1)!) as { steps: number; eval_after: { loss: number } };
        expect(last.steps).toBe(3);
        expect(Number.isFinite(last.eval_after.loss)).toBe(true);
        expect(lines.filter((l) => l.startsWith('{"step"'))).toHaveLength(3);
        expect(existsSync(join(dir, 'output/adapter_config.json'))).toBe(true);
        expect(existsSync(join(dir, 'output/adapter_model.safetensors'))).toBe(true);

        const model = loadGpt2({
          config: JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')),
          weights: new Uint8Array(readFileSync(join(MODEL, 'model.safetensors'))),
          source: MODEL,
        });
        // loadAdapter refuses any key it does not know and any shape that does not fit.
        const adapter = loadAdapter(
          model,
          {
            config: readFileSync(join(dir, 'output/adapter_config.json'), 'utf8'),
            weights: new Uint8Array(readFileSync(join(dir, 'output/adapter_model.safetensors'))),
          },
          `${name}/output`,
        );
        try {
          expect(adapter.config.taskType).toBe(p.task);
          const ids = [15, 201, 7, 999, 42, 3, 1500, 77];
          const logits = tf.tidy(() => {
            if (p.task === 'CAUSAL_LM') {
              const x = tf.tensor2d([ids], undefined, 'int32');
              const hidden = model.forward(adapterDecorator(model, adapter)({ ids: x }, true)).hidden;
              const n = virtualPositions(adapter);
              return lmLogits(model, n > 0 ? tf.slice(hidden, [0, n, 0], [-1, -1, -1]) : hidden).dataSync();
            }
            const set = { task: 'SEQ_CLS' as const, examples: [{ ids, label: 0 }], padId: 0 };
            return clsLogits(model, adapter, adapter.head!, padBatch(set, [0]), false, 0).dataSync();
          });
          expect(logits.length).toBeGreaterThan(0);
          expect(logits.every(Number.isFinite)).toBe(true);
          if (p.task === 'CAUSAL_LM') {
            // Three steps in PyTorch moved LoRA's B off zero: the adapter changes what the model says.
            const undo = adapter.disableAdapter();
            const base = tf.tidy(() =>
              lmLogits(
                model,
                model.forward({ ids: tf.tensor2d([ids], undefined, 'int32') }).hidden,
              ).dataSync(),
            );
            undo();
            expect(Math.max(...logits.map((v, i) => Math.abs(v - base[i]!)))).toBeGreaterThan(1e-4);
          }
        } finally {
          adapter.dispose();
          model.dispose();
        }
      },
    );

    it('writes a ds_config.json that passes the schema and reads back as the flags', () => {
      const ds = JSON.parse(readFileSync(join(root, 'prompt-tuning/ds_config.json'), 'utf8')) as unknown;
      expect(validateDeepSpeedConfig(ds)).toEqual([]);
      expect(mapDeepSpeedConfig(ds).settings).toMatchObject({
        stage: 2,
        offloadOptimizer: 'cpu',
        gradientAccumulationSteps: 2,
        maxGradNorm: 0.5,
      });
      expect(ds).toMatchObject({ train_micro_batch_size_per_gpu: 2 });
    });
  },
);
