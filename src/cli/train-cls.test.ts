/** `peft-lab train --task` on the classification tasks writes PEFT's files with the task head. */
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readAdapterWeights } from '../lib/io/peft-format';

const run = promisify(execFile);
const BIN = join(process.cwd(), 'bin/peft-lab.mjs');

describe('peft-lab train on classification tasks', () => {
  it.each([
    ['spam', 'base_model.model.score.weight', [2, 96]],
    ['brown-pos', 'base_model.model.classifier.weight', [12, 96]],
  ] as const)('%s: reports the metric and saves the head as modules_to_save', async (task, key, shape) => {
    const out = mkdtempSync(join(tmpdir(), `peft-lab-${task}-`));
    try {
      const { stdout } = await run('node', [
        BIN,
        'train',
        '--model',
        'public/models/peftlab-s',
        '--method',
        'lora',
        '--task',
        task,
        '--steps',
        '3',
        '--batch-size',
        '4',
        '--seq-len',
        '32',
        '--out',
        out,
        '--json',
      ]);
      const r = JSON.parse(stdout) as { metric: string; eval_after: { metric: number } };
      expect(r.metric).toMatch(/accuracy/);
      expect(r.eval_after.metric).toBeGreaterThanOrEqual(0);
      const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<
        string,
        unknown
      >;
      expect(config.task_type).toBe(task === 'spam' ? 'SEQ_CLS' : 'TOKEN_CLS');
      expect(config.modules_to_save).toEqual(['classifier', 'score']);
      const w = readAdapterWeights(new Uint8Array(readFileSync(join(out, 'adapter_model.safetensors'))), out);
      expect(w.get(key)?.shape).toEqual(shape);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
