/**
 * `peft-lab combine` over the shared file-level combine (src/lib/io/combine-files.ts): a result on
 * disk, and incompatible adapters refused in one line. Each case spawns bin/peft-lab.mjs.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loraFiles } from '../lib/io/combine-testing';

const BIN = join(fileURLToPath(new URL('../../', import.meta.url)), 'bin/peft-lab.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'peft-lab-combine-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp, timeout: 120_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function folder(name: string, files: { config: string; weights: Uint8Array }): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'adapter_config.json'), files.config);
  writeFileSync(join(dir, 'adapter_model.safetensors'), files.weights);
  return dir;
}

describe('peft-lab combine', () => {
  it('writes cat of r 2 and r 4 as r 6, and refuses ties on them and adapters of two bases', async () => {
    const spec = { base: 'tiny', nLayer: 2, nEmbd: 8 };
    const a = folder('a', loraFiles({ ...spec, r: 2, seed: 1 }));
    const b = folder('b', loraFiles({ ...spec, r: 4, seed: 2 }));
    const c = folder('c', loraFiles({ ...spec, base: 'other', r: 2, seed: 3 }));
    const out = join(tmp, 'ab');
    const [cat, ties, bases] = await Promise.all([
      cli(['combine', '--adapters', `${a},${b}`, '--weights', '1,0.5', '--type', 'cat', '--out', out]),
      cli([
        'combine',
        '--adapters',
        `${a},${b}`,
        '--weights',
        '1,1',
        '--type',
        'ties',
        '--out',
        join(tmp, 't'),
      ]),
      cli(['combine', '--adapters', `${a},${c}`, '--weights', '1,1', '--out', join(tmp, 'x')]),
    ]);
    expect(cat.code, cat.stderr).toBe(0);
    expect(cat.stdout).toMatch(/combined 2 LoRA adapters \(cat, r 6\)/);
    expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'))).toMatchObject({
      r: 6,
      base_model_name_or_path: 'tiny',
    });
    for (const [r, text] of [
      [ties, 'needs equal ranks, got r = 2, 4'],
      [bases, 'made on the same base model'],
    ] as const) {
      expect(r.code).not.toBe(0);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(text);
    }
  }, 120_000);
});
