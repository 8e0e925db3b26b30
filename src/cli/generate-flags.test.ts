/**
 * `peft-lab generate --repetition-penalty`: the same sampler as the Lab's worker
 * (src/lib/model/generate.ts), reached from the command line; each case spawns bin/peft-lab.mjs.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/peft-lab.mjs');
const MODEL = join(ROOT, 'public/models/peftlab-s');

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, timeout: 120_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('peft-lab generate --repetition-penalty', () => {
  it('changes a greedy answer, repeats less, and refuses 0 in one line', async () => {
    const gen = [
      'generate',
      '--model',
      MODEL,
      '--prompt',
      'the the the the',
      '--max-new-tokens',
      '16',
      '--json',
    ];
    const [plain, penalised, bad] = await Promise.all([
      cli(gen),
      cli([...gen, '--repetition-penalty', '3']),
      cli([...gen, '--repetition-penalty', '0']),
    ]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(penalised.code, penalised.stderr).toBe(0);
    const ids = (r: { stdout: string }): number[] =>
      (JSON.parse(r.stdout) as { generated_ids: number[] }).generated_ids;
    expect(ids(penalised)).not.toEqual(ids(plain));
    expect(new Set(ids(penalised)).size).toBeGreaterThanOrEqual(new Set(ids(plain)).size);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^peft-lab: .*--repetition-penalty/);
  }, 120_000);
});
